"""A dataset as gmdsl reads it, whatever its source: named fields for a train split and an
optional test split, as tensors [N, ...], and where it came from.

Missing labels are marked in the data itself, one convention for every source:
- a class index of -1 (integer fields);
- NaN (floating-point fields; a row is missing when all its values are NaN);
- or a bool field `NAME_observed` beside field `NAME`, False where its value is missing
  (this one wins where it is given; the value under a False may be anything).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from gmdsl.runtime.errors import UserError

OBSERVED_SUFFIX = "_observed"


class DataError(UserError, ValueError):
    """Data that is missing or does not fit the model."""

    code = "data"


@dataclass
class Dataset:
    """`train` and `test` map a field's name to its values [N, ...]; `test` is empty for a
    source without a test split. `classes` names the classes of fields read from names (a
    table's text column, an image folder's subfolders), index by index. `kind` and `path`
    say which reader read what (the path resolved; None for a dataset in gmdsl's cache), and
    `files` every file it read."""

    name: str
    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    kind: str = ""
    path: Path | None = None
    classes: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)  # what was read: the content a fingerprint covers

    def fields(self) -> list[str]:
        """The fields a variable can bind to (label masks `NAME_observed` are not among them)."""
        return sorted(name for name in self.train if not _is_mask_of(name, self.train))

    @property
    def has_test(self) -> bool:
        return bool(self.test)

    def split(self, name: str) -> dict[str, torch.Tensor]:
        if name == "test" and not self.has_test:
            raise DataError(
                f"dataset {self.name} has no test split; give it one (see docs/data.md for how each "
                "source marks its splits)"
            )
        return self.test if name == "test" else self.train


def _is_mask_of(name: str, fields: dict[str, torch.Tensor]) -> bool:
    return name.endswith(OBSERVED_SUFFIX) and name[: -len(OBSERVED_SUFFIX)] in fields


def consistent(dataset: Dataset, where: Path | str) -> Dataset:
    """The dataset, once every field of a split has one row per example, every split has the
    same fields, and every `NAME_observed` field is a bool (or 0/1) flag per row."""
    bound = ({n for n in split if not _is_mask_of(n, split)} for split in (dataset.train, dataset.test))
    train, test = bound  # a label mask may be given in one split only
    if dataset.has_test and train != test:
        only = sorted(train ^ test)
        raise DataError(f"the train and test splits of {where} have different fields ({', '.join(only)})")
    for split, fields in (("train", dataset.train), ("test", dataset.test)):
        rows = {name: len(values) if values.dim() else 0 for name, values in fields.items()}
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(rows.items()))
            raise DataError(
                f"the {split} split of {where} has fields of different lengths ({counts}): "
                "each field needs one row per example"
            )
        if fields and not max(rows.values()):
            fix = "add examples" if split == "train" else "add examples, or leave the test split out"
            raise DataError(f"the {split} split of {where} has no examples: {fix}")
        for name, values in fields.items():
            if _is_mask_of(name, fields):
                fields[name] = _flags(values, name, split, where)
    return dataset


def _flags(values: torch.Tensor, name: str, split: str, where: Path | str) -> torch.Tensor:
    if values.dim() != 1:
        raise DataError(
            f"field `{name}` of the {split} split of {where} has shape {list(values.shape)}: a label mask "
            "holds one flag per example, shape [N]"
        )
    if values.dtype != torch.bool:
        if values.is_floating_point() or values.is_complex() or not bool(((values == 0) | (values == 1)).all()):
            raise DataError(
                f"field `{name}` of the {split} split of {where} is a label mask and holds something other "
                "than true/false (or 0/1): mark each example True where its label is given"
            )
        values = values.bool()
    return values
