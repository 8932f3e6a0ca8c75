"""Training, evaluation and pictures on a tiny generated dataset: the CLI end to end, exact
resumption, labels that cannot leak, and clear errors for bad configs and missing data."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_data import make_tiny_mnist

from gmdsl.data import DataError, open_dataset
from gmdsl.data.idx import read_idx
from gmdsl.data.labels import balanced_subset
from gmdsl.train.data import bind, training_data
from gmdsl.train.settings import ConfigError, resolve

ROOT = Path(__file__).resolve().parent.parent
MNIST = str(ROOT / "specs" / "mnist.gm")
FAST = ["--batch-size", "64", "--samples", "2", "--labels", "20", "--no-progress"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_mnist(tmp_path_factory.mktemp("data") / "tiny")


def _trained(folder: Path, dataset: Path, epochs: int) -> Path:
    from gmdsl import cli

    run_dir = folder / "run"
    command = ["train", MNIST, "--dataset", str(dataset), "--epochs", str(epochs), "--run", str(run_dir), *FAST]
    assert cli.main(command) == 0
    return run_dir


# `gmdsl train MNIST --epochs N *FAST` on the tiny data, trained once for the tests that read it
# (or copy it to change): training is deterministic, so a test's own run of it would be these files.
@pytest.fixture(scope="module")
def one_epoch(tiny: Path, tmp_path_factory) -> Path:
    return _trained(tmp_path_factory.mktemp("one_epoch"), tiny, 1)


@pytest.fixture(scope="module")
def two_epochs(tiny: Path, tmp_path_factory) -> Path:
    return _trained(tmp_path_factory.mktemp("two_epochs"), tiny, 2)


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    epoch = json.loads((run_dir / "checkpoint" / "latest.json").read_text())["epoch"]
    return load_file(run_dir / "checkpoint" / f"epoch-{epoch:04d}.safetensors")


def test_train_eval_show_resume_end_to_end(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, out, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--epochs", "1", "--run", str(run_dir), *FAST)
    assert code == 0, err
    assert "epoch 1/1, loss" in out and "validation error y" in out and "test error" not in out
    assert "the best on validation is epoch 1" in out
    for name in (
        "model.py",
        "spec.gm",
        "config.json",
        "data.json",
        "validation.json",
        "labelled.json",
        "checkpoint/best.safetensors",
        "metrics.jsonl",
        "metrics.csv",
        "curves.png",
    ):
        assert (run_dir / name).exists(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == 1 and config["labels"] == 20 and config["samples"] == 2

    code, out, err = gmdsl_cli("eval", str(run_dir), "--samples", "5", "--rows", "20")
    assert code == 0, err
    results = json.loads((run_dir / "eval-best.json").read_text())
    assert set(results) == {
        "checkpoint",
        "epoch",
        "chosen_by",
        "precision",
        "validation_error_y",
        "validation_elbo",
        "test_data",
        "test_error_y",
        "test_elbo",
        "test_log_likelihood",
        "log_likelihood_samples",
        "log_likelihood_rows",
    }
    assert results["precision"] == "fp32" and "in fp32:" in out
    assert 0 <= results["test_error_y"] <= 100 and results["test_log_likelihood"] < 0
    assert "test_error_y" in out and "validation_error_y" in out and "best checkpoint (epoch 1)" in out
    assert results["checkpoint"] == "best" and results["epoch"] == 1
    recorded = json.loads((run_dir / "data.json").read_text())["source"]["fingerprint"]
    assert results["test_data"] == recorded and recorded.startswith("sha256:")

    code, out, err = gmdsl_cli("show", str(run_dir))
    assert code == 0, err
    for name in ("reconstructions", "style_grid", "traversals", "confusion"):
        assert (run_dir / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")

    code, out, err = gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress")
    assert code == 0, err
    assert "epoch 2/2" in out
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]


def test_resuming_gives_the_weights_of_an_uninterrupted_run(
    gmdsl_cli, one_epoch: Path, two_epochs: Path, tmp_path: Path
) -> None:
    straight, interrupted = two_epochs, _copy(one_epoch, tmp_path / "interrupted")
    assert gmdsl_cli("train", "--resume", str(interrupted), "--epochs", "2", "--no-progress")[0] == 0
    a, b = weights(straight), weights(interrupted)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_an_interrupted_cosine_run_resumes_onto_the_same_curve(
    gmdsl_cli, tiny: Path, tmp_path: Path, monkeypatch
) -> None:
    """The rate is a function of the step alone, so a run stopped after epoch 1 and resumed ends
    with the weights of one that was never stopped; resuming with other epochs is refused."""
    from gmdsl.train.checkpoints import Checkpoints

    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    cosine = ["--dataset", str(tiny), "--epochs", "2", "--lr-schedule", "cosine", "--learning-rate", "0.01", *FAST]
    assert gmdsl_cli("train", MNIST, "--run", str(straight), *cosine)[0] == 0
    constant = tmp_path / "constant"
    assert gmdsl_cli("train", MNIST, "--run", str(constant), *cosine, "--lr-schedule", "constant")[0] == 0
    assert any(
        not torch.equal(a, b) for a, b in zip(weights(straight).values(), weights(constant).values(), strict=False)
    )

    save = Checkpoints.save

    def stop_after_epoch_1(self, position, model, state):
        if position.epoch == 2:
            raise KeyboardInterrupt
        save(self, position, model, state)

    monkeypatch.setattr(Checkpoints, "save", stop_after_epoch_1)
    code, _, err = gmdsl_cli("train", MNIST, "--run", str(interrupted), *cosine)  # as after Ctrl-C
    assert code == 130 and "interrupted during epoch 2; epochs 1..1 are saved" in err
    assert f"gmdsl train --resume {interrupted}" in err and "Traceback" not in err
    assert json.loads((interrupted / "checkpoint" / "latest.json").read_text())["epoch"] == 1
    monkeypatch.setattr(Checkpoints, "save", save)
    code, _, err = gmdsl_cli("train", "--resume", str(interrupted), "--epochs", "3", "--no-progress")
    assert code == 1 and "over 2 epochs (lr_schedule = cosine)" in err and "--epochs 2" in err
    assert gmdsl_cli("train", "--resume", str(interrupted), "--no-progress")[0] == 0
    a, b = weights(straight), weights(interrupted)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "schedule, expected",
    [
        # 2 epochs of 5 steps each; rates at steps 0..14 (a run that goes on past its epochs)
        ("constant", [0.5] * 15),
        ("cosine", [0.25 * (1 + math.cos(math.pi * step / 10)) for step in range(15)]),
        ("step", [0.5] * 5 + [0.05] * 5 + [0.005] * 5),
        ("restarts", [0.25 * (1 + math.cos(math.pi * (step % 5) / 5)) for step in range(15)]),
    ],
)
def test_learning_rate_schedules_follow_their_closed_forms(schedule: str, expected: list[float]) -> None:
    from gmdsl.train.loop import learning_rate_at
    from gmdsl.train.settings import TrainSettings

    settings = TrainSettings(epochs=2, learning_rate=0.5, lr_schedule=schedule, lr_decay=0.1, lr_period=1)
    assert [learning_rate_at(settings, step, 5) for step in range(15)] == pytest.approx(expected)


def test_kl_warmup_raises_beta_linearly_to_the_specs() -> None:
    from gmdsl.train.loop import beta_at
    from gmdsl.train.settings import TrainSettings

    assert [beta_at(TrainSettings(), step, 4, 0.7) for step in range(3)] == [0.7] * 3
    warm = TrainSettings(kl_warmup=2)
    assert [beta_at(warm, step, 4, 0.5) for step in range(10)] == pytest.approx(
        [0.0625, 0.125, 0.1875, 0.25, 0.3125, 0.375, 0.4375, 0.5, 0.5, 0.5]
    )


def test_explore_epochs_spread_the_enumerated_weight_evenly_at_first_then_less() -> None:
    from gmdsl.train.loop import explore_at
    from gmdsl.train.settings import TrainSettings

    assert [explore_at(TrainSettings(), step, 4) for step in range(3)] == [0.0] * 3
    early = TrainSettings(explore_epochs=2)
    assert [explore_at(early, step, 4) for step in range(10)] == pytest.approx(
        [0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0.0, 0.0, 0.0]
    )


def _train_one_epoch(run_dir: Path, dataset: Path) -> dict[str, torch.Tensor]:
    """What `gmdsl train` does, in process, for a run directory that already holds model.py,
    config.json and labelled.json."""
    from gmdsl.train import runs
    from gmdsl.train.loop import Trainer

    settings = runs.config_of(run_dir).model_copy(update={"dataset": str(dataset), "epochs": 1})
    model_class = runs.model_class_of(run_dir)
    opened = open_dataset(settings.dataset)
    saved = [runs.saved_indices(run_dir, name, len(opened.train["label"])) for name in ("validation", "labelled")]
    bound = bind(opened, model_class.variables, settings, *saved)
    torch.manual_seed(settings.seed)
    model = model_class()
    data = training_data(bound, torch.device("cpu"))
    Trainer(model, data, settings, run_dir, torch.device("cpu"), progress=False).fit()
    return weights(run_dir)


def test_no_unlabelled_label_reaches_the_loss(tiny: Path, one_epoch: Path, tmp_path: Path) -> None:
    """Scrambling the label of every unlabelled training example and of every validation example
    changes no weight at all."""
    from tiny_data import write_idx

    template = one_epoch
    labelled = torch.tensor(json.loads((template / "labelled.json").read_text())["indices"])
    scrambled = make_tiny_mnist(tmp_path / "scrambled-data")
    labels = read_idx(scrambled / "train-labels-idx1-ubyte")
    hidden = torch.ones(len(labels), dtype=torch.bool)
    hidden[labelled] = False
    labels[hidden] = ((labels[hidden].long() + 1 + torch.arange(int(hidden.sum())) % 9) % 10).to(torch.uint8)
    write_idx(scrambled / "train-labels-idx1-ubyte", labels)
    results = []
    for name, dataset in (("honest", tiny), ("scrambled", scrambled)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        for file in ("model.py", "spec.gm", "run.json", "config.json", "validation.json", "labelled.json"):
            (run_dir / file).write_text((template / file).read_text())
        results.append(_train_one_epoch(run_dir, dataset))
    honest, scrambled_weights = results
    for key in honest:
        assert torch.equal(honest[key], scrambled_weights[key]), key


def test_the_validation_split_is_stratified_held_out_and_apart_from_the_labels(tiny: Path) -> None:
    import gmdsl
    from gmdsl.train.settings import TrainSettings

    model = gmdsl.compile(MNIST)
    bound = bind(open_dataset(str(tiny)), model.variables, TrainSettings(dataset=str(tiny), labels=20))
    labels = bound.train["y"]
    assert len(bound.validation_indices) == 400 // 6  # the default: a sixth of the train split
    counts = torch.bincount(labels[bound.validation_indices], minlength=10)
    assert counts.max() - counts.min() <= 1  # class-stratified
    assert not set(bound.validation_indices.tolist()) & set(bound.labelled_indices.tolist())
    again = bind(open_dataset(str(tiny)), model.variables, TrainSettings(dataset=str(tiny), labels=20, label_seed=5))
    assert torch.equal(again.validation_indices, bound.validation_indices)  # one split for every seed
    data = training_data(bound, torch.device("cpu"))
    assert data.size == 400 - len(bound.validation_indices)
    assert torch.equal(data.validation["y"], labels[bound.validation_indices])
    held_out = bound.train["x"][bound.validation_indices]
    assert not (data.train["x"][:, None] == held_out[None]).flatten(2).all(-1).any()  # no validation image trains


def test_the_best_checkpoint_is_the_epoch_of_lowest_validation_error(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    flags = ["--epochs", "4", "--learning-rate", "0.01", "--run", str(run_dir), *FAST]
    assert gmdsl_cli("train", MNIST, "--dataset", str(tiny), *flags)[0] == 0
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ranked = [(r["validation_error_y"], -r["validation_elbo"]) for r in log]  # the ELBO breaks ties
    best = json.loads((run_dir / "checkpoint" / "best.json").read_text())
    epoch = ranked.index(min(ranked)) + 1
    assert best["epoch"] == epoch and best["metric"] == "validation_error_y" and best["select"] == "auto"
    assert best["value"] == log[epoch - 1]["validation_error_y"]
    assert best["tie_breakers"] == {"validation_elbo": log[epoch - 1]["validation_elbo"]}
    for checkpoint, epoch in (("best", best["epoch"]), ("last", 4)):
        code, out, err = gmdsl_cli("eval", str(run_dir), "--rows", "10", "--samples", "2", "--checkpoint", checkpoint)
        assert code == 0, err
        results = json.loads((run_dir / f"eval-{checkpoint}.json").read_text())
        assert results["checkpoint"] == checkpoint and results["epoch"] == epoch
        if checkpoint == "best":
            assert results["validation_error_y"] == pytest.approx(log[epoch - 1]["validation_error_y"])
            assert results["chosen_by"].startswith("chosen by validation_error_y") and "ties broken by" in out
        else:
            assert results["chosen_by"] == "the last epoch"
    # each checkpoint's evaluation is its own file: evaluating the last did not touch the best's
    assert json.loads((run_dir / "eval-best.json").read_text())["checkpoint"] == "best"


@pytest.mark.parametrize(
    "select, chosen",
    [
        # the error first: epochs 2, 4 and 5 tie at 0 %, and the ELBO breaks the tie (epoch 4)
        ("auto", {"epoch": 4, "metric": "validation_error_y", "tie_breakers": {"validation_elbo": -90.0}}),
        # the error alone: ties go to the first such epoch
        ("y", {"epoch": 2, "metric": "validation_error_y"}),
        # the ELBO alone, higher is better
        ("elbo", {"epoch": 3, "metric": "validation_elbo"}),
    ],
)
def test_the_best_checkpoint_is_chosen_as_select_says(tiny: Path, tmp_path: Path, select: str, chosen: dict) -> None:
    """A validation error that does not move between epochs (it often sits at its floor) must
    not keep the first epoch by default: the validation ELBO breaks its ties."""
    import gmdsl
    from gmdsl.train.loop import Trainer
    from gmdsl.train.settings import TrainSettings

    settings = TrainSettings(dataset=str(tiny), labels=20, batch_size=64, samples=1, epochs=5, select=select)
    model = gmdsl.compile(MNIST)
    data = training_data(bind(open_dataset(settings.dataset), model.variables, settings), torch.device("cpu"))
    scripted = iter([(5.0, -100.0), (0.0, -95.0), (1.0, -80.0), (0.0, -90.0), (0.0, -92.0)])

    def evaluate(_: object) -> dict:
        error, elbo = next(scripted)
        return {"validation_error_y": error, "validation_elbo": elbo}

    Trainer(model, data, settings, tmp_path, torch.device("cpu"), progress=False).fit(evaluate=evaluate)
    best = json.loads((tmp_path / "checkpoint" / "best.json").read_text())
    assert {k: best[k] for k in chosen} == chosen and best["select"] == select


def test_select_must_name_a_labelled_supervised_variable(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    code, _, err = gmdsl_cli(
        "train", MNIST, "--dataset", str(tiny), "--select", "z", "--run", str(tmp_path / "r"), *FAST
    )
    assert code == 1 and "select names `z`" in err and "choose from y, elbo, auto" in err
    assert not (tmp_path / "r").exists()


def test_without_validation_there_is_no_best_and_eval_reads_the_last_epoch(
    gmdsl_cli, tiny: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    flags = ["--epochs", "1", "--validation", "0", "--run", str(run_dir), *FAST]
    code, out, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), *flags)
    assert code == 0, err
    assert "400 examples" in out and "validation error" not in out
    assert not (run_dir / "checkpoint" / "best.json").exists()
    assert gmdsl_cli("eval", str(run_dir), "--rows", "10", "--samples", "2")[0] == 0
    results = json.loads((run_dir / "eval-last.json").read_text())
    assert results["checkpoint"] == "last" and "validation_error_y" not in results and "test_error_y" in results
    code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--validation", "400", *FAST)
    assert code == 1 and "cannot hold out 400 of the 400 training examples" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "recipe",
    [
        ["--label-weight", "dataset", "--label-fraction", "0.1"],
        ["--lr-schedule", "step", "--lr-period", "1", "--lr-decay", "0.1"],
        ["--lr-schedule", "restarts", "--lr-period", "1"],
        ["--kl-warmup", "2"],
        ["--samples", "3"],
        ["--alpha", "5"],
    ],
    ids=lambda recipe: recipe[0][2:],
)
def test_each_training_knob_trains_and_changes_the_weights(
    gmdsl_cli, tiny: Path, two_epochs: Path, tmp_path: Path, recipe: list[str]
) -> None:
    """Two epochs with the knob against two with the defaults: both train, and the knob
    changes what is learned (the step schedules only from the second epoch on)."""
    knob = tmp_path / "knob"
    code, _, err = gmdsl_cli(
        "train", MNIST, "--dataset", str(tiny), "--epochs", "2", "--run", str(knob), *FAST, *recipe
    )
    assert code == 0, err
    trained = {}
    for name, run_dir in (("default", two_epochs), ("knob", knob)):
        log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert all(math.isfinite(r["loss"]) and "validation_error_y" in r for r in log)
        trained[name] = weights(run_dir)
    assert any(not torch.equal(trained["default"][k], trained["knob"][k]) for k in trained["default"])


def test_explore_epochs_reach_the_training_loss_and_need_an_enumerated_variable(
    gmdsl_cli, tiny: Path, tmp_path: Path
) -> None:
    """The same seed's first epoch with and without --explore-epochs: the loss differs (so the
    schedule reaches the objective); a spec that enumerates nothing says why it cannot."""
    enum = str(ROOT / "specs" / "mnist_enum.gm")
    losses = {}
    for explore in ("0", "1"):
        run_dir = tmp_path / explore
        flags = [*FAST, "--explore-epochs", explore, "--run", str(run_dir)]
        code, _, err = gmdsl_cli("train", enum, "--dataset", str(tiny), "--epochs", "1", *flags)
        assert code == 0, err
        losses[explore] = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["loss"]
    assert math.isfinite(losses["1"]) and losses["1"] != losses["0"]
    code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--explore-epochs", "1", *FAST)
    assert code == 1 and "this spec enumerates none" in err and "Traceback" not in err


def test_the_supervised_only_baseline_trains_q_of_the_labels_alone(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    """--supervised-only fits q(y | x) on the labelled rows: the classifier learns from them
    (differently for other labels), while the generative model and q(z | x, y), which only the
    ELBO trains, keep their initial weights (the same seed's in both runs)."""
    trained = {}
    for labels in ("20", "40"):
        run_dir = tmp_path / labels
        flags = [*FAST, "--labels", labels, "--supervised-only", "--run", str(run_dir)]
        code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--epochs", "2", *flags)
        assert code == 0, err
        trained[labels] = weights(run_dir)
    changed = {k for k in trained["20"] if not torch.equal(trained["20"][k], trained["40"][k])}
    assert changed and all(k.startswith("encoder.classifier.") for k in changed), changed
    code, _, err = gmdsl_cli(
        "train", MNIST, "--dataset", str(tiny), "--labels", "0", "--supervised-only", "--run", str(tmp_path / "none")
    )
    assert code != 0 and "supervised_only trains on the labelled examples alone, and this run has none" in err
    assert "Traceback" not in err


def test_importance_prediction_runs_through_validation_and_eval(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    flags = ["--epochs", "1", "--prediction", "importance", "--predict-samples", "2", "--run", str(run_dir), *FAST]
    assert gmdsl_cli("train", MNIST, "--dataset", str(tiny), *flags)[0] == 0
    assert "validation_error_y" in json.loads((run_dir / "metrics.jsonl").read_text())
    assert gmdsl_cli("eval", str(run_dir), "--rows", "10", "--samples", "2")[0] == 0
    results = json.loads((run_dir / "eval-best.json").read_text())
    assert 0 <= results["validation_error_y"] <= 100 and 0 <= results["test_error_y"] <= 100
    config = json.loads((run_dir / "config.json").read_text())
    assert config["prediction"] == "importance" and config["predict_samples"] == 2


def test_labelled_subset_is_class_balanced_and_seeded() -> None:
    labels = torch.arange(1000) % 10
    chosen = balanced_subset(labels, 100, seed=3)
    assert torch.equal(chosen, balanced_subset(labels, 100, seed=3))
    assert not torch.equal(chosen, balanced_subset(labels, 100, seed=4))
    assert torch.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
    assert (
        sorted(torch.bincount(labels[balanced_subset(labels, 15, seed=0)], minlength=10).tolist()) == [1] * 5 + [2] * 5
    )


@pytest.mark.parametrize(
    "toml, message",
    [
        ("epoch = 3\n", "unknown key `epoch` (did you mean `epochs`?)"),
        ("epochs = 0\n", "`epochs`: input should be greater than or equal to 1"),
        ('batch_size = "big"\n', "`batch_size`: input should be a valid integer"),
        ('device = "tpu"\n', "`device`: input should be 'auto', 'cpu' or 'cuda'"),
        ("epochs = [\n", "is not valid TOML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "train.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        resolve(path, {})
    assert message in str(caught.value)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text("epochs = 3\nlabels = 600\n")
    config = resolve(path, {"epochs": 7, "labels": None})
    assert (config.epochs, config.labels) == (7, 600)


def test_bad_config_and_missing_data_from_the_cli(gmdsl_cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "bad.toml").write_text("learning_rat = 0.1\n")
    code, _, err = gmdsl_cli("train", MNIST, "--config", str(tmp_path / "bad.toml"), "--run", str(tmp_path / "r1"))
    assert code == 1 and "unknown key `learning_rat` (did you mean `learning_rate`?)" in err and "Traceback" not in err
    code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tmp_path / "nowhere"), "--run", str(tmp_path / "r2"))
    assert code == 1 and "no dataset" in err and "Traceback" not in err
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path / "empty-cache"))
    with pytest.raises(DataError, match="run `gmdsl data fetch fashion-mnist`"):
        open_dataset("fashion-mnist", fetch_missing=False)
    code, _, err = gmdsl_cli("eval", str(tmp_path / "not-a-run"))
    assert code == 1 and "is not a gmdsl run" in err
    (tmp_path / "not.npz").write_bytes(b"not an archive")
    code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tmp_path / "not.npz"), "--run", str(tmp_path / "r3"))
    assert code == 1 and "not.npz is not a readable .npz" in err and "Traceback" not in err
    (tmp_path / "unreadable.toml").write_bytes(b"epochs = \xff\n")
    code, _, err = gmdsl_cli("train", MNIST, "--config", str(tmp_path / "unreadable.toml"))
    assert code == 1 and "cannot read config file" in err and "Traceback" not in err
    edited = tmp_path / "edited-run"
    edited.mkdir()
    (edited / "model.py").write_text("")
    (edited / "config.json").write_text('{"epochs": "many"}')
    code, _, err = gmdsl_cli("eval", str(edited))
    assert code == 1 and "is not a valid run configuration" in err and "`epochs`" in err and "Traceback" not in err


