"""Crash safety: a run killed with SIGKILL at any point (mid-epoch, or while a checkpoint is
being written) resumes and ends bitwise equal to a run never stopped; a half-written
checkpoint is never loaded; a second `gmdsl train` on a run in use is refused; damaged or
foreign checkpoint files end in a clear error, and nothing in them is executed."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_data import make_tiny_mnist

ROOT = Path(__file__).resolve().parent.parent
SPEC = str(ROOT / "specs" / "mnist_one_sample.gm")
# 400 examples, 66 held out, 32 new and 32 labelled rows a batch: 11 steps an epoch
FAST = ["--batch-size", "64", "--labels", "20", "--no-progress", "--epochs", "2"]
STEPS_PER_EPOCH = 11

# Runs `gmdsl train ...` and SIGKILLs its own process at a chosen point: after global step
# KILL_STEP, or once the temporary file of the N-th write of checkpoint file KILL_FILE
# ("NAME#N", N = 1 by default) is written, before it is renamed into place. A real SIGKILL:
# no Python cleanup, no finally blocks run.
KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from gmdsl import cli
    from gmdsl.train import checkpoints, loop

    kill_step = int(sys.argv[1])
    kill_file, _, nth = sys.argv[2].partition("#")
    writes = {"count": 0}
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    post_init = loop.Trainer.__post_init__
    def with_kill(self):
        post_init(self)
        self.on_step = lambda step: die() if step == kill_step else None
    loop.Trainer.__post_init__ = with_kill

    write = checkpoints.write_atomically
    def write_then_die(path, content):
        writes["count"] += path.name == kill_file
        if path.name == kill_file and writes["count"] == int(nth or 1):
            temporary = path.with_name(path.name + ".tmp")
            write(temporary, content)  # written in full, under its temporary name only
            die()
        write(path, content)
    checkpoints.write_atomically = write_then_die
    sys.exit(cli.main(sys.argv[3:]))
    """
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def straight(tiny: Path, tmp_path_factory) -> Path:
    """A run of 2 epochs never stopped (with no step checkpoints), trained in this process: on
    as many threads as the killed runs' processes (conftest.py), so it computes as they do."""
    from gmdsl import cli

    run_dir = tmp_path_factory.mktemp("straight") / "run"
    assert cli.main(["train", SPEC, "--dataset", str(tiny), "--run", str(run_dir), *FAST]) == 0
    return run_dir


