"""How long the MNIST table's best recipes would have to train, at 100 labels, to pass Pyro's
6.81 % (issue #34 item 5), projected from the validation curves the committed runs logged.

A 50-epoch run of specs/mnist_aux.gm takes about two hours of one core, and runs do not outlive
a session on the machine the tables were made on, so the long run itself is left to a machine
that keeps its run folders (the command is on the page). What is measured here, from
results/logs/ alone:

- each seed's best validation error so far at every epoch (what a longer run would keep, since
  the checkpoint is chosen on validation), and their mean over seeds;
- two fits of that mean from epoch FIRST_EPOCH on: a power law that levels off at a floor
  (error = floor + scale * epoch^-k), and a straight line in log(epoch), which never levels off
  and so is the optimistic one;
- the epoch at which each fit reaches the target, and what so many epochs cost in hours;
- a back-test of the method: both fits made on epochs FIRST_EPOCH to BACKTEST_EPOCHS only,
  and their prediction for the last logged epoch set beside what the runs reached.

    .venv/bin/python bench/mnist_projection.py      # results/mnist_projection.{json,md,png}
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path

import mnist_runs
import numpy as np
from mnist_runs import ROOT

SETTINGS = ("mnist_aux-e50", "mnist_wide_enum-e50")  # the table's two best rows at N = 100
TARGET = 6.81  # Pyro's SS-VAE tutorial, best variant, test error % at N = 100
FIRST_EPOCH = 5  # the first epochs fall steeply as the classifier first fits its labels: not fitted
BACKTEST_EPOCHS = 30
EXPONENTS = np.geomspace(0.02, 3.0, 400)  # the power law's k, searched on this grid
HORIZON = 5000  # epochs past which a projection is reported as beyond reach


def best_so_far(errors: list[float]) -> list[float]:
    """The validation error of the checkpoint a run would keep after each epoch."""
    kept, best = [], math.inf
    for error in errors:
        best = min(best, error)
        kept.append(best)
    return kept


def mean_curve(logs: Path, setting: dict) -> tuple[list[int], list[float], list[list[float]]]:
    """Epochs, the seeds' mean best-so-far validation error, and each seed's, at N = 100."""
    curves = []
    for run in (r for r in setting["runs"] if r["labels"] == 100):
        history = [json.loads(line) for line in (logs / f"{run['name']}.metrics.jsonl").open()]
        assert [h["epoch"] for h in history] == list(range(1, len(history) + 1)), f"{run['name']}: epochs missing"
        curves.append(best_so_far([h["validation_error_y"] for h in history]))
    if len({len(c) for c in curves}) != 1:
        raise SystemExit(f"{setting['name']}: its runs logged different numbers of epochs; a mean needs them equal")
    return list(range(1, len(curves[0]) + 1)), [statistics.mean(v) for v in zip(*curves, strict=True)], curves


def steps_per_epoch(logs: Path, name: str) -> int:
    """A run's optimiser steps per epoch: its training examples over the unlabelled rows of a batch
    (the rest of each batch is drawn from the labelled ones; gmdsl/train/loop.py `batches`)."""
    config = json.loads((logs / f"{name}.config.json").read_text())
    found = re.search(r"\((\d+) examples", (logs / f"{name}.log").read_text())
    assert found, f"{name}.log does not say how many examples the run trained on"
    fresh = config["batch_size"] - round(config["batch_size"] * config["label_fraction"])
    return math.ceil(int(found.group(1)) / fresh)


def fit_power(epochs: list[int], errors: list[float]) -> dict:
    """Least squares of error = floor + scale * epoch^-k over the exponent grid (floor and scale
    solved exactly for each k; a rising fit, scale < 0, is not allowed). `at_grid_edge` says the
    best k is the grid's first or last, where the fit may be the grid's limit rather than the curve's."""
    t, y = np.asarray(epochs, dtype=float), np.asarray(errors, dtype=float)
    best: dict = {}
    for k in EXPONENTS:
        design = np.stack([np.ones_like(t), t**-k], axis=1)
        (floor, scale), *_ = np.linalg.lstsq(design, y, rcond=None)
        if scale < 0:
            continue
        residual = float(np.sum((design @ np.array([floor, scale]) - y) ** 2))
        if not best or residual < best["residual"]:
            best = {"floor": float(floor), "scale": float(scale), "k": float(k), "residual": residual}
    if not best:
        raise SystemExit("no falling power law fits this curve (it does not fall): nothing to project")
    best["at_grid_edge"] = best["k"] in (float(EXPONENTS[0]), float(EXPONENTS[-1]))
    return best


