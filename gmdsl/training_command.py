"""What `gmdsl train`, `gmdsl eval` and `gmdsl show` do, between the CLI and the runtime."""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from . import runs
from .config import TrainConfig, resolve
from .runtime.evaluation import evaluate, supervised_metrics
from .runtime.loading import load_module
from .runtime.training import Schedule, Trainer


RESUMABLE_CHANGES = ("epochs", "device", "eval_samples")


def run_training(source: tuple[str, str | None] | None, config_file: str | None, run_dir: str | None,
                 resume_dir: str | None, flags: dict, progress: bool) -> Path:
    if resume_dir is not None:
        path = Path(resume_dir)
        saved = runs.config_of(path)
        config = resolve(Path(config_file) if config_file else None, flags, base=saved.model_dump())
        changed = [key for key in TrainConfig.model_fields if key not in RESUMABLE_CHANGES
                   and getattr(config, key) != getattr(saved, key)]
        if changed:
            raise runs.RunError(f"--resume continues a run with its own settings; {', '.join(changed)} cannot change "
                                f"(only {', '.join(RESUMABLE_CHANGES)} can): start a new run instead")
        if config.lr_schedule == "cosine" and config.epochs != saved.epochs:
            raise runs.RunError(f"this run decays its learning rate to 0 over {saved.epochs} epochs (lr_schedule = "
                                f"cosine), so --resume cannot change epochs: resume with --epochs {saved.epochs}, "
                                "or start a new run")
        (path / "config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    else:
        config = resolve(Path(config_file) if config_file else None, flags)
        compiled, spec_text = source
        model_name = load_module(compiled, "model").Model.name
        path = Path(run_dir) if run_dir else runs.new_run_path(model_name)
        runs.create(path, compiled, spec_text, config)
    device = runs.choose_device(config.device)
    torch.manual_seed(config.seed)
    model = runs.model_of(path).to(device)
    data = runs.training_data(model, config, path, device)
    schedule = Schedule(config.epochs, config.batch_size, config.learning_rate, config.lr_schedule,
                        config.label_fraction, config.samples, config.alpha, config.seed)
    trainer = Trainer(model, data, schedule, path, device, progress=progress)
    start = trainer.resume() if resume_dir is not None else 0
    if start >= config.epochs:
        click.echo(f"{path} has already trained {start} epochs; pass --epochs N (more than {start}) to go on")
        return path
    labelled = int(data.labelled.sum())
    click.echo(f"training {model.name} on {config.dataset} ({data.size} examples, {labelled} labelled) "
               f"on {device}, epochs {start + 1}..{config.epochs}; run: {path}")

    def report(record: dict) -> None:
        from .figures import curves

        parts = [f"epoch {record['epoch']}/{config.epochs}", f"loss {record['loss']:.2f}"]
        parts += [f"{k.replace('test_', 'test ').replace('_', ' ')} {v:.2f}" + ("%" if "error" in k else "")
                  for k, v in record.items() if k.startswith("test_")]
        parts.append(f"{record['seconds']:.1f} s")
        click.echo(", ".join(parts))
        curves(trainer.log, path / "curves.png")

    trainer.fit(start, evaluate=lambda m: supervised_metrics(m, data.test), on_epoch=report)
    click.echo(f"done: {path} (metrics.csv, curves.png, checkpoint/); next: gmdsl eval {path}; gmdsl show {path}")
    return path


def run_evaluation(path: Path, samples: int | None, rows: int, device: str) -> dict:
    run = runs.open_run(path, device)
    test = runs.test_data(run)
    samples = samples if samples is not None else run.config.eval_samples
    torch.manual_seed(run.config.seed)
    results = evaluate(run.model, test, samples, rows)
    (path / "eval.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    click.echo(f"{run.model.name}, {path}:")
    width = max(len(k) for k in results)
    for key, value in results.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        unit = " %" if key.startswith("test_error") else ""
        click.echo(f"  {key:<{width}}  {text}{unit}")
    click.echo(f"wrote {path / 'eval.json'}")
    return results


def run_show(path: Path, device: str) -> list[Path]:
    from .figures import show

    run = runs.open_run(path, device)
    torch.manual_seed(run.config.seed)
    made = show(run, runs.test_data(run))
    for figure in made:
        click.echo(f"wrote {figure}")
    return made
