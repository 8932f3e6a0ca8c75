"""The intrinsic-faces table: the paper's faces spec, the known-physics spec and the
supervised-only baseline trained on the generated faces (docs/faces.md) with a few or all
labels, several seeds each, each run's checkpoint chosen on validation (identity error, ties
broken by the light's RMSE) and the test split read once for it. Writes results/faces.json and
results/faces.md beside the paper's Yale B numbers, and three figures drawn from each spec's
best run at the middle label count.

    .venv/bin/python bench/faces_table.py --epochs 40 --jobs 2          # the table (hours on 2 CPU cores)
    .venv/bin/python bench/faces_table.py --epochs 40 --device cuda --jobs 4
    .venv/bin/python bench/faces_table.py --render                      # redraw faces.md from faces.json

A stopped table resumes: finished runs are read back from results/logs/, unfinished ones go on
from their last saved epoch. Labels are class-balanced over the 38 identities: 760 is 20 per
identity, 190 is 5, and 3800 is every training image (full supervision).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mnist_runs
from mnist_runs import ROOT

# name -> (spec, extra `gmdsl train` flags, what it is)
SETTINGS = {
    "faces": ("specs/faces.gm", [], "the paper's model: networks learn how the factors make the image"),
    "faces_physics": ("specs/faces_physics.gm", [], "Lambertian shading stated as known physics"),
    "supervised_only": (
        "specs/faces.gm",
        ["--supervised-only"],
        "faces.gm's recognition networks trained on the labelled images alone",
    ),
}
LABELS = (190, 760, 3800)  # 5 and 20 per identity, and every training image
FIGURE_LABELS = 760
# (identity error %, light error) from the paper (v1, section 3.2), on Yale B
PAPER = [
    ("Siddharth et al. 2017, full supervision", "4.2 ±0.84", "13.1 ±1.05"),
    ("Siddharth et al. 2017, 20 labels per axis", "10.2 ±2.31", "18.2 ±2.23"),
    ("Jampani et al. 2015 (read off their plots)", "about 30", "about 10"),
]


# what each dataset the table has run on is, in the page's words
DATASETS = {
    "faces": "Generated Lambertian faces, version 1 (`faces`, docs/faces.md)",
    "faces-hard": (
        "Generated Lambertian faces made about as hard as Yale B for a classifier (`faces-hard`: cast shadows, "
        "lights up to 90 degrees off the front, pixel noise, small pose shifts, identities three times as varied "
        "as version 1's; calibrated on validation so that the supervised-only classifier with every label errs "
        "on about the paper's 4.2 % of identities: docs/faces.md, results/faces_calibration/)"
    ),
}
# which runs read which test split, before the table now on the page
HISTORY = (
    "Version 1 of the generated faces (`faces`, generator seed 2017) had its test split read by the table's "
    "earlier versions (commits 936b949 to a1a402e), and the baseline's lead on it at 20 labels per identity "
    "prompted the re-tune of both generative specs (alpha = 100 and the light's scale in q, then chosen on "
    "validation) whose rerun, commit ff5bd75, is the version 1 table on this page. `faces-hard` is generated "
    "from seed 2027, which nothing used before: its calibration drew its own faces from seed 4242 and read "
    "validation only, so each run of a table on it reads its test split once."
)


def dataset_of(run: dict) -> str:
    """The dataset a run of the table trained on (runs from before it was recorded: version 1's faces)."""
    return run.get("dataset", "faces")


def run_name(dataset: str, setting: str, epochs: int, labels: int, seed: int) -> str:
    """faces-SETTING-...; a dataset other than the generated faces puts its own name first."""
    prefix = "faces" if dataset == "faces" else f"{Path(dataset).stem}-faces"
    return f"{prefix}-{setting}-e{epochs}-l{labels}-seed{seed}"


def train_and_evaluate(args, setting: str, labels: int, seed: int, logs: Path, threads: int) -> dict:
    name = run_name(args.dataset, setting, args.epochs, labels, seed)
    run_dir = ROOT / args.runs / name
    spec, flags, _ = SETTINGS[setting]
    if not mnist_runs.finished(logs, name, args.dataset, args.epochs, spec=spec):
        options = ["--dataset", args.dataset, "--labels", str(labels), "--seed", str(seed), "--label-seed", str(seed)]
        options += ["--device", args.device, "--directions", "light", *flags]
        evaluation = ["--samples", "10", "--rows", "500", "--device", args.device]
        mnist_runs.train_and_keep(spec, run_dir, args.epochs, options, logs, threads, evaluation)
    evaluation, metrics = mnist_runs.logged(logs, name)
    identity, light = evaluation["test_error_identity"], evaluation["test_angle_light"]
    print(f"{name}: identity error {identity:.2f}%, light {light:.1f} degrees", flush=True)
    measured = _disentanglement(setting, run_dir, logs / f"{name}.disentanglement.json")
    return {
        "name": name,
        "dataset": args.dataset,
        "setting": setting,
        "labels": labels,
        "seed": seed,
        "epochs": args.epochs,
        "identity_error": evaluation["test_error_identity"],
        "light_angle": evaluation["test_angle_light"],
        "light_cosine_distance": evaluation["test_cosine_distance_light"],
        "validation_identity_error": evaluation.get("validation_error_identity"),
        "validation_light_rmse": evaluation.get("validation_rmse_light"),
        "chosen_epoch": evaluation.get("epoch"),
        "train_seconds": sum(m["seconds"] for m in metrics),
        **({"disentanglement": measured} if measured else {}),
    }


def _disentanglement(setting: str, run_dir: Path, kept: Path) -> dict | None:
    """A generative run's disentanglement (bench/disentanglement.py) on the test split, measured
    once, with the checkpoint its evaluation used, and kept beside its eval.json; None for the
    baseline (no generator) and for a run read back whose weights are not on this machine."""
    from faces_figures import SPECS

    if setting not in SPECS:
        return None
    if not kept.exists():
        if not (run_dir / "checkpoint" / "latest.json").exists():
            return None
        import disentanglement

        from gmdsl.train import runs

        measured = disentanglement.measure(runs.open_run(run_dir, "cpu", "best"))
        kept.write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    return json.loads(kept.read_text(encoding="utf-8"))


def _labels_header(count: int) -> str:
    identities = 38
    return f"{count} labels ({count // identities} per identity)" if count % identities == 0 else f"{count} labels"


def _disentanglement_tables(runs: list[dict], labels: list[int]) -> list[str]:
    """The relighting and linear-probe tables (bench/disentanglement.py) of the runs measured."""
    measured = [r for r in runs if "disentanglement" in r]
    if not measured:
        return []

    def cells(show) -> list[str]:
        out = []
        for n in labels:
            chosen = [r["disentanglement"] for r in measured if r["setting"] == setting and r["labels"] == n]
            out.append(show(chosen) + f" ({len(chosen)} seed{'s' if len(chosen) > 1 else ''})" if chosen else "not run")
        return out

    def relit(chosen: list[dict]) -> str:
        kept = mnist_runs.mean_sd([d["relit_identity_kept"] for d in chosen], 1)
        return f"{kept} / {mnist_runs.mean_sd([d['relit_light_error'] for d in chosen], 1)}"

    def light_r2(scores: dict) -> float:
        return (scores["azimuth"] + scores["elevation"]) / 2

    def probed(chosen: list[dict]) -> str:
        own_identity = [d["probes"]["identity"]["identity"] for d in chosen]
        other_identity = [max(v["identity"] for k, v in d["probes"].items() if k != "identity") for d in chosen]
        own_light = [light_r2(d["probes"]["light"]) for d in chosen]
        other_light = [max(light_r2(v) for k, v in d["probes"].items() if k != "light") for d in chosen]
        return (
            f"{mnist_runs.mean_sd(own_identity, 1)} / {mnist_runs.mean_sd(other_identity, 1)}; "
            f"{mnist_runs.mean_sd(own_light, 2)} / {mnist_runs.mean_sd(other_light, 2)}"
        )

    header = ["| setting | " + " | ".join(_labels_header(n) for n in labels) + " |", "|---|" + "---|" * len(labels)]
    lines = [
        "",
        "Disentanglement (bench/disentanglement.py, test split). Relit: each test face's identity and latents "
        "inferred, drawn again by the model's generator under five lights from left to right, and inferred "
        "again; each cell: identity kept (%) / light error (mean angle, degrees) against the light set.",
        "",
        *header,
    ]
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in measured)]
    for setting in settings:
        lines.append(f"| `{setting}` | " + " | ".join(cells(relit)) + " |")
    lines += [
        "",
        "Linear probes: a least-squares map from one inferred variable to one true factor, fitted on half of "
        "the test faces and scored on the other half. Each cell: identity accuracy (%) from q's identity / "
        "from the best other variable; light R^2 (mean of azimuth and elevation) from q's light / from the "
        "best other variable. Disentangled: high, low; high, low.",
        "",
        *header,
    ]
    for setting in settings:
        lines.append(f"| `{setting}` | " + " | ".join(cells(probed)) + " |")
    return lines


