"""A user's own partially labelled data, end to end from the command line: missing labels
(-1, NaN, a mask field), --labels and --validation on top of them, runs that find their data
from any folder and refuse changed data, predictions, and `gmdsl.open_run`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from own_data import POSITION_SPEC, write_points
from safetensors.torch import load_file

import gmdsl

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--epochs", "2", "--batch-size", "32", "--no-progress"]


def _indices(run: Path, name: str) -> list[int]:
    return json.loads((run / f"{name}.json").read_text())["indices"]


@pytest.mark.parametrize("missing", [0.0, 0.7, 1.0], ids=["all-labelled", "some-missing", "none-labelled"])
def test_a_file_with_missing_class_labels_trains_evaluates_and_predicts(gmdsl_cli, tmp_path: Path, missing) -> None:
    data = write_points(tmp_path, missing)
    run = tmp_path / "run"
    code, out, err = gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), "--run", str(run), *FAST)
    assert code == 0, err
    labels = np.load(data)["y_train"]
    given = set(np.nonzero(labels >= 0)[0].tolist())
    validation, labelled = _indices(run, "validation"), _indices(run, "labelled")
    best = json.loads((run / "checkpoint" / "best.json").read_text())
    if given:
        # validation comes from the labelled examples, and by default training keeps every other label
        assert set(validation) <= given and set(labelled) == given - set(validation)
        assert len(validation) == len(given) // 6 and "validation error y" in out
        counts = np.bincount(labels[validation], minlength=3)
        assert counts.max() - counts.min() <= 1  # stratified over the classes
        assert best["metric"] == "validation_error_y" and "validation_elbo" in best["tie_breakers"]
    else:
        # nothing labelled: validation is a random sixth, and the checkpoint is chosen by the ELBO
        assert labelled == [] and len(validation) == 240 // 6 and "validation error" not in out
        assert best["metric"] == "validation_elbo"
    code, out, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "20")
    assert code == 0, err
    results = json.loads((run / "eval-best.json").read_text())
    assert 0 <= results["test_error_y"] <= 100 and results["chosen_by"].startswith(f"chosen by {best['metric']}")
    code, out, err = gmdsl_cli("predict", str(run), "-o", str(tmp_path / "predicted.csv"))
    assert code == 0, err
    with open(tmp_path / "predicted.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 300 and set(rows[0]) == {"split", "y", "y_p0", "y_p1", "y_p2"}
    assert {row["split"] for row in rows} == {"train", "test"}
    assert all(abs(sum(float(row[f"y_p{k}"]) for k in range(3)) - 1) < 1e-4 for row in rows)


def test_labels_can_only_hide_labels_the_data_gives(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.7)
    spec = str(tmp_path / "points.gm")
    given = int((np.load(data)["y_train"] >= 0).sum())
    run = tmp_path / "run"
    assert gmdsl_cli("train", spec, "--dataset", str(data), "--labels", "12", "--run", str(run), *FAST)[0] == 0
    labelled = _indices(run, "labelled")
    classes = np.load(data)["y_train"][labelled]
    assert len(labelled) == 12 and (classes >= 0).all() and np.bincount(classes).tolist() == [4, 4, 4]
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(data), "--labels", "500", *FAST)
    assert code == 1 and "--labels 500 asks for more labelled training examples" in err
    assert "can only hide labels the data gives" in err and "Traceback" not in err
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(data), "--validation", str(given), *FAST)
    assert code == 1 and f"cannot hold out {given} examples for validation" in err and "--validation" in err


def test_a_label_mask_field_hides_whatever_lies_under_it(gmdsl_cli, tmp_path: Path) -> None:
    """`y_observed` False marks a missing label: scrambling the values under it changes no weight."""
    data = write_points(tmp_path, 0.0)
    arrays = dict(np.load(data))
    mask = np.random.default_rng(5).random(240) < 0.3
    weights = []
    for name, labels in (("honest", arrays["y_train"]), ("scrambled", np.where(mask, arrays["y_train"], 2))):
        np.savez(tmp_path / f"{name}.npz", **{**arrays, "y_train": labels, "y_observed_train": mask})
        run = tmp_path / name
        flags = ["--dataset", str(tmp_path / f"{name}.npz"), "--run", str(run), *FAST]
        assert gmdsl_cli("train", str(tmp_path / "points.gm"), *flags)[0] == 0
        assert set(_indices(run, "labelled")) | set(_indices(run, "validation")) == set(np.nonzero(mask)[0].tolist())
        weights.append(load_file(run / "checkpoint" / "epoch-0002.safetensors"))
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


@pytest.mark.parametrize("missing", [0.0, 0.6, 1.0], ids=["all-labelled", "some-missing", "none-labelled"])
def test_a_real_label_missing_as_nan(gmdsl_cli, tmp_path: Path, missing: float) -> None:
    data = write_points(tmp_path, 0.0)
    arrays = dict(np.load(data))
    position = {split: arrays[f"x_{split}"][:, :2].copy() for split in ("train", "test")}
    position["train"][np.random.default_rng(1).random(240) < missing] = np.nan
    np.savez(
        data, x_train=arrays["x_train"], y_train=position["train"], x_test=arrays["x_test"], y_test=position["test"]
    )
    (tmp_path / "position.gm").write_text(POSITION_SPEC)
    run = tmp_path / "run"
    code, out, err = gmdsl_cli("train", str(tmp_path / "position.gm"), "--dataset", str(data), "--run", str(run), *FAST)
    assert code == 0, err
    given = set(np.nonzero(~np.isnan(position["train"][:, 0]))[0].tolist())
    assert set(_indices(run, "labelled")) | set(_indices(run, "validation")) == (
        given or set(_indices(run, "validation"))
    )
    assert set(_indices(run, "labelled")) <= given
    assert ("validation rmse y" in out) == bool(given)
    assert gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "10")[0] == 0
    results = json.loads((run / "eval-best.json").read_text())
    assert "test_rmse_y" in results and "test_angle_y" not in results  # a position is no direction
    position["train"][0, 0] = np.nan
    position["train"][0, 1] = 1.0
    np.savez(
        data, x_train=arrays["x_train"], y_train=position["train"], x_test=arrays["x_test"], y_test=position["test"]
    )
    code, _, err = gmdsl_cli("train", str(tmp_path / "position.gm"), "--dataset", str(data), *FAST)
    assert code == 1 and "NaN in some but not all values of 1 example(s) (the first is row 0)" in err


def test_a_run_finds_its_data_from_any_folder_and_refuses_changed_data(gmdsl_cli, tmp_path: Path, monkeypatch) -> None:
    write_points(tmp_path / "project", 0.7)
    monkeypatch.chdir(tmp_path / "project")
    assert gmdsl_cli("train", "points.gm", "--dataset", "points.npz", "--run", "runs/first", *FAST)[0] == 0
    config = json.loads(Path("runs/first/config.json").read_text())
    assert config["dataset"] == str(tmp_path / "project" / "points.npz")  # where it is, not as typed
    monkeypatch.chdir(tmp_path)
    Path("points.npz").write_bytes(b"another file of the same name")  # what eval used to read by mistake
    run = "project/runs/first"
    code, out, err = gmdsl_cli("eval", run, "--samples", "2", "--rows", "10")
    assert code == 0, err
    assert json.loads(Path(run, "eval-best.json").read_text())["test_error_y"] <= 100
    # resumed from another folder too
    assert gmdsl_cli("train", "--resume", run, "--epochs", "3", "--no-progress")[0] == 0
    # the data changes: eval, show, predict and resume refuse, and say how to point at the right data
    original = (tmp_path / "project" / "points.npz").read_bytes()
    evaluated = Path(run, "eval-best.json").read_text()
    arrays = dict(np.load(tmp_path / "project" / "points.npz"))
    arrays["y_test"] = (arrays["y_test"] + 1) % 3
    np.savez(tmp_path / "project" / "points.npz", **arrays)
    for command in (["eval", run], ["show", run], ["predict", run, "-o", "p.csv"], ["train", "--resume", run]):
        code, _, err = gmdsl_cli(*command, *(["--epochs", "4"] if command[0] == "train" else []))
        assert code == 1 and "is not what project/runs/first was trained on" in err, command
        assert "--dataset PATH" in err and "Traceback" not in err
    assert Path(run, "eval-best.json").read_text() == evaluated  # a refused eval writes nothing
    # the original data, moved under another name: pointed at, it is accepted
    (tmp_path / "moved.npz").write_bytes(original)
    code, _, err = gmdsl_cli("eval", run, "--samples", "2", "--rows", "10", "--dataset", "moved.npz")
    assert code == 0, err


def test_open_run_gives_the_trained_model_its_settings_and_its_splits(gmdsl_cli, tmp_path: Path) -> None:
    import gmdsl

    data = write_points(tmp_path, 0.7)
    run_dir = tmp_path / "run"
    assert gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), "--run", str(run_dir), *FAST)[0] == 0
    run = gmdsl.open_run(run_dir)
    assert isinstance(run, gmdsl.Run) and not run.model.training and run.checkpoint == "best"
    assert run.config.epochs == 2 and run.epoch in (1, 2)
    test, validation, train = run.split("test"), run.split("validation"), run.split("train")
    assert test["x"].shape == (60, 16) and len(validation["x"]) + len(train["x"]) == 240
    assert "y_observed" in train and not bool(train["y_observed"].all())  # the missing labels say so
    probabilities = run.model.predict({"x": test["x"]})["y"]
    assert probabilities.shape == (60, 3) and torch.allclose(probabilities.sum(-1), torch.ones(60))
    drawn = run.model.sample(3, given={"y": torch.arange(3)}, observed_means=True)["x"]
    assert drawn.shape == (3, 16)
    last = gmdsl.open_run(str(run_dir), checkpoint="last")
    assert last.epoch == 2 and last.checkpoint == "last"


def test_data_inspect_shows_fields_coverage_and_binding(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.7)
    given = int((np.load(data)["y_train"] >= 0).sum())
    code, out, err = gmdsl_cli("data", "inspect", str(data), str(tmp_path / "points.gm"))
    assert code == 0, err
    assert "x            [N, 16]        float32" in out
    assert f"{240 - given} of 240 missing (marked -1)" in out
    assert f"supervised y : onehot[3]             <- y: labelled on {given} of 240 training examples" in out
    assert f"{given // 6} examples held out for validation, {given - given // 6} labelled" in out
    code, out, err = gmdsl_cli("data", "inspect", str(data), str(tmp_path / "points.gm"), "--fields", "y=x")
    assert code == 0 and "DOES NOT FIT" in out


def test_fields_flag_binds_variables_to_differently_named_fields(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.5)
    arrays = dict(np.load(data))
    np.savez(
        data,
        points_train=arrays["x_train"],
        cls_train=arrays["y_train"],
        points_test=arrays["x_test"],
        cls_test=arrays["y_test"],
    )
    spec = str(tmp_path / "points.gm")
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(data), *FAST)
    assert code == 1 and "--fields x=FIELD" in err
    run = tmp_path / "run"
    code, _, err = gmdsl_cli(
        "train", spec, "--dataset", str(data), "--fields", "x=points,y=cls", "--run", str(run), *FAST
    )
    assert code == 0, err
    assert json.loads((run / "data.json").read_text())["fields"] == {"x": "points", "y": "cls"}
    code, _, err = gmdsl_cli("train", spec, "--dataset", str(data), "--fields", "x", *FAST)
    assert code == 1 and "VAR=FIELD" in err


def test_labels_numbered_from_one_and_pixels_of_one_say_how_to_fix_them(gmdsl_cli, tmp_path: Path) -> None:
    data = write_points(tmp_path, 0.0)
    arrays = dict(np.load(data))
    np.savez(data, **{**arrays, "y_train": arrays["y_train"] + 1, "y_test": arrays["y_test"] + 1})
    code, _, err = gmdsl_cli("train", str(tmp_path / "points.gm"), "--dataset", str(data), *FAST)
    assert code == 1 and "(they run 1..3)" in err and "subtract 1" in err
    unit = (tmp_path / "points.gm").read_text().replace("real[16]", "unit[16]")
    unit = unit.replace("Normal(loc = decoder(y, z), scale = 0.5)", "ContinuousBernoulli(logits = decoder(y, z))")
    assert "unit[16]" in unit
    np.savez(data, **{**arrays, "x_train": (arrays["x_train"] > 0).astype(np.float32), "x_test": arrays["x_test"] * 0})
    (tmp_path / "unit.gm").write_text(unit)
    code, out, err = gmdsl_cli("train", str(tmp_path / "unit.gm"), "--dataset", str(data), *FAST)
    if code == 1 and "E0" in err:  # a spec mistake of this test's own, not what it checks
        pytest.fail(err)
    assert code == 1 and "`binary` variable" in err and "Traceback" not in err


def _documents(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word counts (uint8, as a counting script would store them) from 5 topics, and a log length
    with Student-t noise."""
    rng = np.random.default_rng(seed)
    topics = rng.integers(0, 5, rows)
    rates = np.random.default_rng(9).gamma(1, 1, (5, 100))
    words = rng.poisson(rates[topics] * 0.5).astype(np.uint8)
    length = (np.log1p(words.sum(1)) + 0.3 * rng.standard_t(4, rows)).astype(np.float32)[:, None]
    return words, length, topics


