"""Binding a dataset to a model: which field feeds each variable, values in the shape and
range the variable wants, the labelled subset (fixed once per run, saved by index), and the
training tensors with every hidden label overwritten.

Labels are keyed to example indices, never to positions in a batch: a supervised variable's
training tensor holds the label only for the labelled subset (a placeholder elsewhere), with a
mask by index, so no unlabelled example's label can reach the loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gmdsl.runtime.errors import did_you_mean
from gmdsl.runtime.trace import Variable

from .datasets import DataError, Dataset

# A variable binds to the field of its own name, or else to its conventional field.
CONVENTIONAL_FIELDS = {"x": "image", "y": "label"}


def bind(
    dataset: Dataset, variables: tuple[Variable, ...], mapping: dict[str, str], where: str = "the field mapping"
) -> tuple[dict[str, str], tuple[str, ...]]:
    """(the dataset field of each observed and supervised variable, the supervised variables
    the dataset has no field for). A variable binds to the mapping's choice, the field of its
    own name, or its conventional field (x = image, y = label). A mapping that names a variable
    the model lacks, or a field the dataset lacks, is an error, and so is an observed variable
    without a field; a supervised one without a field is simply never labelled."""
    names = {v.name for v in variables}
    latent = {v.name for v in variables if v.role == "latent"}
    for name, field in mapping.items():
        if name in latent:
            raise DataError(f"{where} binds `{name}`, but `{name}` is latent: it is inferred, never read from data")
        if name not in names:
            hint = did_you_mean(name, names)
            raise DataError(
                f"{where} binds `{name}`, which is not a variable of the model"
                + (f" ({hint})" if hint else f"; its variables are {', '.join(sorted(names))}")
            )
        if field not in dataset.train:
            hint = did_you_mean(field, dataset.fields())
            raise DataError(
                f"{where} binds `{name}` to field `{field}`, which dataset {dataset.name} does not have"
                + (f" ({hint})" if hint else f"; its fields are {', '.join(dataset.fields())}")
            )
    bound = {}
    unlabelled = []
    for variable in variables:
        if variable.role == "latent":
            continue
        field = mapping.get(variable.name) or (
            variable.name if variable.name in dataset.train else CONVENTIONAL_FIELDS.get(variable.name, "")
        )
        if field not in dataset.train and variable.role == "supervised":
            unlabelled.append(variable.name)
            continue
        if field not in dataset.train:
            raise DataError(
                f"variable `{variable.name}` has no field in dataset {dataset.name} (its fields: "
                f"{', '.join(dataset.fields())}); bind it in the config: fields = "
                f'{{ {variable.name} = "FIELD" }}'
            )
        bound[variable.name] = field
    return bound, tuple(unlabelled)


def model_tensor(values: torch.Tensor, variable: Variable) -> torch.Tensor:
    """Dataset values as the variable wants them: reshaped to its shape when the sizes agree,
    8-bit pixels scaled to [0, 1], labels kept as class indices for a onehot variable (one per
    step for a repeated one)."""
    if variable.type == "onehot" and values.dim() == 1:
        return values.long()
    if variable.type == "onehot" and variable.repeat is not None and values.dim() == 2:
        return values.long()  # a class per step, -1 where a step has none
    per_row = values[0].numel() if len(values) else 0
    if per_row != variable.size:
        raise DataError(
            f"`{variable.name}` ({variable.type}[{', '.join(map(str, variable.shape))}]) needs "
            f"{variable.size} values per example, but its field has shape {list(values.shape[1:])}"
        )
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
    """Class indices of labels given as indices ([N], or [N, K_max] for a repeated variable) or
    one-hot rows ([N, K], [N, K_max, K]); -1 where a repeated variable's step has no class."""
    if not values.is_floating_point():
        return values.long()
    return torch.where(values.sum(-1) > 0, values.argmax(-1), -1)


def class_error(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Percent of the labels whose class the probabilities `predicted` [..., K] miss; a
    repeated variable's steps without a class are left out."""
    indices = label_indices(truth)
    present = indices >= 0
    wrong = (predicted.argmax(-1) != indices) & present
    return 100.0 * wrong.sum().item() / max(1, int(present.sum().item()))


def save_indices(path: Path, indices: torch.Tensor) -> None:
    path.write_text(json.dumps({"indices": indices.tolist()}) + "\n", encoding="utf-8")


def load_indices(path: Path) -> torch.Tensor:
    return torch.tensor(json.loads(path.read_text(encoding="utf-8"))["indices"], dtype=torch.long)


@dataclass
class TrainingData:
    """Model-ready training and validation tensors by variable name, on the training device.
    `labelled` marks (by row) the training rows whose labels may be used; the validation rows
    are not among the training rows, and their labels serve only to measure."""

    train: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    labelled: torch.Tensor  # [N] bool
    supervised: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.labelled)


def hide_unlabelled(values: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """The label tensor with every unlabelled row overwritten by the first labelled row's value
    (or zeros): what the loop may read, so a hidden label cannot leak."""
    filler = values[labelled][0] if labelled.any() else torch.zeros_like(values[0])
    return torch.where(labelled.reshape(-1, *([1] * (values.dim() - 1))), values, filler.expand_as(values))
