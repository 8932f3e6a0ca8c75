"""`gmdsl data inspect FILE [SPEC]`: what a dataset holds (each field's shape, dtype, range and
label coverage, per split) and, given a model's variables, how its fields would bind and what
training would do with its labels."""

from __future__ import annotations

import torch

from gmdsl.runtime.trace import Variable

from .binding import bind, bind_data, model_tensor
from .dataset import OBSERVED_SUFFIX, DataError, Dataset
from .labels import presence, strata


def describe(dataset: Dataset) -> list[str]:
    """A line per field and split."""
    where = "your cache" if dataset.path is None else str(dataset.path)
    lines = [f"dataset {dataset.name} ({dataset.kind}, {where}): {len(dataset.files)} file(s)"]
    for split in ("train", "test"):
        values = dataset.split(split) if split == "train" or dataset.has_test else {}
        if not values:
            lines.append("  test: none (evaluation reports validation numbers only)")
            continue
        rows = len(next(iter(values.values())))
        lines.append(f"  {split}: {rows} examples")
        for name in dataset.fields():
            lines.append("    " + _field(name, values[name], values.get(name + OBSERVED_SUFFIX), dataset))
    return lines


def _field(name: str, values: torch.Tensor, mask: torch.Tensor | None, dataset: Dataset) -> str:
    shape = "[" + ", ".join(["N", *map(str, values.shape[1:])]) + "]"
    text = f"{name:<12} {shape:<14} {str(values.dtype).replace('torch.', ''):<8}"
    if values.dtype == torch.bool:
        return text + f" {int(values.sum())} true"
    flat = values.reshape(len(values), -1)
    missing = _missing(flat, mask)
    known = flat[~missing]
    known = known[~torch.isnan(known)] if known.is_floating_point() else known
    if known.numel():
        text += f" {_number(known.min())}..{_number(known.max())}"
    if name in dataset.classes:
        names = dataset.classes[name]
        text += f", {len(names)} classes: " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    if missing.any() or mask is not None:
        marker = f"`{name}{OBSERVED_SUFFIX}`" if mask is not None else "-1" if not values.is_floating_point() else "NaN"
        text += f"; {int(missing.sum())} of {len(values)} missing (marked {marker})"
    return text


def _missing(flat: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        return ~mask
    if flat.is_floating_point():
        return torch.isnan(flat).all(-1)
    return (flat < 0).all(-1) if flat.shape[1] == 1 else torch.zeros(len(flat), dtype=torch.bool)


def _number(value: torch.Tensor) -> str:
    return f"{value.item():.4g}" if value.is_floating_point() else str(value.item())


def describe_binding(dataset: Dataset, variables: tuple[Variable, ...], mapping: dict[str, str]) -> list[str]:
    """How the model's variables bind to the dataset's fields, whether the values fit, and how
    many labels training would have."""
    fields, unlabelled = bind(dataset, variables, mapping, where="--fields")
    lines = ["binding to the model's variables:"]
    for variable in variables:
        declared = f"{variable.role} {variable.name} : {variable.type}[{', '.join(map(str, variable.shape))}]"
        if variable.role == "latent":
            lines.append(f"  {declared:<36} latent: inferred, never read from data")
            continue
        if variable.name in unlabelled:
            lines.append(f"  {declared:<36} no field: trained as never labelled (bind one with --fields)")
            continue
        field = fields[variable.name]
        values = dataset.train[field]
        try:
            model_tensor(values, variable)
        except DataError as exc:
            lines.append(f"  {declared:<36} <- {field}: DOES NOT FIT: {exc}")
            continue
        text = f"  {declared:<36} <- {field}"
        if variable.role == "supervised":
            given = presence(values, variable, dataset.train.get(field + OBSERVED_SUFFIX), f"field `{field}`")
            text += f": labelled on {int(given.sum())} of {len(given)} training examples"
            classes = strata(model_tensor(values, variable), variable)[given]
            if variable.type == "onehot" and variable.repeat is None and len(classes):
                counts = torch.bincount(classes, minlength=variable.shape[-1]).tolist()
                text += f" (per class: {', '.join(map(str, counts))})"
        lines.append(text)
    try:
        bound = bind_data(dataset, variables, mapping, None, None, 0)
    except DataError as exc:
        return [*lines, f"training with the default settings would stop: {exc}"]
    lines.append(
        f"training with the default settings: {len(bound.validation_indices)} examples held out for validation, "
        f"{len(bound.labelled_indices)} labelled training examples (--validation N and --labels N change these)"
    )
    return lines
