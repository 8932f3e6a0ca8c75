"""Every file or setting mistake in a run directory, a config or the data is a user error that
names the file and the fix (exit 1, or 2 for bad usage): damaged JSON of every run file, files
that are folders or pipes, settings that are not what they claim, folders that cannot be
written, and data without examples. One case per cause."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from own_data import write_points

FAST = ["--epochs", "1", "--batch-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from gmdsl import cli

    folder = tmp_path_factory.mktemp("trained")
    data = write_points(folder, 0.5)
    assert (
        cli.main(["train", str(folder / "points.gm"), "--dataset", str(data), "--run", str(folder / "run"), *FAST]) == 0
    )
    return folder / "run"


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


DAMAGE = {
    "latest.json infinite": ("checkpoint/latest.json", '{"epoch": 1e999, "step": 0}', "latest.json is damaged"),
    "latest.json deep": ("checkpoint/latest.json", "[" * 5000 + "]" * 5000, "latest.json is damaged"),
    "latest.json types": ("checkpoint/latest.json", '{"epoch": "1"}', "latest.json is damaged"),
    "latest.json NaN": ("checkpoint/latest.json", '{"epoch": NaN}', "latest.json is damaged"),
    "best.json types": ("checkpoint/best.json", '{"epoch": 1, "metric": 3, "value": "low"}', "best.json is damaged"),
    "state.json": ("checkpoint/epoch-0001.state.json", '{"dict": {"optimiser": {"tensor": "nowhere"}}}', "damaged"),
    "data.json malformed": ("data.json", "{", "data.json is not valid JSON"),
    "data.json types": ("data.json", '{"dataset": 1, "fields": []}', "data.json is damaged"),
    "validation.json": ("validation.json", '{"indices": [1.5]}', "validation.json is damaged"),
    "labelled.json negative": ("labelled.json", '{"indices": [-4]}', "labelled.json is damaged"),
    "run.json": ("run.json", '{"trained_from": "elsewhere"}', "run.json is damaged"),
    "config.json seed": ("config.json", None, "`seed`"),
    "config.json not UTF-8": ("config.json", b"\xff\xfe{", "not UTF-8"),
}


@pytest.mark.parametrize("file, content, message", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_run_file_is_named_and_nothing_is_lost(gmdsl_cli, run: Path, file, content, message) -> None:
    target = run / file
    if content is None:  # a number too large for a seed, as a float
        content = target.read_text().replace('"seed": 0', '"seed": 1e30')
    target.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    command = ["train", "--resume", str(run), "--epochs", "2", "--no-progress"]
    if file == "checkpoint/best.json":
        command = ["eval", str(run)]
    code, _, err = gmdsl_cli(*command)
    assert code == 1 and message in err and "internal error" not in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != "train.lock"} == {
        p: v for p, v in before.items() if p.name != "train.lock"
    }


@pytest.mark.parametrize("file", ["config.json", "data.json", "checkpoint/best.safetensors", "spec.gm"])
def test_a_run_file_that_is_a_folder_or_a_pipe_is_refused_without_waiting(gmdsl_cli, run: Path, file: str) -> None:
    target = run / file
    target.unlink()
    target.mkdir()
    code, _, err = gmdsl_cli("eval", str(run))
    assert code == 1 and "internal error" not in err, err
    target.rmdir()
    os.mkfifo(target)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(gmdsl_cli("eval", str(run))), daemon=True)
    worker.start()
    worker.join(timeout=60)
    if worker.is_alive():  # unblock the reader so the test process can end, then fail
        with open(target, "w"):
            pass
        pytest.fail(f"gmdsl eval waited on the pipe {file}")
    code, _, err = result[0]
    assert code == 1 and "internal error" not in err, err


def test_a_pipe_given_as_spec_config_or_data_is_refused(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    os.mkfifo(tmp_path / "pipe.gm")
    os.mkfifo(tmp_path / "pipe.toml")
    os.mkfifo(tmp_path / "pipe.npz")
    spec = str(tmp_path / "points.gm")
    for args in (
        ["check", str(tmp_path / "pipe.gm")],
        ["train", spec, "--dataset", str(data), "--config", str(tmp_path / "pipe.toml"), *FAST],
        ["train", spec, "--dataset", str(tmp_path / "pipe.npz"), *FAST],
    ):
        code, _, err = gmdsl_cli(*args)
        assert code in (1, 2) and "pipe" in err and "internal error" not in err, (args, err)


def test_a_checkpoint_folder_that_cannot_be_made_is_named(gmdsl_cli, run: Path) -> None:
    shutil.rmtree(run / "checkpoint")
    (run / "metrics.jsonl").unlink()
    (run / "checkpoint").write_text("not a folder")
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "1", "--no-progress")
    assert code == 1 and "cannot make the checkpoint folder" in err and "internal error" not in err, err


def test_a_run_folder_that_cannot_be_written_is_named(gmdsl_cli, run: Path) -> None:
    """What a read-only folder does to gmdsl (these tests run as root, whom no mode stops): its
    lock file and its evaluation cannot be written."""
    (run / "train.lock").unlink(missing_ok=True)
    (run / "train.lock").mkdir()
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "2", "--no-progress")
    assert code == 1 and "cannot write" in err and "must be writable" in err, err
    (run / "eval-best.json").mkdir()
    code, _, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "5")
    assert code == 1 and "cannot write" in err and "eval-best.json" in err, err


def test_an_unwritable_file_ends_in_a_message_and_leaves_no_part(tmp_path: Path) -> None:
    from gmdsl.files import FileError, write_atomically

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "inside").write_text("x")
    with pytest.raises(FileError, match="cannot write .*taken"):
        write_atomically(tmp_path / "taken", "text")
    assert not (tmp_path / "taken.tmp").exists()


SETTINGS = {
    "string for a number": ('epochs = "5"', "`epochs`"),
    "bool for a number": ("epochs = true", "`epochs`"),
    "float for a count": ("epochs = 2.0", "`epochs`"),
    "seed too large": ("seed = 100000000000000000000000", "`seed`"),
    "nested too deep": ("a = " + "[" * 5000 + "]" * 5000, "config"),
    "infinite rate": ("learning_rate = inf", "`learning_rate`"),
    "NaN share": ("label_fraction = nan", "`label_fraction`"),
    "too large": ("# " + "x" * (1 << 20), "larger than a config file ever is"),
}


@pytest.mark.parametrize("text, message", SETTINGS.values(), ids=SETTINGS.keys())
def test_settings_parse_strictly(gmdsl_cli, tmp_path: Path, text: str, message: str) -> None:
    data = write_points(tmp_path, 0.5)
    (tmp_path / "train.toml").write_text(text + "\n")
    flags = ["--dataset", str(data), "--config", str(tmp_path / "train.toml"), "--no-progress"]
    code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), *flags)
    assert code == 1 and message in err and "internal error" not in err, err


def test_resume_and_run_together_is_bad_usage(gmdsl_cli, run: Path, tmp_path: Path) -> None:
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--run", str(tmp_path / "other"))
    assert code == 2 and "give one of them" in err


def test_a_compiled_model_that_exits_is_not_a_model(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    (tmp_path / "exits.py").write_text("raise SystemExit(0)\n")
    code, _, err = gmdsl_cli("train", str(tmp_path / "exits.py"), "--dataset", str(data), *FAST)
    assert code == 2 and "is not a compiled gmdsl model (SystemExit" in err


def test_a_split_without_examples_is_named(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    arrays = dict(np.load(data))
    np.savez(data, **{**arrays, "x_test": arrays["x_test"][:0], "y_test": arrays["y_test"][:0]})
    code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), *FAST)
    assert code == 1 and "the test split of" in err and "has no examples" in err


def test_a_checkpoint_of_diverged_weights_is_named_by_eval_and_show(gmdsl_cli, run: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "checkpoint" / "best.safetensors")
    save_file({k: v * float("nan") for k, v in weights.items()}, run / "checkpoint" / "best.safetensors")
    for command in ("eval", "show"):
        code, _, err = gmdsl_cli(command, str(run))
        assert code == 1 and "not finite numbers: its training diverged" in err, err


def test_an_idx_file_whose_body_is_not_whole_numbers_is_named(gmdsl_cli, tmp_path: Path) -> None:
    import struct

    from gmdsl.data import DataError
    from gmdsl.data.idx import read_idx

    (tmp_path / "floats").write_bytes(struct.pack(">BBBB", 0, 0, 0x0D, 1) + struct.pack(">I", 2) + b"\0" * 7)
    with pytest.raises(DataError, match="4-byte numbers, but it holds 7 bytes"):
        read_idx(tmp_path / "floats")


def test_weights_of_a_model_with_other_network_names_are_refused(gmdsl_cli, run: Path, tmp_path: Path) -> None:
    """Not only other shapes: other names (missing and extra weights) are named too."""
    from safetensors.torch import load_file, save_file

    weights = load_file(run / "checkpoint" / "best.safetensors")
    save_file(
        {k.replace("classifier", "labeller"): v for k, v in weights.items()}, run / "checkpoint" / "best.safetensors"
    )
    code, _, err = gmdsl_cli("eval", str(run))
    assert code == 1 and "holds weights of another model (missing " in err and "extra " in err, err


def test_memory_that_cannot_be_allocated_names_the_setting(gmdsl_cli, run: Path, tmp_path: Path) -> None:
    data = write_points(tmp_path / "data", 0.5)
    flags = ["--dataset", str(data), "--samples", "1000000000", "--run", str(tmp_path / "huge"), *FAST]
    code, _, err = gmdsl_cli("train", str(tmp_path / "data" / "points.gm"), *flags)
    assert code == 1 and "did not fit in the memory of cpu" in err and "--samples (1000000000)" in err, err
    assert not (tmp_path / "huge").exists()
    code, _, err = gmdsl_cli("eval", str(run), "--samples", "1000000000000")
    assert code == 1 and "did not fit in the memory" in err and "--samples (1000000000000)" in err, err


def test_a_training_state_from_another_run_is_refused(gmdsl_cli, run: Path, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow"
    spec = (run / "spec.gm").read_text().replace("hidden = [16]", "hidden = [8]")
    data = write_points(narrow, 0.5)
    (narrow / "points.gm").write_text(spec)
    flags = ["--dataset", str(data), "--run", str(narrow / "run"), *FAST]
    assert gmdsl_cli("train", str(narrow / "points.gm"), *flags)[0] == 0
    for name in ("epoch-0001.state.json", "epoch-0001.state.safetensors"):
        shutil.copy(narrow / "run" / "checkpoint" / name, run / "checkpoint" / name)
    code, _, err = gmdsl_cli("train", "--resume", str(run), "--epochs", "2", "--no-progress")
    assert code == 1 and "is not this run's" in err and "learning rate" not in err, err


def test_an_impossible_run_path_and_a_zero_dimensional_array_are_named(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    spec = str(tmp_path / "points.gm")
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(data), "--run", str(tmp_path / ("r" * 300)), *FAST)
    assert code == 1 and "cannot create the run directory" in err and "File name too long" in err, err
    np.savez(tmp_path / "scalar.npz", x=np.float32(1.0), y=np.zeros(3))
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(tmp_path / "scalar.npz"), *FAST)
    assert code == 1 and "array x is a single number" in err, err


def test_a_table_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    from gmdsl.data import DataError, open_dataset

    (tmp_path / "t.csv").write_bytes(b"x,y\n1,2\n3,4,\xee\x80\n")
    with pytest.raises(DataError, match=r"t\.csv is not UTF-8 text \(byte 12 is not\)"):
        open_dataset(str(tmp_path / "t.csv"))


def test_an_npz_compressed_in_a_way_numpy_cannot_read_is_named(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    raw = bytearray(data.read_bytes())
    for header, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # every member's compression method
        at = raw.find(header)
        while at >= 0:
            raw[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            at = raw.find(header, at + 4)
    data.write_bytes(bytes(raw))
    code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), *FAST)
    assert code == 1 and "is not a readable .npz" in err and "internal error" not in err, err


def test_an_npz_that_declares_more_than_memory_holds_is_named(gmdsl_cli, tmp_path: Path) -> None:
    import io
    import zipfile

    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        for name in ("x_train.npy", "x_test.npy"):
            archive.writestr(name, header.getvalue() + b"\0" * 64)  # 8 TB declared, 64 bytes given
    code, _, err = gmdsl_cli("data", "inspect", str(tmp_path / "huge.npz"))
    assert code == 1 and "larger than this machine's memory" in err and "internal error" not in err, err
