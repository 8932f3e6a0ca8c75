"""Remake the committed figures drawn from trained weights: train each figure's run again from what
results/ keeps of it, then draw the figure from that run with the code that drew it.

    .venv/bin/python bench/remake_figures.py --list                  # the figures, their runs, their time
    .venv/bin/python bench/remake_figures.py mnist_style             # into build/figures/mnist_style.png
    .venv/bin/python bench/remake_figures.py faces_relit faces_light --out results   # over the committed ones

A run is remade by `gmdsl train` from its committed results/logs/NAME.config.json (seeds, labels,
label seed, epochs, dataset, recipe), the spec its results/logs/NAME.log trained, and the
checkpoint criterion of the table it belongs to, into runs/remade/NAME (--runs); its epochs print
as in that log. A stopped remake resumes each run from its last saved epoch. Before training,
each run's committed training time (the sum of its logged epochs) and recorded hardware are
printed; it trains with the thread count it was trained with (--threads changes it).

How alike the remade figure is: `gmdsl train` on a CPU is deterministic, so the same settings,
torch version, thread count and kind of CPU give bitwise the same weights (tests/test_training.py
and tests/test_crash_safety.py: even a stopped and resumed run ends bitwise as one never stopped).
There the remade run has the committed run's weights; on another CPU, another thread count or a
GPU it is an equally trained run, whose figure shows the same kind of model, not the same pixels.
docs/figures.md says what was measured.

--dataset, --labels and --epochs replace the committed run's settings, so that
tests/test_remake_figures.py runs this same path on tiny data in seconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import faces_figures
import mnist_runs
import multi_mnist_figures
import torch
from mnist_runs import ROOT

from gmdsl import cli
from gmdsl.train import runs
from gmdsl.train.settings import RESUMABLE

RESULTS = ROOT / "results"
LOGS = RESULTS / "logs"
# README.md's command for the multi-MNIST figures draws them from this run (commit 0959ce1);
# results/multi_mnist.json does not record it
MULTI_MNIST_RUN = "multi_mnist-e10-w3-a100-l1000-r0.1-seed0"


@dataclass(frozen=True)
class Drawing:
    """Figures drawn together from the same runs: `table` names results/TABLE.json, which records
    the runs (and the hardware they trained on); `runs` reads from it which runs the figures show;
    `draw` draws the figures from the remade run directories into a folder, as FIGURE.png."""

    table: str
    figures: tuple[str, ...]
    runs: Callable[[dict], list[str]]
    draw: Callable[[dict, list[Path], Path], None]


def _style_grid_run(table: dict) -> list[str]:
    return [table["style_grid"]["run"]]


def _style_grid(figure: str, table: dict, run_dirs: list[Path], folder: Path) -> None:
    # as bench/reproduce_mnist.py draws it: `gmdsl show RUN`'s figures/style_grid.png
    _gmdsl(["show", str(run_dirs[0])])
    shutil.copy(run_dirs[0] / "figures" / "style_grid.png", folder / f"{figure}.png")


def _faces_runs(table: dict) -> list[str]:
    return list(faces_figures.best_run_names(table, table["figure_labels"]).values())


def _faces(table: dict, run_dirs: list[Path], folder: Path) -> None:
    dataset = json.loads((run_dirs[0] / "config.json").read_text())["dataset"]
    faces_figures.draw_figures(table, folder, run_dirs[0].parent, dataset, table["figure_labels"])


def _multi_mnist(table: dict, run_dirs: list[Path], folder: Path) -> None:
    # as bench/multi_mnist_figures.py's main draws them
    run = runs.open_run(run_dirs[0], "cpu", "best")
    multi_mnist_figures.reconstructions(run, folder / "multi_mnist_reconstructions.png")
    multi_mnist_figures.scenes(run, folder / "multi_mnist_scenes.png")


DRAWINGS = (
    Drawing("mnist", ("mnist_style",), _style_grid_run, partial(_style_grid, "mnist_style")),
    Drawing("fashion", ("fashion_style",), _style_grid_run, partial(_style_grid, "fashion_style")),
    Drawing("faces", ("faces_relit", "faces_identities", "faces_light"), _faces_runs, _faces),
    Drawing(
        "multi_mnist",
        ("multi_mnist_reconstructions", "multi_mnist_scenes"),
        lambda _: [MULTI_MNIST_RUN],
        _multi_mnist,
    ),
)
FIGURES = {figure: drawing for drawing in DRAWINGS for figure in drawing.figures}


def table(drawing: Drawing) -> dict:
    return json.loads((RESULTS / f"{drawing.table}.json").read_text())


def committed_config(name: str) -> dict:
    return json.loads((LOGS / f"{name}.config.json").read_text())


def committed_spec(name: str) -> str:
    """The spec the committed run trained: its log's first `gmdsl train SPEC ...` command."""
    for line in (LOGS / f"{name}.log").read_text().splitlines():
        words = line.split()
        if line.startswith("$ ") and "train" in words and "--resume" not in words:
            return words[words.index("train") + 1]
    raise ValueError(f"results/logs/{name}.log names no spec it trained")


def hardware(recorded: dict, name: str) -> dict:
    """The hardware results/TABLE.json records for run `name`: its setting's (mnist.json and
    fashion.json, a setting per row), else the table's."""
    settings = [s for s in recorded.get("settings", []) if any(r["name"] == name for r in s["runs"])]
    return settings[0]["hardware"] if settings else recorded["hardware"]


