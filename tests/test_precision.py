"""Mixed precision (`--precision`, CompiledModel.set_precision): in bf16 the networks compute
under autocast and hand fp32 back, so every shipped spec's objective and gradients stay close
to fp32's; runs record the precision they used, keep it when resumed, and eval says which it
computed in. On a CPU without bf16 units autocast emulates bf16 (slowly), so these run anyway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_data import make_tiny_mnist

import gmdsl
from gmdsl.testing import random_batch
from gmdsl.train import runs

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.gm"))
MNIST = str(ROOT / "specs" / "mnist.gm")
FAST = ["--batch-size", "64", "--samples", "2", "--labels", "20", "--epochs", "1", "--no-progress"]
# bf16 keeps 8 bits of mantissa: a network's output is off by about 2^-8 of its size, and the
# objective, a sum over hundreds of pixels of log-densities of those outputs, by a little less
ELBO_RTOL = 0.02
GRADIENT_COSINE = 0.99


def _objective_and_gradient(model, batch: dict, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    model.set_precision(precision)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same draws in either precision
    objective = model.objective(batch)
    objective.loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return objective.elbo.detach(), gradient


@pytest.mark.parametrize("spec", SPECS, ids=lambda path: path.stem)
def test_bf16_objective_and_gradients_agree_with_fp32_on_every_shipped_spec(spec: Path) -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(spec)
    batch = random_batch(model, 8, seed=0)
    elbo32, gradient32 = _objective_and_gradient(model, batch, "fp32")
    elbo16, gradient16 = _objective_and_gradient(model, batch, "bf16")
    assert elbo16.dtype == torch.float32  # the sums stay in fp32
    torch.testing.assert_close(elbo16, elbo32, rtol=ELBO_RTOL, atol=1.0)
    cosine = torch.nn.functional.cosine_similarity(gradient16, gradient32, dim=0)
    assert cosine >= GRADIENT_COSINE, f"{spec.stem}: gradients' cosine {cosine:.4f}"
    assert 0.9 <= float(gradient16.norm() / gradient32.norm()) <= 1.1


def test_bf16_networks_compute_in_bf16_and_hand_fp32_back() -> None:
    model = gmdsl.compile(ROOT / "specs" / "mnist.gm")
    network = model.encoder.classifier
    x = torch.rand(4, 784)
    seen: list[torch.dtype] = []
    network[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    assert network(x).dtype == torch.float32 and seen == [torch.float32]
    model.set_precision("bf16")
    assert model.precision == "bf16"
    assert network(x).dtype == torch.float32 and seen[-1] == torch.bfloat16  # the product in bf16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the weights stay fp32
    with pytest.raises(ValueError, match="precision is one of fp32, bf16"):
        model.set_precision("fp16")


def test_bf16_units_are_read_from_the_cpu_flags(monkeypatch) -> None:
    """Not oneDNN's test, which is true of any AVX-512 CPU (where bf16 is emulated, and slower)."""
    flags = {"avx512f avx512_bf16": True, "avx512f avx512_vnni": False, "fp asimd bf16": True}
    for listed, expected in flags.items():
        monkeypatch.setattr(runs.Path, "read_text", lambda self, *a, listed=listed, **k: f"flags\t\t: {listed}\n")
        assert runs.bf16_units(torch.device("cpu")) is expected, listed


@pytest.mark.parametrize("units, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_chooses_bf16_where_the_device_has_bf16_units(monkeypatch, units: bool, expected: str) -> None:
    monkeypatch.setattr(runs, "bf16_units", lambda device: units)
    assert runs.resolve_precision("auto", torch.device("cpu")) == expected
    assert runs.resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_a_run_records_its_precision_keeps_it_on_resume_and_eval_says_which(
    gmdsl_cli, tmp_path: Path, monkeypatch
) -> None:
    tiny = make_tiny_mnist(tmp_path / "tiny")
    monkeypatch.setattr(runs, "bf16_units", lambda device: True)
    run = tmp_path / "run"
    code, out, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--run", str(run), "--precision", "auto", *FAST)
    assert code == 0, err
    assert "on cpu in bf16" in out
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"  # what auto chose, not "auto"
    # resumed on a machine without bf16 units, the run goes on in bf16
    monkeypatch.setattr(runs, "bf16_units", lambda device: False)
    code, out, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "2", "--no-progress")
    assert code == 0 and "in bf16" in out, err
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "3", "--precision", "fp32")
    assert code == 1 and "precision cannot change" in err, err
    # auto, asked again (as the run's own config file would), means the precision the run chose
    code, out, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "3", "--precision", "auto", "--no-progress")
    assert code == 0 and "in bf16" in out, err
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"
    # eval computes in the run's precision unless told otherwise, and says which
    code, out, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "10")
    assert code == 0 and "in bf16:" in out, err
    assert json.loads((run / "eval-best.json").read_text())["precision"] == "bf16"
    code, out, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "10", "--precision", "fp32")
    assert code == 0 and "in fp32:" in out, err
    assert json.loads((run / "eval-best.json").read_text())["precision"] == "fp32"
    assert gmdsl.open_run(run).model.precision == "bf16"


def test_a_run_saved_before_the_setting_existed_resumes_in_fp32(gmdsl_cli, tmp_path: Path, monkeypatch) -> None:
    tiny = make_tiny_mnist(tmp_path / "tiny")
    run = tmp_path / "run"
    assert gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--run", str(run), *FAST)[0] == 0
    config = json.loads((run / "config.json").read_text())
    assert config.pop("precision") == "fp32"  # the default
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(runs, "bf16_units", lambda device: True)
    code, out, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "2", "--no-progress")
    assert code == 0 and "in fp32" in out, err