def _make_the_loss_nan(monkeypatch) -> None:
    """Every objective from here on is NaN, as in a run that diverges."""
    from gmdsl.runtime.model import CompiledModel

    original = CompiledModel.objective

    def diverging(self, batch, **kwargs):
        result = original(self, batch, **kwargs)
        result.elbo = result.elbo * float("nan")
        return result

    monkeypatch.setattr(CompiledModel, "objective", diverging)


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(
    gmdsl_cli, one_epoch: Path, tmp_path: Path, monkeypatch
) -> None:
    run_dir = _copy(one_epoch, tmp_path / "run")
    _make_the_loss_nan(monkeypatch)
    code, _, err = gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress")
    assert code == 1
    assert (
        "the loss stopped being a finite number (nan or inf) at epoch 2, step 1; the last good checkpoint is epoch 1"
        in err
    )
    assert json.loads((run_dir / "checkpoint" / "latest.json").read_text()) == {
        "epoch": 1,
        "step": 0,
        "file": "epoch-0001",
    }


def test_a_failed_train_leaves_nothing_and_the_fixed_command_reruns(
    gmdsl_cli, tiny: Path, tmp_path: Path, monkeypatch
) -> None:
    """All or nothing: a spec whose variable has no field stops before a run directory is
    written, so the fixed command, same --run, just works; without --run no stray folder is left."""
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "renamed.gm"
    spec.write_text(re.sub(r"\bx\b", "pixels", (ROOT / "specs" / "mnist.gm").read_text()))
    run_dir = tmp_path / "r"
    for where in (["--run", str(run_dir)], []):
        code, _, err = gmdsl_cli("train", str(spec), "--dataset", str(tiny), "--epochs", "1", *where, *FAST)
        assert code == 1 and "variable `pixels` has no field in dataset tiny" in err
    assert not run_dir.exists() and not (tmp_path / "runs").exists()
    (tmp_path / "map.toml").write_text('fields = { pixels = "image" }\n')
    code, _, err = gmdsl_cli(
        "train",
        str(spec),
        "--config",
        "map.toml",
        "--dataset",
        str(tiny),
        "--epochs",
        "1",
        "--run",
        str(run_dir),
        *FAST,
    )
    assert code == 0, err


