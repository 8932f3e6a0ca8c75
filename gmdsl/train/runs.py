"""Run directories: what `gmdsl train` writes and `gmdsl eval` / `gmdsl show` read.

RUN/model.py          the compiled model (spec.gm beside it when trained from a spec)
RUN/run.json          what the run was trained from: spec.gm, or model.py (a compiled .py)
RUN/config.json       the resolved training configuration
RUN/data.json         the dataset: where it is, its fingerprint, the field of each variable
RUN/validation.json   the indices of the training examples held out for validation
RUN/labelled.json     the indices of the labelled training examples (both index the dataset's train split)
RUN/metrics.jsonl     one record per epoch (also metrics.csv; curves.png)
RUN/checkpoint/       weights (safetensors) and training state of the last epoch, and
                      best.safetensors: the weights of the best epoch on validation (`select`)
RUN/eval-best.json    `gmdsl eval` of the best checkpoint (eval-last.json: of the last epoch)
RUN/figures/*.png     `gmdsl show`
RUN/train.lock        held while `gmdsl train` runs on the directory
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import click
import torch

from gmdsl.build import ModelClass, compile_text, load_model_class
from gmdsl.data.binding import BoundData, rows_except, save_indices, split_tensors
from gmdsl.data.dataset import DataError, Dataset
from gmdsl.data.fingerprint import fingerprint
from gmdsl.data.sources import open_dataset
from gmdsl.files import FileError, regular_file, write_atomically
from gmdsl.runtime.errors import UserError
from gmdsl.runtime.model import CompiledModel

from .checkpoints import Checkpoints
from .run_files import DataRecord, Indices, Origin, Record, read_record
from .settings import TrainSettings, load_saved


class RunError(UserError, ValueError):
    """A run directory that cannot be used as asked."""

    code = "run"


@dataclass
class Run:
    """A trained run: its model with the weights of one checkpoint loaded, in eval mode, its
    settings, and its data (read on first use, and checked to be the data it was trained on)."""

    path: Path
    model: CompiledModel
    config: TrainSettings
    data: dict  # data.json
    device: torch.device
    checkpoint: str  # which weights are loaded: best (chosen on validation) or last
    epoch: int  # the epoch they are from
    dataset_override: str | None = None  # where the run's data is now, when it moved

    @cached_property
    def dataset(self) -> Dataset:
        """The run's dataset, read once however many splits are asked for."""
        return run_dataset(self.path, self.config, self.data, self.dataset_override)

    def split(self, name: str) -> dict[str, torch.Tensor]:
        """A split as a batch for the model, on its device: `test`, `validation` (the rows the
        run held out; empty when it held none) or `train` (the rows it trained on), each label
        with its mask `NAME_observed` where some are missing."""
        variables = self.model.by_name
        if name == "test":
            values = split_tensors(self.dataset, "test", self.data["fields"], variables)
        else:
            size = len(self.dataset.train[_any(self)])
            held_out = saved_indices(self.path, "validation", size)
            rows = held_out if name == "validation" else rows_except(size, held_out)
            if not len(rows):
                return {}
            values = split_tensors(self.dataset, "train", self.data["fields"], variables, rows)
        return {k: v.to(self.device) for k, v in values.items()}


def _any(run: Run) -> str:
    return next(iter(run.data["fields"].values()))


def _check_binding(path: Path, fields: dict[str, str], model: CompiledModel) -> None:
    """data.json binds the model's own variables, and every observed one."""
    observed = {v.name for v in model.variables if v.role == "observed"}
    readable = observed | {v.name for v in model.variables if v.role == "supervised"}
    strange = sorted(set(fields) - readable)
    missing = sorted(observed - set(fields))
    if strange or missing:
        what = (
            f"binds `{strange[0]}`, which the model does not read" if strange else f"binds no field to `{missing[0]}`"
        )
        raise RunError(
            f"{path / 'data.json'} is damaged: it {what}; restore it, or train a new run", location=str(path)
        )


