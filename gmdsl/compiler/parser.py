"""Phase 1, parse: spec text -> `ast.Spec`.

Lark's LALR parser with positions on; its exceptions are converted here, at the
boundary, into a `SpecSyntaxError` that says what was expected and where.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, InternalCompilerError, SpecSyntaxError, error

# Known mistakes, recognised by the parser state they fail in (lark's match_examples).
_FRIENDLY_SYNTAX_ERRORS: dict[str, list[str]] = {
    "a variable needs a type: `observed x : binary[784]`": [
        "observed x binary[784]",
        "latent z real[2]",
    ],
    "a type needs a shape in brackets: `real[50]`, `onehot[10]`, `real[1, 32, 32]`": [
        "observed x : real",
        "observed x : real p(x) = Normal(0, 1)",
        "latent z : real(3)",
    ],
    "a shape is made of positive whole numbers: `real[1, 32, 32]`": [
        "observed x : real[]",
        "observed x : real[a]",
        "observed x : real[1.5]",
        "observed x : real[-2]",
    ],
    "a factor is written with `=`, not `~`: `p(v | parents) = Dist(args)`": [
        "p(x) ~ Normal(0, 1)",
        "p(x | y) ~ Normal(0, 1)",
    ],
    "a factor is written `p(v | parents) = Dist(args)`": [
        "p(x) Normal(0, 1)",
        "p(x | y) Normal(0, 1)",
        "p x = Normal(0, 1)",
    ],
    "list the parents after `|`, separated by commas: `q(z | x, y)`": [
        "p(x | ) = Normal(0, 1)",
        "p(x | y z) = Normal(0, 1)",
        "p(x, y) = Normal(0, 1)",
    ],
    "a network's inputs are names of variables or `let` nodes; compute the inner network first: "
    "`let h : real[64] = inner(z)`, then `outer(h)`": [
        "p(x) = Normal(d(e(z)))",
        "p(x) = Normal(loc = d(e(z)), scale = 1)",
    ],
    "a distribution is called with parentheses: `Normal(0, 1)`": [
        "p(x) = Normal",
        "p(x) = Normal p(y) = Normal(0, 1)",
    ],
    "a network is defined as `net NAME = BUILDER(KEY = VALUE, ...)`, e.g. `net decoder = mlp(hidden = [256])`": [
        "net decoder mlp(hidden = [256])",
        "net decoder = mlp(hidden = [256]",
        "net decoder = mlp([256])",
    ],
}


def _read_grammar() -> str:
    return resources.files("gmdsl.grammar").joinpath("gm.lark").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(_read_grammar(), parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)


def _span_of(item: Token | lark.tree.Meta) -> ast.Span:
    # with propagate_positions, every token and tree the transformer sees has its position
    return ast.Span(cast(int, item.line), cast(int, item.column), cast(int, item.end_line), cast(int, item.end_column))


def _ident(token: Token) -> ast.Ident:
    return ast.Ident(str(token), _span_of(token))


def _present(items) -> tuple:
    """Lark's `[a ("," a)*]` with placeholders gives [None] for an empty list."""
    return tuple(item for item in items if item is not None)


