"""Checkpoints of a run, and files written so that an interruption never leaves half of one:
each is written under a temporary name and renamed into place."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model


def write_atomically(path: Path, content: str | bytes | Callable[[str], None]) -> None:
    """Write under a temporary name, then rename: a reader sees the old file or the new one.
    `content` is the text or bytes, or a function that writes the file at the path it is given."""
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(content, bytes):
        temporary.write_bytes(content)
    elif isinstance(content, str):
        temporary.write_text(content, encoding="utf-8")
    else:
        content(str(temporary))
    os.replace(temporary, path)


@dataclass
class Checkpoints:
    """`checkpoint/epoch-NNNN.safetensors` (weights) and `.state.pt` (optimiser, random
    states, metrics), with `latest.json` naming the last complete one; `best.safetensors`
    with `best.json` (its epoch and validation score) for the epoch chosen on validation. Each
    file is written under a temporary name and renamed, so an interruption leaves the
    previous one intact."""

    folder: Path

    def latest(self) -> int | None:
        pointer = self.folder / "latest.json"
        return json.loads(pointer.read_text())["epoch"] if pointer.exists() else None

    def _paths(self, epoch: int) -> tuple[Path, Path]:
        return self.folder / f"epoch-{epoch:04d}.safetensors", self.folder / f"epoch-{epoch:04d}.state.pt"

    def save(self, epoch: int, model: torch.nn.Module, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        weights, extra = self._paths(epoch)
        write_atomically(weights, lambda temporary: save_model(model, temporary))
        write_atomically(extra, lambda temporary: torch.save(state, temporary))
        write_atomically(self.folder / "latest.json", json.dumps({"epoch": epoch}) + "\n")
        for old in self.folder.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch:04d}."):
                old.unlink()

    def save_best(self, epoch: int, model: torch.nn.Module, metric: str, value: float) -> None:
        """Keep `model` as the best so far: its weights, then best.json naming them."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.folder / "best.safetensors", lambda temporary: save_model(model, temporary))
        record = {"epoch": epoch, "metric": metric, "value": value}
        write_atomically(self.folder / "best.json", json.dumps(record) + "\n")

    def best(self) -> dict | None:
        """best.json: {epoch, metric, value} of the best checkpoint, None when there is none."""
        pointer = self.folder / "best.json"
        return json.loads(pointer.read_text()) if pointer.exists() else None

    def load_best(self, model: torch.nn.Module, device: torch.device) -> None:
        load_model(model, self.folder / "best.safetensors", device=str(device))

    def load(self, model: torch.nn.Module, device: torch.device, epoch: int | None = None) -> dict:
        epoch = self.latest() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"{self.folder} holds no checkpoint")
        weights, extra = self._paths(epoch)
        load_model(model, weights, device=str(device))
        return torch.load(extra, map_location="cpu", weights_only=False)
