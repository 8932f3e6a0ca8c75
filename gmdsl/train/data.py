"""The bound data as training reads it: training and validation tensors on the device, every
hidden or missing label overwritten, and a mask per supervised variable of the rows whose
label may be used."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gmdsl.data.binding import BoundData, bind_data, rows_except
from gmdsl.data.dataset import OBSERVED_SUFFIX, Dataset
from gmdsl.runtime.trace import Variable

from .settings import TrainSettings


@dataclass
class TrainingData:
    """Model-ready training and validation tensors by variable name, on the training device.
    `labelled` marks (by row) the training rows whose labels may be used, `observed` which of
    them label each supervised variable; the validation rows are not among the training rows,
    and their labels (with masks `NAME_observed` where some are missing) serve only to measure."""

    train: dict[str, torch.Tensor]
    validation: dict[str, torch.Tensor]
    labelled: torch.Tensor  # [N] bool: some label of the row may be used
    observed: dict[str, torch.Tensor]  # supervised variable -> [N] bool
    supervised: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.labelled)


def hide_unlabelled(values: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """The label tensor with every unlabelled row overwritten by the first labelled row's value
    (or zeros): what the loop may read, so a hidden label cannot leak."""
    filler = values[labelled][0] if labelled.any() else torch.zeros_like(values[0])
    return torch.where(labelled.reshape(-1, *([1] * (values.dim() - 1))), values, filler.expand_as(values))


def training_data(data: BoundData, device: torch.device) -> TrainingData:
    """The bound data on the training device: the training rows (validation ones left out)
    with each hidden label overwritten, and the validation rows with their labels."""
    size = len(data.train[next(iter(data.fields))])
    rows = rows_except(size, data.validation_indices)
    kept = torch.zeros(size, dtype=torch.bool)
    kept[data.labelled_indices] = True
    observed = {name: (kept & data.given(name))[rows] for name in data.supervised}
    labelled = kept[rows]
    train = {name: data.train[name][rows] for name in data.fields}
    for name in data.supervised:
        train[name] = hide_unlabelled(train[name], observed[name])
    validation = {k: v[data.validation_indices] for k, v in data.train.items()}
    for name in data.supervised:  # a validation row without this label is not scored on it
        if name + OBSERVED_SUFFIX in validation and bool(validation[name + OBSERVED_SUFFIX].all()):
            del validation[name + OBSERVED_SUFFIX]
    return TrainingData(
        {k: v.to(device) for k, v in train.items()},
        {k: v.to(device) for k, v in validation.items()},
        labelled.to(device),
        {k: v.to(device) for k, v in observed.items()},
        data.supervised,
    )


def bind(
    dataset: Dataset,
    variables: tuple[Variable, ...],
    settings: TrainSettings,
    validation_indices: torch.Tensor | None = None,
    labelled_indices: torch.Tensor | None = None,
) -> BoundData:
    """The dataset bound to the variables as the settings say (fields, validation, labels);
    a resumed run passes the subsets it saved."""
    return bind_data(
        dataset,
        variables,
        settings.fields,
        settings.validation,
        settings.labels,
        settings.label_seed,
        validation_indices,
        labelled_indices,
    )
