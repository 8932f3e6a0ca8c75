"""Screen training recipes on MNIST (or another dataset a recipe file's specs train on) with few
labels, on validation error only: each recipe of bench/screens.toml (a spec and the `gmdsl train`
settings it changes) trains a short run, and
results/screens/README.md ranks them by their best validation error. The test set is never
read here: the long runs of bench/reproduce_mnist.py then use the recipe that wins.

    .venv/bin/python bench/screen_mnist.py                        # every recipe, N = 100, 10 epochs
    .venv/bin/python bench/screen_mnist.py --only baseline enum --jobs 2
    .venv/bin/python bench/screen_mnist.py --recipes bench/screens_fashion.toml --dataset fashion-mnist \
        --title Fashion-MNIST --table ../fashion.md --out results/screens/fashion --runs runs/screens-fashion \
        --epochs 20

A stopped screen resumes: run the same command again (finished runs are kept, unfinished ones
go on from their last epoch). Each run's log, metrics and config are kept under
results/screens/logs/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import mnist_runs

from gmdsl.train.settings import tomllib  # the standard library's, or tomli before Python 3.11

ROOT = mnist_runs.ROOT


def load_recipes(path: Path) -> dict[str, dict]:
    """{name: {spec, about, config}} from the recipes file."""
    recipes = tomllib.loads(path.read_text(encoding="utf-8"))
    for name, recipe in recipes.items():
        unknown = set(recipe) - {"spec", "about", "config"}
        if "spec" not in recipe or unknown:
            sys.exit(f"{path}: recipe [{name}] needs a spec (and may have about, config); it has {sorted(recipe)}")
    return recipes


def toml_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return json.dumps(value) if isinstance(value, str) else str(value)


def screen(name: str, seed: int, recipe: dict, args, logs: Path, threads: int) -> dict:
    """Train one recipe with one seed (resuming a stopped run); its record from the metrics."""
    run_name = f"{name}-n{args.labels}-seed{seed}"
    run_dir = ROOT / args.runs / run_name
    config = logs / f"{run_name}.recipe.toml"
    settings = {**recipe.get("config", {}), "labels": args.labels, "seed": seed, "label_seed": seed}
    if args.dataset:
        settings["dataset"] = args.dataset
    config.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in settings.items()), encoding="utf-8")
    started = time.perf_counter()
    options = ["--config", str(config), "--device", args.device]
    mnist_runs.train(recipe["spec"], run_dir, args.epochs, options, logs / f"{run_name}.log", threads)
    for file in ("metrics.jsonl", "config.json"):
        shutil.copy(run_dir / file, logs / f"{run_name}.{file}")
    history = mnist_runs.metrics(run_dir)
    best = min(history, key=lambda r: r["validation_error_y"])
    print(f"{run_name}: best validation error {best['validation_error_y']:.2f}% at epoch {best['epoch']}", flush=True)
    return {
        "run": run_name,
        "seed": seed,
        "best_validation_error": best["validation_error_y"],
        "best_epoch": best["epoch"],
        "last_validation_error": history[-1]["validation_error_y"],
        "epochs": len(history),
        "seconds_per_epoch": statistics.mean(r["seconds"] for r in history),
        "wall_seconds": time.perf_counter() - started,
    }


def markdown(results: dict) -> str:
    def mean_best(recipe: dict) -> float:
        return statistics.mean(run["best_validation_error"] for run in recipe["runs"])

    rows = sorted(results["recipes"].values(), key=mean_best)
    lines = [
        "| recipe | spec | settings | epochs | best validation error % (epoch) | last epoch's | s / epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        settings = ", ".join(f"{k} = {toml_value(v)}" for k, v in r["config"].items()) or "defaults"
        best = "; ".join(f"{s['best_validation_error']:.2f} ({s['best_epoch']})" for s in r["runs"])
        last = "; ".join(f"{s['last_validation_error']:.2f}" for s in r["runs"])
        per_epoch = statistics.mean(s["seconds_per_epoch"] for s in r["runs"])
        epochs = r["runs"][0]["epochs"]
        lines.append(
            f"| **{r['name']}**: {r['about'].replace('|', chr(92) + '|')} | `{r['spec']}` | {settings} | {epochs} "
            f"| {best} | {last} | {per_epoch:.0f} |"
        )
    commands: dict[str, list[str]] = {}
    for r in rows:
        hardware = r["hardware"]
        where = f"`{r['command']}` at commit {r['commit']}; {mnist_runs.describe(hardware)}, torch {hardware['torch']}"
        commands.setdefault(where, []).append(r["name"])
    how = "\n".join(f"- {', '.join(names)}: {where}" for where, names in commands.items())
    title, table = results.get("title", "MNIST"), results.get("table", "../mnist.md")
    recipes_file = results.get("recipes_file", "bench/screens.toml")
    return f"""# Recipe screens: {title}, N = {results["labels"]} labels, validation error

