"""Run directories: what `gmdsl train` writes and `gmdsl eval` / `gmdsl show` read.

RUN/model.py          the compiled model (spec.gm beside it when trained from a spec)
RUN/config.json       the resolved training configuration
RUN/data.json         the dataset, the field of each variable, and image shapes
RUN/labelled.json     the indices of the labelled training examples
RUN/metrics.jsonl     one record per epoch (also metrics.csv; curves.png)
RUN/checkpoint/       weights (safetensors) and training state of the last epoch
RUN/eval.json         `gmdsl eval`;  RUN/figures/*.png  `gmdsl show`
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gmdsl.build import ModelClass, load_model_class
from gmdsl.runtime.batch import prepare
from gmdsl.runtime.errors import UserError
from gmdsl.runtime.model import CompiledModel

from .checkpoints import Checkpoints
from .data import TrainingData, bind, hide_unlabelled, labelled_subset, load_indices, model_tensor, save_indices
from .datasets import DataError, open_dataset
from .settings import TrainSettings, load_saved


class RunError(UserError, ValueError):
    """A run directory that cannot be used as asked."""

    code = "run"


@dataclass
class Run:
    path: Path
    model: CompiledModel
    config: TrainSettings
    data: dict  # data.json
    device: torch.device


def choose_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("device `cuda` was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def new_run_path(name: str, root: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = root / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{name}-{stamp}-{suffix}"
    return path


def create(path: Path, source: str, spec_text: str | None, config: TrainSettings) -> None:
    if path.exists() and any(path.iterdir()):
        raise RunError(
            f"{path} already holds a run: continue it with `--resume {path}`, or choose another --run",
            location=str(path),
        )
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.py").write_text(source, encoding="utf-8")
    if spec_text is not None:
        (path / "spec.gm").write_text(spec_text, encoding="utf-8")
    (path / "config.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")


def model_class_of(path: Path) -> ModelClass:
    """The model class of the run's model.py (executed once; tracebacks show its lines)."""
    source = _require_run(path) / "model.py"
    return load_model_class(source.read_text(encoding="utf-8"), path.name, source)


def _require_run(path: Path) -> Path:
    if not (path / "model.py").exists() or not (path / "config.json").exists():
        raise RunError(f"{path} is not a gmdsl run (it has no model.py and config.json)", location=str(path))
    return path


def config_of(path: Path) -> TrainSettings:
    return load_saved(_require_run(path) / "config.json")


def training_data(model: CompiledModel, config: TrainSettings, path: Path, device: torch.device) -> TrainingData:
    """The dataset bound to the model's variables, on the device; the labelled subset is drawn
    on the first call and read back from the run afterwards."""
    dataset = open_dataset(config.dataset)
    fields = bind(dataset, model.variables, config.fields, where="`fields` of the training configuration")
    train = {name: model_tensor(dataset.train[field], model.by_name[name]) for name, field in fields.items()}
    test = {name: model_tensor(dataset.test[field], model.by_name[name]) for name, field in fields.items()}
    supervised = tuple(v.name for v in model.variables if v.role == "supervised")
    size = len(next(iter(train.values())))
    labelled = torch.zeros(size, dtype=torch.bool)
    indices_file = path / "labelled.json"
    if supervised and config.labels:
        if indices_file.exists():
            indices = load_indices(indices_file)
        else:
            indices = labelled_subset(dataset.train[fields[supervised[0]]], config.labels, config.label_seed)
            save_indices(indices_file, indices)
        labelled[indices] = True
    prepare(
        {**train, **{name + "_observed": labelled for name in supervised}},
        model.by_name,
        torch.float32,
        torch.device("cpu"),
    )  # checked once here; the training loop then skips the checks
    for name in supervised:
        train[name] = hide_unlabelled(train[name], labelled)
    data_file = path / "data.json"
    if not data_file.exists():
        shapes = {name: list(dataset.train[field].shape[1:]) for name, field in fields.items()}
        data_file.write_text(
            json.dumps(
                {
                    "dataset": dataset.name,
                    "fields": fields,
                    "field_shapes": shapes,
                    "train_examples": size,
                    "labelled_examples": int(labelled.sum()),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
    return TrainingData(
        {k: v.to(device) for k, v in train.items()},
        {k: v.to(device) for k, v in test.items()},
        labelled.to(device),
        supervised,
    )


def open_run(path: Path, device_name: str = "auto") -> Run:
    """A trained run: its model with the last checkpoint's weights, on the device."""
    path = _require_run(Path(path))
    config = config_of(path)  # first: a hand-edited config is the likelier mistake
    device = choose_device(device_name)
    model = model_class_of(path)().to(device)
    checkpoints = Checkpoints(path / "checkpoint")
    if checkpoints.latest() is None:
        raise RunError(f"{path} has no checkpoint yet: train it first (`gmdsl train ... --run {path}`)")
    checkpoints.load(model, device)
    model.eval()
    data = json.loads((path / "data.json").read_text(encoding="utf-8"))
    return Run(path, model, config, data, device)


def test_data(run: Run) -> dict[str, torch.Tensor]:
    dataset = open_dataset(run.config.dataset)
    try:
        return {
            name: model_tensor(dataset.test[field], run.model.by_name[name]).to(run.device)
            for name, field in run.data["fields"].items()
        }
    except KeyError as exc:
        raise DataError(f"dataset {run.config.dataset} has no field {exc} any more") from None
