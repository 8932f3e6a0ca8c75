"""The benchmark's hand-written model computes the same objective as the compiled spec, so
bench/step_time.py compares like with like (the timing itself is not a test)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
# The benchmarks give each run os.cpu_count() // --jobs threads; with --jobs 2 their runs here
# compute on one thread each, as the test workers do (tests/conftest.py), and do not wait on
# threads that share a core with the other worker.
JOBS = ["--jobs", "2"]

import step_time  # noqa: E402 - bench/ is a folder of scripts, importable once on the path


@pytest.mark.parametrize("spec", ["mnist", "mnist_enum", "mnist_wide"])
def test_hand_written_mnist_matches_the_compiled_spec(spec: str) -> None:
    compiled, hand = step_time.twin_models(samples=3, spec=spec)
    batch = step_time.batch_of(16, torch.Generator().manual_seed(0))
    step_time.assert_same_objective(compiled, hand, batch, samples=3)


def test_the_mnist_table_has_a_row_per_setting_beside_the_references() -> None:
    import reproduce_mnist

    def setting(name: str, errors: dict[int, list[float]]) -> dict:
        runs = [
            {
                "name": f"{name}-n{n}-seed{s}",
                "labels": n,
                "seed": s,
                "test_error": e,
                "seconds_per_epoch": 10.0,
                "wall_seconds": 60.0,
            }
            for n, values in errors.items()
            for s, e in enumerate(values)
        ]
        return {
            "name": name,
            "spec": f"specs/{name}.gm",
            "epochs": 7,
            "lr_schedule": "cosine",
            "command": "cmd",
            "commit": "abc1234",
            "hardware": {"machine": "x86_64", "cpus": 2, "jobs": 2, "threads_per_job": 1, "cuda": None, "torch": "2"},
            "summary": reproduce_mnist.summarise(runs),
            "runs": runs,
        }

    text = reproduce_mnist.markdown(
        {
            "settings": [
                setting("a", {100: [10.0, 12.0], 3000: [2.0]}),
                setting("b", {600: [5.0, 5.0, 5.0]}),
                {**setting("c", {100: [30.0]}), "supervised_only": True},
            ],
            "style_grid": None,
        }
    )
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert rows == [
        "| [a](#a): `specs/a.gm`, 7 epochs, cosine learning rate | **11.00** (±1.41, 2 seeds) | not run | not run "
        "| 2.00 (1 seed) |",
        "| [b](#b): `specs/b.gm`, 7 epochs, cosine learning rate | not run | **5.00** (±0.00, 3 seeds) | not run "
        "| not run |",
        "| [c](#c): `specs/c.gm`, 7 epochs, cosine learning rate, supervised-only baseline (its classifier on the "
        "labelled examples alone) | 30.00 (1 seed) | not run | not run | not run |",
    ]
    assert '| Siddharth et al. 2017, "Ours" | 9.71 (±0.91) | 3.84 (±0.86) \\* |' in text
    assert "### b\n\n- command: `cmd` at commit abc1234" in text
    assert "2 runs at once, 1 thread each" in text and "3 min of run time in all (train and eval)" in text


def test_the_style_grid_shows_the_best_semi_supervised_run_on_validation(tmp_path: Path, monkeypatch) -> None:
    """A setting redraws the style x class grid only when its best run (fewest labels, then
    lowest validation error) beats the run the grid shows; a supervised-only baseline, whose
    decoder is untrained, never does, however low its error."""
    import reproduce_mnist

    drawn: list[str] = []
    monkeypatch.setattr(reproduce_mnist.subprocess, "run", lambda command, **_: drawn.append(Path(command[2]).name))
    monkeypatch.setattr(reproduce_mnist.shutil, "copy", lambda *_: None)

    def record(name: str, errors: list[tuple[int, float]], **extra) -> dict:
        runs = [
            {"name": f"{name}-n{n}-seed{s}", "labels": n, "validation_error": e, "test_error": e + 1}
            for s, (n, e) in enumerate(errors)
        ]
        for run in runs:
            (tmp_path / run["name"]).mkdir()
        return {"name": name, "runs": runs, **extra}

    results: dict = {"settings": [], "style_grid": None}

    def add(setting: dict) -> None:
        results["settings"].append(setting)
        reproduce_mnist.draw_style_grid(results, setting, tmp_path, tmp_path, reproduce_mnist.TABLES["mnist"])

    add(record("first", [(100, 20.0), (100, 18.0), (1000, 5.0)]))
    add(record("worse", [(100, 19.0), (1000, 1.0)]))
    add(record("baseline", [(100, 2.0)], supervised_only=True))
    assert drawn == ["first-n100-seed1"] and results["style_grid"]["run"] == "first-n100-seed1"
    add(record("better", [(100, 17.0)]))
    assert drawn[-1] == "better-n100-seed0" and results["style_grid"] == {
        "run": "better-n100-seed0",
        "labels": 100,
        "test_error": 18.0,
    }


def test_a_stopped_table_resumes_and_a_finished_one_is_not_rerun(tmp_path: Path) -> None:
    """bench/reproduce_mnist.py on tiny data: a run stopped after its first epoch (no eval yet)
    goes on from that epoch, a finished run is read back rather than trained again, and the
    N = 100 curves are drawn from the kept logs."""
    import subprocess

    from tiny_data import make_tiny_mnist

    make_tiny_mnist(tmp_path / "cache" / "mnist")
    env = dict(os.environ, GMDSL_DATA=str(tmp_path / "cache"))
    base = [sys.executable, "bench/reproduce_mnist.py", "--spec", "specs/mnist_one_sample.gm", "--labels", "100"]
    base += ["--seeds", "1", "--device", "cpu", "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    base += ["--name", "tiny", *JOBS]

    def table(epochs: int) -> str:
        result = subprocess.run([*base, "--epochs", str(epochs)], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        return (tmp_path / "out" / "logs" / "tiny-n100-seed0.log").read_text()

    table(1)
    (tmp_path / "out" / "logs" / "tiny-n100-seed0.eval.json").unlink()  # as if stopped before its evaluation
    log = table(2)
    assert "--resume" in log and "epochs 2..2" in log
    commands = log.count("$ ")
    assert table(2).count("$ ") == commands  # finished: nothing runs again
    record = json.loads((tmp_path / "out" / "mnist.json").read_text())["settings"][0]
    assert record["selection"] == "validation" and record["runs"][0]["chosen_epoch"] in (1, 2)
    assert (tmp_path / "out" / "mnist_curves.png").read_bytes().startswith(b"\x89PNG")


def test_the_faces_table_trains_evaluates_and_draws_on_small_generated_faces(tmp_path: Path) -> None:
    """bench/faces_table.py end to end on 114 generated faces, one epoch per run: the table has
    its rows (a setting not run says so), the test numbers come from each run's eval.json, and
    the figures are drawn; run again, it reads the finished runs back instead of training."""
    import subprocess

    import numpy as np

    from gmdsl.data import faces

    data = tmp_path / "faces.npz"
    np.savez_compressed(data, **faces.generate(train_per_identity=3, test_per_identity=1, seed=3))
    command = [sys.executable, "bench/faces_table.py", "--dataset", str(data), "--labels", "38", "--seeds", "1"]
    command += ["--epochs", "1", "--only", "faces_physics", "supervised_only", *JOBS]
    command += ["--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "faces.md").read_text()
    assert "| setting | 38 labels (1 per identity) |" in table
    assert "| `faces` (specs/faces.gm;" in table and table.count("not run") == 1
    results = json.loads((tmp_path / "out" / "faces.json").read_text())
    for run in results["runs"]:
        evaluation = json.loads((tmp_path / "out" / "logs" / f"{run['name']}.eval.json").read_text())
        assert run["identity_error"] == evaluation["test_error_identity"]
        assert run["light_angle"] == evaluation["test_angle_light"]
    for figure in ("faces_relit.png", "faces_identities.png", "faces_light.png"):
        assert (tmp_path / "out" / figure).stat().st_size > 1000
    # the generative run's disentanglement is measured once and shown; the baseline has no generator
    (measured,) = [run["disentanglement"] for run in results["runs"] if "disentanglement" in run]
    assert measured["relit_faces"] == 38 and 0 <= measured["relit_identity_kept"] <= 100
    assert set(measured["probes"]) == {"identity", "light", "shape", "reflectance"}
    assert (
        "| `faces_physics` | " in table.split("Linear probes")[1]
        and "supervised_only` |" not in table.split("Relit")[1]
    )
    logs = {log: log.read_text() for log in (tmp_path / "out" / "logs").glob("*.log")}
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert logs and all(log.read_text() == text for log, text in logs.items())  # nothing trained again


def test_the_faces_page_tables_its_dataset_and_sets_earlier_datasets_apart() -> None:
    import faces_table

    def run(dataset: str | None, setting: str, identity: float) -> dict:
        tagged = {"dataset": dataset} if dataset else {}  # runs from before the field: version 1's faces
        common = {"labels": 190, "seed": 0, "light_angle": 2.0, "epochs": 100}
        hours = 0.1 if dataset else 1.0
        return {**tagged, "setting": setting, "identity_error": identity, "train_seconds": 3600 * hours, **common}

    results = {
        "dataset": "faces-hard",
        "command": "python bench/faces_table.py --dataset faces-hard",
        "commit": "abc1234",
        "epochs": 100,
        "hardware": {"machine": "x86_64", "cpus": 2, "jobs": 1, "threads_per_job": 2, "cuda": None},
        "figure_labels": 190,
        "runs": [run("faces-hard", "supervised_only", 30.0), run(None, "supervised_only", 76.0)],
    }
    page = faces_table.markdown(results)
    main, superseded = page.split("## Superseded: ")
    assert "`faces-hard`: cast shadows" in main and "30.0 / 2.0 (1 seed)" in main and "76.0" not in main
    assert superseded.startswith("Generated Lambertian faces, version 1") and "76.0 / 2.0 (1 seed)" in superseded
    assert "## Which test split each number read" in superseded
    assert "0.1 hours of training" in page and "1.1 hours" not in page  # the faces-hard run's alone


def test_the_multi_mnist_table_puts_each_setting_beside_the_paper(monkeypatch) -> None:
    import multi_mnist_table

    rows = {"specs/multi_mnist_digits.gm": (1000, 0.1), "specs/multi_mnist_boxes.gm": (1000, 0.5)}
    monkeypatch.setattr(multi_mnist_table, "DIGITS_ROWS", rows)

    def run(labels: int, rate: float, seed: int, error: float) -> dict:
        return {"labels": labels, "rate": rate, "seed": seed, "count_error": error, "train_seconds": 3600.0}

    def digits(labels: int, rate: float, seed: int, error: float, digit_error: float, spec: str) -> dict:
        extra = {"box_rmse": 0.05} if spec == "multi_mnist_boxes" else {}
        return {**run(labels, rate, seed, error), "spec": spec, "digit_error": digit_error, **extra}

    results = {
        "command": "python bench/multi_mnist_table.py --epochs 20",
        "commit": "abc1234",
        "epochs": 20,
        "hardware": {"machine": "x86_64", "cpus": 2, "jobs": 1, "threads_per_job": 2, "cuda": None},
        "runs": [
            run(500, 0.1, 0, 5.0),
            run(500, 0.1, 1, 7.0),
            {**run(0, 0.0, 1, 3.0), "spec": "multi_mnist_unsupervised", "epochs": 15},
            {**run(0, 0.0, 0, 40.0), "spec": "multi_mnist_unsupervised", "epochs": 15},
            {**run(0, 0.0, 2, 100.0), "epochs": 15},  # the L = 0 row's old spec: counted, not in its row
            digits(1000, 0.1, 0, 3.0, 9.0, "multi_mnist_digits"),
            digits(1000, 0.5, 0, 2.0, 4.0, "multi_mnist_boxes"),
            digits(1000, 0.5, 1, 4.0, 6.0, "multi_mnist_boxes"),
            digits(1000, 0.1, 2, 50.0, 50.0, "multi_mnist_boxes"),  # not at its row's rate: not in the row
        ],
    }
    lines = multi_mnist_table.markdown(results).splitlines()
    # the digits-labelled runs apart, a row per spec
    assert "| specs/multi_mnist_digits.gm | 1000 | 0.1 | 3.00 (1 seed) | 9.00 (1 seed) | – |" in lines
    boxes = "| specs/multi_mnist_boxes.gm | 1000 | 0.5 | 3.00 ±1.41 (2 seeds) | 5.00 ±1.41 (2 seeds) |"
    assert boxes + " 0.050 ±0.000 (2 seeds) |" in lines
    assert "| 1000 | 0.1 | 2.98 ±0.93 | not run |" in lines
    rows["specs/multi_mnist_boxes.gm"] = (500, 0.5)  # a row with no runs at its setting yet
    assert "| specs/multi_mnist_boxes.gm | 500 | 0.5 | not run | not run | not run |" in (
        multi_mnist_table.markdown(results).splitlines()
    )
    assert "| 500 | 0.1 | 4.21 ±1.29 | 6.00 ±1.41 (2 seeds) |" in lines
    assert "| 0 | 0 | 32.25 ±12.97 | 21.50 ±26.16 (2 seeds: 40.00, 3.00) |" in lines  # each seed's too
    assert "| 1000 | 0.01 | 4.72 ±1.60 | not run |" in lines
    assert any("9.0 hours of training" in line for line in lines)
    assert any("15 epochs per unlabelled run, 20 epochs per labelled run" in line for line in lines)
    assert "Of the 9 runs on this page, 9 read version 2's (evaluated before runs recorded a fingerprint)." in lines


def test_a_multi_mnist_table_run_for_some_rows_keeps_the_others_and_drops_superseded_runs(
    tmp_path: Path, monkeypatch
) -> None:
    import multi_mnist_table

    rows = {"specs/multi_mnist_digits.gm": (1000, 0.1), "specs/multi_mnist_boxes.gm": (1000, 0.1)}
    monkeypatch.setattr(multi_mnist_table, "DIGITS_ROWS", rows)

    def run(name: str, spec: str, labels: int, rate: float, **more) -> dict:
        return {"name": name, "spec": spec, "labels": labels, "rate": rate, "seed": 0, **more}

    earlier = [
        run("old-l0", "multi_mnist", 0, 0.0),  # the L = 0 row has a spec of its own now
        run("l500", "multi_mnist", 500, 0.1),
        run("boxes", "multi_mnist_boxes", 1000, 0.1),
        run("boxes-r0.5", "multi_mnist_boxes", 1000, 0.5),  # a digits row at another rate than its row's now
        run("new-l0-e15", "multi_mnist_unsupervised", 0, 0.0, count_error=50.0),
    ]
    (tmp_path / "multi_mnist.json").write_text(json.dumps({"runs": earlier}))
    again = run("new-l0-e20", "multi_mnist_unsupervised", 0, 0.0, count_error=3.0)  # the same row and seed, longer
    runs = multi_mnist_table._with_earlier(tmp_path / "multi_mnist.json", [again])
    assert [r["name"] for r in runs] == ["l500", "boxes", "new-l0-e20"]


def test_a_kept_run_without_validation_keeps_its_last_epochs_evaluation(tmp_path: Path) -> None:
    """A run that held out no validation (multi-MNIST at L = 0) has eval-last.json only; the
    spec a run trained is kept beside its logs, where it has one (not one trained from a model.py)."""
    import mnist_runs

    for name, evaluation in (("chose", "eval-best.json"), ("last", "eval-last.json")):
        run_dir = tmp_path / "runs" / name
        run_dir.mkdir(parents=True)
        for file in ("metrics.jsonl", "config.json", "labelled.json"):
            (run_dir / file).write_text("{}")
        if name == "chose":
            (run_dir / "spec.gm").write_text("model chose\n")
        (run_dir / evaluation).write_text(json.dumps({"checkpoint": evaluation[5:-5]}))
        mnist_runs.keep(run_dir, tmp_path)
        assert json.loads((tmp_path / f"{name}.eval.json").read_text())["checkpoint"] == evaluation[5:-5]
    assert (tmp_path / "chose.spec.gm").read_text() == "model chose\n" and not (tmp_path / "last.spec.gm").exists()


def test_a_run_evaluated_on_an_older_version_of_a_generated_set_is_not_finished(tmp_path: Path) -> None:
    """A rebuilt generated set keeps its name, so a table that passes the data's fingerprint
    trains again the runs whose evaluation read other data (or recorded none)."""
    import mnist_runs

    fresh, stale = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    for name, recorded in (("fresh", fresh), ("stale", stale), ("unrecorded", None)):
        (tmp_path / f"{name}.config.json").write_text(json.dumps({"epochs": 10, "dataset": "multi-mnist"}))
        evaluation = {"test_error_count": 1.0} | ({"test_data": recorded} if recorded else {})
        (tmp_path / f"{name}.eval.json").write_text(json.dumps(evaluation))
    finished = {
        n: mnist_runs.finished(tmp_path, n, "multi-mnist", 10, test_data=fresh)
        for n in ("fresh", "stale", "unrecorded")
    }
    assert finished == {"fresh": True, "stale": False, "unrecorded": False}
    assert mnist_runs.finished(tmp_path, "stale", "multi-mnist", 10)  # without a fingerprint: epochs and name only
    other = {n: mnist_runs.evaluated_on_other_data(tmp_path, n, fresh) for n in ("fresh", "stale", "unrecorded", "new")}
    assert other == {"fresh": False, "stale": True, "unrecorded": True, "new": False}
    assert not mnist_runs.finished(tmp_path, "fresh", "multi-mnist", 20, test_data=fresh)


def test_a_run_of_a_spec_changed_since_is_neither_finished_nor_resumed(tmp_path: Path, monkeypatch) -> None:
    """A spec edited in place keeps its name, so a table checks the copy each run kept: a kept
    run of the older text is trained again, from scratch, and runs kept before tables kept a
    copy are taken as they are."""
    import mnist_runs

    monkeypatch.setattr(mnist_runs, "ROOT", tmp_path)
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "m.gm").write_text("model m  # now\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, kept in (("same", "model m  # now\n"), ("older", "model m  # before\n"), ("uncopied", None)):
        (logs / f"{name}.config.json").write_text(json.dumps({"epochs": 10, "dataset": "mnist"}))
        (logs / f"{name}.eval.json").write_text("{}")
        if kept is not None:
            (logs / f"{name}.spec.gm").write_text(kept)
    finished = {n: mnist_runs.finished(logs, n, "mnist", 10, spec="specs/m.gm") for n in ("same", "older", "uncopied")}
    assert finished == {"same": True, "older": False, "uncopied": True}

    commands: list[list[str]] = []
    monkeypatch.setattr(mnist_runs, "run", lambda command, log, threads: commands.append(command))
    monkeypatch.setattr(mnist_runs, "table_select", lambda spec: "y")
    for name, kept in (("same", "model m  # now\n"), ("older", "model m  # before\n")):
        run_dir = tmp_path / "runs" / name
        (run_dir / "checkpoint").mkdir(parents=True)
        (run_dir / "checkpoint" / "latest.json").write_text("{}")
        (run_dir / "spec.gm").write_text(kept)
        mnist_runs.train("specs/m.gm", run_dir, 10, ["--labels", "100"], logs / f"{name}.log", 1)
    assert "--resume" in commands[0]
    assert "--resume" not in commands[1] and commands[1][2] == "specs/m.gm"  # afresh, its old folder gone
    assert not (tmp_path / "runs" / "older").exists()


def test_the_multi_mnist_page_says_which_test_split_each_run_read() -> None:
    import multi_mnist_table

    fresh, stale = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    data = {"settings": {"generator_version": 3, "seed": 2017, "test_seed": 2028}, "fingerprint": fresh}
    runs = [{"test_data": fresh}, {"test_data": fresh}, {"test_data": None}, {"test_data": stale}, {}]
    sentence = multi_mnist_table.test_split_sentence({"runs": runs, "data": data})
    assert sentence == (
        "Of the 5 runs on this page, 2 read version 3's (test seed 2028, fingerprint sha256:aaaaaaaaaaaa...); "
        "2 read version 2's (evaluated before runs recorded a fingerprint); "
        "1 read other data (a fingerprint other than the table's)."
    )


def test_a_row_chosen_on_a_small_validation_set_is_set_beside_the_same_row_chosen_on_the_large_one() -> None:
    """mnist.md says, at each N both rows have, how far the row whose recipe sets `validation`
    is from the same spec, epochs and schedule chosen on the default validation set."""
    import reproduce_mnist

    def setting(name: str, errors: list[float], recipe: dict) -> dict:
        runs = [{"labels": 100, "seed": s, "test_error": e} for s, e in enumerate(errors)]
        common = {"spec": "specs/m.gm", "epochs": 50, "lr_schedule": "constant", "selection": "validation"}
        return {"name": name, **common, "recipe": recipe, "summary": reproduce_mnist.summarise(runs), "runs": runs}

    large = {**setting("m-e50", [8.0, 10.0, 9.0], {}), "supervised_only": None}  # as older records have it
    small = {**setting("m-e50-val100", [10.0, 14.0, 12.0], {"validation": 100}), "supervised_only": False}
    other = {**setting("m-e30", [1.0], {}), "epochs": 30}  # not the same setting: not compared
    note = reproduce_mnist._validation_size_note({"settings": [large, small, other]})
    assert note.count("\n") == 1 and "At N = 100, `m-e50-val100` (checkpoint chosen on 100 validation images)" in note
    assert "12.00 ± 2.00 % test error over 3 seeds, against 9.00 ± 1.00 % for `m-e50`" in note
    assert "+3.00 points, and a seed-to-seed sd 2.0 times the other's" in note
    assert reproduce_mnist._validation_size_note({"settings": [large, other]}) == ""


def test_each_row_is_set_beside_its_specs_supervised_only_baseline_against_the_seed_spread() -> None:
    """A table with a baseline row says, at each N, whether the same spec trained on the unlabelled
    images too beats it by more than the larger seed-to-seed sd, falls within it, or loses."""
    import reproduce_mnist

    def setting(name: str, errors: dict[int, list[float]], **extra) -> dict:
        runs = [{"labels": n, "seed": s, "test_error": e} for n, es in errors.items() for s, e in enumerate(es)]
        common = {"spec": "specs/f.gm", "epochs": 30, "lr_schedule": "constant", "selection": "validation"}
        return {"name": name, **common, "recipe": {}, **extra, "summary": reproduce_mnist.summarise(runs)}

    model = setting("f-e30", {100: [31.0, 33.0], 1000: [17.0, 18.0], 3000: [10.0, 10.0]}, supervised_only=None)
    baseline = setting("f-e3-so", {100: [30.0, 31.0], 1000: [20.0, 21.0], 3000: [9.0, 9.0]}, supervised_only=True)
    other_spec = setting("g-e30", {100: [1.0]}, spec="specs/g.gm")  # another spec: not compared
    small_validation = setting("f-val100", {100: [1.0]}, recipe={"validation": 100})  # not this comparison
    note = reproduce_mnist._baseline_note({"settings": [model, baseline, other_spec, small_validation]})
    lines = note.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("- At N = 100, `f-e30` has 32.00 ± 1.41 % test error against 30.50 ± 0.71 %")
    assert "+1.50 points, the larger sd 1.41; the baseline is better by more than the seed spread" in lines[0]
    assert "-3.00 points" in lines[1] and "the unlabelled images help by more than the seed spread" in lines[1]
    assert "+1.00 points, the larger sd 0.00; the baseline is better" in lines[2]
    assert reproduce_mnist._baseline_note({"settings": [model, other_spec]}) == ""
    tied = setting("f-e30", {100: [30.0, 32.0]})
    assert "within the seed spread" in reproduce_mnist._baseline_note({"settings": [tied, baseline]})
    one_seed = setting("f-e30", {100: [20.0]})  # sd 0: a gap would always look wider than it
    assert "one seed on a side: no spread" in reproduce_mnist._baseline_note({"settings": [one_seed, baseline]})


def test_a_linear_probe_finds_a_factor_a_variable_carries_and_not_one_it_lacks() -> None:
    """bench/disentanglement.py's probe, on made-up variables: R^2 near 1 for a variable that is
    a linear function of the factor, near 0 or below for noise; identity accuracy 100 % where
    the classes are linearly separable."""
    import disentanglement
    import numpy as np

    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(400, generator=generator)
    carries = torch.stack([2 * factor + 1, -factor], dim=1) + 0.01 * torch.randn(400, 2, generator=generator)
    noise = torch.randn(400, 5, generator=generator)
    assert disentanglement._probe(carries, factor, None) > 0.99
    assert disentanglement._probe(noise, factor, None) < 0.05
    classes = torch.arange(400) % 4
    assert disentanglement._probe(torch.nn.functional.one_hot(classes, 4).float(), classes, 4) == 100.0
    assert disentanglement._probe(noise, classes, 4) < 50.0
    light = torch.tensor(np.stack([disentanglement.direction(a, e) for a, e in ((30.0, 10.0), (-45.0, -20.0))]))
    assert torch.allclose(disentanglement.azimuth(light), torch.tensor([30.0, -45.0], dtype=light.dtype))
    assert torch.allclose(disentanglement.elevation(light), torch.tensor([10.0, -20.0], dtype=light.dtype))


def test_the_faces_calibration_trains_each_spread_on_validation_only_and_resumes(tmp_path: Path) -> None:
    """bench/faces_calibration.py on small hard faces (6 per identity), one epoch: a row for the
    spread with its best validation identity error, the knobs it held fixed, and no test error
    anywhere; run again, it reads the finished run back instead of training."""
    import subprocess

    command = [sys.executable, "bench/faces_calibration.py", "--spreads", "0.5", "--epochs", "1", "--per-identity", "6"]
    command += ["--device", "cpu", "--out", str(tmp_path / "out"), "--runs", str(tmp_path / "runs")]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    page = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "| 0.5 | " in page and "shadows = True" in page
    logs = tmp_path / "out" / "logs"
    assert not list(logs.glob("*.eval.json")) and "test_error" not in "".join(p.read_text() for p in logs.iterdir())
    before = {p: p.read_text() for p in logs.glob("*.log")}
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and before and all(p.read_text() == text for p, text in before.items())


def test_the_projection_fits_recover_known_curves_and_the_epoch_they_reach_a_target() -> None:
    """Closed-form oracles: a curve drawn from a power law with a floor, or from a line in
    log(epoch), is fitted back, and the epoch each reaches 6.81 at is the one solved by hand."""
    import math

    import mnist_projection

    epochs = list(range(5, 51))
    power = [3.9 + 40.0 * e**-0.41 for e in epochs]
    fit = mnist_projection.fit_power(epochs, power)
    assert abs(fit["floor"] - 3.9) < 0.1 and abs(fit["k"] - 0.41) < 0.01  # k is searched on a grid
    by_hand = (40.0 / (6.81 - 3.9)) ** (1 / 0.41)
    assert abs(mnist_projection.power_epoch(fit, 6.81) / by_hand - 1) < 0.05
    assert mnist_projection.power_epoch({**fit, "floor": 7.0}, 6.81) is None  # levels off above the target

    line = [20.0 - 3.0 * math.log(e) for e in epochs]
    fitted = mnist_projection.fit_log_line(epochs, line)
    assert abs(fitted["intercept"] - 20.0) < 1e-9 and abs(fitted["slope"] - 3.0) < 1e-9
    assert abs(mnist_projection.log_line_epoch(fitted, 6.81) - math.exp((20.0 - 6.81) / 3.0)) < 1e-6
    assert mnist_projection.best_so_far([9.0, 7.0, 8.0, 6.0]) == [9.0, 7.0, 7.0, 6.0]


def test_the_projection_page_is_made_from_the_committed_logs_with_its_back_test_and_plan() -> None:
    """The committed page is what the script makes of the committed logs (but for the commit it
    names), and the planned row's hours are its rounds of runs at the logged pace."""
    import re

    import mnist_projection

    table = json.loads((ROOT / "results" / "mnist.json").read_text())
    setting = next(s for s in table["settings"] if s["name"] == mnist_projection.SETTINGS[0])
    projection = mnist_projection.project(ROOT / "results" / "logs", setting)
    assert len(projection["seeds"]) == 3 and projection["epochs"][-1] == setting["epochs"]
    assert projection["steps_per_epoch"] == 782  # 50,000 images, 64 unlabelled per batch of 128
    plan = mnist_projection.plan(projection)
    assert plan["epochs"] % 50 == 0 and plan["epochs"] >= projection["power_epoch"] > plan["epochs"] - 50
    assert f"--epochs {plan['epochs']} --name mnist_aux-e{plan['epochs']} --jobs 2" in plan["command"]
    # 3 seeds, 2 at a time, one thread each: two rounds of runs
    assert plan["hours"] == pytest.approx(plan["epochs"] * projection["seconds_per_epoch"] * 2 / 3600)
    committed = json.loads((ROOT / "results" / "mnist_projection.json").read_text())
    made = {"command": committed["command"], "commit": committed["commit"], "target": mnist_projection.TARGET}
    made["projections"] = [
        mnist_projection.project(ROOT / "results" / "logs", next(s for s in table["settings"] if s["name"] == name))
        for name in mnist_projection.SETTINGS
    ]
    made["plan"] = mnist_projection.plan(made["projections"][0])
    page = (ROOT / "results" / "mnist_projection.md").read_text()
    assert mnist_projection.markdown(json.loads(json.dumps(made))) == page
    assert re.search(rf"\| {setting['name']} \(`{setting['spec']}`\) \| 50 \| {projection['mean'][-1]:.2f} \|", page)


