"""Checkpoints of a run, written so that an interruption (Ctrl-C, SIGKILL, a full disk) never
leaves half of one where it is read, and read without running anything they contain.

Each file is written under a temporary name and renamed into place, and `latest.json`, which
names the newest complete checkpoint, is written last: a checkpoint it does not name was never
finished, and is never loaded. Nothing is pickled: weights and the training state's tensors are
safetensors, everything else JSON."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model

from gmdsl.files import FileError, read_json, regular_file, write_atomically
from gmdsl.runtime.errors import UserError

from .run_files import Best, Latest, Record, read_record


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be read: damaged, or of another model."""

    code = "checkpoint"


def split_tensors(value: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """`value` (dicts, lists, numbers, strings, None and tensors) as JSON, each tensor moved into
    `tensors` under its path and left as {"tensor": path}. Dicts with integer keys (an optimiser's
    per-parameter state) are kept as {"int_keys": {...}}."""
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"tensor": key}
    if isinstance(value, dict):
        if value and all(isinstance(k, int) for k in value):
            return {"int_keys": {str(k): split_tensors(v, tensors, f"{key}/{k}") for k, v in value.items()}}
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"internal error: state key types {sorted({type(k).__name__ for k in value})} at {key}")
        return {"dict": {k: split_tensors(v, tensors, f"{key}/{k}") for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [split_tensors(v, tensors, f"{key}/{i}") for i, v in enumerate(value)]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"internal error: cannot store a {type(value).__name__} at {key} of a checkpoint")


def join_tensors(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of `split_tensors`."""
    if isinstance(value, dict):
        if "tensor" in value:
            return tensors[value["tensor"]]
        if "int_keys" in value:
            return {int(k): join_tensors(v, tensors) for k, v in value["int_keys"].items()}
        return {k: join_tensors(v, tensors) for k, v in value["dict"].items()}
    if isinstance(value, list):
        return [join_tensors(v, tensors) for v in value]
    return value


@dataclass(frozen=True)
class Position:
    """Where training stands at a checkpoint: `epoch` epochs finished and `step` steps of the
    next one done (0 at an epoch's end)."""

    epoch: int
    step: int = 0

    @property
    def stem(self) -> str:
        """The checkpoint's file name without suffix: epoch-NNNN at the end of epoch NNNN,
        epoch-NNNN-step-SSSSSS after step SSSSSS of epoch NNNN (the one in progress)."""
        if not self.step:
            return f"epoch-{self.epoch:04d}"
        return f"epoch-{self.epoch + 1:04d}-step-{self.step:06d}"


@dataclass
class Checkpoints:
    """The run's checkpoint/ folder:

    epoch-NNNN.safetensors, epoch-NNNN.state.safetensors + .state.json
        the weights and the training state (optimiser, random generators, metrics) at the end
        of the last finished epoch;
    epoch-NNNN-step-SSSSSS.*
        the same after step SSSSSS of epoch NNNN, when the run checkpoints within epochs;
    latest.json
        {"epoch": finished epochs, "step": steps of the next epoch done, "file": the stem}: the
        newest complete checkpoint, the one a resumed run continues from;
    best.safetensors, best.json
        the weights of the epoch chosen on validation, and its epoch and score.

    Only the last epoch's checkpoint and a newer step checkpoint are kept."""

    folder: Path

    def position(self) -> Position | None:
        """The newest complete checkpoint's position, None when the run has saved none. A run
        that recorded an epoch (metrics.jsonl, written after each epoch's checkpoint) but has no
        latest.json is damaged, not new: a resume must not start it over and overwrite it."""
        pointer = self.folder / "latest.json"
        if not pointer.exists():
            metrics = self.folder.parent / "metrics.jsonl"
            left = sorted(p.name for p in self.folder.glob("*")) if self.folder.is_dir() else []
            if metrics.is_file() and metrics.stat().st_size:
                shown = ", ".join(left[:4]) + (", ..." if len(left) > 4 else "")
                raise CheckpointError(
                    f"{pointer} is missing, so nothing says which of the checkpoint files there ({shown or 'none'}) is "
                    "the newest complete one. Nothing was changed: restore latest.json (it reads "
                    '{"epoch": E, "step": 0, "file": "epoch-EEEE"} for the last finished epoch E), or train a new run',
                    location=str(pointer),
                )
            return None
        return Position(**self._record(pointer, Latest).model_dump(include={"epoch", "step"}))

    def latest(self) -> int | None:
        """The last finished epoch, None when none finished."""
        position = self.position()
        return position.epoch if position is not None and position.epoch else None

    def save(self, position: Position, model: torch.nn.Module, state: dict) -> None:
        """Write a checkpoint at `position`, then name it in latest.json, then remove the older
        ones (a step checkpoint keeps the last epoch's, which `gmdsl eval --checkpoint last` reads)."""
        self._make_folder()
        stem = position.stem
        tensors: dict[str, torch.Tensor] = {}
        record = split_tensors(state, tensors)
        write_atomically(self.folder / f"{stem}.safetensors", lambda temporary: save_model(model, temporary))
        write_atomically(self.folder / f"{stem}.state.safetensors", lambda temporary: save_file(tensors, temporary))
        write_atomically(self.folder / f"{stem}.state.json", json.dumps(record) + "\n")
        pointer = {"epoch": position.epoch, "step": position.step, "file": stem}
        write_atomically(self.folder / "latest.json", json.dumps(pointer) + "\n")
        keep = {stem, Position(position.epoch).stem}
        for old in self.folder.glob("epoch-*"):
            if old.name.split(".")[0] not in keep:
                old.unlink()

    def save_best(self, epoch: int, model: torch.nn.Module, scores: dict[str, float], select: str = "auto") -> None:
        """Keep `model` as the best so far: its weights, then best.json naming them with the
        validation number that chose them (and the later ones that broke its ties), and the
        setting that asked for those (`select`)."""
        self._make_folder()
        write_atomically(self.folder / "best.safetensors", lambda temporary: save_model(model, temporary))
        (metric, value), *tie_breakers = scores.items()
        record: dict = {"epoch": epoch, "metric": metric, "value": value, "select": select}
        if tie_breakers:
            record["tie_breakers"] = dict(tie_breakers)
        write_atomically(self.folder / "best.json", json.dumps(record) + "\n")

    def best(self) -> dict | None:
        """best.json: {epoch, metric, value[, tie_breakers]} of the best checkpoint, None when
        there is none."""
        pointer = self.folder / "best.json"
        return self._record(pointer, Best).model_dump() if pointer.exists() else None

    def load_best(self, model: torch.nn.Module, device: torch.device) -> None:
        self._load_weights(model, self.folder / "best.safetensors", device)

    def load_weights(self, model: torch.nn.Module, device: torch.device) -> None:
        """The weights at the end of the last finished epoch."""
        epoch = self.latest()
        if epoch is None:
            raise FileNotFoundError(f"{self.folder} holds no checkpoint")
        self._load_weights(model, self.folder / f"{Position(epoch).stem}.safetensors", device)

    def load(self, model: torch.nn.Module, device: torch.device) -> tuple[Position, dict]:
        """Load the newest checkpoint's weights into `model`; its position and training state."""
        position = self.position()
        if position is None:
            raise FileNotFoundError(f"{self.folder} holds no checkpoint")
        stem = position.stem
        self._load_weights(model, self.folder / f"{stem}.safetensors", device)
        tensors_file = self.folder / f"{stem}.state.safetensors"
        legacy = self.folder / f"{stem}.state.pt"
        if not tensors_file.exists() and legacy.exists():
            return position, self._load_legacy(legacy)
        record = self._read_json(self.folder / f"{stem}.state.json")
        try:
            tensors = load_file(regular_file(tensors_file))
            return position, join_tensors(record, tensors)
        except FileNotFoundError:
            raise self._damaged(tensors_file, "it is missing") from None
        except (SafetensorError, KeyError, TypeError, ValueError) as exc:
            raise self._damaged(tensors_file, f"it cannot be read ({exc})") from None

    def _load_weights(self, model: torch.nn.Module, file: Path, device: torch.device) -> None:
        try:
            missing, unexpected = load_model(model, regular_file(file), strict=False, device=str(device))
        except FileNotFoundError:
            raise self._damaged(file, "it is missing") from None
        except FileError as exc:
            raise self._damaged(file, str(exc).removeprefix(f"{file} ")) from None
        except SafetensorError as exc:
            raise self._damaged(file, f"it is not a complete safetensors file ({exc})") from None
        except RuntimeError as exc:  # a tensor of another shape: another model's checkpoint
            raise CheckpointError(
                f"{file} holds weights of another model: {_first_line(exc)}. Was the run's spec or "
                "model.py changed after it was trained? Start a new run for a changed model.",
                location=str(file),
            ) from None
        if missing or unexpected:
            # safetensors gives the names as lists or sets, depending on its version
            missing, unexpected = sorted(missing), sorted(unexpected)
            names = ", ".join([*(f"missing {n}" for n in missing[:3]), *(f"extra {n}" for n in unexpected[:3])])
            raise CheckpointError(
                f"{file} holds weights of another model ({names}). Was the run's spec or model.py "
                "changed after it was trained? Start a new run for a changed model.",
                location=str(file),
            )

    def _load_legacy(self, file: Path) -> dict:
        """The state of a run from before safetensors state (epoch-NNNN.state.pt), read by torch's
        restricted unpickler, which builds tensors and plain containers and runs no other code."""
        import pickle

        try:
            return torch.load(file, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            why = f"it holds more than tensors and plain values, or is cut short ({_first_line(exc)})"
            raise self._damaged(file, why) from None

    def _make_folder(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointError(
                f"cannot make the checkpoint folder {self.folder} ({exc.strerror or exc}): a run keeps its "
                "checkpoints there; move what stands in its place, or make the run's folder writable",
                location=str(self.folder),
            ) from None

    def _read_json(self, file: Path) -> Any:
        with self._reading(file):
            return read_json(file)

    def _record(self, file: Path, model: type[Record]) -> Record:
        with self._reading(file):
            return read_record(file, model)

    @contextlib.contextmanager
    def _reading(self, file: Path) -> Iterator[None]:
        """A checkpoint file that cannot be read as it should is damaged: say which, and how."""
        try:
            yield
        except FileNotFoundError:
            raise self._damaged(file, "it is missing") from None
        except FileError as exc:
            raise self._damaged(file, str(exc).removeprefix(f"{file} ")) from None
        except OSError as exc:
            raise self._damaged(file, f"it cannot be read ({exc.strerror or exc})") from None

    def _damaged(self, file: Path, why: str) -> CheckpointError:
        return CheckpointError(
            f"checkpoint file {file} is damaged: {why}. A run's checkpoints are written whole or not "
            "at all, so the file was changed afterwards; restore it, or start a new run",
            location=str(file),
        )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
