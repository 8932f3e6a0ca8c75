"""A tiny generated MNIST look-alike (IDX files) for the training tests: ten random 28x28
prototypes, each example one of them with some pixels flipped."""

from __future__ import annotations

import struct
from pathlib import Path

import torch


def write_idx(path: Path, tensor: torch.Tensor) -> None:
    code = {torch.uint8: 0x08}[tensor.dtype]
    header = struct.pack(">BBBB", 0, 0, code, tensor.dim()) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    path.write_bytes(header + tensor.contiguous().numpy().tobytes())


def make_tiny_mnist(folder: Path, train: int = 400, test: int = 100, seed: int = 0) -> Path:
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(10, 28, 28, generator=generator) < 0.25
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("t10k", test)):
        labels = torch.arange(count) % 10
        labels = labels[torch.randperm(count, generator=generator)]
        flips = torch.rand(count, 28, 28, generator=generator) < 0.05
        images = (prototypes[labels] ^ flips).to(torch.uint8) * 255
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels.to(torch.uint8))
    return folder
