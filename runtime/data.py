"""Datasets for training: reading IDX and .npz files, binding a model's variables to dataset
fields, and fixing the labelled subset.

A `Dataset` holds named fields for a train and a test split, as tensors [N, ...]: MNIST-style
IDX folders give `image` (uint8) and `label` (int64); an .npz gives one field per array pair
`NAME_train` / `NAME_test` (Keras's mnist.npz: `x`, `y`).
"""

from __future__ import annotations

import gzip
import zipfile
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from .trace import Variable

IDX_FILES = {
    ("train", "image"): "train-images-idx3-ubyte",
    ("train", "label"): "train-labels-idx1-ubyte",
    ("test", "image"): "t10k-images-idx3-ubyte",
    ("test", "label"): "t10k-labels-idx1-ubyte",
}
# A variable binds to the field of its own name, or else to its conventional field.
CONVENTIONAL_FIELDS = {"x": "image", "y": "label"}

_IDX_TYPES = {0x08: torch.uint8, 0x09: torch.int8, 0x0B: torch.int16, 0x0C: torch.int32, 0x0D: torch.float32,
              0x0E: torch.float64}


class DataError(ValueError):
    """Data that is missing or does not fit the model."""


@dataclass
class Dataset:
    name: str
    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]

    def fields(self) -> list[str]:
        return sorted(self.train)


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (optionally gzipped) as a tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"{path} is not an IDX file")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4: 4 + 4 * dims])
    dtype = _IDX_TYPES[data[2]]
    body = bytearray(data[4 + 4 * dims:])
    tensor = torch.frombuffer(body, dtype=dtype) if body else torch.empty(0, dtype=dtype)
    if dtype.itemsize > 1:  # IDX is big-endian
        tensor = tensor.view(torch.uint8).reshape(-1, dtype.itemsize).flip(-1).reshape(-1).view(dtype)
    expected = 1
    for size in shape:
        expected *= size
    if tensor.numel() != expected:
        raise DataError(f"{path} is truncated: {tensor.numel()} values for shape {list(shape)}")
    return tensor.reshape(shape).clone()


def read_idx_folder(folder: Path, name: str) -> Dataset:
    splits: dict[str, dict[str, torch.Tensor]] = {"train": {}, "test": {}}
    for (split, field), stem in IDX_FILES.items():
        candidates = [folder / stem, folder / (stem + ".gz")]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            raise DataError(f"{folder} has no {stem} (or {stem}.gz): an IDX dataset needs "
                            + ", ".join(IDX_FILES.values()))
        splits[split][field] = read_idx(path)
    if splits["train"]["label"].dtype != torch.int64:
        for split in splits.values():
            split["label"] = split["label"].long()
    return Dataset(name, splits["train"], splits["test"])


def read_npz(path: Path) -> Dataset:
    import numpy as np  # only .npz datasets need it

    try:
        with np.load(path) as archive:
            arrays = {key: torch.from_numpy(archive[key].copy()) for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # not an archive, or object arrays
        raise DataError(f"{path} is not a readable .npz of numeric arrays ({exc}); write it with "
                        "numpy.savez(path, NAME_train=..., NAME_test=...)") from None
    train = {k[: -len("_train")]: v for k, v in arrays.items() if k.endswith("_train")}
    test = {k[: -len("_test")]: v for k, v in arrays.items() if k.endswith("_test")}
    if not train or set(train) != set(test):
        raise DataError(f"{path} must hold arrays NAME_train and NAME_test for each field (found: "
                        f"{', '.join(sorted(arrays))})")
    return Dataset(path.stem, train, test)


def bind(dataset: Dataset, variables: tuple[Variable, ...], mapping: dict[str, str]) -> dict[str, str]:
    """The dataset field of each observed and supervised variable: the mapping's choice, the
    field of the same name, or the conventional one (x = image, y = label)."""
    bound = {}
    for variable in variables:
        if variable.role == "latent":
            continue
        field = mapping.get(variable.name)
        if field is None:
            field = variable.name if variable.name in dataset.train else CONVENTIONAL_FIELDS.get(variable.name)
        if field not in dataset.train:
            raise DataError(f"variable `{variable.name}` has no field in dataset {dataset.name} (its fields: "
                            f"{', '.join(dataset.fields())}); bind it in the config: fields = "
                            f'{{ {variable.name} = "FIELD" }}')
        bound[variable.name] = field
    return bound


def model_tensor(values: torch.Tensor, variable: Variable) -> torch.Tensor:
    """Dataset values as the variable wants them: reshaped to its shape when the sizes agree,
    8-bit pixels scaled to [0, 1], labels kept as class indices for a onehot variable."""
    if variable.type == "onehot" and values.dim() == 1:
        return values.long()
    per_row = values[0].numel() if len(values) else 0
    if per_row != variable.size:
        raise DataError(f"`{variable.name}` ({variable.type}[{', '.join(map(str, variable.shape))}]) needs "
                        f"{variable.size} values per example, but its field has shape {list(values.shape[1:])}")
    values = values.reshape(len(values), *variable.shape)
    if values.dtype == torch.uint8:
        return values.float() / 255.0
    return values.float()


def labelled_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count` example indices, as equal a share per class as the classes allow, drawn with
    `seed`; sorted. Chosen once per run and saved with it."""
    generator = torch.Generator().manual_seed(seed)
    if count > len(labels):
        raise DataError(f"cannot label {count} examples: the training set has {len(labels)}")
    if labels.dim() == 2 and not labels.is_floating_point():  # one-hot rows: balance by their class
        labels = labels.argmax(-1)
    if labels.dim() != 1 or labels.is_floating_point():  # not classes: a plain random subset
        return torch.sort(torch.randperm(len(labels), generator=generator)[:count]).values
    classes = torch.unique(labels)
    per_class = [torch.nonzero(labels == c).flatten() for c in classes]
    per_class = [indices[torch.randperm(len(indices), generator=generator)] for indices in per_class]
    share, extra = divmod(count, len(classes))
    order = torch.randperm(len(classes), generator=generator).tolist()  # which classes get one more
    chosen = []
    for rank, c in enumerate(order):
        want = share + (1 if rank < extra else 0)
        if want > len(per_class[c]):
            raise DataError(f"class {classes[c].item()} has only {len(per_class[c])} examples, {want} wanted")
        chosen.append(per_class[c][:want])
    return torch.sort(torch.cat(chosen)).values


def label_indices(values: torch.Tensor) -> torch.Tensor:
    """Class indices of labels given as indices [N] or one-hot rows [N, K]."""
    return values if values.dim() == 1 else values.argmax(-1)


def write_atomically(path: Path, content: str | bytes) -> None:
    """Write under a temporary name, then rename: a reader sees the old file or the new one."""
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    else:
        temporary.write_text(content, encoding="utf-8")
    os.replace(temporary, path)


def save_indices(path: Path, indices: torch.Tensor) -> None:
    path.write_text(json.dumps({"indices": indices.tolist()}) + "\n", encoding="utf-8")


def load_indices(path: Path) -> torch.Tensor:
    return torch.tensor(json.loads(path.read_text(encoding="utf-8"))["indices"], dtype=torch.long)
