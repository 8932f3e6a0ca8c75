"""What `gmdsl train`, `gmdsl eval` and `gmdsl show` do, between the CLI and the loop."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from gmdsl.build import ModelClass
from gmdsl.data.binding import BoundData
from gmdsl.data.sources import open_dataset
from gmdsl.files import write_atomically
from gmdsl.runtime.model import CompiledModel
from gmdsl.runtime.trace import Variable

from . import distributed, runs
from .checkpoints import Checkpoints, Position
from .data import bind, training_data
from .distributed import Ranks
from .evaluation import evaluate, mean_elbo, supervised_metrics
from .loop import OutOfMemory, Trainer, out_of_memory, stopping_on_signals
from .run_files import DataRecord
from .settings import RESUMABLE, TrainSettings, changed_on_resume, resolve


@dataclass(frozen=True)
class ModelToTrain:
    """A model for a new run: its compiled source, the spec it came from (None for a compiled
    .py), its name and variables, and its class when the source was already executed (a
    compiled .py)."""

    source: str
    spec_text: str | None
    name: str
    variables: tuple[Variable, ...]
    model_class: ModelClass | None


def run_training(
    model: ModelToTrain | None,
    config_file: str | None,
    run_dir: str | None,
    resume_dir: str | None,
    flags: dict[str, Any],
    progress: bool,
) -> Path:
    """Train a new run of `model`, or continue the run in `resume_dir`; in each of the
    processes torchrun started, when it started several (gmdsl.train.distributed).

    A new run is all or nothing: the settings, the data binding and the labelled subset are
    checked before its directory is written, and a run that stops before its first epoch is
    saved leaves nothing behind, so the same command can simply be run again."""
    ranks = distributed.from_environment()
    # Denormal floats read as zero on every thread that computes (see Trainer.fit): the mode
    # is per thread, and torch's compute threads take it from the thread that starts them, so it
    # is set before the first operation that starts them. Set later, the second thread of a
    # 2-thread run computed with denormals: an epoch of the table's recipe grew from 26 s to 77 s
    # by epoch 10 (results/precision/README.md).
    torch.set_flush_denormal(True)
    try:
        with stopping_on_signals(deferred=ranks.distributed):
            if resume_dir is not None:
                return _resume(ranks, Path(resume_dir), config_file, flags, progress)
            assert model is not None
            return _start(ranks, model, config_file, run_dir, flags, progress)
    finally:
        torch.set_flush_denormal(False)
        distributed.leave()


def _resume(ranks: Ranks, path: Path, config_file: str | None, flags: dict[str, Any], progress: bool) -> Path:
    saved = runs.config_of(path)
    dataset = flags.pop("dataset", None)  # where the run's data is now, if it moved: checked by content
    settings = resolve(Path(config_file) if config_file else None, flags, base=saved.model_dump())
    if settings.precision == "auto":  # asked again (a flag, or the run's config file): the one it chose
        settings = settings.model_copy(update={"precision": saved.precision})
    _check_resume(saved, settings)
    device = distributed.device_of(ranks, runs.choose_device(settings.device))
    distributed.join(ranks, device)
    with runs.training_lock(path) if ranks.main else contextlib.nullcontext():
        if ranks.main:  # first: it compiles model.py again where it differs, for the others to read
            model_class = runs.model_class_of(path)
        distributed.barrier(ranks)
        if not ranks.main:
            model_class = runs.model_class_of(path)
        saved_data = runs.run_record(path, "data.json", DataRecord).model_dump()
        data = runs.run_dataset(path, saved, saved_data, dataset)
        rows = len(next(iter(data.train.values())))
        held_out, labelled = (runs.saved_indices(path, name, rows) for name in ("validation", "labelled"))
        bound = bind(data, model_class.variables, settings, held_out, labelled)
        if dataset is not None:  # the data moved, and is the same: the run records where it is now
            settings = settings.model_copy(update={"dataset": runs.dataset_location(bound.dataset)})
            saved_data["source"]["location"] = settings.dataset
        resumed = settings

        def record() -> None:
            """Once the checkpoint loaded: the run's files say what it goes on with."""
            if ranks.main:
                write_atomically(path / "config.json", resumed.model_dump_json(indent=2) + "\n")
                write_atomically(path / "data.json", json.dumps(saved_data, indent=2) + "\n")

        return _train(path, model_class, bound, settings, device, progress, ranks, resumed=record)