def test_a_run_that_fails_before_its_first_epoch_is_removed(gmdsl_cli, tiny: Path, tmp_path: Path, monkeypatch) -> None:
    _make_the_loss_nan(monkeypatch)
    empty = tmp_path / "given-empty"
    empty.mkdir()
    for run_dir in (tmp_path / "new", empty):
        code, _, err = gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--epochs", "1", "--run", str(run_dir), *FAST)
        assert (
            code == 1
            and "the loss stopped being a finite number (nan or inf) at epoch 1, step 1; no epoch finished" in err
        )
    assert not (tmp_path / "new").exists()
    assert empty.is_dir() and not any(empty.iterdir())  # a folder the user made is left as it was


def test_data_that_does_not_fit_speaks_of_fields_not_batches(gmdsl_cli, tiny: Path, tmp_path: Path) -> None:
    spec = tmp_path / "five.gm"
    spec.write_text((ROOT / "specs" / "mnist.gm").read_text().replace("onehot[10]", "onehot[5]"))
    code, _, err = gmdsl_cli("train", str(spec), "--dataset", str(tiny), "--run", str(tmp_path / "r"), *FAST)
    assert code == 1, err
    assert (
        "the training split of dataset tiny does not fit the model: field `label` (bound to `y`) holds class "
        "indices outside 0..4 (they run 0..9), but `y` is onehot[5]"
    ) in err
    assert "batch[" not in err and not (tmp_path / "r").exists()