def dataset_location(dataset: Dataset) -> str:
    """How a run names its dataset: a cached one by name, a user's file or folder by its full path."""
    return dataset.name if dataset.path is None else str(dataset.path)


def run_dataset(path: Path, config: TrainSettings, data: dict, override: str | None = None) -> Dataset:
    """The run's dataset, from where it was trained (or `override`), refused when its content
    is not what the run recorded."""
    source = data.get("source") or {}
    location = override or source.get("location") or config.dataset
    try:
        dataset = open_dataset(location)
    except DataError as exc:
        raise RunError(
            f"{path} was trained on {location}, which cannot be read now ({exc}); if the data moved, "
            "point at it with --dataset PATH",
            location=str(path),
        ) from None
    recorded = source.get("fingerprint")
    if recorded is None:  # a run from before fingerprints: its data cannot be checked
        return dataset
    now = fingerprint(dataset)
    if now != recorded:
        moved = f" (asked for {override}; the run was trained on {source.get('location')})" if override else ""
        raise RunError(
            f"the data at {location} is not what {path} was trained on{moved}: its content changed "
            f"(fingerprint {recorded[:19]}... then, {now[:19]}... now). Point at the original data "
            "with --dataset PATH, or train a new run on this data",
            location=str(path),
        )
    return dataset


def choose_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device `cuda` was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


_BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86's AVX-512 BF16 and AMX; ARM's BF16 (Features)


def bf16_units(device: torch.device) -> bool:
    """Whether `device` has bf16 matrix units: a GPU of compute capability 8.0 or later, or a CPU
    whose flags list bf16 instructions. Not oneDNN's own test, which is true of every AVX-512
    CPU, where it emulates bf16 (slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device) >= (8, 0)
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:  # not Linux: no way to tell here, so fp32
        return False
    return bool(_BF16_CPU_FLAGS.intersection(flags))


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run computes in on `device`: `auto` becomes bf16 or fp32."""
    if precision != "auto":
        return precision
    return "bf16" if bf16_units(device) else "fp32"


