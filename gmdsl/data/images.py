"""Image folders, read with Pillow: one subfolder per class.

    FOLDER/CLASS/*.png            (also .jpg, .jpeg, .bmp, .gif, .webp)
    FOLDER/unlabelled/*.png       optional: images without a label (`unlabeled/` too)

or, with a test split, the same layout under FOLDER/train/ and FOLDER/test/ (a FOLDER with a
`train/` subfolder is read this way; `test/` may be left out).

- Field `image`: uint8, [N, H, W] when every image is greyscale (mode L or 1; L with alpha
  too), else [N, 3, H, W], channels first, every image converted to RGB (palette images
  count as colour; alpha is dropped). Every image has the same size.
- Field `label`: int64, the index of the image's class folder among the class names of both
  splits, sorted (`Dataset.classes["label"]`); -1 for an unlabelled image.
- Files are read in the order of their sorted paths. Hidden files and folders (a leading
  dot) and files of other suffixes are skipped; a file with an image suffix that Pillow
  cannot decode, an image outside a class folder, a folder inside a class folder and a class
  folder without images are errors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .dataset import DataError, Dataset, consistent

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
UNLABELLED = ("unlabelled", "unlabeled")
SPLITS = ("train", "test")
_GREY = ("1", "L", "LA")
_SUFFIXES = ", ".join(IMAGE_SUFFIXES)


def read_image_folder(path: Path) -> Dataset:
    """The images under `path`, one subfolder per class (see the module's docstring)."""
    try:
        listed = {split: _listing(root) for split, root in _split_roots(path).items()}
    except OSError as exc:  # a folder that cannot be listed
        raise DataError(f"cannot read {path} ({exc}): make it and its subfolders readable") from None
    names = sorted({name for files in listed.values() for _, name in files if name is not None})
    index = {name: position for position, name in enumerate(names)}
    decoded = {split: [(file, _decode(file)) for file, _ in files] for split, files in listed.items()}
    _check_sizes([image for images in decoded.values() for image in images])
    colour = any(pixels.ndim == 3 for images in decoded.values() for _, pixels in images)
    fields = {
        split: {
            "image": torch.from_numpy(np.stack([_channels(pixels, colour) for _, pixels in decoded[split]])),
            "label": torch.tensor([-1 if name is None else index[name] for _, name in files], dtype=torch.int64),
        }
        for split, files in listed.items()
    }
    resolved = path.resolve()
    read = [file.resolve() for files in listed.values() for file, _ in files]
    dataset = Dataset(
        resolved.name,
        fields["train"],
        fields.get("test", {}),
        "images",
        resolved,
        classes={"label": names},
        files=read,
    )
    return consistent(dataset, path)


def _split_roots(path: Path) -> dict[str, Path]:
    """The folder of each split: FOLDER/train and FOLDER/test, or FOLDER itself (no test split)."""
    if not (path / "train").is_dir():
        if (path / "test").is_dir():
            raise DataError(
                f"{path} has a test/ folder but no train/: put the training images in {path / 'train'}/CLASS/ "
                "(or rename test/ if it is a class)"
            )
        return {"train": path}
    for entry in _visible(path):
        if (entry.is_dir() and entry.name not in SPLITS) or _is_image(entry):
            shown = entry.name + "/" if entry.is_dir() else entry.name
            raise DataError(
                f"{path} has a train/ folder and also {shown}: with train/ and test/ every class folder (and "
                f"unlabelled/) goes inside them, as {path / 'train' / entry.name}"
            )
    return {split: path / split for split in SPLITS if (path / split).is_dir()}


def _listing(root: Path) -> list[tuple[Path, str | None]]:
    """Every image of one split in sorted order, with its class name (None: unlabelled)."""
    listed: list[tuple[Path, str | None]] = []
    for entry in _visible(root):
        if entry.is_dir():
            images = _images(entry)
            if not images and entry.name not in UNLABELLED:
                raise DataError(f"class folder {entry} holds no images ({_SUFFIXES}): add some, or remove the folder")
            listed += [(image, None if entry.name in UNLABELLED else entry.name) for image in images]
        elif _is_image(entry):
            raise DataError(
                f"{entry} is not in a class folder: move it into {root}/CLASS/ (its class), or into "
                f"{root / UNLABELLED[0]}/ if it has no label"
            )
    if not listed:
        raise DataError(
            f"{root} holds no images: put them in {root}/CLASS/ (one subfolder per class, {_SUFFIXES}), "
            f"and those without a label in {root / UNLABELLED[0]}/"
        )
    return listed


def _images(folder: Path) -> list[Path]:
    images = []
    for entry in _visible(folder):
        if entry.is_dir():
            raise DataError(
                f"{entry} is a folder inside class folder {folder}: gmdsl reads the images directly in each "
                "class folder; move them up"
            )
        if _is_image(entry):
            images.append(entry)
    return images


def _visible(folder: Path) -> list[Path]:
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def _is_image(entry: Path) -> bool:
    return entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES


def _decode(file: Path) -> np.ndarray:
    """[H, W] for a greyscale image, [H, W, 3] for any other."""
    pixels: np.ndarray | None = None  # None: more than 8 bits a pixel, reported outside the net for Pillow's errors
    try:
        with Image.open(file) as image:
            mode = image.mode
            if mode in _GREY:
                pixels = np.asarray(image.convert("L"))
            elif mode in ("P", "PA"):  # through RGBA, the way a palette's transparency converts cleanly
                pixels = np.asarray(image.convert("RGBA").convert("RGB"))
            elif mode not in ("I", "F") and not mode.startswith("I;"):
                pixels = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        why = "not an image Pillow knows" if isinstance(exc, UnidentifiedImageError) else " ".join(str(exc).split())
        raise DataError(f"cannot decode image {file} ({why}): replace it, or remove it") from None
    if pixels is None:
        raise DataError(f"{file} has {mode} pixels (16-bit or floating-point): save it with 8 bits per channel")
    return pixels


def _check_sizes(images: list[tuple[Path, np.ndarray]]) -> None:
    first, reference = images[0]
    for file, pixels in images:
        if pixels.shape[:2] != reference.shape[:2]:
            raise DataError(
                f"{file} is {_size(pixels)} pixels but {first} is {_size(reference)}: resize every image to one size"
            )


def _size(pixels: np.ndarray) -> str:
    return f"{pixels.shape[1]}x{pixels.shape[0]}"  # width x height, as image tools say it


def _channels(pixels: np.ndarray, colour: bool) -> np.ndarray:
    """The pixels channels first when the dataset is in colour (a greyscale image's grey in
    each channel), as they are when it is greyscale."""
    if not colour:
        return pixels
    if pixels.ndim == 2:
        return np.repeat(pixels[None], 3, axis=0)
    return pixels.transpose(2, 0, 1)