def test_a_supervised_variable_the_dataset_does_not_label_is_never_labelled(
    gmdsl_cli, tiny: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "two_labels.gm"
    spec.write_text(
        (ROOT / "specs" / "mnist.gm")
        .read_text()
        .replace("latent     z : real[50]", "latent     z : real[50]\nsupervised thick : binary[1]")
        .replace(
            "q(z | x, y) = Normal(encoder(x, y))",
            "q(z | x, y) = Normal(encoder(x, y))\np(thick) = Bernoulli(probs = 0.5)\n"
            "q(thick | x) = Bernoulli(logits = stroke(x))\nnet stroke = mlp()",
        )
    )
    run_dir = tmp_path / "r"
    code, out, err = gmdsl_cli(
        "train", str(spec), "--dataset", str(tiny), "--epochs", "1", "--run", str(run_dir), *FAST
    )
    assert code == 0, err
    assert "note: dataset tiny has no field for supervised variable `thick`, so it is trained as never labelled" in out
    assert json.loads((run_dir / "data.json").read_text())["never_labelled"] == ["thick"]
    code, out, err = gmdsl_cli("eval", str(run_dir), "--samples", "2", "--rows", "10")
    assert code == 0, err
    assert "test_error_y" in out and "thick" not in out


def test_resume_rules(gmdsl_cli, one_epoch: Path, tmp_path: Path) -> None:
    run_dir = _copy(one_epoch, tmp_path / "run")
    code, _, err = gmdsl_cli("train", "--resume", str(run_dir), "--labels", "40", "--epochs", "2")
    assert code == 1 and "labels cannot change" in err
    (tmp_path / "more.toml").write_text("epochs = 2\n")
    code, out, err = gmdsl_cli(
        "train", "--resume", str(run_dir), "--config", str(tmp_path / "more.toml"), "--no-progress"
    )
    assert code == 0 and "epoch 2/2" in out, err
    for file in (run_dir / "checkpoint").iterdir():  # as if interrupted before any epoch finished
        file.unlink()
    (run_dir / "metrics.jsonl").unlink()  # (metrics are written only after an epoch's checkpoint)
    code, out, err = gmdsl_cli("train", "--resume", str(run_dir), "--no-progress")
    assert code == 0 and "epochs 1..2" in out and "epoch 2/2" in out, err
    (run_dir / "validation.json").unlink()  # as in a run trained before validation was held out
    code, _, err = gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "3", "--no-progress")
    assert code == 1 and "has no validation.json" in err and "start a new run" in err and "Traceback" not in err


