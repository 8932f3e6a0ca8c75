"""What the MNIST benchmarks share: running `gmdsl train` / `gmdsl eval` as subprocesses with
their output in a log, resuming a run directory a stopped benchmark left behind, and
describing the commit and hardware a result came from."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
GMDSL = str(Path(sys.executable).parent / "gmdsl")
T = TypeVar("T")  # the CLI of the environment running this script


class Failed(Exception):
    """A train or eval command exited non-zero; the message names its log."""


def add_run_options(parser: argparse.ArgumentParser, out: str, runs: str, render: str) -> None:
    """The options every MNIST benchmark takes: how runs share the machine, where results and
    run directories go, and `--render` (`render` says what it redraws)."""
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, sharing the CPU cores")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=out, help="where the results and their logs/ go")
    parser.add_argument("--runs", default=runs, help="where the run directories (with weights) go")
    parser.add_argument("--render", action="store_true", help=f"only redraw {render}")


def threads_per_run(jobs: int) -> int:
    """Each of `jobs` runs at once gets its share of the cores, and no more threads than an
    OMP_NUM_THREADS already set allows (a test worker's one thread, a scheduler's limit)."""
    share = max(1, (os.cpu_count() or 1) // jobs)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return min(share, int(limit)) if limit.isdigit() and int(limit) > 0 else share


def thread_env(threads: int) -> dict[str, str]:
    """The environment of a subprocess that may use `threads` threads: each parallel run gets its
    share of the cores, so runs do not fight over threads."""
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def in_parallel(jobs: int, work: Callable[..., T], calls: list[tuple]) -> list[T]:
    """`work(*call)` for each call, `jobs` at a time, results in the calls' order; a run that
    failed ends the benchmark with its message (which names its log)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(work, *call) for call in calls]
        try:
            return [future.result() for future in futures]
        except Failed as exc:
            sys.exit(str(exc))


def run(command: list[str], log: Path, threads: int) -> None:
    env = thread_env(threads)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        result = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    if result.returncode != 0:
        raise Failed(f"failed ({result.returncode}): {' '.join(command)}; see {log}")


def train(spec: str, run_dir: Path, epochs: int, options: list[str], log: Path, threads: int) -> None:
    """Train `spec` for `epochs` into `run_dir`; a run directory with a saved epoch (a benchmark
    stopped part way) is resumed, so it ends as the uninterrupted run would, unless its spec has
    changed since: then it starts afresh. `options` are `gmdsl train` flags of a new run (a resumed
    one keeps its own)."""
    if (run_dir / "checkpoint" / "latest.json").exists() and same_spec(run_dir / "spec.gm", spec):
        command = [GMDSL, "train", "--resume", str(run_dir), "--epochs", str(epochs), "--no-progress"]
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        log.unlink(missing_ok=True)
        command = [GMDSL, "train", spec, "--epochs", str(epochs), "--run", str(run_dir), "--no-progress"]
        command += ["--select", table_select(spec), *options]
    run(command, log, threads)


def table_select(spec: str) -> str:
    """The tables' checkpoint criterion, kept as it was when they were made: the supervised
    variables' validation errors in the spec's order, ties going to the earlier epoch (not
    `gmdsl train`'s default, which breaks the last ties by the validation ELBO)."""
    import gmdsl

    model = gmdsl.load(ROOT / spec if not Path(spec).is_absolute() else Path(spec))
    return ",".join(v.name for v in model.variables() if v.role == "supervised")


# what results/logs/ keeps of a run: RUN/FILE as logs/NAME.KEPT_AS; its evaluation is eval-best.json,
# or eval-last.json for a run that held out no validation to choose with (see `keep`)
KEPT = {
    "metrics.jsonl": "metrics.jsonl",
    "config.json": "config.json",
    "labelled.json": "labelled.json",
    "spec.gm": "spec.gm",  # the spec as the run trained it, which the file in specs/ may not stay
}


def same_spec(copy: Path, spec: str) -> bool:
    """Whether a run's copy of its spec is `spec` as it reads now, character for character (an
    edited comment counts as a change); True where the run kept no copy, as runs kept before
    tables kept one: nothing says it changed, so a spec edited in place needs its old logs moved
    aside (or a new name) to be trained again."""
    return not copy.exists() or copy.read_text(encoding="utf-8") == (ROOT / spec).read_text(encoding="utf-8")