def _start(
    ranks: Ranks,
    model: ModelToTrain,
    config_file: str | None,
    run_dir: str | None,
    flags: dict[str, Any],
    progress: bool,
) -> Path:
    settings = resolve(Path(config_file) if config_file else None, flags)
    dataset = open_dataset(settings.dataset)
    # the run names its data by where it is, so that it finds it from any folder
    settings = settings.model_copy(update={"dataset": runs.dataset_location(dataset)})
    bound = bind(dataset, model.variables, settings)
    # a missing GPU is found out before anything is written
    device = distributed.device_of(ranks, runs.choose_device(settings.device))
    distributed.join(ranks, device)
    # the run records the precision it uses, so that a resumed run keeps it on any machine
    settings = settings.model_copy(update={"precision": runs.resolve_precision(settings.precision, device)})
    chosen = (Path(run_dir) if run_dir else runs.new_run_path(model.name)) if ranks.main else None
    path = Path(distributed.broadcast_text(ranks, str(chosen) if chosen else None))
    if not ranks.main:
        distributed.barrier(ranks)  # rank 0 has written the run directory
        model_class = model.model_class or runs.model_class_of(path)
        return _train(path, model_class, bound, settings, device, progress, ranks)
    with runs.new_run(path, model.source, model.spec_text, settings):
        runs.save_data(path, bound)
        model_class = model.model_class or runs.model_class_of(path)
        distributed.barrier(ranks)
        return _train(path, model_class, bound, settings, device, progress, ranks)


def _train(
    path: Path,
    model_class: ModelClass,
    bound: BoundData,
    settings: TrainSettings,
    device: torch.device,
    progress: bool,
    ranks: Ranks,
    resumed: Callable[[], None] | None = None,
) -> Path:
    """Train the run from where it stands: a new run from its start, a resumed one (`resumed`
    is told once its checkpoint loaded) from its newest checkpoint."""
    say = click.echo if ranks.main else _silent  # one process tells the user
    for name in bound.unlabelled:
        say(
            f"note: dataset {bound.dataset.name} has no field for supervised variable `{name}`, so it is trained "
            f'as never labelled; bind one with fields = {{ {name} = "FIELD" }} if the dataset has it'
        )
    if settings.compile and device.type == "cpu":
        say("note: --compile measured slower than eager steps on CPUs (results/performance.md); it is for GPUs")
    torch.manual_seed(settings.seed)  # before the model is built: the seed fixes its initial weights
    compiled = runs.build_model(model_class, device)
    compiled.set_precision(runs.resolve_precision(settings.precision, device))
    data = training_data(bound, device)
    trainer = Trainer(compiled, data, settings, path, device, progress=progress, ranks=ranks)
    start = Position(0)
    if resumed is not None:
        start = trainer.resume()
        resumed()
    if start.epoch >= settings.epochs:
        say(f"{path} has already trained {start.epoch} epochs; pass --epochs N (more than {start.epoch}) to go on")
        return path
    begin = f"epochs {start.epoch + 1}..{settings.epochs}"
    if start.step:
        begin = f"epoch {start.epoch + 1} from step {start.step + 1}, to epoch {settings.epochs}"
    labelled = int(data.labelled.sum())
    validation = len(next(iter(data.validation.values())))
    processes = f" in {ranks.world} processes" if ranks.distributed else ""
    say(
        f"training {compiled.name} on {settings.dataset} ({data.size} examples, {labelled} labelled; "
        f"{validation} held out for validation) on {device}{processes} in {compiled.precision}, {begin}; run: {path}"
    )

    def report(record: dict) -> None:
        from .figures import curves

        parts = [f"epoch {record['epoch']}/{settings.epochs}", f"loss {record['loss']:.2f}"]
        parts += [
            f"{k.replace('_', ' ')} {v:.2f}" + ("%" if "error" in k else "")
            for k, v in record.items()
            if k.startswith("validation_")
        ]
        parts.append(f"{record['seconds']:.1f} s")
        click.echo(", ".join(parts))
        curves(trainer.log, path / "curves.png")

    def validate(model: CompiledModel) -> dict:
        if not validation:
            return {}
        predict = (settings.predict_samples, settings.prediction, settings.directions)
        metrics = supervised_metrics(model, data.validation, "validation", *predict)
        return {**metrics, "validation_elbo": mean_elbo(model, data.validation)}

    if ranks.main:
        trainer.fit(start, evaluate=validate, on_epoch=report)
    else:
        trainer.fit(start)
    distributed.barrier(ranks)  # the processes end together, none while rank 0 still validates
    best = trainer.checkpoints.best()
    chosen = ""
    if best:
        ties = "".join(f", then {key} {value:.2f}" for key, value in (best.get("tie_breakers") or {}).items())
        chosen = f"; the best on validation is epoch {best['epoch']} ({best['metric']} {best['value']:.2f}{ties})"
    say(f"done: {path} (metrics.csv, curves.png, checkpoint/){chosen}; next: gmdsl eval {path}; gmdsl show {path}")
    return path