def new_run_path(name: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{name}-{stamp}-{suffix}"
    return path


def spec_module(spec_text: str) -> str:
    """A run's model.py: its spec.gm compiled, the comments pointing into spec.gm beside it."""
    return compile_text(spec_text, "spec.gm").source


@contextlib.contextmanager
def new_run(path: Path, source: str, spec_text: str | None, config: TrainSettings) -> Iterator[None]:
    """A new run directory, held for training: made (or found empty), locked, then given its
    model.py (`source`, or what `spec_text` compiles to), spec.gm, run.json and config.json.
    A run that saves no checkpoint is undone on the way out, and only by this process, which
    made it and holds its lock: a process that loses the lock to another removes nothing."""
    try:
        path.mkdir(parents=True)
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        raise RunError(f"cannot create the run directory {path}: {exc.strerror or exc}; choose another --run") from None
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a folder: choose another --run", location=str(path))
    with training_lock(path):
        if any(entry.name != "train.lock" for entry in path.iterdir()):
            is_run = (path / "config.json").exists() and (path / "model.py").exists()
            raise RunError(
                f"{path} already holds a run: continue it with `--resume {path}`, or choose another --run"
                if is_run
                else f"{path} is a folder of other files, not a run: gmdsl writes a new run only into a new "
                "or empty folder; choose another --run",
                location=str(path),
            )
        try:
            (path / "model.py").write_text(source if spec_text is None else spec_module(spec_text), encoding="utf-8")
            if spec_text is not None:
                (path / "spec.gm").write_text(spec_text, encoding="utf-8")
            origin = {"trained_from": "spec.gm" if spec_text is not None else "model.py"}
            (path / "run.json").write_text(json.dumps(origin, indent=2) + "\n", encoding="utf-8")
            (path / "config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
            yield
        except BaseException:
            if not (path / "checkpoint" / "latest.json").exists():
                _undo(path, created)
            raise


def _undo(path: Path, created: bool) -> None:
    """Remove a run that saved no epoch: the directory goes if this run made it, else it is left
    empty as it was found."""
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    for entry in path.iterdir():
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def model_class_of(path: Path) -> ModelClass:
    """The model class of the run (executed once; tracebacks show model.py's lines). A run
    trained from a spec (RUN/run.json says which) is compiled again from its spec.gm, and
    model.py is rewritten where it differs: a model.py edited, or received from someone else,
    is never run in place of the spec's, and a run whose spec.gm is gone is refused rather than
    running its model.py. Only a run trained from a compiled .py runs its model.py."""
    module = _require_run(path) / "model.py"
    spec = path / "spec.gm"
    if trained_from(path) == "model.py":
        return load_model_class(_text_of(module), path.name, module)
    if not spec.is_file():
        raise RunError(
            f"{path} was trained from a spec, and its spec.gm is missing: gmdsl compiles such a run again "
            f"from its spec and never runs its model.py instead. Put the spec it was trained from back as "
            f"{spec}, or train a new run",
            location=str(spec),
        )
    compiled = spec_module(_text_of(spec))
    try:
        current: str | None = regular_file(module).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, FileError):  # whatever stands there, the spec's module replaces it
        current = None
    if compiled != current:
        click.echo(
            f"note: {module} is not what {spec} compiles to (edited, or written by another gmdsl "
            "version); it is compiled again from the spec",
            err=True,
        )
        write_atomically(module, compiled)
    return load_model_class(compiled, path.name, module)


def _text_of(file: Path) -> str:
    """A run's text file (spec.gm, model.py), or a RunError that names what is wrong with it."""
    try:
        return regular_file(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, FileError) as exc:
        why = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise RunError(f"cannot read {file} ({why}); restore it, or train a new run", location=str(file)) from None


def trained_from(path: Path) -> str:
    """What the run was trained from, as RUN/run.json records it: spec.gm or model.py (a
    compiled .py the user gave). A run from before run.json was trained from a spec if it has
    one; without either, nothing says its model.py may run."""
    record = path / "run.json"
    if record.exists() or record.is_symlink():
        return read_record(record, Origin).trained_from
    if (path / "spec.gm").exists() or (path / "spec.gm").is_symlink():
        return "spec.gm"
    raise RunError(
        f"{path} has no spec.gm, and no run.json saying it was trained from a compiled model.py, so gmdsl "
        "will not run its model.py: put the spec it was trained from back as spec.gm, or train a new run",
        location=str(path),
    )


def build_model(model_class: ModelClass, device: torch.device) -> CompiledModel:
    """A fresh model on `device`; one too large for its memory is the user's to resize."""
    try:
        return model_class().to(device)
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, torch.OutOfMemoryError) and "allocate" not in str(exc):
            raise
        raise RunError(
            f"model {model_class.name} does not fit in the memory of {device} ({str(exc).strip().splitlines()[0]}): "
            "make its networks or variables smaller"
        ) from None