def markdown(results: dict) -> str:
    dataset = results.get("dataset", "faces")
    runs = [r for r in results["runs"] if dataset_of(r) == dataset]
    labels = sorted({r["labels"] for r in runs}) or list(LABELS)
    lines = [
        "# Intrinsic faces: identity and light direction from few labels",
        "",
        f"{DATASETS.get(dataset, dataset)}, **not Yale B**: the paper's numbers are beside "
        "ours for orientation only. Each cell: identity error (%) / light-direction error (mean angle, "
        "degrees; the cosine distance 1 - cos is in faces.json), mean ± sd over seeds, on the test split, "
        "each run's checkpoint chosen on validation identity error, ties broken by the light's RMSE. "
        "Labels are class-balanced over the 38 identities, on the same images for both variables.",
        "",
        *_error_table(runs, labels),
    ]
    lines += _disentanglement_tables(runs, labels)
    lines += [
        "",
        'The paper, on Yale B (its light error is a "cosine angle distance" whose unit it does not state):',
        "",
        "| | identity error % | light error |",
        "|---|---|---|",
    ]
    lines += [f"| {who} | {identity} | {light} |" for who, identity, light in PAPER]
    earlier = [r for r in results["runs"] if dataset_of(r) != dataset]
    for other in sorted({dataset_of(r) for r in earlier}):
        theirs = [r for r in earlier if dataset_of(r) == other]
        their_labels = sorted({r["labels"] for r in theirs})
        lines += ["", f"## Superseded: {DATASETS.get(other, other)}", "", *_error_table(theirs, their_labels)]
        lines += _disentanglement_tables(theirs, their_labels)
    lines += ["", "## Which test split each number read", "", HISTORY]
    return "\n".join([*lines, *_made_and_figures(results, runs)])