def _silent(*_: Any, **__: Any) -> None:
    """click.echo's stand-in on processes other than rank 0."""


def _check_resume(saved: TrainSettings, asked: TrainSettings) -> None:
    changed = changed_on_resume(saved, asked)
    if changed:
        raise runs.RunError(
            f"--resume continues a run with its own settings; {', '.join(changed)} cannot change "
            f"(only {', '.join(RESUMABLE)} can): start a new run instead"
        )
    if asked.lr_schedule == "cosine" and asked.epochs != saved.epochs:
        raise runs.RunError(
            f"this run decays its learning rate to 0 over {saved.epochs} epochs (lr_schedule = "
            f"cosine), so --resume cannot change epochs: resume with --epochs {saved.epochs}, "
            "or start a new run"
        )


def run_evaluation(
    path: Path,
    samples: int | None,
    rows: int,
    device: str,
    checkpoint: str,
    dataset: str | None = None,
    precision: str | None = None,
) -> dict:
    """RUN/eval-CHECKPOINT.json: the checkpoint's validation numbers, then its test numbers (the
    test set is read here, once per final model, never during training), computed in `precision`
    (None: the run's). Each checkpoint's evaluation has its own file, so evaluating one never
    overwrites another's."""
    run = runs.open_run(path, device, checkpoint, dataset, precision)
    samples = samples if samples is not None else run.config.eval_samples
    try:
        return _evaluate(run, samples, rows)
    except (MemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        raise OutOfMemory(
            f"evaluating {path} did not fit in the memory of {run.device}: lower --samples ({samples}) "
            f"or --rows ({rows})"
        ) from None


def _evaluate(run: runs.Run, samples: int, rows: int) -> dict:
    path = run.path
    torch.manual_seed(run.config.seed)
    predict = (run.config.predict_samples, run.config.prediction)
    results: dict = {
        "checkpoint": run.checkpoint,
        "epoch": run.epoch,
        "chosen_by": chosen_by(run),
        "precision": run.model.precision,
    }
    validation = run.split("validation")
    if validation:
        results.update(supervised_metrics(run.model, validation, "validation", *predict, run.config.directions))
        results["validation_elbo"] = mean_elbo(run.model, validation)
    if run.dataset.has_test:
        # which test split was read: a results page can then say which data each number measured
        results["test_data"] = run.data["source"]["fingerprint"] if run.data.get("source") else None
        results.update(evaluate(run.model, run.split("test"), samples, rows, *predict, run.config.directions))
    file = path / f"eval-{run.checkpoint}.json"
    write_atomically(file, json.dumps(results, indent=2) + "\n")
    click.echo(
        f"{run.model.name}, {path}, {run.checkpoint} checkpoint (epoch {run.epoch}), {results['chosen_by']}, "
        f"in {run.model.precision}:"
    )
    width = max(len(k) for k in results)
    for key, value in results.items():
        if key in ("checkpoint", "epoch", "chosen_by", "precision", "test_data"):
            continue
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        unit = " %" if "_error_" in key else " degrees" if "_angle_" in key else ""
        click.echo(f"  {key:<{width}}  {text}{unit}")
    if not run.dataset.has_test:
        click.echo(f"  (dataset {run.dataset.name} has no test split: validation numbers only)")
    click.echo(f"wrote {file}")
    return results


def chosen_by(run: runs.Run) -> str:
    """How the run's loaded checkpoint was chosen, in words."""
    best = Checkpoints(run.path / "checkpoint").best()
    if run.checkpoint != "best" or best is None:
        return "the last epoch"
    how = f"chosen by {best['metric']} ({best['value']:.4g})"
    ties = best.get("tie_breakers") or {}
    if ties:
        how += ", ties broken by " + ", ".join(f"{key} ({value:.4g})" for key, value in ties.items())
    return how


def run_show(path: Path, device: str, checkpoint: str, dataset: str | None = None) -> list[Path]:
    from .figures import show

    run = runs.open_run(path, device, checkpoint, dataset)
    torch.manual_seed(run.config.seed)
    # the test rows; without a test split, the held-out rows, or else the training rows
    split = "test" if run.dataset.has_test else "validation" if run.split("validation") else "train"
    made = show(run, run.split(split), split)
    for figure in made:
        click.echo(f"wrote {figure}")
    return made
