"""Links: how a network's raw output is mapped into a parameter's constraint. The registry's
constraints name their link; this is the one table of what each name computes. Generated code
calls a link by its name (`rt.softplus(self.encoder(...))`), and `Dist.from_network` applies
the links of the parameterisation a network emits (never a simplex: see below)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def identity(raw: torch.Tensor) -> torch.Tensor:
    return raw


def at_least(value: torch.Tensor, low: torch.Tensor | float) -> torch.Tensor:
    """`value`, raised to `low` where it falls below, its gradient kept (the raise is a constant):
    a unit pushed to the edge can still come back."""
    return value + (low - value).clamp_min(0).detach()


def softplus(raw: torch.Tensor) -> torch.Tensor:
    """A positive parameter; kept at least the dtype's eps, where softplus of an output below
    about -745 (float64; -104 in float32) would round to exactly 0, a scale of 0. The raise keeps
    the gradient (not a clamp): a density's gradient in a scale that small is large, and it is
    what brings the unit back."""
    return at_least(F.softplus(raw), torch.finfo(raw.dtype).eps)


def sigmoid(raw: torch.Tensor) -> torch.Tensor:
    """A parameter in (0, 1); kept eps inside the ends, which sigmoid reaches exactly for outputs
    beyond about +-37 (float64; +-17 in float32)."""
    eps = torch.finfo(raw.dtype).eps
    value = at_least(torch.sigmoid(raw), eps)
    return value - (value - (1 - eps)).clamp_min(0).detach()


def softmax(raw: torch.Tensor, categories: int) -> torch.Tensor:
    """Probabilities over each group of `categories` values of a flat value (a simplex `let`
    or `param`)."""
    grouped = raw.reshape(*raw.shape[:-1], raw.shape[-1] // categories, categories)
    return torch.softmax(grouped, dim=-1).reshape(raw.shape)


LINKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "softplus": softplus,
    "sigmoid": sigmoid,
}
# The registry's "softmax" is not in LINKS: a network's output for a Categorical's probs is passed
# to it as its logits, and a simplex `let` or `param` calls `softmax` with its group size.