Short runs that choose the recipe of the long runs in [{table.rsplit("/", 1)[-1]}]({table}). Every number is
a validation error (10,000 training images held out, never trained on); the test set is not read.
Each recipe is a spec plus the `gmdsl train` settings it changes (`{recipes_file}`), ranked by
its best validation error over the run's epochs (the mean over seeds where there are several; one
number per seed in the cells). Logs, per-epoch metrics and configs are in `logs/`. Seconds per
epoch include the validation pass and are only indicative: the screens shared the machine with
other work at times (bench/performance.py measures speed alone).

{chr(10).join(lines)}

How each was run:

{how}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default="bench/screens.toml")
    parser.add_argument("--only", nargs="+", help="screen only these recipes (the others' rows stay)")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--dataset", help="train every recipe on this dataset (default: gmdsl train's, MNIST)")
    parser.add_argument("--threads", type=int, help="threads per run (default: the cores shared among --jobs)")
    parser.add_argument("--title", default="MNIST", help="the dataset's name in the page's heading")
    parser.add_argument("--table", default="../mnist.md", help="the results page the screen chooses for")
    mnist_runs.add_run_options(parser, "results/screens", "runs/screens", "README.md from screens.json")
    args = parser.parse_args()
    out = ROOT / args.out
    if args.render:
        (out / "README.md").write_text(markdown(json.loads((out / "screens.json").read_text())), encoding="utf-8")
        return
    recipes = load_recipes(ROOT / args.recipes)
    chosen = args.only or list(recipes)
    missing = [name for name in chosen if name not in recipes]
    if missing:
        sys.exit(f"no recipe {', '.join(missing)} in {args.recipes}; it has {', '.join(recipes)}")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = args.threads or mnist_runs.threads_per_run(args.jobs)
    jobs = [(name, seed) for name in chosen for seed in args.seeds]
    calls = [(*job, recipes[job[0]], args, logs, threads) for job in jobs]
    finished = dict(zip(jobs, mnist_runs.in_parallel(args.jobs, screen, calls), strict=True))
    path = out / "screens.json"
    results = json.loads(path.read_text()) if path.exists() else {"labels": args.labels, "recipes": {}}
    results.update(title=args.title, table=args.table, recipes_file=args.recipes)
    if results["labels"] != args.labels:
        sys.exit(f"{path} screens N = {results['labels']}; give another --out for N = {args.labels}")
    how = {
        "command": " ".join([".venv/bin/python", "bench/screen_mnist.py", *sys.argv[1:]]),
        "commit": mnist_runs.commit(),
        "hardware": mnist_runs.hardware(args.jobs, threads),
    }
    for name in chosen:
        recipe = recipes[name]
        results["recipes"][name] = {
            "name": name,
            "spec": recipe["spec"],
            "about": recipe.get("about", ""),
            "config": recipe.get("config", {}),
            "runs": [finished[(name, seed)] for seed in args.seeds],
            **how,
        }
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(markdown(results), encoding="utf-8")
    print(f"wrote {out / 'README.md'} and {path}")


if __name__ == "__main__":
    main()
