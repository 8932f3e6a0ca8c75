"""Broken and hostile data files and specs: each ends in a one-line error that names the file
and what is wrong, exit 1, never a traceback or an "internal error"."""

from __future__ import annotations

import gzip
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import make_tiny_mnist, write_idx

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "specs" / "mnist.gm"
IMAGES = "train-images-idx3-ubyte"
LABELS = "train-labels-idx1-ubyte"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "tiny")


def _floats(folder: Path, value: float) -> None:
    """Train images stored as IDX floats (type 0x0D), every pixel `value`."""
    header = struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3I", 400, 28, 28)
    (folder / IMAGES).write_bytes(header + np.full((400, 28, 28), value, dtype=">f4").tobytes())


def _gzip_garbage(folder: Path) -> None:
    (folder / IMAGES).unlink()
    (folder / (IMAGES + ".gz")).write_bytes(b"not gzip at all")


def _truncated_gzip(folder: Path) -> None:
    whole = gzip.compress((folder / IMAGES).read_bytes())
    (folder / IMAGES).unlink()
    (folder / (IMAGES + ".gz")).write_bytes(whole[: len(whole) // 2])


IDX_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "wrong magic": (lambda f: (f / IMAGES).write_bytes(b"PK\x03\x04" + bytes(100)), "is not an IDX file"),
    "header cut short": (lambda f: (f / IMAGES).write_bytes(b"\x00\x00\x08\x03\x00\x00"), "ends before their sizes"),
    "body cut short": (
        lambda f: (f / IMAGES).write_bytes((f / IMAGES).read_bytes()[:5000]),
        "is truncated: 4984 values for shape [400, 28, 28]",
    ),
    "not gzip": (_gzip_garbage, "cannot read"),
    "gzip cut short": (_truncated_gzip, "cannot read"),
    "fewer labels than images": (
        lambda f: write_idx(f / LABELS, (torch.arange(300) % 10).to(torch.uint8)),
        "has fields of different lengths (image 400, label 300)",
    ),
    "labels out of range": (
        lambda f: write_idx(f / LABELS, (torch.arange(400) % 10 + 200).to(torch.uint8)),
        "holds class indices outside 0..9",
    ),
    "NaN pixels": (lambda f: _floats(f, float("nan")), "NaN or infinite values"),
    "pixels out of range": (lambda f: _floats(f, 7.0), "values must be 0/1 or intensities in [0, 1]"),
}


@pytest.mark.parametrize("damage", IDX_DAMAGE, ids=list(IDX_DAMAGE))
def test_a_damaged_idx_dataset_is_refused_clearly(gmdsl_cli, tiny: Path, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "data"
    shutil.copytree(tiny, folder)
    make, message = IDX_DAMAGE[damage]
    make(folder)
    run_dir = tmp_path / "run"
    code, _, err = gmdsl_cli("train", str(MNIST), "--dataset", str(folder), "--run", str(run_dir), "--no-progress")
    assert code == 1, err
    assert message in err and "Traceback" not in err and "internal error" not in err
    assert not run_dir.exists()  # refused before anything was written


NPZ_DAMAGE: dict[str, tuple[dict[str, np.ndarray] | bytes, str]] = {
    "not a zip": (b"\x93NUMPY but not an archive", "is not a readable .npz"),
    "strings": (
        {"x_train": np.array(["a", "b"]), "x_test": np.array(["c"])},
        "is not a readable .npz of numeric arrays",
    ),
    "objects": (
        {"x_train": np.array([object()] * 2, dtype=object), "x_test": np.array([1])},
        "is not a readable .npz of numeric arrays",
    ),
    "unpaired": ({"x_train": np.zeros((4, 784)), "y_test": np.zeros(4)}, "have different fields (x, y)"),
    "lengths differ": (
        {"x_train": np.zeros((5, 784)), "x_test": np.zeros((2, 784)), "y_train": np.zeros(4), "y_test": np.zeros(2)},
        "has fields of different lengths (x 5, y 4)",
    ),
}


@pytest.mark.parametrize("damage", NPZ_DAMAGE, ids=list(NPZ_DAMAGE))
def test_a_damaged_npz_dataset_is_refused_clearly(gmdsl_cli, tmp_path: Path, damage: str) -> None:
    content, message = NPZ_DAMAGE[damage]
    path = tmp_path / "data.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)  # type: ignore[arg-type]
    code, _, err = gmdsl_cli("train", str(MNIST), "--dataset", str(path), "--run", str(tmp_path / "run"))
    assert code == 1, err
    assert message in err and str(path) in err and "internal error" not in err


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("real[50]", "real[2147483648]", "error[E0501]: this shape holds 2,147,483,648 values per example"),
        ("real[50]", "real[99999999999999999999999]", "error[E0501]"),
        ("hidden = [256]", "hidden = [99999999999]", "must be a list of whole numbers >= 1 and <= 65536"),
        ("scale = 1)", "scale = 1e999)", "error[E0109]: this number is too large to represent"),
    ],
    ids=["shape", "huge-shape", "width", "float"],
)
def test_a_spec_whose_numbers_overflow_is_refused_where_they_are(
    gmdsl_cli, tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = MNIST.read_text()
    assert old in text
    spec = tmp_path / "big.gm"
    spec.write_text(text.replace(old, new, 1))
    code, _, err = gmdsl_cli("check", str(spec))
    assert code == 1 and message in err and "big.gm:" in err and "internal error" not in err


def test_a_model_too_large_for_memory_is_the_users_to_resize() -> None:
    from gmdsl.build import compile_text, load_model_class
    from gmdsl.train.runs import RunError, build_model

    # within every limit of the language, and still about 4 TB of weights
    text = MNIST.read_text().replace("binary[784]", "binary[16000000]").replace("hidden = [256]", "hidden = [65536]")
    model_class = load_model_class(compile_text(text, "big.gm").source, "big")
    with pytest.raises(RunError, match="does not fit in the memory of cpu"):
        build_model(model_class, torch.device("cpu"))
