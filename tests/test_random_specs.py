"""Random specs (gmdsl.testing.strategies) are held to what the module promises.

- Together they reach every rule and every alternative of grammar/gm.lark, read afresh, so a
  rule added without a strategy fails here, but for the few that `pretty` never writes or that
  no clean spec can hold: each is named below with its reason, and the reason is checked.
- Every one that checks clean runs: its objective, gradients, predictions and draws raise
  nothing but gmdsl's own UserError, and its ELBO is never NaN (the long run of this property:
  tests/random_spec_run.py).
- docs/testing.md names the strategy that reaches each rule, in a table that lists exactly
  the grammar's rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from lark import Lark, Token
from lark.grammar import Rule, Symbol
from lark.lexer import PatternRE
from random_spec_run import finding

import gmdsl
from gmdsl.compiler import ast
from gmdsl.compiler.parser import _read_grammar
from gmdsl.compiler.pretty import pretty
from gmdsl.runtime.registry import ESTIMATORS
from gmdsl.testing import spec_trees, strategies

ROOT = Path(__file__).resolve().parent.parent
SPECS_FOR_COVERAGE = 150


class Grammar:
    """grammar/gm.lark, parsed as the project's parser does (LALR, contextual lexer,
    placeholders), recording the alternatives each text takes. An alternative is one of the
    expansions Lark compiles the grammar to (an optional part present or absent, a list of
    one item or of more), written like the grammar (`parents: "|" ref ("," ref)+`), or one
    word of a terminal made of words (`ROLE "latent"`). Lark builds each node of a parse tree
    by calling the callback of the expansion it reduces and has no public hook for that, so
    the callbacks are wrapped."""

    def __init__(self) -> None:
        self.lark = Lark(_read_grammar(), parser="lalr", lexer="contextual", maybe_placeholders=True)
        self._used: set[str] = set()
        callbacks = self.lark.parser.parser_conf.callbacks
        for rule, callback in list(callbacks.items()):
            callbacks[rule] = self._recording(self.text(rule), callback)
        self.words = {t.name: _words(t.pattern) for t in self.lark.terminals if _words(t.pattern)}

    def _recording(self, alternative: str, callback: Callable) -> Callable:
        def record(children):
            self._used.add(alternative)
            return callback(children)

        return record

    def used(self, text: str) -> set[str]:
        """The alternatives the text takes."""
        self._used = set()
        tree = self.lark.parse(text)
        tokens = tree.scan_values(lambda value: isinstance(value, Token) and value.type in self.words)
        return {a for a in self._used if not a.startswith("_")} | {f'{t.type} "{t}"' for t in tokens}

    def alternatives(self) -> set[str]:
        named = {self.text(rule) for rule in self.lark.rules if not rule.origin.name.startswith("_")}
        return named | {f'{name} "{word}"' for name, words in self.words.items() for word in words}

    def rules(self) -> set[str]:
        """The names a spec's parse may hold: each rule's, and each alias."""
        named = {str(rule.origin.name) for rule in self.lark.rules if not rule.origin.name.startswith("_")}
        return named | {str(rule.alias) for rule in self.lark.rules if rule.alias}

    def text(self, rule: Rule) -> str:
        body = " ".join(self._symbol(s) for s in rule.expansion) or "(nothing)"
        return f"{rule.origin.name}: {body}" + (f" -> {rule.alias}" if rule.alias else "")

    def _symbol(self, symbol: Symbol) -> str:
        if symbol.is_term:
            return f'"{self.lark.get_terminal(symbol.name).pattern.value}"' if symbol.filter_out else symbol.name
        if not symbol.name.startswith("_"):
            return symbol.name
        # a list's tail, `("," ref)*` in the grammar: Lark's rule for one item or more of it
        first = next(r for r in self.lark.rules if r.origin == symbol and r.expansion[0] != symbol)
        items = " ".join(self._symbol(s) for s in first.expansion)
        return f"({items})+" if len(first.expansion) > 1 else f"{items}+"


def _words(pattern) -> list[str]:
    """The words of a terminal written as words, `"p" | "q"` (Lark's `(?:p|q)`); else none."""
    match = (
        re.fullmatch(r"\(\?:((?:\\.|\w)+(?:\|(?:\\.|\w)+)+)\)", pattern.value)
        if isinstance(pattern, PatternRE)
        else None
    )
    return [re.sub(r"\\(.)", r"\1", word) for word in match.group(1).split("|")] if match else []


GRAMMAR = Grammar()

# Alternatives no drawn spec takes. `pretty` writes each construct one way: no trailing commas
# (any alternative with `","` before a closing bracket), and these (each with a text that takes it):
PRINTED_OTHERWISE = {
    'net_decl: "net" NAME "=" NAME': "net f = gru",  # pretty: `net f = gru()`
    'objective_decl: "objective" NAME': "objective semisupervised",  # `objective semisupervised()`
    'estimator: "by" NAME "(" ")"': "q(c) = Categorical(probs = uniform) by relaxation()",  # `by relaxation`
}
# And these are errors in every spec: the code, and a spec that takes the alternative.
_COUNTED = ("observed x : real[2]", "observed n : onehot[3]", "p(n) = Categorical(probs = uniform)")
NEVER_CLEAN = {
    "start: (nothing)": ("E0108", ""),
    'repeat_block: "repeat" NAME "{" "}"': ("E0801", "\n".join([*_COUNTED, "p(x) = Normal(0, 1)", "repeat k { }"])),
    'repeat_block: "repeat" NAME "{" statement+ "}"': (
        "E0801",
        "\n".join([*_COUNTED, "p(x) = Normal(0, 1)", "repeat k { latent z : real[2] }"]),
    ),
    'distribution: NAME "(" ")"': ("E0303", "observed x : real[2]\np(x) = Normal()"),
    'net_call: NAME "(" ")"': ("E0405", "observed x : real[2]\np(x) = Normal(f(), 1)\nnet f = mlp()"),
    # no estimator takes two options (test_no_estimator_takes_two_options), so two are one given twice
    'estimator: "by" NAME "(" option ("," option)+ ")"': (
        "E0602",
        "\n".join(
            [
                "observed x : real[2]",
                "latent c : onehot[2]",
                "p(c) = Categorical(probs = uniform)",
                "q(c) = Categorical(probs = uniform) by relaxation(temperature = 1, temperature = 2)",
                "p(x | c) = Normal(f(c))",
                "net f = mlp()",
            ]
        ),
    ),
    'STEP_SIGN "+"': (
        "E0805",
        "\n".join(
            [
                *_COUNTED,
                "repeat k < n {",
                "    latent z : real[2]",
                "    p(z) = Normal(f(z[k + 1]))",
                "    q(z | x) = Normal(g(x))",
                "}",
                "p(x | z) = Normal(0, 1)",
                "net f = mlp()",
                "net g = mlp()",
            ]
        ),
    ),
}


def _trailing_comma(alternative: str) -> bool:
    return '"," ")"' in alternative or '"," "]"' in alternative


def _names(alternative: str) -> set[str]:
    """The rule an alternative belongs to, and its alias."""
    rule = alternative.partition(":")[0]
    return {rule, alternative.rpartition(" -> ")[2]} if " -> " in alternative else {rule}


def _left_out() -> set[str]:
    return {a for a in GRAMMAR.alternatives() if _trailing_comma(a)} | set(PRINTED_OTHERWISE) | set(NEVER_CLEAN)


def test_random_specs_reach_every_rule_and_alternative_of_the_grammar() -> None:
    reached: set[str] = set()

    @settings(
        max_examples=SPECS_FOR_COVERAGE,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(spec_trees())
    def draw(tree: ast.Spec) -> None:
        reached.update(GRAMMAR.used(pretty(tree)))

    draw()
    rules = sorted(GRAMMAR.rules() - {name for alternative in reached for name in _names(alternative)})
    missing = sorted(GRAMMAR.alternatives() - reached - _left_out())
    assert not missing, (
        f"of {SPECS_FOR_COVERAGE} specs drawn by spec_trees(), none reaches "
        + (f"the rules {', '.join(rules)}, nor " if rules else "")
        + "these alternatives:\n"
        + "\n".join(missing)
    )
    assert not reached & _left_out(), f"left out as never drawn, but drawn: {sorted(reached & _left_out())}"


@pytest.mark.parametrize("alternative", sorted(PRINTED_OTHERWISE))
def test_pretty_writes_a_left_out_alternative_otherwise(alternative: str) -> None:
    text = PRINTED_OTHERWISE[alternative]
    assert alternative in GRAMMAR.used(text)
    assert alternative not in GRAMMAR.used(pretty(gmdsl.parse(text)))


def test_pretty_writes_no_trailing_comma() -> None:
    text = (ROOT / "specs" / "trailing_commas.gm").read_text()
    assert any(_trailing_comma(a) for a in GRAMMAR.used(text))
    assert not any(_trailing_comma(a) for a in GRAMMAR.used(pretty(gmdsl.parse(text))))


@pytest.mark.parametrize("alternative", sorted(NEVER_CLEAN))
def test_an_alternative_left_out_is_an_error_in_every_spec(alternative: str) -> None:
    code, text = NEVER_CLEAN[alternative]
    assert alternative in GRAMMAR.used(text)
    assert code in {d.code for d in gmdsl.check(gmdsl.parse(text)).diagnostics}


def test_no_estimator_takes_two_options() -> None:
    """Why an estimator with two options is left out: were there one, spec_trees must draw it."""
    assert all(len(info.options) < 2 for info in ESTIMATORS.values())


@given(spec_trees(max_variables=4))  # as many as the hypothesis profile says: 150 in CI
def test_every_random_spec_that_checks_clean_runs(tree: ast.Spec) -> None:
    text = pretty(tree)
    problem = finding(text)
    assert problem is None, f"{problem}\n--- the spec:\n{text}"


def test_the_table_of_docs_testing_names_a_strategy_for_each_rule_of_the_grammar() -> None:
    docs = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    section = docs.split("## Random specs reach every grammar rule", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| .* \|$", section, re.MULTILINE)  # rule, strategies, example
    listed = [name for name, _ in rows]
    assert len(listed) == len(set(listed)), "a rule has two rows"
    unlisted, unknown = sorted(GRAMMAR.rules() - set(listed)), sorted(set(listed) - GRAMMAR.rules())
    assert not unlisted and not unknown, f"rules without a row: {unlisted}; rows of no rule: {unknown}"
    for name, strategy in rows:
        for function in re.findall(r"`([\w.]+)`", strategy):
            owner, _, member = function.rpartition(".")
            assert hasattr(getattr(strategies, owner) if owner else strategies, member), f"{name}: no {function}"