def test_training_a_file_that_is_not_a_compiled_model_is_bad_usage(gmdsl_cli, tmp_path: Path) -> None:
    script = tmp_path / "notes.py"
    script.write_text("print('hello')\n")
    code, _, err = gmdsl_cli("train", str(script))
    assert code == 2 and "is not a compiled gmdsl model" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "mapping, message",
    [
        ('fields = { X = "image" }', "binds `X`, which is not a variable of the model (did you mean `x`?)"),
        (
            'fields = { x = "imag" }',
            "binds `x` to field `imag`, which dataset tiny does not have (did you mean `image`?)",
        ),
        ('fields = { z = "image" }', "`z` is latent: it is inferred, never read from data"),
    ],
)
def test_a_typo_in_fields_is_an_error(gmdsl_cli, tiny: Path, tmp_path: Path, mapping: str, message: str) -> None:
    (tmp_path / "map.toml").write_text(mapping + "\n")
    code, _, err = gmdsl_cli(
        "train",
        MNIST,
        "--config",
        str(tmp_path / "map.toml"),
        "--dataset",
        str(tiny),
        "--run",
        str(tmp_path / "r"),
        *FAST,
    )
    assert code == 1 and message in err and "Traceback" not in err


def test_train_executes_the_compiled_module_once(gmdsl_cli, tiny: Path, tmp_path: Path, monkeypatch) -> None:
    from gmdsl import build

    calls = []
    load_module = build.load_module

    def counting(*args, **kwargs):
        calls.append(args[1])
        return load_module(*args, **kwargs)

    monkeypatch.setattr(build, "load_module", counting)
    run_dir = tmp_path / "run"
    assert gmdsl_cli("train", MNIST, "--dataset", str(tiny), "--epochs", "1", "--run", str(run_dir), *FAST)[0] == 0
    assert calls == ["run"]
    calls.clear()
    assert gmdsl_cli("train", "--resume", str(run_dir), "--epochs", "2", "--no-progress")[0] == 0
    assert calls == ["run"]