def committed_time(recorded: dict, name: str) -> str:
    """How long the committed run trained, and on what, from its metrics and the table."""
    _, metrics = mnist_runs.logged(LOGS, name)
    machine = hardware(recorded, name)
    minutes = sum(m["seconds"] for m in metrics) / 60
    return (
        f"{name} ({committed_spec(name)}): {len(metrics)} epochs, {minutes:.0f} min of training "
        f"on {mnist_runs.describe(machine)}, torch {machine['torch']}"
    )


def train_flags(config: dict) -> list[str]:
    """A run's config.json as `gmdsl train` flags. A setting that is None or empty is left out:
    its default stands, as when the run was made."""
    flags = []
    for key, value in config.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value in ({}, []):
            continue
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, dict):
            flags += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, list):
            flags += [flag, ",".join(value)]
        else:
            flags += [flag, str(value)]
    return flags


def _gmdsl(argv: list[str]) -> None:
    """The gmdsl CLI in this process: the imports of one command serve the next."""
    code = cli.main(argv)
    if code != 0:
        sys.exit(f"`gmdsl {' '.join(argv)}` failed ({code})")


def _refuse_other_settings(run_dir: Path, config: dict) -> None:
    """A partial run left under the same name with other settings (a test's, say) is not resumed."""
    saved = json.loads((run_dir / "config.json").read_text())
    differ = [k for k, v in config.items() if k not in RESUMABLE and k != "dataset" and saved.get(k) != v]
    if saved["dataset"] not in (config["dataset"], str(Path(config["dataset"]).resolve())):
        differ.append("dataset")
    if differ:
        sys.exit(f"{run_dir} was trained with another {', '.join(differ)}: remove it, or remake into another --runs")


def remake_run(name: str, args: argparse.Namespace, recorded: dict) -> Path:
    """Train (or resume) run `name` as committed, less what args override, under args.runs."""
    config = committed_config(name)
    overrides = {key: getattr(args, key) for key in ("dataset", "labels", "epochs", "device")}
    config.update({key: value for key, value in overrides.items() if value is not None})
    run_dir = ROOT / args.runs / name
    spec = committed_spec(name)
    latest = run_dir / "checkpoint" / "latest.json"
    if latest.exists():
        _refuse_other_settings(run_dir, config)
        if json.loads(latest.read_text())["epoch"] >= config["epochs"]:
            print(f"{run_dir} is trained already", flush=True)
            return run_dir
        command = ["train", "--resume", str(run_dir), "--epochs", str(config["epochs"])]
    else:
        shutil.rmtree(run_dir, ignore_errors=True)  # stopped before its first epoch was saved
        command = ["train", spec, "--run", str(run_dir), "--select", mnist_runs.table_select(spec)]
        command += train_flags(config)
    # the committed run's thread count: another one rounds differently
    threads = args.threads or hardware(recorded, name)["threads_per_job"]
    print(f"$ gmdsl {' '.join(command)}  # {threads} thread(s)", flush=True)
    default_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _gmdsl([*command, "--no-progress"])
    finally:
        torch.set_num_threads(default_threads)
    return run_dir


def remake(figures: list[str], args: argparse.Namespace) -> None:
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    for drawing in DRAWINGS:
        wanted = [f for f in drawing.figures if f in figures]
        if not wanted:
            continue
        recorded = table(drawing)
        names = drawing.runs(recorded)
        print(f"{', '.join(wanted)}: the committed figures were drawn from", flush=True)
        for name in names:
            print(f"  {committed_time(recorded, name)}", flush=True)
        run_dirs = [remake_run(name, args, recorded) for name in names]
        with tempfile.TemporaryDirectory() as scratch:
            drawing.draw(recorded, run_dirs, Path(scratch))
            for figure in wanted:
                (out / f"{figure}.png").write_bytes((Path(scratch) / f"{figure}.png").read_bytes())
                print(f"wrote {out / figure}.png", flush=True)


def listing() -> str:
    lines = []
    for drawing in DRAWINGS:
        recorded = table(drawing)
        lines.append(f"{' '.join(drawing.figures)}: results/{drawing.table}.json")
        lines += [f"  {committed_time(recorded, name)}" for name in drawing.runs(recorded)]
    return "\n".join(lines)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", metavar="FIGURE", help=f"of {', '.join(FIGURES)}")
    parser.add_argument("--list", action="store_true", help="each figure, the runs it is drawn from, their time")
    parser.add_argument("--runs", default="runs/remade", help="where the remade run directories go")
    parser.add_argument("--out", default="build/figures", help="where the figures go (results: over the committed)")
    parser.add_argument("--threads", type=int, help="threads per run (default: the committed run's)")
    parser.add_argument("--device", help="where to train (default: the committed run's, auto)")
    parser.add_argument("--dataset", help="train on this data instead of the committed run's (for tests)")
    parser.add_argument("--labels", type=int, help="this many labels instead of the committed run's (for tests)")
    parser.add_argument("--epochs", type=int, help="this many epochs instead of the committed run's (for tests)")
    args = parser.parse_args(argv)
    unknown = [f for f in args.figures if f not in FIGURES]
    if unknown or not (args.figures or args.list):
        parser.error(f"name figures of {', '.join(FIGURES)}" + (f" (not {', '.join(unknown)})" if unknown else ""))
    return args


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.list:
        print(listing())
    else:
        remake(args.figures, args)


if __name__ == "__main__":
    main()
