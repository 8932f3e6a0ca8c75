"""Links: how a network's raw output is mapped into a parameter's constraint. The registry's
constraints name their link; this is the one table of what each name computes. Generated code
calls a link by its name (`rt.softplus(self.encoder(...))`), and `Dist.from_network` applies
the links of the parameterisation a network emits."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def identity(raw: torch.Tensor) -> torch.Tensor:
    return raw


softplus = F.softplus
sigmoid = torch.sigmoid

LINKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "softplus": softplus,
    "sigmoid": sigmoid,
    "softmax": identity,  # a Categorical normalises its probabilities per group itself
}