def _error_table(runs: list[dict], labels: list[int]) -> list[str]:
    """A row per setting: identity error / light angle, mean ± sd over the seeds run."""
    lines = ["| setting | " + " | ".join(_labels_header(n) for n in labels) + " |", "|---|" + "---|" * len(labels)]
    for setting, (spec, _, what) in SETTINGS.items():
        cells = []
        for n in labels:
            chosen = [r for r in runs if r["setting"] == setting and r["labels"] == n]
            identity = mnist_runs.mean_sd([r["identity_error"] for r in chosen], 1) if chosen else ""
            light = mnist_runs.mean_sd([r["light_angle"] for r in chosen], 1) if chosen else ""
            seeds = f"{len(chosen)} seed" + ("s" if len(chosen) > 1 else "")
            cells.append(f"{identity} / {light} ({seeds})" if chosen else "not run")
        lines.append(f"| `{setting}` ({spec}; {what}) | " + " | ".join(cells) + " |")
    return lines


def _made_and_figures(results: dict, runs: list[dict]) -> list[str]:
    """How the table's runs were made, and its figures, drawn from them."""
    if not runs:
        return ["", "No runs yet: `.venv/bin/python bench/faces_table.py --epochs 40 --jobs 2`.", ""]
    hardware = mnist_runs.describe(results["hardware"])
    hours = sum(r["train_seconds"] for r in runs) / 3600
    lines = [
        "",
        f"Last made by `{results['command']}` at commit {results['commit']}; "
        f"{' or '.join(str(e) for e in sorted({r.get('epochs', results['epochs']) for r in runs}))} epochs per run, "
        f"on {hardware}; {hours:.1f} hours of training in all.",
        "",
    ]
    if not any(r["setting"] in ("faces", "faces_physics") for r in runs):
        return [*lines, "No figures yet: they are drawn from the generative specs' runs.", ""]
    return [
        *lines,
        f"Figures, from each spec's run with {results['figure_labels']} labels and the lowest validation "
        "identity error (ties: light RMSE):",
        "",
        "- [faces_relit.png](faces_relit.png): a test face relit from left to right, identity and latents "
        "inferred from it and the light direction set (the top row is the generator's truth"
        + (", shaded without cast shadows or noise" if results.get("dataset") == "faces-hard" else "")
        + ");",
        "- [faces_identities.png](faces_identities.png): identities 0-9 under a frontal light, latents at "
        "the prior's mean;",
        "- [faces_light.png](faces_light.png): inferred against true light azimuth and elevation on the test split.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--labels", type=int, nargs="+", default=list(LABELS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--dataset", default="faces", help="faces, or a generated set as .npz (for tests)")
    mnist_runs.add_run_options(parser, "results", "runs/faces", "faces.md from faces.json")
    args = parser.parse_args()
    out = ROOT / args.out
    if args.render:
        results = mnist_runs.saved_results(out / "faces.json", ".venv/bin/python bench/faces_table.py")
        (out / "faces.md").write_text(markdown(results), encoding="utf-8")
        return
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = mnist_runs.threads_per_run(args.jobs)
    jobs = [(s, n, seed) for s in args.only for n in args.labels for seed in range(args.seeds)]
    started = time.perf_counter()
    runs = mnist_runs.in_parallel(args.jobs, train_and_evaluate, [(args, *job, logs, threads) for job in jobs])
    # runs of earlier invocations (other settings or label counts) stay; a run trained again replaces its own
    path = out / "faces.json"
    earlier = json.loads(path.read_text())["runs"] if path.exists() else []
    names = {r["name"] for r in runs}
    runs = [r for r in earlier if r["name"] not in names] + runs
    results = {
        "dataset": args.dataset,
        "command": " ".join([".venv/bin/python", "bench/faces_table.py", *sys.argv[1:]]),
        "commit": mnist_runs.commit(),
        "epochs": args.epochs,
        "hardware": mnist_runs.hardware(args.jobs, threads),
        "wall_seconds": time.perf_counter() - started,
        "figure_labels": FIGURE_LABELS if FIGURE_LABELS in args.labels else min(args.labels),
        "runs": runs,
    }
    (out / "faces.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "faces.md").write_text(markdown(results), encoding="utf-8")
    from faces_figures import draw_figures

    drawn = {**results, "runs": [r for r in runs if dataset_of(r) == args.dataset]}
    draw_figures(drawn, out, ROOT / args.runs, args.dataset, results["figure_labels"])
    print(f"wrote {out / 'faces.md'}")


if __name__ == "__main__":
    main()
