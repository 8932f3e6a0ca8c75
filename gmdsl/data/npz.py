"""NumPy's .npz archives: one field per array pair `NAME_train` / `NAME_test` (Keras's
mnist.npz: `x`, `y`), or, for a file without a test split, one per array `NAME`."""

from __future__ import annotations

import tokenize
import zipfile
from pathlib import Path

import torch

from gmdsl.files import regular_file

from .dataset import DataError, Dataset, consistent


def read_npz(path: Path) -> Dataset:
    import numpy as np  # only .npz datasets need it

    try:
        with np.load(regular_file(path)) as archive:
            arrays = {key: torch.from_numpy(archive[key].copy()) for key in archive.files}
    except MemoryError:
        raise DataError(
            f"{path} declares arrays larger than this machine's memory; is it the file you meant?"
        ) from None
    except (
        OSError, ValueError, EOFError, TypeError, NotImplementedError, KeyError, IndexError, SyntaxError,
        RecursionError, tokenize.TokenError, zipfile.BadZipFile,
    ) as exc:  # fmt: skip
        # not an archive, not numbers, compressed in a way numpy does not read, or a damaged
        # array header (numpy parses it as a Python literal, which fails in all these ways)
        raise DataError(
            f"{path} is not a readable .npz of numeric arrays ({exc}); write it with "
            "numpy.savez(path, NAME_train=..., NAME_test=...)"
        ) from None
    train = {k[: -len("_train")]: v for k, v in arrays.items() if k.endswith("_train")}
    test = {k[: -len("_test")]: v for k, v in arrays.items() if k.endswith("_test")}
    if not train and not test and arrays:  # no splits named: every array is a field of the train split
        train = arrays
    if not train:
        raise DataError(
            f"{path} must hold arrays NAME_train and NAME_test for each field, or only arrays NAME "
            f"(no test split) (found: {', '.join(sorted(arrays)) or 'no arrays'})"
        )
    zero_dim = sorted(name for name, values in {**train, **test}.items() if values.dim() == 0)
    if zero_dim:
        raise DataError(f"{path}: array {zero_dim[0]} is a single number; a field holds one row per example")
    return consistent(Dataset(path.stem, train, test, "npz", path.resolve(), files=[path.resolve()]), path)
