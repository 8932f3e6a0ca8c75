"""Property tests of the front end over random specs (gmdsl.testing strategies)."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

import gmdsl
from gmdsl.compiler import ast
from gmdsl.compiler.diagnostics import SpecError, SpecSyntaxError
from gmdsl.compiler.parser import _parser
from gmdsl.compiler.pretty import pretty
from gmdsl.testing import models, spec_trees


@given(spec_trees())
def test_random_valid_models_check_clean_and_round_trip(tree: ast.Spec) -> None:
    text = pretty(tree)
    parsed = gmdsl.parse(text)
    assert parsed == tree
    assert pretty(parsed) == text
    assert gmdsl.check(parsed).diagnostics == ()


def _graph_facts(model: gmdsl.ModelIR) -> dict:
    """What a graph says, without where it was written or in which order ties came."""

    def facts(graph) -> tuple:
        nodes = {n.name: n.model_dump(exclude={"line", "column"}) for n in graph.nodes}
        return nodes, sorted((e.source, e.target, tuple(e.networks)) for e in graph.edges)

    return {
        "p": facts(model.p),
        "q": facts(model.q),
        "networks": {n.name: n.model_dump(exclude={"line", "column"}) for n in model.networks},
        "objective": model.objective,
        "name": model.name,
    }


@given(spec_trees(), st.randoms(use_true_random=False))
def test_shuffled_declarations_give_the_same_graph(tree: ast.Spec, rng: random.Random) -> None:
    head = [s for s in tree.statements if isinstance(s, ast.ModelDecl)]
    body = [s for s in tree.statements if not isinstance(s, ast.ModelDecl)]
    rng.shuffle(body)
    shuffled = ast.Spec(tuple(head + body))
    assert gmdsl.check(shuffled).diagnostics == ()
    assert _graph_facts(gmdsl.lower(gmdsl.check(shuffled))) == _graph_facts(gmdsl.lower(gmdsl.check(tree)))


@given(spec_trees())
def test_order_is_topological_and_deterministic(tree: ast.Spec) -> None:
    model = gmdsl.lower(gmdsl.check(tree))
    again = gmdsl.lower(gmdsl.check(tree))
    for graph in (model.p, model.q):
        assert graph.order == again.graph(graph.model).order == [n.name for n in graph.nodes]
        position = {n: i for i, n in enumerate(graph.order)}
        assert all(position[e.source] < position[e.target] for e in graph.edges)


def _front_end(text: str) -> None:
    """Parse, check and (when clean) lower; only gmdsl's own spec errors may escape."""
    try:
        gmdsl.load(text)
    except SpecError:
        pass


@given(from_lark(_parser()))
def test_grammar_generated_text_parses_or_raises_syntax_error(text: str) -> None:
    try:
        gmdsl.parse(text)
    except SpecSyntaxError as exc:
        assert len(exc.diagnostics) == 1 and exc.diagnostics[0].code == "E0001"
    _front_end(text)


_TOKENS = [
    "(",
    ")",
    "|",
    "=",
    ",",
    ":",
    "[",
    "]",
    "p",
    "q",
    "by",
    "net",
    "let",
    "model",
    "x",
    "z",
    "uniform",
    "0",
    "-1",
    "2.5",
    "1e9",
    "Normal",
    "mlp",
    "observed",
    "latent",
    "#",
    "\n",
    " ",
    "@",
    "é",
]


@st.composite
def mutated_specs(draw) -> str:
    """A valid spec with a few random edits: cut, duplicated or inserted pieces."""
    text = draw(models())
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        edit = draw(st.sampled_from(["cut", "duplicate", "insert", "swap"]))
        if edit == "cut":
            text = text[:start] + text[end:]
        elif edit == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif edit == "insert":
            text = text[:start] + draw(st.sampled_from(_TOKENS)) + text[start:]
        else:
            lines = text.splitlines()
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


@given(mutated_specs())
def test_mutated_specs_end_in_diagnostics_not_crashes(text: str) -> None:
    _front_end(text)


@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_raises_syntax_error(text: str) -> None:
    _front_end(text)


def test_the_strategies_reach_every_built_in_function() -> None:
    """Random specs pass values through `lambert` and `product` lets, so the property tests
    (and users' `gmdsl test`) cover known physics too."""
    from hypothesis import Phase, find, settings

    from gmdsl.runtime.registry import FUNCTIONS

    quick = settings(max_examples=2000, phases=[Phase.generate])  # found is enough: no shrinking
    for function in FUNCTIONS:
        spec = find(models(), lambda text, f=function: f"= {f}(" in text, settings=quick)
        assert gmdsl.check(gmdsl.parse(spec)).diagnostics == ()
