"""A dataset's content fingerprint: what a run records of the data it was trained on, so that
evaluating it later on other data is refused rather than silently measured."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .dataset import Dataset

_CHUNK = 1 << 20


def fingerprint(dataset: Dataset) -> str:
    """`sha256:HEX` over every file the dataset was read from: its content and, for a folder,
    each file's path inside it (a class folder's name is a label). Nothing outside the dataset
    counts, so a moved or renamed copy keeps its fingerprint."""
    root = _root(dataset)
    digest = hashlib.sha256()
    for file in sorted(dataset.files):
        if root is not None:
            digest.update(f"{file.resolve().relative_to(root).as_posix()}\0".encode())
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return f"sha256:{digest.hexdigest()}"


def _root(dataset: Dataset) -> Path | None:
    if dataset.path is not None and dataset.path.is_dir():
        return dataset.path.resolve()
    return None
