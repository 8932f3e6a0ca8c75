"""The parser: spans, keywords as names, free layout, and the `load` entry point."""

from __future__ import annotations

import pytest

import gmdsl
from gmdsl.compiler import ast
from gmdsl.compiler.diagnostics import SpecError, SpecSyntaxError

MINIMAL = """observed x : binary[4]
latent z : real[2]
p(z) = Normal(0, 1)
p(x | z) = Bernoulli(logits = dec(z))
q(z | x) = Normal(enc(x))
net dec = mlp()
net enc = mlp()
"""


def test_spans_are_one_based_and_end_exclusive() -> None:
    spec = gmdsl.parse("observed   pixels : binary[784]\n")
    declaration = spec.statements[0]
    assert declaration.span == ast.Span(1, 1, 1, 32)
    assert declaration.name.span == ast.Span(1, 12, 1, 18)
    assert declaration.type.base.span == ast.Span(1, 21, 1, 27)


def test_keywords_are_names_where_a_name_is_expected() -> None:
    spec = gmdsl.parse("observed p : real[1]\nlatent by : real[1]\np(p | by) = Normal(loc = net(by), scale = 1)\n")
    factor = spec.statements[2]
    assert factor.model == "p" and factor.variable.name == "p" and [a.name for a in factor.parents] == ["by"]
    assert factor.distribution.args[0].value.net.name == "net"


def test_statements_may_span_lines_and_carry_comments() -> None:
    spec = gmdsl.parse("net decoder = mlp(  # the decoder\n  hidden = [256,\n 256],\n  activation = relu)\n")
    (net,) = spec.statements
    assert [o.key.name for o in net.options] == ["hidden", "activation"]
    assert net.options[0].value == ast.ListLiteral((ast.Number(256), ast.Number(256)))


def test_numbers_keep_int_or_float() -> None:
    spec = gmdsl.parse("p(z) = Normal(-1, 2.5e-1)\n")
    values = [a.value.value for a in spec.statements[0].distribution.args]
    assert values == [-1, 0.25] and isinstance(values[0], int)


def test_syntax_error_is_one_located_diagnostic() -> None:
    with pytest.raises(SpecSyntaxError) as caught:
        gmdsl.parse("observed x : binary[4]\np(x) = Bernoulli(0.5\n", "t.gm")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("E0001", 2, 21)
    assert str(caught.value).startswith("t.gm:2:21: error[E0001]: syntax error: expected `)`")


def test_load_accepts_text_or_path(tmp_path) -> None:
    assert gmdsl.load(MINIMAL).name == "model"
    path = tmp_path / "tiny.gm"
    path.write_text(MINIMAL)
    assert gmdsl.load(str(path)).name == "tiny"
    assert gmdsl.load(path).p.node("x").factor.distribution == "Bernoulli"


def test_load_raises_every_error_sorted() -> None:
    with pytest.raises(SpecError) as caught:
        gmdsl.load(MINIMAL.replace("Normal(0, 1)", "Normal(0, -1)").replace("net enc", "net encc"))
    codes = [(d.code, d.span.line) for d in caught.value.diagnostics]
    assert codes == [("E0305", 3), ("E0104", 5), ("W0203", 7)]


def test_missing_spec_file_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="no such spec file: nowhere.gm"):
        gmdsl.load("nowhere.gm")


def test_long_or_odd_text_is_a_spec_not_a_file_name() -> None:
    for text in ["objective" + " " * 300 + "p(A | A) = B(", "x\x00y"]:
        with pytest.raises(SpecError):
            gmdsl.load(text)
