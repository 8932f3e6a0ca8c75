"""IDX files (MNIST's format, optionally gzipped), and a folder of the four MNIST-style files:
fields `image` (uint8) and `label` (int64)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import torch

from gmdsl.files import regular_file

from .dataset import DataError, Dataset, consistent

IDX_FILES = {
    ("train", "image"): "train-images-idx3-ubyte",
    ("train", "label"): "train-labels-idx1-ubyte",
    ("test", "image"): "t10k-images-idx3-ubyte",
    ("test", "label"): "t10k-labels-idx1-ubyte",
}

_IDX_TYPES = {
    0x08: torch.uint8,
    0x09: torch.int8,
    0x0B: torch.int16,
    0x0C: torch.int32,
    0x0D: torch.float32,
    0x0E: torch.float64,
}


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(regular_file(path), "rb") as handle:
            data = handle.read()
    except MemoryError:  # a gzip bomb, or a file far larger than its dataset could be
        raise DataError(f"{path} unpacks to more than this machine's memory: is it the file you meant?") from None
    except (OSError, EOFError) as exc:  # gzip's BadGzipFile is an OSError
        raise DataError(f"cannot read {path} ({exc}): fetch the dataset again, or replace the file") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file (its first bytes are not an IDX header)")
    dims = data[3]
    if len(data) < 4 + 4 * dims:
        raise DataError(f"{path} is truncated: its header promises {dims} dimensions but ends before their sizes")
    shape = struct.unpack(f">{dims}I", data[4 : 4 + 4 * dims])
    dtype = _IDX_TYPES[data[2]]
    body = bytearray(data[4 + 4 * dims :])
    if len(body) % dtype.itemsize:
        raise DataError(
            f"{path} is damaged: its values are {dtype.itemsize}-byte numbers, but it holds {len(body)} bytes of them"
        )
    tensor = torch.frombuffer(body, dtype=dtype) if body else torch.empty(0, dtype=dtype)
    if dtype.itemsize > 1:  # IDX is big-endian
        tensor = tensor.view(torch.uint8).reshape(-1, dtype.itemsize).flip(-1).reshape(-1).view(dtype)
    expected = 1
    for size in shape:
        expected *= size
    if tensor.numel() != expected:
        raise DataError(f"{path} is truncated: {tensor.numel()} values for shape {list(shape)}")
    return tensor.reshape(shape).clone()


def is_idx_folder(path: Path) -> bool:
    return path.is_dir() and any(
        (path / stem).exists() or (path / (stem + ".gz")).exists() for stem in IDX_FILES.values()
    )


def read_idx_folder(folder: Path, name: str | None = None) -> Dataset:
    splits: dict[str, dict[str, torch.Tensor]] = {"train": {}, "test": {}}
    read = []
    for (split, field), stem in IDX_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz")]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise DataError(
                f"{folder} has no {stem} (or {stem}.gz): an IDX dataset needs " + ", ".join(IDX_FILES.values())
            )
        splits[split][field] = read_idx(path)
        read.append(path.resolve())
    if splits["train"]["label"].dtype != torch.int64:
        for fields in splits.values():
            fields["label"] = fields["label"].long()
    dataset = Dataset(name or folder.name, splits["train"], splits["test"], "idx", folder.resolve(), files=read)
    return consistent(dataset, folder)
