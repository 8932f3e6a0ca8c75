"""specs/mnist.gm written by hand in plain PyTorch: the baseline the compiled model is timed
against (bench/step_time.py). Same networks, same samples, same objective."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn


class HandWrittenMnist(nn.Module):
    def __init__(self, samples: int = 8, alpha: float = 0.1, temperature: float = 0.66):
        super().__init__()
        self.samples, self.alpha, self.temperature = samples, alpha, temperature
        self.classifier = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        self.encoder = nn.Sequential(nn.Linear(794, 256), nn.ReLU(), nn.Linear(256, 100))
        self.decoder = nn.Sequential(nn.Linear(60, 256), nn.ReLU(), nn.Linear(256, 784))

    def elbo(self, x: torch.Tensor, y: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        """x [B, 784] in {0, 1}; y [B, 10] one-hot; labelled [B] bool. Returns [B]."""
        batch = x.shape[0]
        # q(y | x): a relaxed sample where the label is missing
        logits = self.classifier(x)
        log_probs = torch.log_softmax(logits, -1)
        relaxed = D.RelaxedOneHotCategorical(
            torch.tensor(self.temperature), logits=log_probs.expand(self.samples, batch, 10)
        ).rsample()
        y = torch.where(labelled[:, None], y, relaxed)
        log_qy = (y * log_probs).sum(-1)
        # q(z | x, y)
        loc, raw_scale = self.encoder(torch.cat([x.expand(self.samples, batch, 784), y], -1)).chunk(2, -1)
        q_z = D.Normal(loc, F.softplus(raw_scale))
        z = q_z.rsample()
        log_qz = q_z.log_prob(z).sum(-1)
        # p(y) p(z) p(x | y, z)
        log_py = -math.log(10)
        log_pz = D.Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_px = -F.binary_cross_entropy_with_logits(
            self.decoder(torch.cat([y, z], -1)), x.expand(self.samples, batch, 784), reduction="none"
        ).sum(-1)
        elbo = (log_px + log_py + log_pz - log_qz - log_qy).mean(0)
        return elbo + torch.where(labelled, (1 + self.alpha) * log_qy[0], torch.zeros_like(elbo))
