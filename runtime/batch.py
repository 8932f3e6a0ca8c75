"""Checking a batch before a compiled model reads it: every observed variable present, each
tensor [B, *shape] of a real dtype, finite, inside its type's support; labels with an
optional bool mask `NAME_observed` [B]. A mistake raises `BatchError` naming the variable
and the shape expected."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from .errors import UserError
from .trace import Variable

MASK_SUFFIX = "_observed"


class BatchError(UserError, ValueError):
    """A batch that does not fit the model. `variable` names the variable whose entry is wrong,
    when one is; `problem` is the message without its `batch['NAME']` head, for callers that
    speak of the data in other terms (training speaks of a dataset's fields)."""

    code = "batch"

    def __init__(self, message: str, *, variable: str | None = None):
        super().__init__(message, location=f"batch['{variable}']" if variable else None)
        self.variable = variable

    @property
    def problem(self) -> str:
        head = f"batch['{self.variable}'] "
        return self.message[len(head) :] if self.variable and self.message.startswith(head) else self.message


def _describe(variable: Variable) -> str:
    return f"{variable.role} {variable.name} : {variable.type}[{', '.join(map(str, variable.shape))}]"


def _expected(variable: Variable) -> str:
    return f"[B, {', '.join(map(str, variable.shape))}]"


def prepare(
    batch: Mapping[str, torch.Tensor],
    variables: dict[str, Variable],
    dtype: torch.dtype,
    device: torch.device,
    check_values: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int]:
    """(flat values by name, label masks by name, batch size), converted to dtype and device.
    `check_values=False` skips the finite and support checks (for data checked once already)."""
    if not isinstance(batch, Mapping):
        raise BatchError(f"a batch is a dict of tensors by variable name, not {type(batch).__name__}")
    masks_given = {
        k[: -len(MASK_SUFFIX)]: v
        for k, v in batch.items()
        if k.endswith(MASK_SUFFIX) and k[: -len(MASK_SUFFIX)] in variables
    }
    for name in masks_given:
        if variables[name].role != "supervised":
            raise BatchError(
                f"batch['{name}{MASK_SUFFIX}']: only supervised variables take a label mask; "
                f"`{name}` is {variables[name].role}"
            )
    for key in batch:
        name = key[: -len(MASK_SUFFIX)] if key in {n + MASK_SUFFIX for n in masks_given} else key
        if name not in variables:
            raise BatchError(
                f"batch['{key}'] is not a variable of this model; its variables are " + ", ".join(variables)
            )
    masks = {}
    for name, mask in masks_given.items():
        if name not in batch:
            raise BatchError(f"batch['{name}{MASK_SUFFIX}'] is given but batch['{name}'] is not")
        masks[name] = _mask(name, mask, device)
    sizes: dict[str, int] = {name + MASK_SUFFIX: len(mask) for name, mask in masks.items()}
    data: dict[str, torch.Tensor] = {}
    for name, variable in variables.items():
        if variable.role == "observed" and name not in batch:
            raise BatchError(
                f"the batch has no `{name}` ({_describe(variable)}): pass a tensor of shape {_expected(variable)}"
            )
        if variable.role == "latent" and name in batch:
            raise BatchError(f"`{name}` is latent ({_describe(variable)}): it is never given; remove it from the batch")
        if name in batch:
            data[name] = flat_value(name, batch[name], variable, dtype, device, masks.get(name), check_values)
            sizes[name] = data[name].shape[0]
    if len(set(sizes.values())) > 1:
        raise BatchError(
            "the batch's tensors disagree on the batch size: " + ", ".join(f"{k}: {v}" for k, v in sizes.items())
        )
    return data, masks, next(iter(sizes.values()), 0)


def flat_value(
    name: str,
    tensor: object,
    variable: Variable,
    dtype: torch.dtype,
    device: torch.device,
    mask: torch.Tensor | None = None,
    check_values: bool = True,
    container: str = "batch",
) -> torch.Tensor:
    """One variable's values [B, *shape] (or class indices [B] for a onehot[K]) as the flat
    [B, size] the model computes with. The one batch convention, for `objective`, `predict`
    and `sample(given=...)` alike: rows where `mask` is False are never checked, so any
    placeholder (NaN, -1) may stand there. `container` names the argument in messages."""
    where = f"{container}['{name}']"
    if not isinstance(tensor, torch.Tensor):
        raise BatchError(
            f"{where} is a {type(tensor).__name__}, not a torch.Tensor "
            f"(torch.as_tensor(...) converts it); expected shape {_expected(variable)}",
            variable=name,
        )
    if tensor.is_complex():
        raise BatchError(
            f"{where} has dtype {tensor.dtype}; expected real numbers of shape {_expected(variable)}", variable=name
        )
    if variable.type == "onehot" and len(variable.shape) == 1 and tensor.dim() == 1 and not tensor.is_floating_point():
        value = _from_class_indices(where, name, tensor, variable, dtype, device, mask, check_values)
    elif _step_classes(variable, tensor):
        value = _from_class_indices(where, name, tensor, variable, dtype, device, mask, check_values)
    else:
        if tuple(tensor.shape[1:]) != variable.shape or tensor.dim() != len(variable.shape) + 1:
            indices = " or class indices [B]" if variable.type == "onehot" and len(variable.shape) == 1 else ""
            expected = f"{_expected(variable)}{indices} for {_describe(variable)}"
            raise BatchError(f"{where} has shape {list(tensor.shape)}, expected {expected}", variable=name)
        value = tensor.to(device=device, dtype=dtype).reshape(tensor.shape[0], variable.size)
        if check_values:  # a label may be missing at a step; a value given to sample() may not
            _check_support(where, name, value, variable, mask, steps_may_miss=container == "batch")
    if check_values and variable.impossible:
        _check_possible(where, name, value, variable, mask)
    return value


def _step_classes(variable: Variable, tensor: torch.Tensor) -> bool:
    """Whether a repeated onehot variable is given as a class per step, [B, K_max]."""
    return (
        variable.type == "onehot"
        and variable.repeat is not None
        and tensor.dim() == 2
        and tensor.shape[1] == variable.shape[0]
        and not tensor.is_floating_point()
    )


def _from_class_indices(
    where: str, name: str, tensor: torch.Tensor, variable: Variable, dtype, device, mask, check_values: bool
) -> torch.Tensor:
    """Integer labels become one-hot rows: [B] for a onehot[K] variable, or a class per step
    [B, K_max] for a repeated one, where -1 (a step without a class) becomes a row of zeros. A
    label on a row whose mask is False is a placeholder (class 0, or -1 per step), never read."""
    categories = variable.shape[-1]
    lowest = -1 if variable.repeat is not None else 0
    indices = tensor.to(device=device, dtype=torch.long)
    if mask is not None and len(mask) == len(indices):
        row_mask = mask.reshape(-1, *([1] * (indices.dim() - 1)))
        indices = torch.where(row_mask, indices, lowest)
    # the placeholders on unlabelled rows are not the user's labels
    given = _labelled_rows(indices, mask) if check_values else indices[:0]
    if given.numel() and (given.min() < lowest or given.max() >= categories):
        low, high = int(given.min()), int(given.max())
        held = f"{low}..{high}"
        if lowest == 0:
            problem = f"holds class indices outside 0..{categories - 1} (they run {held}), "
            problem += f"but `{name}` is onehot[{categories}]"
            if low == 1 and high == categories:
                problem += ": classes are numbered from 0, so subtract 1 from every label"
            elif low == -1:
                problem += ": -1 marks a missing label only in a dataset file; in a batch, pass a mask " + (
                    f"`{name}{MASK_SUFFIX}` (False where the label is missing)"
                )
        else:
            problem = (
                f"holds classes outside -1..{categories - 1} (they run {held}), but `{name}` is onehot[{categories}] "
                f"at each of {variable.shape[0]} steps (-1: no class)"
            )
        raise BatchError(f"{where} {problem}", variable=name)
    # compared with every class, so that -1 (no class) is a row of zeros; unlike F.one_hot, this
    # reads no range back to the host (checked above where asked)
    rows = indices.unsqueeze(-1) == torch.arange(categories, device=indices.device)
    return rows.to(dtype).reshape(len(indices), -1)


def _mask(name: str, mask: object, device: torch.device) -> torch.Tensor:
    where = f"batch['{name}{MASK_SUFFIX}']"
    if not isinstance(mask, torch.Tensor):
        raise BatchError(
            f"{where} is a {type(mask).__name__}; a label mask is a bool tensor [B], True where `{name}` is given"
        )
    if mask.dtype != torch.bool:
        raise BatchError(
            f"{where} has dtype {mask.dtype}; a label mask is a bool tensor [B], True where `{name}` is "
            "given (`mask.bool()` converts 0/1 values)"
        )
    if mask.dim() != 1:
        raise BatchError(
            f"{where} has shape {list(mask.shape)}; a label mask is a bool tensor [B], True where `{name}` is given"
        )
    return mask.to(device)


def _check_support(
    where: str, name: str, value: torch.Tensor, variable: Variable, mask: torch.Tensor | None, steps_may_miss: bool
) -> None:
    """Values must be finite and inside the type's support, on the rows where they count (and,
    for labels of a repeated variable other than a onehot, on the steps that have one: not all NaN)."""
    rows = _labelled_rows(value, mask)
    if steps_may_miss and variable.repeat is not None and variable.type != "onehot":
        steps = rows.reshape(len(rows), variable.shape[0], variable.step_size)
        missing = torch.isnan(steps)
        partly = missing.any(-1) & ~missing.all(-1)
        if partly.any():
            raise BatchError(
                f"{where} has {int(partly.sum())} step(s) with some values NaN but not all: a step without a "
                "label is NaN throughout",
                variable=name,
            )
        rows = steps[~missing.all(-1)]  # the steps that have a label
    if rows.numel() == 0:
        return
    bad = ~torch.isfinite(rows)
    if bad.any():
        raise BatchError(f"{where} has {int(bad.sum())} NaN or infinite values", variable=name)
    low, high = rows.min().item(), rows.max().item()
    problem = {
        "positive": low <= 0 and "values must be > 0",
        "unit": (low <= 0 or high >= 1) and "values must lie strictly between 0 and 1",
        "binary": (low < 0 or high > 1) and "values must be 0/1 or intensities in [0, 1] (divide 8-bit pixels by 255)",
        "onehot": None,
        "count": (low < 0 or not bool((rows == rows.round()).all())) and "values must be whole numbers >= 0",
        "simplex": _simplex_problem(rows, variable.shape[-1]),
    }.get(variable.type)
    if variable.type == "onehot":
        grouped = rows.reshape(rows.shape[0], -1, variable.shape[-1])
        ones = grouped.sum(-1)
        # a repeated variable's step may have no class (a row of zeros)
        counted = (ones == 1) | ((ones == 0) if variable.repeat is not None else False)
        if not (((grouped == 0) | (grouped == 1)).all() and counted.all()):
            problem = "each row must be one-hot (a single 1) or pass integer class indices of shape [B]"
            if variable.repeat is not None:
                problem = f"each step must be one-hot or all zeros (no class), or pass classes [B, {variable.shape[0]}]"
    if problem and variable.type == "unit" and low >= 0 and high <= 1:
        problem += (
            " (0 and 1 themselves are outside a unit's support); pixel intensities in [0, 1] fit a `binary` "
            "variable, which takes them as they are, or squeeze them into (0, 1)"
        )
    if problem:
        raise BatchError(f"{where} ({_describe(variable)}): {problem}; seen min {low:g}, max {high:g}", variable=name)


def _simplex_problem(rows: torch.Tensor, categories: int) -> str | None:
    """What is wrong with probabilities over groups of `categories` (None: nothing)."""
    grouped = rows.reshape(rows.shape[0], -1, categories)
    if (grouped <= 0).any():
        return "values must be > 0 (a simplex's probabilities; a 0 has density 0 under a Dirichlet)"
    worst = (grouped.sum(-1) - 1).abs().max().item()
    if worst > 1e-3 * categories:  # the rounding a float32 file of probabilities leaves
        return f"each group of {categories} values must sum to 1 (one is off by {worst:.3g})"
    return None


def _check_possible(where: str, name: str, value: torch.Tensor, variable: Variable, mask: torch.Tensor | None) -> None:
    """No label may name a class the spec gives probability 0."""
    rows = _labelled_rows(value, mask)
    groups = rows.reshape(len(rows), variable.size // variable.shape[-1], variable.shape[-1])
    named = groups[..., list(variable.impossible)].sum((-2, -1)) > 0
    if named.any():
        classes = ", ".join(map(str, variable.impossible))
        raise BatchError(
            f"{where} names class {classes} on {int(named.sum())} row(s), but the spec gives `{name}` probability 0 "
            f"there (a `probs` list with 0 in it): fix those labels, or give the class some probability",
            variable=name,
        )


def _labelled_rows(value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The rows whose values count: those the mask marks labelled (every row without one)."""
    return value if mask is None or len(mask) != len(value) else value[mask.to(value.device)]
