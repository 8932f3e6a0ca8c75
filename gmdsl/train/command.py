"""What `gmdsl train`, `gmdsl eval` and `gmdsl show` do, between the CLI and the loop."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import torch

from gmdsl.build import ModelClass
from gmdsl.runtime.model import CompiledModel
from gmdsl.runtime.trace import Variable

from . import distributed, runs
from .checkpoints import Checkpoints, Position
from .distributed import Ranks
from .evaluation import evaluate, supervised_metrics
from .loop import Trainer
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
    try:
        if resume_dir is not None:
            return _resume(ranks, Path(resume_dir), config_file, flags, progress)
        assert model is not None
        return _start(ranks, model, config_file, run_dir, flags, progress)
    finally:
        distributed.leave()


def _resume(ranks: Ranks, path: Path, config_file: str | None, flags: dict[str, Any], progress: bool) -> Path:
    saved = runs.config_of(path)
    settings = resolve(Path(config_file) if config_file else None, flags, base=saved.model_dump())
    _check_resume(saved, settings)
    device = distributed.device_of(ranks, runs.choose_device(settings.device))
    distributed.join(ranks, device)
    with runs.training_lock(path) if ranks.main else contextlib.nullcontext():
        if ranks.main:  # first: it compiles model.py again where it differs, for the others to read
            model_class = runs.model_class_of(path)
        distributed.barrier(ranks)
        if not ranks.main:
            model_class = runs.model_class_of(path)
        bound = runs.bind_data(
            model_class.variables,
            settings,
            runs.saved_indices(path, "validation"),
            runs.saved_indices(path, "labelled"),
        )
        if ranks.main:
            (path / "config.json").write_text(settings.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return _train(path, model_class, bound, settings, device, progress, ranks, resuming=True)


def _start(
    ranks: Ranks,
    model: ModelToTrain,
    config_file: str | None,
    run_dir: str | None,
    flags: dict[str, Any],
    progress: bool,
) -> Path:
    settings = resolve(Path(config_file) if config_file else None, flags)
    bound = runs.bind_data(model.variables, settings)
    # a missing GPU is found out before anything is written
    device = distributed.device_of(ranks, runs.choose_device(settings.device))
    distributed.join(ranks, device)
    chosen = (Path(run_dir) if run_dir else runs.new_run_path(model.name)) if ranks.main else None
    path = Path(distributed.broadcast_text(ranks, str(chosen) if chosen else None))
    if not ranks.main:
        distributed.barrier(ranks)  # rank 0 has written the run directory
        model_class = model.model_class or runs.model_class_of(path)
        return _train(path, model_class, bound, settings, device, progress, ranks, resuming=False)
    created = runs.create(path, model.source, model.spec_text, settings)
    try:
        with runs.training_lock(path):
            runs.save_data(path, bound)
            model_class = model.model_class or runs.model_class_of(path)
            distributed.barrier(ranks)
            return _train(path, model_class, bound, settings, device, progress, ranks, resuming=False)
    except BaseException:
        if Checkpoints(path / "checkpoint").position() is None:
            runs.remove(path, created)
        raise


def _train(
    path: Path,
    model_class: ModelClass,
    bound: runs.BoundData,
    settings: TrainSettings,
    device: torch.device,
    progress: bool,
    ranks: Ranks,
    resuming: bool,
) -> Path:
    say = click.echo if ranks.main else _silent  # one process tells the user
    for name in bound.unlabelled:
        say(
            f"note: dataset {bound.dataset} has no field for supervised variable `{name}`, so it is trained "
            f'as never labelled; bind one with fields = {{ {name} = "FIELD" }} if the dataset has it'
        )
    if settings.compile and device.type == "cpu":
        say("note: --compile measured slower than eager steps on CPUs (results/performance.md); it is for GPUs")
    torch.manual_seed(settings.seed)  # before the model is built: the seed fixes its initial weights
    compiled = runs.build_model(model_class, device)
    data = runs.training_data(bound, device)
    trainer = Trainer(compiled, data, settings, path, device, progress=progress, ranks=ranks)
    start = trainer.resume() if resuming else Position(0)
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
        f"{validation} held out for validation) on {device}{processes}, {begin}; run: {path}"
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
        return supervised_metrics(model, data.validation, "validation", settings.predict_samples, settings.prediction)

    if ranks.main:
        trainer.fit(start, evaluate=validate, on_epoch=report)
    else:
        trainer.fit(start)
    distributed.barrier(ranks)  # the processes end together, none while rank 0 still validates
    best = trainer.checkpoints.best()
    chosen = f"; the best on validation is epoch {best['epoch']} ({best['metric']} {best['value']:.2f})" if best else ""
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


def run_evaluation(path: Path, samples: int | None, rows: int, device: str, checkpoint: str) -> dict:
    """eval.json: the chosen checkpoint's validation numbers, then its test numbers (the test
    set is read here, once per final model, never during training)."""
    run = runs.open_run(path, device, checkpoint)
    samples = samples if samples is not None else run.config.eval_samples
    torch.manual_seed(run.config.seed)
    predict = (run.config.predict_samples, run.config.prediction)
    validation = runs.validation_data(run)
    results: dict = {"checkpoint": run.checkpoint, "epoch": run.epoch}
    if validation:
        results.update(supervised_metrics(run.model, validation, "validation", *predict))
    results.update(evaluate(run.model, runs.test_data(run), samples, rows, *predict))
    (path / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    click.echo(f"{run.model.name}, {path}, {run.checkpoint} checkpoint (epoch {run.epoch}):")
    width = max(len(k) for k in results)
    for key, value in results.items():
        if key in ("checkpoint", "epoch"):
            continue
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        unit = " %" if "_error_" in key else " degrees" if "_angle_" in key else ""
        click.echo(f"  {key:<{width}}  {text}{unit}")
    click.echo(f"wrote {path / 'eval.json'}")
    return results


def run_show(path: Path, device: str, checkpoint: str) -> list[Path]:
    from .figures import show

    run = runs.open_run(path, device, checkpoint)
    torch.manual_seed(run.config.seed)
    made = show(run, runs.test_data(run))
    for figure in made:
        click.echo(f"wrote {figure}")
    return made
