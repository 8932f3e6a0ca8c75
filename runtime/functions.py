"""The built-in functions a `let` may call (the registry's FUNCTIONS, which checks their shapes
at compile time). Values at run time are flat, [..., size] with any leading dimensions
(samples, enumerated values, batch), so each function unflattens what it needs; leading
dimensions broadcast."""

from __future__ import annotations

import torch


def lambert(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """max(0, n . light) per pixel: normals [..., 3 * P] (channels first, as real[3, H, W]
    flattens), light [..., 3] -> [..., P]. Each normal is scaled to unit length first."""
    vectors = normals.unflatten(-1, (3, -1))
    # a smoothed length, so a normal near zero gets a bounded gradient (at most about 1e3)
    unit = vectors / torch.sqrt(vectors.square().sum(-2, keepdim=True) + 1e-6)
    return (unit * light.unsqueeze(-1)).sum(-2).clamp_min(0)


def product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a * b
