"""`gmdsl test SPEC` and the public strategies of gmdsl.testing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import gmdsl
from gmdsl import cli
from gmdsl.compiler.pretty import pretty
from gmdsl.testing import batches, spec_trees
from gmdsl.testing.properties import check_structure

ROOT = Path(__file__).resolve().parent.parent
MNIST_MODEL = gmdsl.compile(ROOT / "specs" / "mnist.gm")


@pytest.mark.parametrize("spec", sorted((ROOT / "specs").glob("*.gm")), ids=lambda p: p.name)
def test_every_shipped_spec_passes(capsys, spec: Path) -> None:
    code = cli.main(["test", str(spec), "--examples", "5"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "0 failed" in out and "FAIL" not in out


def test_a_broken_structure_fails_with_a_shrunk_counterexample(capsys) -> None:
    """A -inf objective is one failure that names the factor; what needs a finite objective is
    skipped, not failed as a knock-on; no hypothesis internals are printed."""
    code = cli.main(["test", str(ROOT / "docs" / "examples" / "always_on.gm"), "--examples", "5"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  objective is finite: elbo and the label estimate are finite" in out
    assert "elbo is [-inf] on rows [0]: p(on) = Bernoulli(...) gives log-probability -inf at on = [" in out
    assert "counterexample: recipe=BatchRecipe(rows=1, seed=0, masks=(('y', (False,)),)), draws=0" in out
    assert "skip  rows are independent: no example's objective depends on another example" in out
    assert "pass  sample and predict fit" in out and "1 passed, 1 failed, 4 skipped" in out
    assert "Failing test case" not in out and "hypothesis" not in out.lower()


def test_rows_that_influence_each_other_are_caught() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")

    class MixesRows(torch.nn.Module):  # a batch-statistics layer, as batch norm would be
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return out + out.mean(dim=-2, keepdim=True)

    model.decoder.decoder = MixesRows(model.decoder.decoder)
    results = {r.name: r for r in check_structure(model, examples=5)}
    assert not results["rows are independent"].passed
    assert "objective depends on other rows of `x`" in results["rows are independent"].detail
    assert results["hidden labels do not leak"].passed


@given(batches(MNIST_MODEL))
def test_users_can_draw_batches_for_their_model(batch) -> None:
    assert batch["x"].shape[1:] == (784,) and batch["y_observed"].dtype == torch.bool
    assert torch.isfinite(MNIST_MODEL.objective(batch).elbo).all()


@settings(max_examples=4, suppress_health_check=[HealthCheck.nested_given, HealthCheck.too_slow])
@given(spec_trees(max_variables=3))
def test_random_structures_pass_every_property(tree) -> None:
    """Every property but "every parameter learns", which holds of a spec and its starting
    weights, not of its structure alone: a random spec may place a patch outside its canvas or
    start a ReLU dead for every input (one in ten drawn specs or so). Every shipped spec passes it
    (test_every_shipped_spec_passes), and a weight that nothing reads fails it (below)."""
    torch.manual_seed(0)
    results = check_structure(gmdsl.compile(pretty(tree)), examples=2)
    learns = "every parameter learns"
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed and not r.skipped and r.name != learns]
    assert not failed, pretty(tree) + "\n" + "\n".join(failed)


def test_a_weight_that_never_gets_a_gradient_is_named() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    model.decoder.stray = torch.nn.Parameter(torch.zeros(3))  # read by nothing
    results = {r.name: r for r in check_structure(model, examples=2)}
    assert not results["every parameter learns"].passed
    assert "stray" in results["every parameter learns"].detail


def test_several_specs_at_once(capsys) -> None:
    code = cli.main(
        ["test", str(ROOT / "specs" / "faces.gm"), str(ROOT / "docs" / "examples" / "always_on.gm"), "--examples", "2"]
    )
    out = capsys.readouterr().out
    assert code == 1 and out.count("gmdsl test ") == 2 and "6 passed, 0 failed" in out


def test_a_model_without_a_supervised_variable_lists_the_label_properties_as_skipped(capsys, tmp_path: Path) -> None:
    spec = tmp_path / "unsupervised.gm"
    spec.write_text(
        "observed x : real[4]\nlatent y : onehot[3]\n"
        "p(y) = Categorical(probs = [0.3333, 0.3333, 0.3333])\n"  # sums to 0.9999: rounding, accepted
        "p(x | y) = Normal(loc = decoder(y), scale = 1)\nq(y | x) = Categorical(logits = classifier(x))\n"
        "net decoder = mlp(hidden = [8])\nnet classifier = mlp(hidden = [8])\n"
    )
    code = cli.main(["test", str(spec), "--examples", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("not run: the model has no supervised variable") == 2
    assert "skip  hidden labels do not leak" in out and "skip  label estimate within bound" in out
    assert "4 passed, 0 failed, 2 skipped" in out
    spec.write_text(spec.read_text().replace("0.3333, 0.3333, 0.3333", "0.33, 0.33, 0.33"))
    assert cli.main(["check", str(spec)]) == 1
    assert "must sum to 1, but these sum to 0.99" in capsys.readouterr().err


def test_a_crash_of_the_compiled_model_is_an_internal_error_not_a_failed_property(capsys, monkeypatch) -> None:
    """A property that fails is the spec's; a model that raises something else is gmdsl's bug."""
    from gmdsl.runtime.model import CompiledModel

    def crash(*args, **kwargs):
        raise KeyError("canvas")  # as runtime/repeat.py raised for a let never kept

    monkeypatch.setattr(CompiledModel, "objective", crash)
    code = cli.main(["test", str(ROOT / "specs" / "mnist.gm"), "--examples", "2"])
    captured = capsys.readouterr()
    assert code == 3, captured.out
    assert "internal error (ModelCrashed)" in captured.err and "KeyError: 'canvas'" in captured.err
    assert "This is a bug in gmdsl" in captured.err and "FAIL" not in captured.out
