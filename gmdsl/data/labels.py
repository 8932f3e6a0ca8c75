"""Labels in a dataset: which examples have one (the missing-label conventions of
gmdsl/data/dataset.py), their classes, and subsets drawn per class: the validation split and
the labelled subset a run trains with."""

from __future__ import annotations

import torch

from gmdsl.runtime.trace import Variable

from .dataset import DataError


def presence(values: torch.Tensor, variable: Variable, mask: torch.Tensor | None, where: str) -> torch.Tensor:
    """[N] bool: which examples have a label for `variable` in these values. A mask field
    decides where there is one; else -1 marks a missing class index and NaN a missing value
    (a whole row of NaN: a row partly NaN is a mistake). A repeated variable's -1 or NaN mark
    a step without an object, not a missing label, so its rows are labelled unless a mask says not."""
    rows = len(values)
    if mask is not None:
        return mask
    if variable.repeat is not None:
        return torch.ones(rows, dtype=torch.bool)
    if variable.type == "onehot" and values.dim() == 1:
        if values.is_floating_point():
            return ~torch.isnan(values)
        return values >= 0
    if not values.is_floating_point():
        return torch.ones(rows, dtype=torch.bool)
    missing = torch.isnan(values.reshape(rows, -1))
    partly = missing.any(-1) & ~missing.all(-1)
    if partly.any():
        first = int(torch.nonzero(partly)[0])
        raise DataError(
            f"{where} has NaN in some but not all values of {int(partly.sum())} example(s) (the first is row "
            f"{first}): a missing label is NaN throughout its row; a NaN inside a given value is a mistake"
        )
    return ~missing.all(-1)


def label_indices(values: torch.Tensor) -> torch.Tensor:
    """Class indices of labels given as indices ([N], or [N, K_max] for a repeated variable;
    integers, or floats with NaN for a missing one) or one-hot rows ([N, K], [N, K_max, K]);
    -1 where there is no class."""
    if not values.is_floating_point():
        return values.long()
    if values.dim() == 1:  # class indices read as floats (a table column with empty cells)
        return torch.where(torch.isnan(values), -1, values.nan_to_num(-1)).long()
    return torch.where(values.nan_to_num(0).sum(-1) > 0, values.nan_to_num(0).argmax(-1), -1)


def strata(values: torch.Tensor, variable: Variable | None) -> torch.Tensor:
    """[N] the class of each example to draw subsets by (-1 where it has none), or zeros where
    the labels are not classes of one variable (real values, repeated classes)."""
    if variable is not None and variable.type == "onehot" and variable.repeat is None:
        return label_indices(values)
    return torch.zeros(len(values), dtype=torch.long)


def class_error(predicted: torch.Tensor, truth: torch.Tensor) -> float:
    """Percent of the labels whose class the probabilities `predicted` [..., K] miss; labels
    without a class (-1, a repeated variable's empty step) are left out."""
    indices = label_indices(truth)
    present = indices >= 0
    wrong = (predicted.argmax(-1) != indices) & present
    return 100.0 * wrong.sum().item() / max(1, int(present.sum().item()))


def balanced_subset(classes: torch.Tensor, count: int, seed: int, cap: torch.Tensor | None = None) -> torch.Tensor:
    """`count` positions of `classes` [N], as equal a share per class as the classes allow (a
    class with fewer examples, or fewer than `cap` [classes] allows, gives what it has, and the
    others share the rest), drawn with `seed`; sorted. A share that no class can fill is the
    caller's to explain: `SubsetTooLarge` says how many there were."""
    generator = torch.Generator().manual_seed(seed)
    kinds = torch.unique(classes)
    per_class = [torch.nonzero(classes == c).flatten() for c in kinds]
    per_class = [indices[torch.randperm(len(indices), generator=generator)] for indices in per_class]
    order = torch.randperm(len(kinds), generator=generator).tolist()  # which classes get one more
    room = [len(indices) for indices in per_class]
    if cap is not None:
        room = [min(r, int(c)) for r, c in zip(room, cap.tolist(), strict=True)]
    if count > sum(room):
        raise SubsetTooLarge(sum(room))
    wants = _fill(count, [room[c] for c in order])
    chosen = [per_class[c][:want] for c, want in zip(order, wants, strict=True)]
    return torch.sort(torch.cat(chosen)).values if chosen else torch.zeros(0, dtype=torch.long)


def _fill(count: int, room: list[int]) -> list[int]:
    """Shares of `count` over classes with `room` each: equal (the first in the list taking one
    more), a class that is full giving its surplus to the others."""
    wants = [0] * len(room)
    open_ = list(range(len(room)))
    left = count
    while left and open_:
        share, extra = divmod(left, len(open_))
        still = []
        for rank, c in enumerate(open_):
            give = min(room[c] - wants[c], share + (1 if rank < extra else 0))
            wants[c] += give
            left -= give
            if wants[c] < room[c]:
                still.append(c)
        open_ = still
    return wants


class SubsetTooLarge(Exception):
    """More examples were asked for than the classes hold; `available` is how many they do."""

    def __init__(self, available: int):
        super().__init__(available)
        self.available = available