@pytest.mark.parametrize(
    ("script", "flags", "made_by"),
    [
        ("faces_table.py", ["--render"], "faces_table.py"),
        ("multi_mnist_table.py", ["--render"], "multi_mnist_table.py"),
        ("mnist_projection.py", [], "reproduce_mnist.py"),
    ],
)
def test_a_page_without_its_results_file_says_what_makes_one(
    tmp_path: Path, script: str, flags: list[str], made_by: str
) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *flags, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"does not exist: it is written by `.venv/bin/python bench/{made_by}`; run that first" in done.stderr


def test_the_performance_page_names_each_sections_machine_when_they_differ() -> None:
    """Sections re-measured on another machine keep the page honest: one machine, one sentence;
    several, each with its sections and its own sgemm rate."""
    import performance

    def machine(cpu: str, rate: float) -> dict:
        return {
            "cpu": cpu,
            "cores": 2,
            "threads": 2,
            "torch": "2",
            "python": "3.11",
            "cuda": None,
            "sgemm_gflops": rate,
            "date": "d",
        }

    intel, amd = machine("Intel Xeon", 303.0), machine("AMD EPYC", 120.0)
    alone = performance._machines({"machine": intel, "measured_on": {"steps": intel, "compile": intel}})
    assert alone.startswith("last on d: Intel Xeon, 2 cores") and "**303 GFLOP/s**" in alone
    mixed = performance._machines({"machine": amd, "measured_on": {"steps": amd, "compile": intel, "profile": amd}})
    assert "steps, profile on AMD EPYC, 2 cores" in mixed and "(sgemm 120 GFLOP/s, on d)" in mixed
    assert "compile on Intel Xeon, 2 cores" in mixed and "(sgemm 303 GFLOP/s, on d)" in mixed
    # one machine for every section, another recorded last (say by `--sections machine`): the sections' is named
    assert "Intel Xeon" in performance._machines({"machine": amd, "measured_on": {"steps": intel}})

    # a report from before sections recorded their machine: each was measured on the machine it names
    report = {"machine": intel, "steps": [], "compile": []}
    performance.record_earlier_machine(report)
    assert report["measured_on"] == {"steps": intel, "compile": intel}


