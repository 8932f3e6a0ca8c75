"""Binding a dataset to a model: which field feeds each variable, values in the shape and
range the variable wants, which examples have each label, and the two subsets a run fixes
once and saves by index: the validation split and the labelled subset.

Labels are keyed to example indices, never to positions in a batch: a supervised variable's
training tensor holds the label only where it may be used, with a mask by index, so no hidden
or missing label can reach the loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gmdsl.runtime.batch import BatchError, prepare
from gmdsl.runtime.errors import did_you_mean
from gmdsl.runtime.trace import Variable

from .dataset import OBSERVED_SUFFIX, DataError, Dataset
from .labels import SubsetTooLarge, balanced_subset, label_indices, presence, strata

# A variable binds to the field of its own name, or else to its conventional field.
CONVENTIONAL_FIELDS = {"x": "image", "y": "label"}


def parse_fields(text: str) -> dict[str, str]:
    """`--fields VAR=FIELD,VAR=FIELD` as a mapping."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, equals, field = (s.strip() for s in part.partition("="))
        if not equals or not name or not field:
            raise DataError(f"--fields takes VAR=FIELD pairs separated by commas (like x=pixels,y=digit), not `{part}`")
        mapping[name] = field
    return mapping


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
        if field not in dataset.fields():
            hint = did_you_mean(field, dataset.fields())
            raise DataError(
                f"{where} binds `{name}` to field `{field}`, which dataset {dataset.name} does not have"
                + (f" ({hint})" if hint else f"; its fields are {', '.join(dataset.fields())}")
            )
    bound = {}
    unlabelled = []
    fields = dataset.fields()
    for variable in variables:
        if variable.role == "latent":
            continue
        field = mapping.get(variable.name) or (
            variable.name if variable.name in fields else CONVENTIONAL_FIELDS.get(variable.name, "")
        )
        if field not in fields and variable.role == "supervised":
            unlabelled.append(variable.name)
            continue
        if field not in fields:
            raise DataError(
                f"variable `{variable.name}` has no field in dataset {dataset.name} (its fields: "
                f"{', '.join(fields)}); bind one with --fields {variable.name}=FIELD, or in the config: "
                f'fields = {{ {variable.name} = "FIELD" }}'
            )
        bound[variable.name] = field
    return bound, tuple(unlabelled)


def model_tensor(values: torch.Tensor, variable: Variable) -> torch.Tensor:
    """Dataset values as the variable wants them: reshaped to its shape when the sizes agree,
    8-bit pixels scaled to [0, 1], labels kept as class indices for a onehot variable (one per
    step for a repeated one; -1 where there is none)."""
    if variable.type == "onehot" and values.dim() == 1:
        return label_indices(values)
    if variable.type == "onehot" and variable.repeat is not None and values.dim() == 2:
        return values.long()  # a class per step, -1 where a step has none
    per_row = values[0].numel() if len(values) else 0
    if per_row != variable.size:
        raise DataError(
            f"`{variable.name}` ({variable.type}[{', '.join(map(str, variable.shape))}]) needs "
            f"{variable.size} values per example, but its field has shape {list(values.shape[1:])}"
        )
    values = values.reshape(len(values), *variable.shape)
    if values.dtype == torch.uint8 and variable.type != "count":  # 8-bit pixels; a count is a number
        return values.float() / 255.0
    return values.float()