def fit_log_line(epochs: list[int], errors: list[float]) -> dict:
    """Least squares of error = intercept - slope * ln(epoch)."""
    design = np.stack([np.ones(len(epochs)), -np.log(np.asarray(epochs, dtype=float))], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, np.asarray(errors, dtype=float), rcond=None)
    return {"intercept": float(intercept), "slope": float(slope)}


def power_at(fit: dict, epoch: float) -> float:
    return fit["floor"] + fit["scale"] * epoch ** -fit["k"]


def log_line_at(fit: dict, epoch: float) -> float:
    return fit["intercept"] - fit["slope"] * math.log(epoch)


def power_epoch(fit: dict, target: float) -> float | None:
    """The epoch at which the power law reaches `target`; None if its floor is at or above it."""
    if fit["floor"] >= target or fit["scale"] <= 0:
        return None
    return (fit["scale"] / (target - fit["floor"])) ** (1 / fit["k"])


def log_line_epoch(fit: dict, target: float) -> float | None:
    if fit["slope"] <= 0:
        return None
    return math.exp((fit["intercept"] - target) / fit["slope"])


def project(logs: Path, setting: dict) -> dict:
    epochs, mean, seeds = mean_curve(logs, setting)
    fitted = [(e, m) for e, m in zip(epochs, mean, strict=True) if e >= FIRST_EPOCH]
    early = [(e, m) for e, m in fitted if e <= BACKTEST_EPOCHS]
    power, line = fit_power(*zip(*fitted, strict=True)), fit_log_line(*zip(*fitted, strict=True))
    early_power, early_line = fit_power(*zip(*early, strict=True)), fit_log_line(*zip(*early, strict=True))
    runs = [r for r in setting["runs"] if r["labels"] == 100]
    seconds = statistics.mean(r["seconds_per_epoch"] for r in runs)
    return {
        "name": setting["name"],
        "spec": setting["spec"],
        "epochs": epochs,
        "mean": mean,
        "seeds": seeds,
        "test_errors": [r["test_error"] for r in runs],
        "seconds_per_epoch": seconds,
        "steps_per_epoch": steps_per_epoch(logs, runs[0]["name"]),
        "hardware": setting["hardware"],
        "power": power,
        "log_line": line,
        "power_epoch": power_epoch(power, TARGET),
        "log_line_epoch": log_line_epoch(line, TARGET),
        "backtest": {
            "epoch": epochs[-1],
            "reached": mean[-1],
            "power": power_at(early_power, epochs[-1]),
            "log_line": log_line_at(early_line, epochs[-1]),
        },
    }


def _epochs_text(epoch: float | None, never: str) -> str:
    if epoch is None:
        return f"never ({never})"
    if epoch > HORIZON:
        return f"beyond {HORIZON:,} epochs"
    return f"{math.ceil(epoch):,} epochs"


def hours(epochs: float | None, projection: dict) -> float | None:
    """The wall-clock hours of a row of that many epochs run as the logged row ran: its seeds
    `jobs` at a time, each run one thread at the row's mean seconds per epoch, so a round of
    runs takes the time of one run, and 3 seeds 2 at a time take 2 rounds."""
    if epochs is None or epochs > HORIZON:
        return None
    rounds = math.ceil(len(projection["seeds"]) / projection["hardware"]["jobs"])
    return math.ceil(epochs) * projection["seconds_per_epoch"] * rounds / 3600


