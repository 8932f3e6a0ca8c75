"""Run directories: what `gmdsl train` writes and `gmdsl eval` / `gmdsl show` read.

RUN/model.py          the compiled model (spec.gm beside it when trained from a spec)
RUN/config.json       the resolved training configuration
RUN/data.json         the dataset, the field of each variable, and image shapes
RUN/validation.json   the indices of the training examples held out for validation
RUN/labelled.json     the indices of the labelled training examples (both index the dataset's train split)
RUN/metrics.jsonl     one record per epoch (also metrics.csv; curves.png)
RUN/checkpoint/       weights (safetensors) and training state of the last epoch, and
                      best.safetensors: the weights of the epoch with the lowest validation error
                      (of the first supervised variable; the next ones break its ties)
RUN/eval.json         `gmdsl eval`;  RUN/figures/*.png  `gmdsl show`
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
from gmdsl.runtime.batch import BatchError, prepare
from gmdsl.runtime.errors import UserError
from gmdsl.runtime.model import CompiledModel
from gmdsl.runtime.trace import Variable

from .checkpoints import Checkpoints, write_atomically
from .data import TrainingData, bind, hide_unlabelled, labelled_subset, load_indices, model_tensor, save_indices
from .datasets import DataError, Dataset, open_dataset
from .settings import TrainSettings, load_saved


class RunError(UserError, ValueError):
    """A run directory that cannot be used as asked."""

    code = "run"


@dataclass
class Run:
    path: Path
    model: CompiledModel
    config: TrainSettings
    data: dict  # data.json
    device: torch.device
    checkpoint: str  # which weights are loaded: best (chosen on validation) or last
    epoch: int  # the epoch they are from

    @cached_property
    def dataset(self) -> Dataset:
        """The run's dataset, read once however many splits are asked for."""
        return open_dataset(self.config.dataset)


def choose_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device `cuda` was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


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