def test_a_pages_commit_is_flagged_when_the_code_had_uncommitted_changes(tmp_path: Path, monkeypatch) -> None:
    """Results pages say "at commit X": X alone only when the code folders match X; a change to
    them, or a new file there, not yet committed is said; other folders (results, logs) are not code."""
    import subprocess

    import mnist_runs

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "table.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    monkeypatch.setattr(mnist_runs, "ROOT", tmp_path)
    monkeypatch.setattr(mnist_runs, "STARTED_AT", None)
    clean = mnist_runs.commit()
    assert len(clean) >= 7 and " " not in clean
    (tmp_path / "results" / "screens").mkdir(parents=True)
    (tmp_path / "results" / "page.md").write_text("a result\n")
    (tmp_path / "results" / "screens" / "run.log").write_text("a log\n")
    assert mnist_runs.commit() == clean
    (tmp_path / "results" / "screens" / "tried.gm").write_text("model tried\n")  # a screen's spec is code
    assert mnist_runs.commit() == f"{clean} with uncommitted changes"
    (tmp_path / "results" / "screens" / "tried.gm").unlink()
    (tmp_path / "bench" / "new.py").write_text("y = 2\n")
    assert mnist_runs.commit() == f"{clean} with uncommitted changes"
    (tmp_path / "bench" / "new.py").unlink()
    (tmp_path / "bench" / "table.py").write_text("x = 2\n")
    assert mnist_runs.commit() == f"{clean} with uncommitted changes"
    # a table that started at the clean commit and ends after a change says both
    monkeypatch.setattr(mnist_runs, "STARTED_AT", clean)
    assert mnist_runs.commit() == f"{clean} with uncommitted changes (started at {clean})"
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "second")
    later = mnist_runs.commit()
    assert later != clean and later.endswith(f" (started at {clean})")


def test_a_multi_mnist_table_asked_for_no_row_it_has_says_which_it_has(tmp_path: Path) -> None:
    import subprocess

    TEXT = {"capture_output": True, "text": True, "timeout": 120}

    command = [sys.executable, "bench/multi_mnist_table.py", "--out", str(tmp_path)]
    result = subprocess.run([*command, "--labels", "0", "--specs", "specs/multi_mnist.gm"], cwd=ROOT, **TEXT)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no row of the table has the L and spec asked for; its rows are " in result.stderr
    assert (
        "specs/multi_mnist.gm at L = 500, " in result.stderr and "multi_mnist_unsupervised.gm at L = 0" in result.stderr
    )
    result = subprocess.run([*command, "--specs", "specs/multi_mnist_boxes.gm", "./specs/typo.gm"], cwd=ROOT, **TEXT)
    assert result.returncode == 2 and "invalid choice: './specs/typo.gm'" in result.stderr  # not silently dropped