@contextlib.contextmanager
def training_lock(path: Path) -> Iterator[None]:
    """Hold RUN/train.lock while a run trains: a second `gmdsl train` on the same run is refused
    rather than interleaved with the first. The operating system drops the lock when its
    process ends, however it ends (a SIGKILL included), so a stale lock never blocks a resume."""
    import fcntl

    file = path / "train.lock"
    try:
        handle = open(file, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole of training
    except OSError as exc:
        raise RunError(
            f"cannot write {file} ({exc.strerror or exc}): a run's folder must be writable to train in it",
            location=str(path),
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise RunError(
            f"{path} is being trained by {holder}: let it finish, or stop it, before training this run again",
            location=str(path),
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock


def _require_run(path: Path) -> Path:
    if not (path / "model.py").exists() or not (path / "config.json").exists():
        raise RunError(f"{path} is not a gmdsl run (it has no model.py and config.json)", location=str(path))
    return path


def config_of(path: Path) -> TrainSettings:
    return load_saved(_require_run(path) / "config.json")


def save_data(path: Path, data: BoundData) -> None:
    """RUN/validation.json, RUN/labelled.json and RUN/data.json: what a resumed run, eval and
    show read back. data.json records where the dataset is (resolved) and its content's
    fingerprint, so that the run finds it from any folder and refuses data that changed."""
    save_indices(path / "validation.json", data.validation_indices)
    save_indices(path / "labelled.json", data.labelled_indices)
    size = len(data.train[next(iter(data.fields))])
    summary = {
        "dataset": data.dataset.name,
        "source": {
            "kind": data.dataset.kind,
            "location": dataset_location(data.dataset),
            "fingerprint": fingerprint(data.dataset),
        },
        "fields": data.fields,
        "field_shapes": data.field_shapes,
        "classes": {
            name: data.dataset.classes[field] for name, field in data.fields.items() if field in data.dataset.classes
        },
        "never_labelled": list(data.unlabelled),
        "train_examples": size - len(data.validation_indices),
        "validation_examples": len(data.validation_indices),
        "labelled_examples": len(data.labelled_indices),
    }
    (path / "data.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def saved_indices(path: Path, name: str, rows: int) -> torch.Tensor:
    """RUN/NAME.json's indices (validation or labelled) of the `rows` rows of the train split."""
    file = path / f"{name}.json"
    if not file.exists():
        raise RunError(
            f"{path} has no {name}.json (runs from before gmdsl held out a validation split lack it): start a new run",
            location=str(path),
        )
    indices = read_record(file, Indices).indices
    if indices and max(indices) >= rows:
        raise RunError(
            f"{file} is damaged: it names row {max(indices)}, and the run's data has {rows} training examples; "
            "restore it, or train a new run",
            location=str(file),
        )
    return torch.tensor(indices, dtype=torch.long)


def run_record(path: Path, name: str, model: type[Record]) -> Record:
    """RUN/NAME, read as `model`; a missing one is a run that is not whole."""
    try:
        return read_record(path / name, model)
    except FileNotFoundError:
        raise RunError(
            f"{path} has no {name}: it is not a whole gmdsl run; train a new run", location=str(path)
        ) from None


def open_run(
    path: Path | str,
    device: str = "auto",
    checkpoint: str = "best",
    dataset: str | None = None,
    precision: str | None = None,
) -> Run:
    """A trained run: its model with the weights of the checkpoint asked for (best: the epoch
    chosen on validation, where the run chose one; last: the last epoch), in eval mode on the
    device, computing in `precision` (None: the one the run trained in). `dataset` says where
    the run's data is now, if it moved (checked by content)."""
    path = _require_run(Path(path))
    config = config_of(path)  # first: a hand-edited config is the likelier mistake
    chosen_device = choose_device(device)
    model = build_model(model_class_of(path), chosen_device)
    model.set_precision(resolve_precision(precision or config.precision, chosen_device))
    checkpoints = Checkpoints(path / "checkpoint")
    last = checkpoints.latest()
    if last is None:
        raise RunError(f"{path} has no checkpoint yet: train it first (`gmdsl train ... --run {path}`)")
    best = checkpoints.best()
    if checkpoint == "best" and best is not None:
        checkpoints.load_best(model, chosen_device)
        chosen, epoch = "best", best["epoch"]
    else:  # a run without validation has no best: its last epoch is the one it chose
        checkpoints.load_weights(model, chosen_device)
        chosen, epoch = "last", last
    model.eval()
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise RunError(
            f"the {chosen} checkpoint of {path} (epoch {epoch}) holds weights that are not finite numbers: "
            "its training diverged. Use the other checkpoint (--checkpoint best or last), or train again "
            "with a lower learning rate",
            location=str(path),
        )
    data = run_record(path, "data.json", DataRecord).model_dump()
    _check_binding(path, data["fields"], model)
    return Run(path, model, config, data, chosen_device, chosen, epoch, dataset)