@v_args(meta=True, inline=True)
class _ToAst(Transformer):
    def start(self, meta, *statements):
        return statements

    def model_decl(self, meta, name):
        return ast.ModelDecl(_ident(name), _span_of(meta))

    def var_decl(self, meta, role, name, type_expr):
        return ast.VarDecl(str(role), _ident(name), type_expr, _span_of(meta))

    def type_expr(self, meta, base, *shape):
        return ast.TypeExpr(_ident(base), tuple(int(n) for n in shape), _span_of(meta))

    def let_decl(self, meta, name, type_expr, call):
        return ast.LetDecl(_ident(name), type_expr, call, _span_of(meta))

    def param_decl(self, meta, name, type_expr, initial):
        return ast.ParamDecl(_ident(name), type_expr, initial, _span_of(meta))

    def factor(self, meta, model, variable, parents, distribution, estimator):
        return ast.Factor(str(model), _ident(variable), parents or (), distribution, estimator, _span_of(meta))

    def parents(self, meta, *names):
        return names

    def ref(self, meta, name, step):
        return ast.Ident(str(name), _span_of(meta), step)

    def step(self, meta, index, sign, size):
        offset = 0 if size is None else (int(size) if str(sign) == "+" else -int(size))
        return ast.Step(_ident(index), offset, _span_of(meta))

    def repeat_block(self, meta, index, bound, *body):
        return ast.Repeat(_ident(index), _ident(bound) if bound is not None else None, body, _span_of(meta))

    def distribution(self, meta, name, *args):
        return ast.Distribution(_ident(name), _present(args), _span_of(meta))

    def keyword_arg(self, meta, keyword, value):
        return ast.DistArg(_ident(keyword), value, _span_of(meta))

    def positional_arg(self, meta, value):
        return ast.DistArg(None, value, _span_of(meta))

    def vector(self, meta, *items):
        return ast.Vector(tuple(items), _span_of(meta))

    def reference(self, meta, name):
        return ast.Reference(name, _span_of(meta))

    def net_call(self, meta, net, *args):
        return ast.NetCall(_ident(net), _present(args), _span_of(meta))

    def estimator(self, meta, name, *options):
        return ast.Estimator(_ident(name), _present(options), _span_of(meta))

    def net_decl(self, meta, name, builder, *options):
        return ast.NetDecl(_ident(name), _ident(builder), _present(options), _span_of(meta))

    def objective_decl(self, meta, kind, *options):
        return ast.ObjectiveDecl(_ident(kind), _present(options), _span_of(meta))

    def option(self, meta, key, value):
        return ast.Option(_ident(key), value, _span_of(meta))

    def word(self, meta, token):
        return ast.Word(str(token), _span_of(meta))

    def list(self, meta, *items):
        return ast.ListLiteral(_present(items), _span_of(meta))

    def number(self, meta, token):
        text = str(token)
        is_integer = text.lstrip("+-").isdigit()
        return ast.Number(int(text) if is_integer else float(text), _span_of(meta))


def parse(source: str, path: str = "<string>") -> ast.Spec:
    """Parse spec text into an `ast.Spec`; a syntax error raises `SpecSyntaxError`."""
    try:
        tree = _parse_tracking_previous_token(_parser(), source)
    except _SyntaxFailure as failure:
        raise SpecSyntaxError([_syntax_diagnostic(failure, source)], path, source) from None
    try:
        statements = _ToAst().transform(tree)
    except VisitError as exc:  # a bug in the transformer, not in the spec
        raise InternalCompilerError(f"building the AST failed: {exc.orig_exc!r}") from exc.orig_exc
    return ast.Spec(tuple(statements), path=path, source=source)


@dataclass
class _SyntaxFailure(Exception):
    """Lark's error, the last token accepted before it (to point just after), and the
    terminals the parser really accepts there (LALR's merged lookaheads list more terminals
    than any spec could continue with)."""

    error: UnexpectedInput
    previous: Token | None
    accepts: set[str] | None


def _parse_tracking_previous_token(parser: Lark, source: str) -> lark.Tree:
    """Parse, remembering the last token accepted, so an error can point just after it."""
    interactive = parser.parse_interactive(source)
    previous: Token | None = None
    current: Token | None = None
    try:
        for token in interactive.iter_parse():
            previous, current = current, token
        return interactive.feed_eof(current)
    except UnexpectedInput as exc:
        unexpected_token = isinstance(exc, UnexpectedToken)
        before = previous if unexpected_token and getattr(exc, "token", None) is current else current
        raise _SyntaxFailure(exc, before, interactive.accepts() if unexpected_token else None) from None


def _inside_block(exc: UnexpectedInput, source: str) -> bool:
    """Whether the error lies inside an unclosed `repeat { ... }` (comments aside)."""
    token: Any = getattr(exc, "token", None)
    position = getattr(token, "start_pos", None) if token is not None else getattr(exc, "pos_in_stream", None)
    before = source if not isinstance(position, int) else source[:position]
    code = "\n".join(line.split("#", 1)[0] for line in before.splitlines())
    return code.count("{") > code.count("}")