def test_the_compiled_training_step_computes_the_eager_loss() -> None:
    """--compile runs the same objective through torch.compile: the same loss and gradients from
    the same draws (torch's random numbers, not inductor's)."""
    import gmdsl
    from gmdsl.train.loop import training_loss
    from gmdsl.train.settings import TrainSettings

    torch.manual_seed(0)
    model = gmdsl.compile(MNIST)
    batch = {
        "x": (torch.rand(32, 784) < 0.3).float(),
        "y": torch.randint(0, 10, (32,)),
        "y_observed": torch.arange(32) % 2 == 0,
    }
    losses, gradients = [], []
    for compiled in (False, True):
        torch.manual_seed(1)
        settings = TrainSettings(samples=2, compile=compiled, label_weight="dataset")
        loss = training_loss(model, settings, 0.1)(batch, batch["y_observed"], 0.5, 0, None)
        model.zero_grad()
        loss.backward()
        losses.append(loss.detach())
        gradients.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-4, atol=1e-4)
    for compiled_grad, eager_grad in zip(gradients[1], gradients[0], strict=True):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-3, atol=1e-4)


def test_the_progress_bar_leaves_training_s_random_numbers_alone(tiny: Path, tmp_path: Path) -> None:
    """The bar's accuracy runs predict, which draws random numbers; it must not shift the ones
    training draws, or a run in a terminal would train differently from one in a log."""
    import gmdsl
    from gmdsl.train.loop import Trainer
    from gmdsl.train.settings import TrainSettings

    settings = TrainSettings(dataset=str(tiny), labels=20, batch_size=64, samples=2)
    model = gmdsl.compile(MNIST)
    data = training_data(bind(open_dataset(settings.dataset), model.variables, settings), torch.device("cpu"))
    trainer = Trainer(model, data, settings, tmp_path, torch.device("cpu"), progress=False)
    before = torch.get_rng_state()
    assert "acc_y" in trainer.labelled_accuracy(trainer.batches()[0])
    assert torch.equal(torch.get_rng_state(), before)