def _hours_text(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} h"


def markdown(results: dict) -> str:
    hardware = mnist_runs.describe(results["projections"][0]["hardware"])
    lines = [
        "# MNIST at 100 labels: how long to pass Pyro's 6.81 %",
        "",
        f"Projected by `{results['command']}` at commit {results['commit']} from the committed validation curves "
        f"of the MNIST table's two best rows at N = 100 (results/mnist.md). Nothing here was trained for it: the "
        "runs' logs are read back. A run keeps the checkpoint of lowest validation error, so each seed's curve is "
        f"its best validation error so far, and the fits are of the mean over seeds, from epoch {FIRST_EPOCH} on: "
        "a power law that levels off at a floor (error = floor + scale x epoch^-k) and a line in log(epoch), which "
        "never levels off. The target is a test error and the curves are validation errors (10,000 held-out "
        "images): the table gives both for the runs' chosen checkpoints.",
        "",
        "| row | epochs run | mean best validation error (%) | test error (%) | power law: floor, k | "
        f"epochs to {TARGET} (power law) | epochs to {TARGET} (log line) | hours for the row (power law / log line) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in results["projections"]:
        power = p["power"]
        cost = f"{_hours_text(hours(p['power_epoch'], p))} / {_hours_text(hours(p['log_line_epoch'], p))}"
        lines.append(
            f"| {p['name']} (`{p['spec']}`) | {p['epochs'][-1]} | {p['mean'][-1]:.2f} | "
            f"{mnist_runs.mean_sd(p['test_errors'], 2)} | {power['floor']:.2f}, {power['k']:.2f} | "
            f"{_epochs_text(p['power_epoch'], 'the fitted floor is above the target')} | "
            f"{_epochs_text(p['log_line_epoch'], 'the line does not fall')} | {cost} |"
        )
    first = results["projections"][0]
    jobs, seeds = first["hardware"]["jobs"], len(first["seeds"])
    lines += [
        "",
        f"Hours are wall-clock hours on the rows' own machine ({hardware}) at their runs' mean seconds per "
        f"epoch, for a row of {seeds} seeds run {jobs} at a time ({math.ceil(seeds / jobs)} rounds of runs).",
        "",
        "## How far to trust it: the same fits made on fewer epochs",
        "",
        f"Both fits made on epochs {FIRST_EPOCH} to {BACKTEST_EPOCHS} only, and what they predicted for the last "
        "logged epoch:",
        "",
        "| row | epoch | reached (%) | power law predicted (%) | log line predicted (%) |",
        "|---|---|---|---|---|",
    ]
    for p in results["projections"]:
        b = p["backtest"]
        lines.append(f"| {p['name']} | {b['epoch']} | {b['reached']:.2f} | {b['power']:.2f} | {b['log_line']:.2f} |")
    lines += [
        "",
        f"{_backtest_sentence(results['projections'])} The back-test extrapolates from epoch {BACKTEST_EPOCHS} to "
        f"{first['epochs'][-1]}; {_reach_sentence(results['projections'])} The fits say "
        "how long to plan for, not what a longer run will reach. Public M2 runs at 100 labels kept improving far "
        "longer (jonemeth/generative-models, ssl-vae/logs/sslvae_1layer_mnist_0100: 74.6 % test accuracy after "
        f"50,000 steps, 92.9 % after 300,000), which a floor fitted on {first['epochs'][-1]} epochs cannot see; "
        f"an epoch here is {first['steps_per_epoch']:,} steps.",
        "",
        "![validation curves and fits](mnist_projection.png)",
        "",
        "## The run that would settle it",
        "",
        f"{results['plan']['epochs']} epochs of `{first['spec']}` (the power law's crossing, rounded up to 50), "
        f"about {_hours_text(results['plan']['hours'])} on the machine above; one command, resumable (run it "
        "again after a stop: finished runs are kept, a stopped one goes on from its last saved epoch, on a machine "
        "that keeps `runs/`):",
        "",
        "```",
        results["plan"]["command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _backtest_sentence(projections: list[dict]) -> str:
    """Which way each fit missed in the back-test, row by row."""
    parts = []
    for fit, name in (("power", "the power law"), ("log_line", "the log line")):
        misses = [
            f"too {'high' if p['backtest'][fit] > p['backtest']['reached'] else 'low'} for {p['name']}"
            for p in projections
        ]
        parts.append(f"{name} predicted " + " and ".join(misses))
    return "In the back-test " + "; ".join(parts) + "."


def _reach_sentence(projections: list[dict]) -> str:
    """How far past the logged epochs the power law's crossings lie, and how far half a point of
    error in the fit moves the first row's."""
    reach = [p["power_epoch"] / p["epochs"][-1] for p in projections if p["power_epoch"]]
    first = projections[0]
    early, late = (power_epoch({**first["power"], "floor": first["power"]["floor"] + d}, TARGET) for d in (-0.5, 0.5))
    return (
        f"the power law's crossings lie {min(reach):.1f} to {max(reach):.1f} times past the last logged epoch, "
        f"and for {first['name']} a floor half a point lower or higher would move its crossing to "
        f"{_epochs_text(early, 'no crossing')} or {_epochs_text(late, 'no crossing')}."
    )


def draw(results: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    ax = figure.subplots()
    for colour, p in enumerate(results["projections"]):
        for seed in p["seeds"]:
            ax.plot(p["epochs"], seed, color=f"C{colour}", linewidth=0.6, alpha=0.5)
        ax.plot(p["epochs"], p["mean"], color=f"C{colour}", linewidth=2, label=f"{p['name']}: mean of seeds")
        reach = max(e for e in (p["power_epoch"], p["log_line_epoch"], 500) if e is not None and e <= HORIZON)
        future = np.geomspace(FIRST_EPOCH, reach * 1.2, 200)
        ax.plot(future, [power_at(p["power"], e) for e in future], color=f"C{colour}", linestyle="--", linewidth=1)
        ax.plot(future, [log_line_at(p["log_line"], e) for e in future], color=f"C{colour}", linestyle=":", linewidth=1)
    ax.axhline(TARGET, color="black", linewidth=0.8, label=f"Pyro SS-VAE, {TARGET}")
    ax.set(xscale="log", xlabel="epoch", ylabel="best validation error so far % (N = 100)", ylim=(0, 25))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("MNIST, 100 labels: logged curves, power-law fit (dashed) and log-line fit (dotted)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120, metadata={"Software": "gmdsl"})


def plan(projection: dict) -> dict:
    """The table's row at the power law's crossing (the log line's if the power law never
    crosses), rounded up to 50 epochs: its command and its hours."""
    epoch = projection["power_epoch"] or projection["log_line_epoch"]
    epochs = min(math.ceil(epoch / 50) * 50, HORIZON) if epoch else HORIZON
    stem = Path(projection["spec"]).stem
    command = (
        f".venv/bin/python bench/reproduce_mnist.py --spec {projection['spec']} --labels 100 --epochs {epochs} "
        f"--name {stem}-e{epochs} --jobs {projection['hardware']['jobs']}"
    )
    return {"epochs": epochs, "hours": hours(epochs, projection), "command": command}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results", help="where mnist.json and logs/ are, and the page goes")
    args = parser.parse_args()
    out = ROOT / args.out
    table = mnist_runs.saved_results(out / "mnist.json", ".venv/bin/python bench/reproduce_mnist.py")
    by_name = {s["name"]: s for s in table["settings"]}
    projections = [project(out / "logs", by_name[name]) for name in SETTINGS]
    results = {
        "command": ".venv/bin/python bench/mnist_projection.py",
        "commit": mnist_runs.commit(),
        "target": TARGET,
        "projections": projections,
        "plan": plan(projections[0]),
    }
    (out / "mnist_projection.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "mnist_projection.md").write_text(markdown(results), encoding="utf-8")
    draw(results, out / "mnist_projection.png")


if __name__ == "__main__":
    main()
