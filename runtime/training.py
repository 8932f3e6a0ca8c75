"""The training loop of `gmdsl train`: Adam over batches taken by index from tensors that live
on the device, labelled examples mixed into every batch at a set rate, metrics and an atomic
checkpoint each epoch, and resumption that continues exactly where a run stopped.

Labels are keyed to example indices, never to positions in a batch: a supervised variable's
training tensor holds the label only for the labelled subset (a placeholder elsewhere) with a
mask by index, so no unlabelled example's label can reach the loss.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from .data import label_indices, write_atomically
from .model import CompiledModel


class TrainingDiverged(RuntimeError):
    """The loss stopped being a finite number."""


@dataclass(frozen=True)
class Schedule:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str  # "constant" or "cosine" (over every step of every epoch)
    label_fraction: float  # share of each batch drawn from the labelled subset
    samples: int | None
    alpha: float | None
    seed: int


def learning_rate_at(schedule: Schedule, step: int, steps: int) -> float:
    """The rate of step `step` (from 0) of `steps`: a function of the step alone, so a resumed
    run continues the same curve without saving any scheduler state."""
    if schedule.lr_schedule == "cosine":
        return schedule.learning_rate * 0.5 * (1 + math.cos(math.pi * step / steps))
    return schedule.learning_rate


@dataclass
class TrainingData:
    """Model-ready training and test tensors by variable name, on the training device.
    `labelled` marks (by example index) the training rows whose labels may be used."""

    train: dict[str, torch.Tensor]
    test: dict[str, torch.Tensor]
    labelled: torch.Tensor  # [N] bool
    supervised: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.labelled)


def hide_unlabelled(values: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """The label tensor with every unlabelled row overwritten by the first labelled row's value
    (or zeros): what the loop may read, so a hidden label cannot leak."""
    filler = values[labelled][0] if labelled.any() else torch.zeros_like(values[0])
    return torch.where(labelled.reshape(-1, *([1] * (values.dim() - 1))), values, filler.expand_as(values))


@dataclass
class Checkpoints:
    """`checkpoint/epoch-NNNN.safetensors` (weights) and `.state.pt` (optimiser, random
    states, metrics), with `latest.json` naming the last complete one. Each file is written
    under a temporary name and renamed, so an interruption leaves the previous one intact."""

    folder: Path

    def latest(self) -> int | None:
        pointer = self.folder / "latest.json"
        return json.loads(pointer.read_text())["epoch"] if pointer.exists() else None

    def _paths(self, epoch: int) -> tuple[Path, Path]:
        return self.folder / f"epoch-{epoch:04d}.safetensors", self.folder / f"epoch-{epoch:04d}.state.pt"

    def save(self, epoch: int, model: torch.nn.Module, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        weights, extra = self._paths(epoch)
        save_model(model, str(weights) + ".tmp")
        os.replace(str(weights) + ".tmp", weights)
        torch.save(state, str(extra) + ".tmp")
        os.replace(str(extra) + ".tmp", extra)
        write_atomically(self.folder / "latest.json", json.dumps({"epoch": epoch}) + "\n")
        for old in self.folder.glob("epoch-*"):
            if not old.name.startswith(f"epoch-{epoch:04d}."):
                old.unlink()

    def load(self, model: torch.nn.Module, device: torch.device, epoch: int | None = None) -> dict:
        epoch = self.latest() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"{self.folder} holds no checkpoint")
        weights, extra = self._paths(epoch)
        load_model(model, weights, device=str(device))
        return torch.load(extra, map_location="cpu", weights_only=False)


@dataclass
class Trainer:
    model: CompiledModel
    data: TrainingData
    schedule: Schedule
    run: Path
    device: torch.device
    progress: bool = True
    log: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=self.schedule.learning_rate)
        self.checkpoints = Checkpoints(self.run / "checkpoint")
        self.order = torch.Generator().manual_seed(self.schedule.seed)  # batch order, saved with the run
        self.labelled_index = torch.nonzero(self.data.labelled).flatten()
        per_batch = round(self.schedule.label_fraction * self.schedule.batch_size) if len(self.labelled_index) else 0
        self.labelled_per_batch = min(per_batch, self.schedule.batch_size - 1)

    def resume(self) -> int:
        """Load the last checkpoint; the epoch to continue from (0 when no epoch finished)."""
        if self.checkpoints.latest() is None:
            return 0
        state = self.checkpoints.load(self.model, self.device)
        self.optimiser.load_state_dict(state["optimiser"])
        self.order.set_state(state["order"])
        torch.set_rng_state(state["torch"])
        if torch.cuda.is_available() and state.get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["cuda"])
        self.log = state["metrics"]
        return state["epoch"]

    def batches(self) -> list[torch.Tensor]:
        """One epoch of index batches: every example once (in a fresh order), each batch topped
        up with examples from the labelled subset, which cycle in their own order."""
        fresh = self.schedule.batch_size - self.labelled_per_batch
        everyone = torch.randperm(self.data.size, generator=self.order)
        steps = math.ceil(self.data.size / fresh)
        extra = torch.empty(0, dtype=torch.long)
        if self.labelled_per_batch:
            rounds = math.ceil(steps * self.labelled_per_batch / len(self.labelled_index))
            extra = torch.cat([self.labelled_index[torch.randperm(len(self.labelled_index), generator=self.order)]
                               for _ in range(rounds)])
        return [torch.cat([everyone[i * fresh:(i + 1) * fresh],
                           extra[i * self.labelled_per_batch:(i + 1) * self.labelled_per_batch]])
                for i in range(steps)]

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        index = index.to(self.device)
        batch = {name: values[index] for name, values in self.data.train.items()}
        mask = self.data.labelled[index]
        for name in self.data.supervised:
            batch[name + "_observed"] = mask
        return batch

    @torch.no_grad()
    def labelled_accuracy(self, index: torch.Tensor) -> dict[str, str]:
        """Accuracy of q's class predictions on the batch's labelled rows (for the progress bar)."""
        batch = self.batch(index)
        rows = batch[self.data.supervised[0] + "_observed"] if self.data.supervised else None
        if rows is None or not rows.any():
            return {}
        observed = {k: v[rows] for k, v in self.model.observed_part(batch).items()}
        out = {}
        for name, probabilities in self.model.predict(observed, samples=1).items():
            if self.model.by_name[name].type == "onehot":
                right = probabilities.argmax(-1) == label_indices(batch[name][rows])
                out[f"acc_{name}"] = f"{right.float().mean().item():.2f}"
        return out

    def fit(self, start_epoch: int = 0, evaluate=None, on_epoch=None) -> list[dict]:
        """Train from `start_epoch` to the schedule's last epoch. `evaluate(model)` returns test
        metrics for the epoch's record; `on_epoch(record)` is told of each finished epoch."""
        from tqdm.auto import tqdm  # progress bars only where training runs

        for epoch in range(start_epoch + 1, self.schedule.epochs + 1):
            self.model.train()
            started = time.perf_counter()
            total, count = 0.0, 0
            batches = self.batches()
            bar = tqdm(batches, desc=f"epoch {epoch}/{self.schedule.epochs}",
                       disable=not self.progress or not sys.stderr.isatty(),  # no bar in logs
                       leave=False, dynamic_ncols=True)
            for step, index in enumerate(bar, start=1):
                rate = learning_rate_at(self.schedule, (epoch - 1) * len(batches) + step - 1,
                                        self.schedule.epochs * len(batches))
                for group in self.optimiser.param_groups:
                    group["lr"] = rate
                result = self.model.objective(self.batch(index), samples=self.schedule.samples,
                                              alpha=self.schedule.alpha, check_values=False)
                loss = result.loss
                value = loss.item()
                if not math.isfinite(value):
                    last = self.checkpoints.latest()
                    kept = f"the last good checkpoint is epoch {last} in {self.checkpoints.folder}" if last else \
                        "no epoch finished, so there is no checkpoint"
                    raise TrainingDiverged(f"the loss became {value} at epoch {epoch}, step {step}; {kept}. "
                                           "Try a lower learning rate (--learning-rate).")
                self.optimiser.zero_grad(set_to_none=True)
                loss.backward()
                self.optimiser.step()
                total, count = total + value, count + 1
                if step % 20 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{total / count:.2f}", **self.labelled_accuracy(index))
            record = {"epoch": epoch, "loss": total / count, "seconds": time.perf_counter() - started}
            if evaluate is not None:
                self.model.eval()
                record.update(evaluate(self.model))
            self.log.append(record)
            self.checkpoints.save(epoch, self.model, {
                "epoch": epoch, "optimiser": self.optimiser.state_dict(), "order": self.order.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "metrics": self.log,
            })
            write_metrics(self.run, self.log)
            if on_epoch is not None:
                on_epoch(record)
        return self.log


def write_metrics(run: Path, log: list[dict]) -> None:
    """metrics.jsonl (one record per epoch) and metrics.csv, rewritten whole each epoch."""
    write_atomically(run / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in log))
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(dict.fromkeys(k for r in log for k in r)))
    writer.writeheader()
    writer.writerows(log)
    write_atomically(run / "metrics.csv", table.getvalue())