def test_training_flushes_subnormal_floats_and_restores_the_mode_after(tiny: Path, tmp_path: Path) -> None:
    """Subnormal floats are slow on CPUs: steps read them as zero, and the rest of the process
    (evaluation, tests) computes as before once fit returns."""
    import gmdsl
    from gmdsl.train.loop import Trainer
    from gmdsl.train.settings import TrainSettings

    def subnormal_survives() -> bool:
        return torch.tensor([1e-40]).mul(1.0).item() != 0.0

    settings = TrainSettings(dataset=str(tiny), labels=20, batch_size=64, samples=1, epochs=1)
    model = gmdsl.compile(MNIST)
    data = training_data(bind(open_dataset(settings.dataset), model.variables, settings), torch.device("cpu"))
    seen = []
    trainer = Trainer(model, data, settings, tmp_path, torch.device("cpu"), progress=False)
    trainer.on_step = lambda step: seen.append(subnormal_survives())
    trainer.fit()
    assert seen and not any(seen)
    assert subnormal_survives()


@pytest.mark.parametrize("label_weight", ["row", "dataset"])
def test_scoring_the_labelled_rows_apart_leaves_the_loss_as_it_was(label_weight: str) -> None:
    """Where the model enumerates, the batch's trailing labelled rows are scored in a pass of
    their own (nothing to enumerate there). With no other unknown the objective is exact, so
    the loss must be the same number as scoring the batch whole."""
    import gmdsl
    from gmdsl.train.loop import training_loss
    from gmdsl.train.settings import TrainSettings

    spec = """
observed   x : binary[6]
supervised y : onehot[3]
p(y)     = Categorical(probs = uniform)
p(x | y) = Bernoulli(logits = dec(y))
q(y | x) = Categorical(logits = cls(x)) by enumeration
net cls = mlp(hidden = [5])
net dec = mlp(hidden = [5])
"""
    torch.manual_seed(0)
    model = gmdsl.compile(spec).double()
    assert model.enumerated == ("y",)
    labelled = torch.tensor([False, True, False, False, True, True])  # the last two: the labelled top-up
    batch = {"x": (torch.rand(6, 6) < 0.5).double(), "y": torch.tensor([0, 1, 2, 0, 1, 2]), "y_observed": labelled}
    settings = TrainSettings(label_weight=label_weight)
    whole = training_loss(model, settings, 0.1)(batch, labelled, 1.0, 0, None)
    apart = training_loss(model, settings, 0.1)(batch, labelled, 1.0, 2, None)
    torch.testing.assert_close(apart, whole, rtol=1e-12, atol=1e-12)


def test_how_a_run_is_validated_does_not_change_how_it_trains(
    gmdsl_cli, tiny: Path, two_epochs: Path, tmp_path: Path
) -> None:
    """Validation draws on forked generators: predicting by importance with many samples
    leaves the trained weights bitwise those of plain q predictions (`two_epochs`)."""
    run_dir = tmp_path / "importance"
    flags = ["--prediction", "importance", "--predict-samples", "7"]
    code, _, err = gmdsl_cli(
        "train", MNIST, "--dataset", str(tiny), "--epochs", "2", "--run", str(run_dir), *FAST, *flags
    )
    assert code == 0, err
    trained = [weights(two_epochs), weights(run_dir)]
    for key in trained[0]:
        assert torch.equal(trained[0][key], trained[1][key]), key
