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
        curves.append(best_so_far([h["validation_error_y"] for h in history]))
    length = min(len(c) for c in curves)
    curves = [c[:length] for c in curves]
    return list(range(1, length + 1)), [statistics.mean(values) for values in zip(*curves, strict=True)], curves


def fit_power(epochs: list[int], errors: list[float]) -> dict:
    """Least squares of error = floor + scale * epoch^-k over the exponent grid (floor and scale
    solved exactly for each k; a rising fit, scale < 0, is not allowed)."""
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


def _epochs_text(epoch: float | None) -> str:
    if epoch is None:
        return "never (the fit levels off above the target)"
    if epoch > HORIZON:
        return f"beyond {HORIZON:,} epochs"
    return f"{math.ceil(epoch):,} epochs"


def _hours_text(epoch: float | None, projection: dict) -> str:
    """What a table row (3 seeds, 2 at a time as the 50-epoch row ran) of that length costs here."""
    if epoch is None or epoch > HORIZON:
        return "–"
    hardware = projection["hardware"]
    seeds = len(projection["seeds"])
    hours = math.ceil(epoch) * projection["seconds_per_epoch"] * seeds / hardware["jobs"] / 3600
    return f"{hours:,.0f} h"


def markdown(results: dict) -> str:
    hardware = mnist_runs.describe(results["projections"][0]["hardware"])
    lines = [
        "# MNIST at 100 labels: how long to pass Pyro's 6.81 %",
        "",
        f"Projected by `{results['command']}` at commit {results['commit']} from the committed validation curves "
        f"of the MNIST table's two best rows at N = 100 (results/mnist.md). Nothing here was trained for it: the "
        "runs' logs are read back. A run keeps the checkpoint of lowest validation error, so each seed's curve is "
        f"its best validation error so far, and the fits are of the mean over seeds, from epoch {FIRST_EPOCH} on. "
        "Two fits bracket the projection: a power law that levels off at a floor (error = floor + scale x "
        "epoch^-k) and a line in log(epoch), which never levels off and so is the optimistic one. The target is "
        "a test error and the curves are validation errors (10,000 held-out images): the table below gives "
        "both for the runs' chosen checkpoints.",
        "",
        "| row | epochs run | mean best validation error (%) | test error (%) | power law: floor, k | "
        f"epochs to {TARGET} (power law) | epochs to {TARGET} (log line) | hours for 3 seeds (power law / log line) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in results["projections"]:
        power = p["power"]
        hours = f"{_hours_text(p['power_epoch'], p)} / {_hours_text(p['log_line_epoch'], p)}"
        lines.append(
            f"| {p['name']} (`{p['spec']}`) | {p['epochs'][-1]} | {p['mean'][-1]:.2f} | "
            f"{mnist_runs.mean_sd(p['test_errors'], 2)} | {power['floor']:.2f}, {power['k']:.2f} | "
            f"{_epochs_text(p['power_epoch'])} | {_epochs_text(p['log_line_epoch'])} | {hours} |"
        )
    lines += [
        "",
        f"Hours are those of the 50-epoch rows' own machine and pace ({hardware}, the mean seconds per epoch "
        "of their runs), for a row of 3 seeds run 2 at a time.",
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
        "The curves fall in steps as seeds find a better checkpoint, and three seeds are few: the fits say how "
        "long to plan for, not what a longer run will reach. Public M2 runs at 100 labels kept improving for "
        "thousands of epochs (../shared/research/mnist-training.md: one went from 74.6 % accuracy at epoch 500 "
        "to 92.9 % at 3,000), which a floor fitted on 50 epochs cannot see.",
        "",
        "![validation curves and fits](mnist_projection.png)",
        "",
        "## The run that would settle it",
        "",
        "One command, resumable (run it again after a stop; finished runs are kept, a stopped one goes on from "
        "its last saved epoch, on a machine that keeps `runs/`):",
        "",
        "```",
        *[command for command in results["commands"]],
        "```",
        "",
    ]
    return "\n".join(lines)


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


def command(projection: dict) -> str:
    """The table's command for the row at the power law's projected length (the log line's if
    the power law never gets there)."""
    epoch = projection["power_epoch"] or projection["log_line_epoch"]
    epochs = min(math.ceil(epoch / 50) * 50, HORIZON) if epoch else HORIZON
    stem = Path(projection["spec"]).stem
    return (
        f".venv/bin/python bench/reproduce_mnist.py --spec {projection['spec']} --labels 100 --epochs {epochs} "
        f"--name {stem}-e{epochs} --jobs 2"
    )


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
        "commands": [command(p) for p in projections[:1]],
    }
    (out / "mnist_projection.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (out / "mnist_projection.md").write_text(markdown(results), encoding="utf-8")
    draw(results, out / "mnist_projection.png")


if __name__ == "__main__":
    main()