def test_counts_with_missing_topics_train_from_a_file_and_stay_counts(gmdsl_cli, tmp_path: Path) -> None:
    """specs/counts.gm on a user's own non-image file: uint8 word counts (read as counts, not as
    8-bit pixels), a real measurement and topics missing for 70 % of the documents."""
    words, length, topics = _documents(300, 1)
    topics = np.where(np.random.default_rng(3).random(300) < 0.7, -1, topics)
    test_words, test_length, test_topics = _documents(60, 2)
    data = tmp_path / "documents.npz"
    np.savez(
        data,
        words_train=words,
        length_train=length,
        topic_train=topics,
        words_test=test_words,
        length_test=test_length,
        topic_test=test_topics,
    )
    run = tmp_path / "run"
    spec = str(ROOT / "specs" / "counts.gm")
    code, out, err = gmdsl_cli("train", spec, "--dataset", str(data), "--run", str(run), *FAST)
    assert code == 0, err
    assert "validation error topic" in out
    opened = gmdsl.open_run(run)
    batch = opened.split("test")
    assert torch.equal(batch["words"], torch.from_numpy(test_words).float())  # 3 stays 3, not 3 / 255
    code, out, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "20")
    assert code == 0, err
    assert 0 <= json.loads((run / "eval-best.json").read_text())["test_error_topic"] <= 100