def split_tensors(
    dataset: Dataset,
    split: str,
    fields: dict[str, str],
    variables: dict[str, Variable],
    rows: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """A split (or its `rows`) as a batch the model reads: each bound variable's values, and
    beside each supervised variable whose label is missing somewhere its mask `NAME_observed`."""
    values = dataset.split(split)
    out = {}
    for name, field in fields.items():
        raw = values[field] if rows is None else values[field][rows]
        out[name] = model_tensor(raw, variables[name])
        if variables[name].role == "supervised":
            mask = values.get(field + OBSERVED_SUFFIX)
            mask = mask if mask is None or rows is None else mask[rows]
            given = presence(raw, variables[name], mask, f"field `{field}` of the {split} split of {dataset.name}")
            if not bool(given.all()):
                out[name + OBSERVED_SUFFIX] = given
    return out


@dataclass
class BoundData:
    """A dataset bound to a model's variables, checked, on the CPU: what a run trains on."""

    dataset: Dataset
    fields: dict[str, str]  # variable -> dataset field
    supervised: tuple[str, ...]  # the supervised variables the dataset has a field for
    unlabelled: tuple[str, ...]  # supervised variables the dataset has no field for: never labelled
    train: dict[str, torch.Tensor]  # the whole train split (validation rows included), with label masks
    validation_indices: torch.Tensor  # rows of the train split held out: never trained on
    labelled_indices: torch.Tensor  # rows of the train split whose labels may be used
    field_shapes: dict[str, list[int]]

    def given(self, name: str) -> torch.Tensor:
        """[N] which rows of the train split have a label for supervised variable `name`."""
        mask = self.train.get(name + OBSERVED_SUFFIX)
        return mask if mask is not None else torch.ones(len(self.train[name]), dtype=torch.bool)


# The validation split is a property of the dataset, not of a run: the same for every seed, so
# that recipes are compared on the same examples.
VALIDATION_SEED = 0


def bind_data(
    dataset: Dataset,
    variables: tuple[Variable, ...],
    mapping: dict[str, str],
    validation: int | None,
    labels: int | None,
    label_seed: int,
    validation_indices: torch.Tensor | None = None,
    labelled_indices: torch.Tensor | None = None,
) -> BoundData:
    """Bind the dataset's fields to the variables, check every value, and fix the validation
    split and the labelled subset (drawn unless a resumed run gives its own). The validation
    rows come from the examples whose first supervised variable is labelled, stratified over its
    classes with VALIDATION_SEED, at most half of each class; the labelled subset keeps `labels`
    of the other labelled examples (all when None), class-balanced with `label_seed`. Nothing
    is written: a new run calls this before its directory exists."""
    by_name = {v.name: v for v in variables}
    fields, unlabelled = bind(dataset, variables, mapping, where="`fields` of the training configuration")
    supervised = tuple(v.name for v in variables if v.role == "supervised" and v.name in fields)
    train = split_tensors(dataset, "train", fields, by_name)
    size = len(next(iter(train.values())))
    bound = BoundData(dataset, fields, supervised, unlabelled, train, _no_rows(), _no_rows(), {})
    bound.field_shapes = {name: list(dataset.train[field].shape[1:]) for name, field in fields.items()}
    anyone = torch.zeros(size, dtype=torch.bool)
    for name in supervised:
        anyone |= bound.given(name)
    first = by_name[supervised[0]] if supervised else None
    classes = strata(train[first.name], first) if first else torch.zeros(size, dtype=torch.long)
    if validation_indices is None:
        validation_indices = _validation(bound, classes, validation, size)
    bound.validation_indices = validation_indices
    if labelled_indices is None:
        candidates = rows_except(size, validation_indices)
        candidates = candidates[anyone[candidates]]
        labelled_indices = candidates
        if labels is not None and labels < len(candidates):
            try:
                labelled_indices = candidates[balanced_subset(classes[candidates], labels, label_seed)]
            except SubsetTooLarge:  # cannot be: fewer asked than there are
                raise AssertionError("internal error: a labelled subset larger than its candidates") from None
        elif supervised and labels is not None and labels > len(candidates):
            held = f" ({len(validation_indices)} labelled ones are held out for validation)" if supervised else ""
            raise DataError(
                f"--labels {labels} asks for more labelled training examples than dataset {dataset.name} has: "
                f"{len(candidates)}{held}. --labels can only hide labels the data gives; use --labels "
                f"{len(candidates)} or fewer, or leave it out to use them all"
            )
    bound.labelled_indices = labelled_indices
    kept = torch.zeros(size, dtype=torch.bool)
    kept[labelled_indices] = True
    checked = {**train, **{name + OBSERVED_SUFFIX: kept & bound.given(name) for name in supervised}}
    _check_values(checked, variables, fields, dataset.name, "training")
    if dataset.has_test:
        _check_values(split_tensors(dataset, "test", fields, by_name), variables, fields, dataset.name, "test")
    return bound


def _validation(bound: BoundData, classes: torch.Tensor, asked: int | None, size: int) -> torch.Tensor:
    """The validation rows: from the examples the first supervised variable labels (every
    example when none does), at most half of each class, so that training keeps labels of each."""
    labelled = bound.given(bound.supervised[0]) if bound.supervised else torch.zeros(size, dtype=torch.bool)
    pool = torch.nonzero(labelled).flatten() if labelled.any() else torch.arange(size)
    count = len(pool) // 6 if asked is None else asked
    if not count:
        return _no_rows()
    if count >= size:
        raise DataError(
            f"cannot hold out {count} of the {size} training examples for validation: "
            "set validation (--validation N) below that, or 0 for none"
        )
    cap = None
    if labelled.any():
        per_class = torch.bincount(classes[pool] - classes[pool].min())
        cap = per_class[per_class > 0] // 2  # in the order of torch.unique(classes[pool])
    try:
        return pool[balanced_subset(classes[pool], count, VALIDATION_SEED, cap)]
    except SubsetTooLarge as exc:
        raise DataError(
            f"cannot hold out {count} examples for validation: dataset {bound.dataset.name} has {len(pool)} "
            f"examples with a label for `{bound.supervised[0]}`, and validation takes at most half of each "
            f"class's, {exc.available} here. Set --validation {exc.available} or fewer (0 for none), or label "
            "more examples"
        ) from None


def _no_rows() -> torch.Tensor:
    return torch.zeros(0, dtype=torch.long)


def rows_except(size: int, held_out: torch.Tensor) -> torch.Tensor:
    """The rows 0..size-1 other than `held_out`, in order."""
    keep = torch.ones(size, dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten()


def _check_values(
    batch: dict[str, torch.Tensor], variables: tuple[Variable, ...], fields: dict[str, str], dataset: str, split: str
) -> None:
    """Every value inside its variable's support, checked once (the loop then skips the checks);
    a problem is told in terms of the dataset and its fields, not of a batch."""
    try:
        prepare(batch, {v.name: v for v in variables if v.name in fields}, torch.float32, torch.device("cpu"))
    except BatchError as exc:
        name = exc.variable or ""
        field = fields.get(name, name)
        raise DataError(
            f"the {split} split of dataset {dataset} does not fit the model: field `{field}` "
            f"(bound to `{name}`) {exc.problem}"
        ) from None


def save_indices(path: Path, indices: torch.Tensor) -> None:
    path.write_text(json.dumps({"indices": indices.tolist()}) + "\n", encoding="utf-8")