def create(path: Path, source: str, spec_text: str | None, config: TrainSettings) -> bool:
    """Write a new run's model.py (`source`, or what `spec_text` compiles to), spec.gm and
    config.json; whether the directory was created (rather than found empty)."""
    if path.exists() and any(path.iterdir()):
        raise RunError(
            f"{path} already holds a run: continue it with `--resume {path}`, or choose another --run",
            location=str(path),
        )
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(source if spec_text is None else spec_module(spec_text), encoding="utf-8")
    if spec_text is not None:
        (path / "spec.gm").write_text(spec_text, encoding="utf-8")
    (path / "config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return created


def remove(path: Path, created: bool) -> None:
    """Undo `create` for a run that saved no epoch: the directory goes if this run made it,
    else it is left empty as it was found."""
    shutil.rmtree(path, ignore_errors=True)
    if not created:
        path.mkdir(parents=True, exist_ok=True)


def model_class_of(path: Path) -> ModelClass:
    """The model class of the run (executed once; tracebacks show model.py's lines). A run
    trained from a spec is compiled again from its spec.gm, and model.py is rewritten where it
    differs: a model.py edited, or received from someone else, is never run in place of the
    spec's. A run trained from a compiled .py has no spec, and runs its model.py."""
    module = _require_run(path) / "model.py"
    source = module.read_text(encoding="utf-8")
    spec = path / "spec.gm"
    if spec.exists():
        compiled = spec_module(spec.read_text(encoding="utf-8"))
        if compiled != source:
            click.echo(
                f"note: {module} is not what {spec} compiles to (edited, or written by another gmdsl "
                "version); it is compiled again from the spec",
                err=True,
            )
            write_atomically(module, compiled)
            source = compiled
    return load_model_class(source, path.name, module)


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
    handle = open(file, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole of training
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


@dataclass
class BoundData:
    """A dataset bound to a model's variables, checked, on the CPU: what a run trains on."""

    dataset: str
    fields: dict[str, str]  # variable -> dataset field
    supervised: tuple[str, ...]  # the supervised variables the dataset labels
    unlabelled: tuple[str, ...]  # supervised variables the dataset has no field for: never labelled
    train: dict[str, torch.Tensor]  # the dataset's whole train split, validation rows included
    test: dict[str, torch.Tensor]
    validation_indices: torch.Tensor  # rows of the train split held out: never trained on
    labelled_indices: torch.Tensor  # rows of the train split whose labels may be used
    field_shapes: dict[str, list[int]]


# The validation split is a property of the dataset, not of a run: the same for every seed, so
# that recipes are compared on the same examples.
VALIDATION_SEED = 0


def bind_data(
    variables: tuple[Variable, ...],
    settings: TrainSettings,
    validation_indices: torch.Tensor | None = None,
    labelled_indices: torch.Tensor | None = None,
) -> BoundData:
    """Open the dataset, bind its fields to the variables, check every value, and fix the
    validation split and the labelled subset (drawn unless a resumed run gives its own): the
    validation rows class-stratified with VALIDATION_SEED, the labelled ones class-balanced
    from the rest with `label_seed`. Nothing is written: a new run calls this before its
    directory exists."""
    dataset = open_dataset(settings.dataset)
    by_name = {v.name: v for v in variables}
    fields, unlabelled = bind(dataset, variables, settings.fields, where="`fields` of the training configuration")
    train = {name: model_tensor(dataset.train[field], by_name[name]) for name, field in fields.items()}
    test = {name: model_tensor(dataset.test[field], by_name[name]) for name, field in fields.items()}
    supervised = tuple(v.name for v in variables if v.role == "supervised" and v.name in fields)
    size = len(next(iter(train.values())))
    # classes to stratify by: the first supervised variable's, else one class (a plain random draw)
    classes = dataset.train[fields[supervised[0]]] if supervised else torch.zeros(size, dtype=torch.long)
    if validation_indices is None:
        count = size // 6 if settings.validation is None else settings.validation
        if count >= size:
            raise DataError(
                f"cannot hold out {count} of the {size} training examples for validation: "
                "set validation (--validation N) below that, or 0 for none"
            )
        validation_indices = labelled_subset(classes, count, VALIDATION_SEED) if count else _no_rows()
    if labelled_indices is None:
        labelled_indices = _no_rows()
        if supervised and settings.labels:
            rest = _rows_except(size, validation_indices)
            labelled_indices = rest[labelled_subset(classes[rest], settings.labels, settings.label_seed)]
    labelled = torch.zeros(size, dtype=torch.bool)
    labelled[labelled_indices] = True
    _check_values(
        {**train, **{name + "_observed": labelled for name in supervised}}, variables, fields, dataset.name, "training"
    )
    _check_values(test, variables, fields, dataset.name, "test")
    return BoundData(
        dataset.name,
        fields,
        supervised,
        unlabelled,
        train,
        test,
        validation_indices,
        labelled_indices,
        {name: list(dataset.train[field].shape[1:]) for name, field in fields.items()},
    )


def _no_rows() -> torch.Tensor:
    return torch.zeros(0, dtype=torch.long)


def _rows_except(size: int, held_out: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(size, dtype=torch.bool)
    keep[held_out] = False
    return torch.nonzero(keep).flatten()


def _check_values(
    batch: dict[str, torch.Tensor], variables: tuple[Variable, ...], fields: dict[str, str], dataset: str, split: str
) -> None:
    """Every value inside its variable's support, checked once (the loop then skips the checks);
    a problem is told in terms of the dataset and its fields, not of a batch."""
    try:
        prepare(batch, {v.name: v for v in variables if v.name in fields}, torch.float32, torch.device("cpu"))
    except BatchError as exc:
        name = exc.variable or ""
        field = fields.get(name, name)
        raise DataError(
            f"the {split} split of dataset {dataset} does not fit the model: field `{field}` "
            f"(bound to `{name}`) {exc.problem}"
        ) from None


def save_data(path: Path, data: BoundData) -> None:
    """RUN/validation.json, RUN/labelled.json and RUN/data.json: what a resumed run, eval and
    show read back."""
    save_indices(path / "validation.json", data.validation_indices)
    save_indices(path / "labelled.json", data.labelled_indices)
    summary = {
        "dataset": data.dataset,
        "fields": data.fields,
        "field_shapes": data.field_shapes,
        "never_labelled": list(data.unlabelled),
        "train_examples": len(next(iter(data.train.values()))) - len(data.validation_indices),
        "validation_examples": len(data.validation_indices),
        "labelled_examples": len(data.labelled_indices),
    }
    (path / "data.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def saved_indices(path: Path, name: str) -> torch.Tensor:
    """RUN/NAME.json's indices (validation or labelled)."""
    file = path / f"{name}.json"
    if not file.exists():
        raise RunError(
            f"{path} has no {name}.json (runs from before gmdsl held out a validation split lack it): start a new run",
            location=str(path),
        )
    return load_indices(file)


def training_data(data: BoundData, device: torch.device) -> TrainingData:
    """The bound data on the training device: the training rows (validation ones left out)
    with each hidden label overwritten, and the validation rows with their labels."""
    size = len(next(iter(data.train.values())))
    rows = _rows_except(size, data.validation_indices)
    labelled = torch.zeros(size, dtype=torch.bool)
    labelled[data.labelled_indices] = True
    labelled = labelled[rows]
    train = {name: values[rows] for name, values in data.train.items()}
    for name in data.supervised:
        train[name] = hide_unlabelled(train[name], labelled)
    return TrainingData(
        {k: v.to(device) for k, v in train.items()},
        {k: v[data.validation_indices].to(device) for k, v in data.train.items()},
        labelled.to(device),
        data.supervised,
    )


def open_run(path: Path, device_name: str = "auto", checkpoint: str = "best") -> Run:
    """A trained run: its model with the weights of the checkpoint asked for (best: the
    epoch chosen on validation, where the run measured one; last: the last epoch), on the device."""
    path = _require_run(Path(path))
    config = config_of(path)  # first: a hand-edited config is the likelier mistake
    device = choose_device(device_name)
    model = build_model(model_class_of(path), device)
    checkpoints = Checkpoints(path / "checkpoint")
    last = checkpoints.latest()
    if last is None:
        raise RunError(f"{path} has no checkpoint yet: train it first (`gmdsl train ... --run {path}`)")
    best = checkpoints.best()
    if checkpoint == "best" and best is not None:
        checkpoints.load_best(model, device)
        chosen, epoch = "best", best["epoch"]
    else:  # a run without validation has no best: its last epoch is the one it chose
        checkpoints.load_weights(model, device)
        chosen, epoch = "last", last
    model.eval()
    data = json.loads((path / "data.json").read_text(encoding="utf-8"))
    return Run(path, model, config, data, device, chosen, epoch)


def _fields(run: Run, split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        return {
            name: model_tensor(split[field], run.model.by_name[name]).to(run.device)
            for name, field in run.data["fields"].items()
        }
    except KeyError as exc:
        raise DataError(f"dataset {run.config.dataset} has no field {exc} any more") from None


def test_data(run: Run) -> dict[str, torch.Tensor]:
    return _fields(run, run.dataset.test)


def validation_data(run: Run) -> dict[str, torch.Tensor]:
    """The run's validation rows with their labels (empty when it held none out)."""
    rows = saved_indices(run.path, "validation")
    if not len(rows):
        return {}
    train = run.dataset.train
    return _fields(run, {field: values[rows] for field, values in train.items()})
