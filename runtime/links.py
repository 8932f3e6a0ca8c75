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


softplus = F.softplus
sigmoid = torch.sigmoid

LINKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": identity,
    "softplus": softplus,
    "sigmoid": sigmoid,
}
# The registry's "softmax" (a Categorical's probs from a network) has no function here: the
# compiler passes such an output to the Categorical as its logits.
