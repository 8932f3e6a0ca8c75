"""A run's own files never run code the user did not ask for: a run trained from a spec is
compiled again from its spec.gm, and is refused when that is gone; only a run trained from a
compiled .py runs its model.py."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from own_data import write_points

FAST = ["--epochs", "1", "--batch-size", "32", "--no-progress"]
PAYLOAD = '\nimport pathlib\npathlib.Path("RAN").write_text("model.py ran")\n'


@pytest.fixture
def run(gmdsl_cli, tmp_path: Path) -> Path:
    data = write_points(tmp_path, 0.5)
    run = tmp_path / "run"
    assert gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), "--run", str(run), *FAST)[0] == 0
    assert json.loads((run / "run.json").read_text()) == {"trained_from": "spec.gm"}
    return run


@pytest.mark.parametrize("how", ["deleted", "dangling link", "a directory"])
def test_a_run_without_its_spec_is_refused_and_its_model_py_never_runs(
    gmdsl_cli, run: Path, tmp_path: Path, monkeypatch, how: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (run / "model.py").write_text((run / "model.py").read_text() + PAYLOAD)
    (run / "spec.gm").unlink()
    if how == "dangling link":
        (run / "spec.gm").symlink_to(tmp_path / "nowhere.gm")
    elif how == "a directory":
        (run / "spec.gm").mkdir()
    for command in (["eval", str(run)], ["show", str(run)], ["train", "--resume", str(run), "--epochs", "2"]):
        code, _, err = gmdsl_cli(*command)
        assert code == 1 and "its spec.gm is missing" in err and "never runs its model.py" in err, command
    assert not (tmp_path / "RAN").exists()


def test_a_run_with_neither_spec_nor_record_is_refused(gmdsl_cli, run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (run / "model.py").write_text((run / "model.py").read_text() + PAYLOAD)
    (run / "spec.gm").unlink()
    (run / "run.json").unlink()
    code, _, err = gmdsl_cli("eval", str(run))
    assert code == 1 and "no run.json saying it was trained from a compiled model.py" in err
    (run / "run.json").write_text('{"trained_from": 5}')
    code, _, err = gmdsl_cli("eval", str(run))
    assert code == 1 and "run.json is damaged" in err
    assert not (tmp_path / "RAN").exists()


def test_a_run_trained_from_a_compiled_py_runs_its_model_py(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    assert gmdsl_cli("compile", str(tmp_path / "points.gm"), "-o", str(tmp_path / "points.py"))[0] == 0
    run = tmp_path / "run"
    assert gmdsl_cli("train", str(tmp_path / "points.py"), "--dataset", str(data), "--run", str(run), *FAST)[0] == 0
    assert json.loads((run / "run.json").read_text()) == {"trained_from": "model.py"}
    assert not (run / "spec.gm").exists()
    code, _, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "5")
    assert code == 0, err


def test_the_process_that_loses_a_new_run_to_another_removes_nothing(gmdsl_cli, tmp_path: Path) -> None:
    """Two trainers race on one new --run: the one that finds it locked leaves the other's files."""
    import fcntl

    data = write_points(tmp_path, 0.5)
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "train.lock", "a+") as held:  # the winner, mid-way through writing its run
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (run / "model.py").write_text("# the winner's\n")
        code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), "--run", str(run), *FAST)
        assert code == 1 and "is being trained by" in err
        assert (run / "model.py").read_text() == "# the winner's\n" and (run / "train.lock").exists()


def test_run_into_a_folder_of_other_files_says_it_is_not_a_run(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    flags = ["--dataset", str(data), "--run", str(tmp_path / "notes"), *FAST]
    code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), *flags)
    assert code == 1 and "is a folder of other files, not a run" in err and "--resume" not in err
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine"


def test_a_missing_latest_json_is_damage_and_nothing_is_retrained(gmdsl_cli, run: Path) -> None:
    before = {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()}
    (run / "checkpoint" / "latest.json").unlink()
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "3", "--no-progress")
    assert code == 1 and "latest.json is missing" in err and "epoch-0001.safetensors" in err
    assert "Nothing was changed" in err
    after = {p.name: p.read_bytes() for p in (run / "checkpoint").iterdir()}
    assert after == {k: v for k, v in before.items() if k != "latest.json"}
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def _train_until(tmp_path: Path, marker: str, *flags: str, after: float = 0) -> subprocess.CompletedProcess:
    """`gmdsl train` in its own process, sent SIGTERM `after` seconds once its output shows `marker`."""
    command = [sys.executable, "-m", "gmdsl", "train", str(tmp_path / "points.gm"), "--no-progress", *flags]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            time.sleep(after)
            process.send_signal(signal.SIGTERM)
            break
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, "".join(seen) + out, err)


def test_sigterm_stops_training_like_ctrl_c(tmp_path: Path) -> None:
    # some 230 steps an epoch: the signal, sent as the line is read, lands long before the epoch ends
    data = write_points(tmp_path, 0.5, train=4000, test=50)
    flags = ("--dataset", str(data), "--batch-size", "16", "--epochs", "50")
    # after an epoch is saved: exit 143, the epoch kept, and how to go on
    stopped = _train_until(tmp_path, "epoch 1/50", *flags, "--run", "kept")
    assert stopped.returncode == 143, stopped.stderr
    assert re.search(r"stopped by SIGTERM during epoch [12]; epochs 1\.\.1 are saved", stopped.stderr), stopped.stderr
    assert "gmdsl train --resume kept" in stopped.stderr and "Traceback" not in stopped.stderr
    assert (tmp_path / "kept" / "checkpoint" / "latest.json").exists()
    # during a new run's first epoch: nothing is left to block the same command. The line is
    # printed just before the epoch starts, so the signal waits a moment (the epoch is long: more
    # than 1000 steps, and this run is stopped in it, whatever its length)
    data = write_points(tmp_path / "long", 0.5, train=20000, test=50)
    flags = ("--dataset", str(data), "--batch-size", "16", "--epochs", "50")
    stopped = _train_until(tmp_path, "training points on", *flags, "--run", "new", after=0.5)
    assert stopped.returncode == 143, stopped.stderr
    assert "before any epoch was saved; run the same command again" in stopped.stderr
    assert not (tmp_path / "new").exists()
