"""Which reader reads a dataset: a name from gmdsl's cache, or a user's own file or folder.
Each source is one module with one `read(path) -> Dataset` and one entry here, tried in order;
docs/data.md says how each one names fields, marks splits and marks missing labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .dataset import DataError, Dataset


@dataclass(frozen=True)
class Source:
    kind: str
    what: str  # how messages name it
    matches: Callable[[Path], bool]
    read: Callable[[Path], Dataset]


def _suffix(*suffixes: str) -> Callable[[Path], bool]:
    return lambda path: path.is_file() and path.suffix.lower() in suffixes


def _read_idx(path: Path) -> Dataset:
    from .idx import read_idx_folder

    return read_idx_folder(path)


def _is_idx(path: Path) -> bool:
    from .idx import is_idx_folder

    return is_idx_folder(path)


def _read_npz(path: Path) -> Dataset:
    from .npz import read_npz

    return read_npz(path)


def _read_table(path: Path) -> Dataset:
    from .table import read_table

    return read_table(path)


def _read_images(path: Path) -> Dataset:
    from .images import read_image_folder

    return read_image_folder(path)


SOURCES = (
    Source("idx", "a folder of MNIST-style IDX files", _is_idx, _read_idx),
    Source("npz", "an .npz file", _suffix(".npz"), _read_npz),
    Source("table", "a .csv, .tsv or .parquet table", _suffix(".csv", ".tsv", ".parquet"), _read_table),
    Source("images", "a folder of images (a subfolder per class)", lambda path: path.is_dir(), _read_images),
)


def open_dataset(name: str, fetch_missing: bool = True) -> Dataset:
    """A dataset by name from gmdsl's cache (fetched if missing), or a user's own file or folder."""
    from .cache import KNOWN, open_named

    if name in KNOWN:
        return open_named(name, fetch_missing)
    path = Path(name)
    for source in SOURCES:
        if source.matches(path):
            return source.read(path)
    kinds = "; ".join(source.what for source in SOURCES)
    if not path.exists():
        raise DataError(f"no dataset `{name}`: no such file or folder, and not one of {', '.join(KNOWN)}")
    raise DataError(f"cannot read {name} as a dataset: gmdsl reads {', '.join(KNOWN)}, or {kinds} (docs/data.md)")
