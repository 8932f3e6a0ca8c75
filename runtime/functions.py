"""The built-in functions a `let` may call (the registry's FUNCTIONS, which checks their shapes
at compile time). Values at run time are flat, [..., size] with any leading dimensions
(samples, enumerated values, batch), so each function unflattens what it needs; leading
dimensions broadcast. Functions that need their values' shapes are given `shapes`: their
arguments' declared shapes, then their output's."""

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


def sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # noqa: A001 - the language's name for it
    return a + b


def difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a - b


Shape = tuple[int, ...]


def _images(value: torch.Tensor, shape: Shape) -> tuple[torch.Tensor, torch.Size]:
    """Flat values [..., C*H*W] as a batch of images [N, C, H, W], and the leading dimensions."""
    leading = value.shape[:-1]
    return value.reshape(-1, *shape), leading


def _window(where: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(s, x, y) of `where` [N, 3]: the side |s|, at least 0.001, and the centre."""
    side, x, y = where.unbind(-1)
    return side.abs().clamp_min(1e-3), x, y


def _affine(scale: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """theta [N, 2, 3] of the map u -> scale * u + (x, y) in grid_sample's coordinates."""
    zero = torch.zeros_like(scale)
    return torch.stack([torch.stack([scale, zero, x], -1), torch.stack([zero, scale, y], -1)], -2)


def glimpse(image: torch.Tensor, where: torch.Tensor, *, shapes: tuple[Shape, ...]) -> torch.Tensor:
    """The window `where` of each image, read bilinearly: image [..., C*H*W] (shapes[0] =
    (C, H, W)), where [..., 3], the output's shape shapes[2] = (C, h, w) -> [..., C*h*w].
    Outside the image reads as 0."""
    leading = torch.broadcast_shapes(image.shape[:-1], where.shape[:-1])  # e.g. one image, S windows
    images, _ = _images(image.expand(*leading, image.shape[-1]), shapes[0])
    windows = where.expand(*leading, 3).reshape(-1, 3)
    side, x, y = _window(windows)
    output = (len(images), *shapes[2])
    grid = torch.nn.functional.affine_grid(_affine(side, x, y), list(output), align_corners=False)
    read = torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return read.reshape(*leading, -1)


def place(patch: torch.Tensor, where: torch.Tensor, canvas: torch.Tensor, *, shapes: tuple[Shape, ...]) -> torch.Tensor:
    """The canvas plus each patch stretched onto the window `where`: patch [..., C*h*w]
    (shapes[0]), where [..., 3], canvas [..., C*H*W] (shapes[2]) -> [..., C*H*W]. The patch is
    read bilinearly at every canvas pixel inside the window, 0 outside it."""
    leading = torch.broadcast_shapes(patch.shape[:-1], where.shape[:-1], canvas.shape[:-1])
    patches, _ = _images(patch.expand(*leading, patch.shape[-1]), shapes[0])
    side, x, y = _window(where.expand(*leading, 3).reshape(-1, 3))
    size = (len(patches), *shapes[2])
    # each canvas point v reads the patch at u = (v - centre) / side
    grid = torch.nn.functional.affine_grid(_affine(1 / side, -x / side, -y / side), list(size), align_corners=False)
    written = torch.nn.functional.grid_sample(patches, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return canvas + written.reshape(*leading, -1)