def _killed(kill_step: int, kill_file: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", KILLER, str(kill_step), kill_file, *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT)


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoint" / "epoch-0002.safetensors")


def _assert_bitwise_equal(a: Path, b: Path) -> None:
    first, second = _final_weights(a), _final_weights(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    losses = [[r["loss"] for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())] for d in (a, b)]
    assert losses[0] == losses[1]


@pytest.mark.parametrize(
    "kill_step, kill_file, resumes_at",
    [
        # epoch 2, step 7: the checkpoint after step 6 is the newest, so steps 7.. are redone
        (STEPS_PER_EPOCH + 7, "", {"epoch": 1, "step": 6, "file": "epoch-0002-step-000006"}),
        # while epoch 2's step-6 checkpoint was being written: latest.json still names epoch 1's
        (-1, "epoch-0002-step-000006.state.json", {"epoch": 1, "step": 3, "file": "epoch-0002-step-000003"}),
        # epoch 1's end written in full but not yet named in latest.json: its step 9 stands
        (-1, "latest.json#4", {"epoch": 0, "step": 9, "file": "epoch-0001-step-000009"}),
    ],
    ids=["mid-epoch", "mid-checkpoint", "mid-pointer"],
)
def test_a_run_killed_anywhere_resumes_to_the_bitwise_same_end(
    gmdsl_cli, tiny: Path, straight: Path, tmp_path: Path, kill_step: int, kill_file: str, resumes_at: dict | None
) -> None:
    run_dir = tmp_path / "run"
    killed = _killed(
        kill_step, kill_file, "train", SPEC, "--dataset", str(tiny), "--run", str(run_dir), *FAST,
        "--checkpoint-every", "3",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert json.loads((run_dir / "checkpoint" / "latest.json").read_text()) == resumes_at
    code, _, err = gmdsl_cli("train", "--resume", str(run_dir), "--no-progress")
    assert code == 0 and "Traceback" not in err, err
    _assert_bitwise_equal(straight, run_dir)
    assert json.loads((run_dir / "checkpoint" / "latest.json").read_text()) == {
        "epoch": 2,
        "step": 0,
        "file": "epoch-0002",
    }


def test_the_resume_message_names_the_epoch_and_step(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["train", SPEC, "--dataset", str(tiny), "--run", str(run_dir), *FAST, "--checkpoint-every", "4"]
    assert _killed(STEPS_PER_EPOCH + 9, "", *args).returncode == -signal.SIGKILL
    code, out, err = gmdsl_cli("train", "--resume", str(run_dir), "--no-progress")
    assert code == 0, err
    assert "epoch 2 from step 9, to epoch 2" in out


def test_a_second_train_on_a_run_in_use_is_refused(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    from gmdsl.train.runs import training_lock

    run_dir = tmp_path / "run"
    assert gmdsl_cli("train", SPEC, "--dataset", str(tiny), "--run", str(run_dir), *FAST[:-1], "1")[0] == 0
    before = sorted(p.name for p in (run_dir / "checkpoint").iterdir())
    with training_lock(run_dir):  # as if another `gmdsl train` held it
        code, _, err = gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress")
    assert code == 1 and "is being trained by process" in err and "Traceback" not in err
    assert sorted(p.name for p in (run_dir / "checkpoint").iterdir()) == before
    assert gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress")[0] == 0  # released


@pytest.fixture(scope="module")
def trained_one_epoch(tiny: Path, tmp_path_factory) -> Path:
    from gmdsl import cli

    run_dir = tmp_path_factory.mktemp("one_epoch") / "run"
    assert cli.main(["train", SPEC, "--dataset", str(tiny), "--run", str(run_dir), *FAST[:-1], "1"]) == 0
    return run_dir


@pytest.fixture()
def one_epoch(trained_one_epoch: Path, tmp_path: Path) -> Path:
    """A run of one epoch, each test's own copy to damage (trained once: training is deterministic)."""
    run_dir = tmp_path / "run"
    shutil.copytree(trained_one_epoch, run_dir)
    return run_dir


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda c: _truncate(c / "epoch-0001.safetensors"), "epoch-0001.safetensors is damaged"),
        (lambda c: _truncate(c / "epoch-0001.state.safetensors"), "epoch-0001.state.safetensors is damaged"),
        (lambda c: _truncate(c / "epoch-0001.state.json"), "epoch-0001.state.json is damaged"),
        (lambda c: (c / "latest.json").write_text("{"), "latest.json is damaged"),
        (lambda c: (c / "epoch-0001.state.safetensors").unlink(), "epoch-0001.state.safetensors is damaged"),
    ],
    ids=["weights", "state-tensors", "state-json", "pointer", "missing"],
)
def test_a_damaged_checkpoint_is_refused_and_nothing_is_lost(gmdsl_cli, one_epoch: Path, damage, message) -> None:
    damage(one_epoch / "checkpoint")
    before = {p.name: p.read_bytes() for p in (one_epoch / "checkpoint").iterdir()}
    code, _, err = gmdsl_cli("train", "--resume", str(one_epoch), "--epochs", "2", "--no-progress")
    assert code == 1, err
    assert message in err and "Traceback" not in err and "internal error" not in err
    assert {p.name: p.read_bytes() for p in (one_epoch / "checkpoint").iterdir()} == before


def test_damaged_best_weights_are_refused_by_eval(gmdsl_cli, one_epoch: Path) -> None:
    _truncate(one_epoch / "checkpoint" / "best.safetensors")
    code, _, err = gmdsl_cli("eval", str(one_epoch), "--samples", "2", "--rows", "10")
    assert code == 1 and "best.safetensors is damaged" in err and "internal error" not in err


def test_weights_of_another_model_are_refused(gmdsl_cli, tiny: Path, one_epoch: Path, tmp_path: Path) -> None:
    other, narrower = tmp_path / "other", tmp_path / "narrower.gm"
    # the same networks, narrower: the same weight names, other shapes
    narrower.write_text(Path(SPEC).read_text().replace("hidden = [256]", "hidden = [64]"))
    assert gmdsl_cli("train", str(narrower), "--dataset", str(tiny), "--run", str(other), *FAST[:-1], "1")[0] == 0
    for name in ("epoch-0001.safetensors", "best.safetensors"):
        (one_epoch / "checkpoint" / name).write_bytes((other / "checkpoint" / name).read_bytes())
    code, _, err = gmdsl_cli("train", "--resume", str(one_epoch), "--epochs", "2", "--no-progress")
    assert code == 1 and "holds weights of another model" in err and "Traceback" not in err
    code, _, err = gmdsl_cli("eval", str(one_epoch), "--samples", "2", "--rows", "10")
    assert code == 1 and "holds weights of another model" in err


def test_the_training_state_is_stored_without_pickle(one_epoch: Path) -> None:
    folder = one_epoch / "checkpoint"
    assert not list(folder.glob("*.pt"))
    record = json.loads((folder / "epoch-0001.state.json").read_text())
    tensors = load_file(folder / "epoch-0001.state.safetensors")
    assert record["dict"]["order"] == {"tensor": "/order"} and "/torch" in tensors
    assert record["dict"]["metrics"][0]["dict"]["epoch"] == 1


class _Planted:
    """Unpickling this runs code: what a hostile checkpoint would carry."""

    def __reduce__(self):
        return (os.system, ("touch planted",))


def test_an_old_pickled_state_is_read_without_running_what_it_pickled(gmdsl_cli, one_epoch: Path) -> None:
    """Runs from before the safetensors state have epoch-NNNN.state.pt: read by torch's restricted
    unpickler, so a plain one resumes and one carrying code is refused without running it."""
    from gmdsl.train.checkpoints import join_tensors

    folder = one_epoch / "checkpoint"
    tensors = load_file(folder / "epoch-0001.state.safetensors")
    state = join_tensors(json.loads((folder / "epoch-0001.state.json").read_text()), tensors)
    (folder / "epoch-0001.state.json").unlink()
    (folder / "epoch-0001.state.safetensors").unlink()
    torch.save({**state, "epoch": 1}, folder / "epoch-0001.state.pt")
    legacy = (folder / "epoch-0001.state.pt").read_bytes()

    (folder / "epoch-0001.state.pt").write_bytes(pickle.dumps({**state, "metrics": _Planted()}))
    code, _, err = gmdsl_cli("train", "--resume", str(one_epoch), "--epochs", "2", "--no-progress")
    assert code == 1 and "epoch-0001.state.pt is damaged" in err
    assert not (ROOT / "planted").exists() and not Path("planted").exists()

    (folder / "epoch-0001.state.pt").write_bytes(legacy)
    assert gmdsl_cli("train", "--resume", str(one_epoch), "--epochs", "2", "--no-progress")[0] == 0


def test_an_edited_model_py_is_compiled_again_from_the_spec(gmdsl_cli, one_epoch: Path) -> None:
    model = one_epoch / "model.py"
    original = model.read_text()
    model.write_text(original + "\nimport os; os.system('touch planted')\n")
    code, _, err = gmdsl_cli("eval", str(one_epoch), "--samples", "2", "--rows", "10")
    assert code == 0, err
    assert "is not what" in err and "compiled again from the spec" in err
    assert model.read_text() == original and not Path("planted").exists()