def _describe_terminal(name: str) -> str:
    readable = {
        "NAME": "a name",
        "INT": "a whole number",
        "SIGNED_NUMBER": "a number",
        "ROLE": "`observed`, `supervised` or `latent`",
        "FACTOR": "`p` or `q`",
        "$END": "end of file",
    }
    if name in readable:
        return readable[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name
    return f"`{pattern.value}`"


def _describe_expected(expected: set[str]) -> str:
    statement_starts = {"MODEL", "ROLE", "LET", "PARAM", "FACTOR", "NET", "OBJECTIVE", "REPEAT"}
    names = set(expected)
    parts = []
    if statement_starts <= names:
        names -= statement_starts | {"$END"}
        parts.append("a new statement")
    parts += sorted(_describe_terminal(n) for n in names)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _found(exc: UnexpectedInput, source: str) -> str:
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return "end of file"
    if isinstance(exc, UnexpectedCharacters):
        character = source[cast(int, exc.pos_in_stream)]
        return f"`{character}`" if character.isprintable() else f"the character {character!r}"
    return f"`{getattr(exc, 'token', '')}`"


def _syntax_diagnostic(failure: _SyntaxFailure, source: str) -> Diagnostic:
    exc, previous = failure.error, failure.previous
    expected = set(failure.accepts or getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set())
    if not _inside_block(exc, source):  # LALR's merged states offer `}` at the top level too
        expected.discard("RBRACE")
    found = _found(exc, source)
    message = f"expected {_describe_expected(set(expected))}, found {found}" if expected else f"unexpected {found}"
    # A token on a later line that could not start a statement means the previous
    # statement was left unfinished: point just after it.
    unfinished = not {"ROLE", "FACTOR"} <= set(expected)
    span = _error_span(exc, source, previous if unfinished else None)
    help_text = _friendly_help(exc)
    if "RBRACE" in expected and found == "end of file":
        help_text = "a `repeat` block ends with `}`: close it after its last statement"
    if help_text is None and isinstance(exc, UnexpectedCharacters):
        quoted = source[cast(int, exc.pos_in_stream)] in "\"'"
        help_text = (
            "write words without quotes: `activation = relu`"
            if quoted
            else "names are letters, digits and `_`; comments start with `#`"
        )
    elif help_text is None and {"ROLE", "FACTOR"} <= set(expected):
        help_text = (
            "a statement starts with `model`, `observed`, `supervised`, `latent`, `let`, `p`, `q`, `net`, `objective` "
            "or `repeat`"
        )
    return error(
        "E0001",
        f"syntax error: {message}",
        span,
        help=help_text,
        note="only the first syntax error is shown: fix it, then check again",
    )


def _error_span(exc: UnexpectedInput, source: str, previous: Any) -> ast.Span:
    """Where to point: at the offending token, or just after the previous one when the
    offending token sits on a later line (a missing `)` belongs to the line it was left off)."""
    # lark types a token's position as optional; the tokens of a failed parse have theirs
    token: Any = getattr(exc, "token", None)
    at_end = token is None or token.type == "$END"
    if previous is not None and (at_end or token.line > previous.end_line):
        return ast.Span(previous.end_line, previous.end_column, previous.end_line, previous.end_column + 1)
    if not at_end and token.line is not None:
        return ast.Span(token.line, token.column, token.end_line, token.end_column)
    line = getattr(exc, "line", None)
    column = getattr(exc, "column", None)
    if isinstance(line, int) and line > 0 and isinstance(column, int):
        return ast.Span(line, column, line, column + 1)
    lines = source.splitlines() or [""]
    return ast.Span(len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)


def _failure_key(exc: UnexpectedInput) -> tuple | None:
    """The parser state and offending token kind of a failure: equal keys, same mistake."""
    state = getattr(exc, "state", None)
    if state is not None and not isinstance(state, int):
        state = state.position  # lark hands a ParserState when the lexer raised
    token = getattr(exc, "token", None)
    return (state, token.type if token is not None else None) if state is not None else None


@functools.lru_cache(maxsize=1)
def _friendly_table() -> dict[tuple, str]:
    table: dict[tuple, str] = {}
    for help_text, examples in _FRIENDLY_SYNTAX_ERRORS.items():
        for example in examples:
            try:
                _parser().parse(example)
            except UnexpectedInput as exc:
                key = _failure_key(exc)
                if key is not None:
                    table.setdefault(key, help_text)
            else:
                raise InternalCompilerError(f"friendly syntax-error example parses: {example!r}")
    return table


def _friendly_help(exc: UnexpectedInput) -> str | None:
    key = _failure_key(exc)
    return _friendly_table().get(key) if key is not None else None
