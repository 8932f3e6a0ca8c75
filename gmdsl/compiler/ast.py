"""The abstract syntax tree of a `.gm` spec: frozen dataclasses, one per construct.

Every node carries a 1-based source `Span`. Spans are excluded from equality, so two
trees that say the same thing compare equal wherever they came from; this is what the
parse -> pretty-print -> parse round trip relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Span:
    """A region of the source: 1-based lines and columns, end column exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        """The span from the start of this one to the end of `other`."""
        return Span(self.line, self.column, other.end_line, other.end_column)


NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True)
class Step:
    """Which step of a repeated name a reference reads: `[k]` (offset 0, this step) or
    `[k - 1]` (offset -1, the step before); as written, so a wrong index can be reported."""

    index: Ident
    offset: int = 0
    span: Span = _span()


@dataclass(frozen=True)
class Ident:
    """A name as written, with where it was written; a reference inside a `repeat` may name
    a step of it (`canvas[k - 1]`)."""

    name: str
    span: Span = _span()
    step: Step | None = None

    @property
    def earlier(self) -> bool:
        """Whether it reads an earlier step than the current one (`name[k - 1]`)."""
        return self.step is not None and self.step.offset < 0

    @property
    def other_step(self) -> bool:
        """Whether it reads another step than the current one (earlier, or later: an error)."""
        return self.step is not None and self.step.offset != 0


@dataclass(frozen=True)
class Number:
    value: int | float
    span: Span = _span()


@dataclass(frozen=True)
class Vector:
    """A list of numbers as a distribution argument: one constant per element of the variable."""

    items: tuple[Number, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Word:
    """A bare word used as a value: `relu`, `snis`, `uniform`."""

    word: str
    span: Span = _span()


@dataclass(frozen=True)
class ListLiteral:
    items: tuple[Literal, ...]
    span: Span = _span()


Literal = Number | Word | ListLiteral


@dataclass(frozen=True)
class Option:
    """`key = literal` in a network builder, an estimator or the objective."""

    key: Ident
    value: Literal
    span: Span = _span()


@dataclass(frozen=True)
class TypeExpr:
    """`real[50]`, `onehot[10]`, `real[1, 32, 32]`."""

    base: Ident
    shape: tuple[int, ...]
    span: Span = _span()


@dataclass(frozen=True)
class NetCall:
    """`decoder(y, z)`: a named network applied to variables or `let` nodes."""

    net: Ident
    args: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Reference:
    """A bare name as a distribution argument: a variable, a `let` node or `uniform`."""

    name: Ident
    span: Span = _span()


ArgValue = Number | Vector | Reference | NetCall


@dataclass(frozen=True)
class DistArg:
    """One distribution argument; `keyword` is None for a positional one."""

    keyword: Ident | None
    value: ArgValue
    span: Span = _span()


@dataclass(frozen=True)
class Distribution:
    name: Ident
    args: tuple[DistArg, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Estimator:
    """`by relaxation(temperature = 0.5)` or `by enumeration`."""

    name: Ident
    options: tuple[Option, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ModelDecl:
    name: Ident
    span: Span = _span()


@dataclass(frozen=True)
class VarDecl:
    role: str  # "observed" | "supervised" | "latent"
    name: Ident
    type: TypeExpr
    span: Span = _span()


@dataclass(frozen=True)
class LetDecl:
    name: Ident
    type: TypeExpr
    call: NetCall
    span: Span = _span()


@dataclass(frozen=True)
class ParamDecl:
    """`param prior : real[10] = 0`: a learned constant, with its starting value (None: the
    type's neutral start) in its type's range."""

    name: Ident
    type: TypeExpr
    initial: Number | Vector | None
    span: Span = _span()


@dataclass(frozen=True)
class Factor:
    """`p(x | y, z) = Bernoulli(logits = decoder(y, z))`; `model` is "p" or "q"."""

    model: str
    variable: Ident
    parents: tuple[Ident, ...]
    distribution: Distribution
    estimator: Estimator | None
    span: Span = _span()


@dataclass(frozen=True)
class NetDecl:
    name: Ident
    builder: Ident
    options: tuple[Option, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ObjectiveDecl:
    kind: Ident
    options: tuple[Option, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Repeat:
    """`repeat k < count { ... }`: the body's variables, `let`s and factors hold once per step
    k = 1..K_max, where count is onehot[K_max + 1]; `bound` is None when the spec leaves it out
    (an error the checker reports)."""

    index: Ident
    bound: Ident | None
    body: tuple[Statement, ...]
    span: Span = _span()


Statement = ModelDecl | VarDecl | LetDecl | ParamDecl | Factor | NetDecl | ObjectiveDecl | Repeat


def flat_statements(statements: tuple[Statement, ...], within: Repeat | None = None):
    """Every statement with the `repeat` it is written in (None at the top level), in source
    order; a repeat block itself comes before its body."""
    for statement in statements:
        yield statement, within
        if isinstance(statement, Repeat):
            yield from flat_statements(statement.body, statement)


@dataclass(frozen=True)
class Spec:
    """A whole spec. `path` names the file (or `<string>`) for diagnostics."""

    statements: tuple[Statement, ...]
    path: str = field(default="<string>", compare=False)
    source: str = field(default="", compare=False, repr=False)


def to_dict(node) -> object:
    """A JSON-ready form of any AST node (`gmdsl compile --dump-ast`): each node is an
    object naming its class, with its span as [line, column, end_line, end_column]."""
    if isinstance(node, Span):
        return [node.line, node.column, node.end_line, node.end_column]
    if isinstance(node, tuple):
        return [to_dict(item) for item in node]
    if hasattr(node, "__dataclass_fields__"):
        fields = {
            name: to_dict(getattr(node, name))
            for name in node.__dataclass_fields__
            if name != "source" and not (name == "step" and getattr(node, name) is None)  # a plain name stays plain
        }
        return {"node": type(node).__name__, **fields}
    return node