def finished(
    logs: Path, name: str, dataset: str, epochs: int, test_data: str | None = None, spec: str | None = None
) -> bool:
    """Whether logs/ already holds run `name` evaluated, trained on `dataset` for `epochs`
    epochs (a resumed table keeps it instead of training it again); with `test_data` (a data
    fingerprint), only if its evaluation read that data: a generated set rebuilt by a newer
    generator keeps its name, and runs on the older version are trained again. With `spec`, only
    if the run trained that spec as it reads now: a spec changed in place keeps its name too."""
    config, evaluation = logs / f"{name}.config.json", logs / f"{name}.eval.json"
    if not (evaluation.exists() and config.exists()):
        return False
    if spec is not None and not same_spec(logs / f"{name}.spec.gm", spec):
        return False
    saved = json.loads(config.read_text())
    if test_data is not None and json.loads(evaluation.read_text()).get("test_data") != test_data:
        return False
    return saved["epochs"] == epochs and saved["dataset"] in (dataset, str(Path(dataset).resolve()))


def evaluated_on_other_data(logs: Path, name: str, test_data: str) -> bool:
    """Whether logs/ holds run `name` evaluated on data other than the set with fingerprint
    `test_data` (or before runs recorded one): a run to train afresh, not to resume."""
    evaluation = logs / f"{name}.eval.json"
    return evaluation.exists() and json.loads(evaluation.read_text()).get("test_data") != test_data


def train_and_keep(
    spec: str, run_dir: Path, epochs: int, options: list[str], logs: Path, threads: int, evaluation: list[str]
) -> None:
    """Train (or resume) a run, evaluate the checkpoint chosen on validation on the test split,
    read once, with `gmdsl eval` flags `evaluation`, and copy what a table needs into logs/."""
    name = run_dir.name
    log = logs / f"{name}.log"
    train(spec, run_dir, epochs, options, log, threads)
    run([GMDSL, "eval", str(run_dir), *evaluation], log, threads)
    keep(run_dir, logs)


def keep(run_dir: Path, logs: Path) -> None:
    """Copy what a table needs of an evaluated run into logs/ (as logs/NAME.*)."""
    name = run_dir.name
    for file, kept_as in KEPT.items():
        if file == "spec.gm" and not (run_dir / file).exists():  # trained from a compiled model.py
            continue
        shutil.copy(run_dir / file, logs / f"{name}.{kept_as}")
    chosen = run_dir / "eval-best.json"
    shutil.copy(chosen if chosen.exists() else run_dir / "eval-last.json", logs / f"{name}.eval.json")


def saved_results(path: Path, made_by: str) -> dict:
    """A table's results file (what `--render` redraws a page from); without one, a message that
    names the command that writes it."""
    if not path.exists():
        sys.exit(f"{path} does not exist: it is written by `{made_by}`; run that first")
    return json.loads(path.read_text())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def metrics(run_dir: Path) -> list[dict]:
    return _jsonl(run_dir / "metrics.jsonl")


def logged(logs: Path, name: str) -> tuple[dict, list[dict]]:
    """A kept run's evaluation and per-epoch metrics, read back from logs/."""
    return json.loads((logs / f"{name}.eval.json").read_text()), _jsonl(logs / f"{name}.metrics.jsonl")


def mean_sd(values: list[float], digits: int) -> str:
    """`mean ±sd` (the sd only for more than one value)."""
    spread = f" ±{statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


# what a run's numbers depend on: a change here not yet committed is not in the commit a page names
# (the specs a screen trains live under results/screens)
CODE_PATHS = ("gmdsl", "runtime", "grammar", "specs", "bench", ":(glob)results/screens/**/*.gm")


def _code_state() -> str:
    """HEAD's short hash, flagged when the code differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    dirty = " with uncommitted changes" if changed.stdout.strip() else ""
    return (head.stdout.strip() or "unknown") + dirty


# the code when the script started (scripts import this module first): a table runs for hours,
# and commits can land meanwhile
STARTED_AT: str | None = _code_state()


def commit() -> str:
    """The commit a page's runs were made at, flagged when the code had changes not yet committed,
    and with the one the script started at where that differs (the runs may have read either)."""
    now = _code_state()
    return now if STARTED_AT in (None, now) else f"{now} (started at {STARTED_AT})"


def hardware(jobs: int, threads: int) -> dict:
    import torch

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "jobs": jobs,
        "threads_per_job": threads,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
    }


def describe(hardware: dict) -> str:
    if hardware.get("cuda"):
        return hardware["cuda"]
    threads = f"{hardware['threads_per_job']} thread" + ("s" if hardware["threads_per_job"] > 1 else "")
    runs = (
        f"one run at a time with {threads}"
        if hardware["jobs"] == 1
        else f"{hardware['jobs']} runs at once, {threads} each"
    )
    return f"{hardware['machine']} CPU, {hardware['cpus']} cores, {runs}"
