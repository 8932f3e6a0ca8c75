"""What `make demo` reached, written where the README shows it: the last step of `make demo`.

    .venv/bin/python bench/demo_summary.py runs/mnist-demo

It reads the demo's run (its per-epoch validation errors, the test numbers of `gmdsl eval`, the
recipe and the time), keeps the run's small files and pictures in results/runs/mnist-demo/ (the
committed source of every number the README quotes about the demo), rewrites the block between
the README's `<!-- demo:start` and `<!-- demo:end -->` lines, and prints the same text, with
what the full recipe reaches (from results/mnist.json) and the command for it. So the README's
demo numbers are always the last `make demo`'s: a clone that runs it sees its own numbers there.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import shutil
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
KEPT = ("config.json", "metrics.csv", "eval-best.json", "curves.png", "spec.gm")
# the long run of the same recipe in results/mnist.json, and how it was chosen
FULL = "mnist_wide_enum-e50"


def processor() -> str:
    """The CPU's model name (what lscpu calls it), or the machine kind where it cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def summary(run: Path, results: Path) -> str:
    config = json.loads((run / "config.json").read_text())
    evaluation = json.loads((run / "eval-best.json").read_text())
    with open(run / "metrics.csv", newline="") as handle:
        epochs = list(csv.DictReader(handle))
    spec = re.search(r"^model (\w+)", (run / "spec.gm").read_text(), flags=re.M)
    full = next(s for s in json.loads((results / "mnist.json").read_text())["settings"] if s["name"] == FULL)
    at_100 = full["summary"]["100"]
    seconds = sum(float(row["seconds"]) for row in epochs)
    errors = " | ".join(f"{float(row['validation_error_y']):.2f}" for row in epochs)
    device = torch.cuda.get_device_name(0) if config["device"] != "cpu" and torch.cuda.is_available() else None
    hardware = device or f"{processor()}, {torch.get_num_threads()} threads"
    trained = f"{len(epochs)} epoch{'s' if len(epochs) != 1 else ''}"
    return f"""`make demo` trains the MNIST table's recipe, `specs/{spec.group(1) if spec else "?"}.gm` (chosen on
validation by the screens, [results/screens/README.md](results/screens/README.md)), with
{config["labels"]} labels for {trained} instead of the table's {full["epochs"]}: {seconds:.0f} s of training on
{hardware}, torch {torch.__version__}.

| epoch | {" | ".join(row["epoch"] for row in epochs)} |
|---|{"---|" * len(epochs)}
| validation error % | {errors} |

`gmdsl eval` takes the epoch chosen on validation (epoch {evaluation["epoch"]}) and reads the test set
once: **{evaluation["test_error_y"]:.2f} % test error**, test ELBO {evaluation["test_elbo"]:.2f} nats. The full
recipe, {full["epochs"]} epochs over 3 seeds, reaches {at_100["mean"]:.2f} ±{at_100["std"]:.2f} % at 100 labels
([results/mnist.md](results/mnist.md)); this is its command (hours on a CPU):
`{full["command"]}`.
The run and its pictures are in `{run}`; a copy of its records is in
[results/runs/mnist-demo/](results/runs/mnist-demo/config.json). Another CPU can round
differently and reach other numbers with the same seed.
"""


def keep(run: Path, kept: Path) -> None:
    """The run's records and pictures, replacing the last demo's, and demo.json: the totals the
    summary quotes (training time, hardware)."""
    shutil.rmtree(kept, ignore_errors=True)
    (kept / "figures").mkdir(parents=True)
    for name in KEPT:
        shutil.copy(run / name, kept / name)
    for picture in (run / "figures").glob("*.png"):
        shutil.copy(picture, kept / "figures" / picture.name)
    with open(run / "metrics.csv", newline="") as handle:
        seconds = sum(float(row["seconds"]) for row in csv.DictReader(handle))
    record = {"training_seconds": round(seconds), "processor": processor(), "threads": torch.get_num_threads()}
    (kept / "demo.json").write_text(json.dumps({**record, "torch": torch.__version__}, indent=2) + "\n")


def write_into(readme: Path, text: str) -> None:
    page = readme.read_text(encoding="utf-8")
    block = re.compile(r"(<!-- demo:start[^\n]*-->\n).*?(<!-- demo:end -->)", flags=re.S)
    if not block.search(page):
        raise SystemExit(f"{readme} has no `<!-- demo:start ... -->` ... `<!-- demo:end -->` block to write into")
    readme.write_text(block.sub(lambda m: m.group(1) + text + m.group(2), page), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the demo's run directory")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--keep", type=Path, default=ROOT / "results" / "runs" / "mnist-demo")
    parser.add_argument("--results", type=Path, default=ROOT / "results", help="where mnist.json is")
    args = parser.parse_args()
    text = summary(args.run, args.results)
    keep(args.run, args.keep)
    write_into(args.readme, text)
    print(text, end="")


if __name__ == "__main__":
    main()
