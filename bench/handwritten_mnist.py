"""The paper's MNIST model written by hand in plain PyTorch, the way a researcher would write it
without gmdsl: the baseline compiled specs are timed against (bench/step_time.py,
bench/performance.py). Same networks, same samples, same objective, same random draws; it is
written plainly (x repeated for every draw, one concatenation per network input), with no
gmdsl-specific optimisation, but without torch.distributions' argument checks, which a fast
training loop turns off (as gmdsl's does).

One class covers the shipped configurations (`HAND_WRITTEN` names them by spec):
`specs/mnist.gm` (relaxed y, 256 units), `specs/mnist_enum.gm` (y summed exactly over its 10
values) and `specs/mnist_wide.gm` (two layers of 500 units, alpha = 10, one sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn


def mlp(widths: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HandWrittenMnist(nn.Module):
    def __init__(
        self,
        samples: int = 8,
        hidden: Sequence[int] = (256,),
        alpha: float = 0.1,
        temperature: float = 0.66,
        enumeration: bool = False,
    ):
        super().__init__()
        self.samples, self.alpha, self.temperature, self.enumeration = samples, alpha, temperature, enumeration
        self.classifier = mlp([784, *hidden, 10])
        self.encoder = mlp([794, *hidden, 100])
        self.decoder = mlp([60, *hidden, 784])

    def elbo(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """x [B, 784] in {0, 1}; y [B, 10] one-hot; labelled [B] bool. Returns [B]."""
        log_probs = torch.log_softmax(self.classifier(x), -1)
        if self.enumeration:
            return self._enumerated(x, y, labelled, log_probs)
        batch = x.shape[0]
        # q(y | x): a relaxed sample where the label is missing
        relaxed = D.RelaxedOneHotCategorical(
            torch.tensor(self.temperature, device=x.device),
            logits=log_probs.expand(self.samples, batch, 10),
            validate_args=False,
        ).rsample()
        y = torch.where(labelled[:, None], y, relaxed)
        log_qy = (y * log_probs).sum(-1)
        f = self._f(x.expand(self.samples, batch, 784), y) - log_qy
        return f.mean(0) + torch.where(labelled, (1 + self.alpha) * log_qy[0], torch.zeros_like(log_qy[0]))

    def _enumerated(
        self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor, log_probs: torch.Tensor
    ) -> torch.Tensor:
        """y summed exactly: every row takes all 10 values, weighted by q(y | x); a labelled row
        keeps its label in every slot and counts it once (the first slot)."""
        batch = x.shape[0]
        values = torch.eye(10, device=x.device).reshape(10, 1, 1, 10)
        y = torch.where(labelled[:, None], y, values)  # [10, 1, B, 10]
        log_qy = (y * log_probs).sum(-1)  # [10, 1, B]
        f = self._f(x.expand(10, self.samples, batch, 784), y.expand(10, self.samples, batch, 10)) - log_qy
        first_slot = (torch.arange(10, device=x.device) == 0).reshape(10, 1, 1)
        weights = torch.where(labelled, first_slot.to(f.dtype), log_qy.exp()) / self.samples
        elbo = (weights * f).sum((0, 1))
        return elbo + torch.where(labelled, (1 + self.alpha) * log_qy[0, 0], torch.zeros_like(elbo))

    def _f(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log p(x, y, z) - log q(z | x, y) at a draw of z, for x and y of the same leading shape."""
        loc, raw_scale = self.encoder(torch.cat([x, y], -1)).chunk(2, -1)
        q_z = D.Normal(loc, F.softplus(raw_scale), validate_args=False)
        z = q_z.rsample()
        log_px = -F.binary_cross_entropy_with_logits(self.decoder(torch.cat([y, z], -1)), x, reduction="none").sum(-1)
        log_pz = D.Normal(0.0, 1.0, validate_args=False).log_prob(z).sum(-1)
        return log_px - math.log(10) + log_pz - q_z.log_prob(z).sum(-1)


# The spec each configuration mirrors, and how to build its hand-written twin.
HAND_WRITTEN = {
    "mnist": {"hidden": (256,), "alpha": 0.1},
    "mnist_enum": {"hidden": (256,), "alpha": 0.1, "enumeration": True},
    "mnist_wide": {"hidden": (500, 500), "alpha": 10.0},
}
