"""Training in several processes (DistributedDataParallel through torchrun, gloo on CPUs): two
processes on one global batch train as one process does, only rank 0 writes, and a stopped
two-process run resumes to the end it would have reached."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file
from tiny_data import make_tiny_mnist

from gmdsl.train.distributed import Ranks

ROOT = Path(__file__).resolve().parent.parent
# Nothing in it is sampled (y is summed over), so one process and two compute the same
# objective, and differ only in how floats are summed.
COUNTED = """
model counted
observed   x : binary[784]
supervised y : onehot[10]
p(y)     = Categorical(probs = uniform)
p(x | y) = Bernoulli(logits = decoder(y))
q(y | x) = Categorical(logits = classifier(x)) by enumeration
net classifier = mlp(hidden = [32])
net decoder    = mlp(hidden = [32])
objective semisupervised(alpha = 1, samples = 1)
"""
# the last batch of each epoch is shorter (334 rows, 32 new ones a batch): shards of unequal size
OPTIONS = ["--epochs", "2", "--batch-size", "64", "--labels", "20", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "tiny")


def _gmdsl(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "gmdsl", *args], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "checkpoint" / "epoch-0002.safetensors")


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("label_weight", ["row", "dataset"])
def test_two_processes_train_as_one_process_on_the_same_global_batch(
    gmdsl_cli, tiny: Path, tmp_path: Path, label_weight: str
) -> None:
    spec = tmp_path / "counted.gm"
    spec.write_text(COUNTED)
    one, two = tmp_path / "one", tmp_path / "two"
    options = [*OPTIONS, "--dataset", str(tiny), "--label-weight", label_weight]
    assert gmdsl_cli("train", str(spec), "--run", str(one), *options)[0] == 0  # one process: this one
    result = _gmdsl("train", str(spec), "--run", str(two), *options, "--nproc", "2")
    assert "in 2 processes" in result.stdout
    assert result.stdout.count("done:") == 1 and result.stdout.count("epoch 2/2, loss") == 1  # rank 0 speaks
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert _losses(one) == pytest.approx(_losses(two), rel=1e-5)
    assert json.loads((two / "checkpoint" / "latest.json").read_text())["epoch"] == 2
    state = json.loads((two / "checkpoint" / "epoch-0002.state.json").read_text())["dict"]
    assert len(state["torch_ranks"]) == 2  # each process's random numbers, to resume


@given(rows=st.integers(0, 50), world=st.integers(1, 8))
def test_the_shards_of_a_batch_are_the_batch_in_order_and_differ_by_at_most_one_row(rows: int, world: int) -> None:
    batch = torch.arange(rows)
    shards = [Ranks(rank, world).shard(batch) for rank in range(world)]
    assert torch.equal(torch.cat(shards), batch)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def _rank_process(launcher: int, rank: int) -> int:
    """The pid of the training process of `rank` that torchrun, started as `launcher`, runs."""
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue  # not a process, or one that ended
        if parent == launcher and f"RANK={rank}".encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no process of rank {rank} under {launcher}")


@pytest.mark.parametrize(
    "sent, whom, code",
    [(signal.SIGINT, "all", 130), (signal.SIGTERM, "all", 143), (signal.SIGTERM, "rank 1", 143)],
    ids=["ctrl-c", "sigterm", "sigterm-to-one"],
)
def test_a_two_process_run_stopped_by_a_signal_says_so_once(
    tmp_path: Path, sent: signal.Signals, whom: str, code: int
) -> None:
    """The signal reaches every process, as a terminal's Ctrl-C does, or only one of them: the
    processes stop together (none inside a collective the other left), with one message and the
    signal's exit code."""
    from own_data import write_points

    data = write_points(tmp_path, 0.5, train=1000, test=50)  # 56 steps an epoch: stopped at step 20 of epoch 2
    command = [sys.executable, "-m", "gmdsl", "train", str(tmp_path / "points.gm"), "--dataset", str(data)]
    command += ["--run", str(tmp_path / "run"), "--batch-size", "16", "--epochs", "50", "--device", "cpu"]
    command += ["--no-progress", "--nproc", "2"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "epoch 1/50" in line:
            if whom == "all":
                os.killpg(process.pid, sent)  # the whole process group, as a terminal does
            else:
                os.kill(_rank_process(process.pid, 1), sent)
            break
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert err.count("epochs 1..1 are saved") == 1, err
    assert "Traceback" not in err and "internal error" not in err and "a training process failed" not in err


def test_a_two_process_run_stopped_at_an_epoch_s_end_and_mid_epoch_resumes_to_the_same_end(tmp_path: Path) -> None:
    """With sampling noise (each process draws its own), a two-process run stopped after epoch 1,
    resumed, stopped again mid-epoch and resumed in two processes ends bitwise as the run that
    never stopped; the resumed epoch's loss is the uninterrupted one's (each process's running
    total of the stopped epoch is its own)."""
    import time

    from own_data import write_points

    data = write_points(tmp_path, 0.5, train=2500, test=50)  # about 140 steps an epoch
    base = [sys.executable, "-m", "gmdsl", "train", str(tmp_path / "points.gm"), "--dataset", str(data)]
    base += ["--batch-size", "16", "--epochs", "2", "--device", "cpu", "--no-progress", "--nproc", "2"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    # the uninterrupted run without step checkpoints: saving one draws no random numbers, so it trains alike
    subprocess.run([*base, "--run", str(straight)], check=True, capture_output=True, timeout=300)
    subprocess.run([*base, "--checkpoint-every", "10", "--run", str(stopped), "--epochs", "1"], check=True,
                   capture_output=True, timeout=300)  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "gmdsl", "train", "--resume", str(stopped), "--epochs", "2", "--no-progress",
         "--nproc", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    pointer = stopped / "checkpoint" / "latest.json"
    while process.poll() is None:  # stopped as soon as epoch 2 has a step checkpoint
        if json.loads(pointer.read_text()).get("step", 0) > 0:
            os.killpg(process.pid, signal.SIGTERM)
            break
        time.sleep(0.01)
    process.communicate(timeout=120)
    latest = json.loads(pointer.read_text())
    assert latest["epoch"] == 1 and latest["step"] > 0, latest  # stopped mid-epoch
    _gmdsl("train", "--resume", str(stopped), "--no-progress", "--nproc", "2")
    a, b = _weights(straight), _weights(stopped)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _losses(stopped) == _losses(straight)


def test_a_mistake_in_a_two_process_run_is_told_once(tmp_path: Path) -> None:
    """Rank 0 names the mistake; the other process neither repeats it nor fails of a lost connection."""
    from own_data import write_points

    data = write_points(tmp_path, 0.5)
    command = [sys.executable, "-m", "gmdsl", "train", str(tmp_path / "points.gm"), "--dataset", str(data)]
    command += ["--select", "nothing", "--device", "cpu", "--no-progress", "--nproc", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("select names `nothing`") == 1, result.stderr
    assert "internal error" not in result.stderr and "a training process failed" not in result.stderr
