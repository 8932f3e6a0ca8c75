"""Every shipped spec checks clean, and the three examples of LANGUAGE.md are shipped (under a
model name of their own where a shipped spec took the example's)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gmdsl
from gmdsl.compiler.ast import ModelDecl, Spec
from gmdsl.compiler.pretty import pretty

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.gm"))
LANGUAGE = ROOT.parent / "shared" / "design" / "LANGUAGE.md"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_spec_checks_clean(spec: Path) -> None:
    checked = gmdsl.check_spec(spec)
    assert checked.diagnostics == ()
    assert gmdsl.parse(pretty(checked.spec)) == checked.spec


def _body(spec: Spec) -> tuple:
    """A spec's statements but its model name."""
    return tuple(s for s in spec.statements if not isinstance(s, ModelDecl))


def _language_examples() -> list[str]:
    return re.findall(r"```\n(.*?)```", LANGUAGE.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.skipif(not LANGUAGE.exists(), reason="../shared/design/LANGUAGE.md is not beside this checkout")
def test_language_examples_are_shipped_and_check_clean() -> None:
    examples = _language_examples()
    assert len(examples) == 3
    shipped = {_body(gmdsl.parse(s.read_text())) for s in SPECS}
    for example in examples:
        tree = gmdsl.parse(example)
        assert gmdsl.check(tree).diagnostics == ()
        assert _body(tree) in shipped


def _edges(graph) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(e.source, e.target, tuple(e.networks)) for e in graph.edges}


def test_mnist_graph_is_the_papers_model() -> None:
    model = gmdsl.load(ROOT / "specs" / "mnist.gm")
    assert model.name == "mnist"
    assert {(s, t) for s, t, _ in _edges(model.p)} == {("y", "x"), ("z", "x")}
    assert {(s, t) for s, t, _ in _edges(model.q)} == {("x", "y"), ("x", "z"), ("y", "z")}
    assert model.order("q") == ["x", "y", "z"]
    assert model.q.node("y").factor.estimator.model_dump() == {"name": "relaxation", "options": {"temperature": 0.66}}
    assert model.q.node("x").role == "observed" and model.q.node("x").factor is None
    widths = {n.name: (n.input_width, n.output_width) for n in model.networks}
    # classifier: 784 pixels -> 10 logits; encoder: pixels + label -> loc and scale of z[50]
    assert widths == {"classifier": (784, 10), "encoder": (794, 100), "decoder": (60, 784)}
    assert model.objective.model_dump() == {
        "kind": "semisupervised",
        "options": {"alpha": 0.1, "samples": 8, "beta": 1, "estimator": "snis"},
    }


def test_let_nodes_are_in_the_graph_that_reads_them() -> None:
    model = gmdsl.load(ROOT / "specs" / "digit_after_style.gm")
    assert "h" in model.q and "h" not in model.p
    assert model.q.node("h").role == "deterministic"
    assert _edges(model.q) == {
        ("x", "h", ("trunk",)),
        ("h", "z", ("encoder",)),
        ("h", "y", ("classifier",)),
        ("z", "y", ("classifier",)),
    }
    assert model.network("classifier").input_width == 128 + 16
    assert model.q.node("y").factor.estimator.name == "enumeration"


def test_factors_keep_the_specs_order_where_the_graph_allows() -> None:
    """digit_after_style.gm writes p(z) before p(y): the compiled decoder draws them so."""
    model = gmdsl.load(ROOT / "specs" / "digit_after_style.gm")
    assert model.order("p") == ["z", "y", "x"]
    assert model.variables()[0].name == "x"  # declaration order, for the model's variables


def test_image_shapes_flatten_into_network_widths() -> None:
    model = gmdsl.load(ROOT / "specs" / "faces_light.gm")
    assert model.network("renderer").output_width == 1024  # loc only: scale is the constant 0.1
    assert model.network("light_net").input_width == 1024
    assert model.network("light_net").output_width == 6  # loc and scale of light[3]


def test_the_ir_dump_is_what_the_emitter_reads() -> None:
    """--dump-ir validates back into the IR, and the module emitted from it is the same."""
    from gmdsl.compiler.emit import emit
    from gmdsl.compiler.ir import ModelIR

    for spec in SPECS:
        model = gmdsl.load(spec)
        assert emit(ModelIR.model_validate_json(model.model_dump_json())) == emit(model), spec.name


def test_reference_doc_is_current() -> None:
    from gmdsl.compiler.reference import reference

    assert (ROOT / "docs" / "reference.md").read_text(encoding="utf-8") == reference(), (
        "regenerate it: python -m gmdsl.compiler.reference > docs/reference.md"
    )


def test_every_diagnostic_code_used_is_documented() -> None:
    from gmdsl.compiler.diagnostics import CODES

    used = set(re.findall(r'"([EW]\d{4})"', "".join(p.read_text() for p in (ROOT / "gmdsl").rglob("*.py"))))
    assert used == set(CODES)


def test_builder_signatures_name_fields_of_the_ir() -> None:
    """The registry (runtime/) names the IR's Network fields a builder takes first; keep them in step."""
    from gmdsl.compiler.ir import Network
    from gmdsl.runtime.registry import NETWORK_BUILDERS

    for builder in NETWORK_BUILDERS.values():
        assert set(builder.arguments) <= set(Network.model_fields), builder.name


def test_faces_graph_is_the_papers_model() -> None:
    """Identity and light supervised, shading and reflectance latent, all independent under the
    prior; x alone points to each of them in q (paper section 3.2), through one shared trunk."""
    model = gmdsl.load(ROOT / "specs" / "faces.gm")
    roles = {v.name: (v.role, v.type, tuple(v.shape)) for v in model.variables()}
    assert roles == {
        "x": ("observed", "real", (1, 32, 32)),
        "identity": ("supervised", "onehot", (38,)),
        "light": ("supervised", "real", (3,)),
        "shading": ("latent", "real", (16,)),
        "reflectance": ("latent", "real", (16,)),
    }
    causes = {"identity", "light", "shading", "reflectance"}
    assert {(s, t) for s, t, _ in _edges(model.p)} == {(c, "x") for c in causes}
    assert {(s, t) for s, t, _ in _edges(model.q)} == {("x", "features")} | {("features", c) for c in causes}
    assert model.network("renderer").output_width == 1024
    assert model.network("identity_net").output_width == 38
