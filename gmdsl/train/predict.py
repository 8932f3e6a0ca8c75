"""`gmdsl predict`: a trained run's predictions for every example of a dataset (its own or
new data), written as .npz or .csv."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import click
import numpy
import torch

from gmdsl.data import DataError, Dataset, open_dataset
from gmdsl.data.binding import bind, split_tensors
from gmdsl.files import write_atomically

from .evaluation import predictions
from .runs import Run

FORMATS = (".npz", ".csv")


def predict_dataset(run: Run, dataset: Dataset, split: str, fields: dict[str, str]) -> dict[str, numpy.ndarray]:
    """Columns of predictions for the examples of `split` (train, test or all: train then test),
    from the observed variables alone: for a discrete supervised variable its class (`NAME`)
    and the probability of each (`NAME_p0`, ...), for a continuous one its mean (`NAME`, or
    `NAME_0`, ... for a vector); `split` says where each row came from when both are there."""
    observed = tuple(v for v in run.model.variables if v.role == "observed")
    mapping = {**{k: v for k, v in run.data["fields"].items() if k in {o.name for o in observed}}, **fields}
    mapping = {k: v for k, v in mapping.items() if v in dataset.fields() or k in fields}
    bound, _ = bind(dataset, observed, mapping, where="--fields")
    splits = ["train", "test"] if split == "all" else [split]
    if split == "all" and not dataset.has_test:
        splits = ["train"]
    columns: dict[str, list[numpy.ndarray]] = {}
    for name in splits:
        batch = {k: v.to(run.device) for k, v in split_tensors(dataset, name, bound, run.model.by_name).items()}
        torch.manual_seed(run.config.seed)
        predicted = predictions(run.model, batch, run.config.predict_samples, run.config.prediction)
        rows = len(next(iter(batch.values())))
        if len(splits) > 1:
            columns.setdefault("split", []).append(numpy.array([name] * rows))
        for variable, values in predicted.items():
            for column, array in _columns(run, variable, values.cpu()).items():
                columns.setdefault(column, []).append(array)
    return {name: numpy.concatenate(parts) for name, parts in columns.items()}


def _columns(run: Run, name: str, values: torch.Tensor) -> dict[str, numpy.ndarray]:
    variable = run.model.by_name[name]
    flat = values.reshape(len(values), -1).numpy()
    if variable.type == "onehot" and variable.repeat is None:
        names = run.data.get("classes", {}).get(name)
        chosen = flat.argmax(-1)
        label = numpy.array(names, dtype=object)[chosen] if names else chosen
        return {name: label, **{f"{name}_p{k}": flat[:, k] for k in range(flat.shape[1])}}
    if flat.shape[1] == 1:
        return {name: flat[:, 0]}
    return {f"{name}_{k}": flat[:, k] for k in range(flat.shape[1])}


def write_predictions(columns: dict[str, numpy.ndarray], output: Path) -> None:
    if output.suffix == ".npz":
        arrays: dict[str, Any] = {k: v.astype(str) if v.dtype == object else v for k, v in columns.items()}

        def save(temporary: str) -> None:
            with open(temporary, "wb") as handle:  # a handle: numpy would add .npz to the temporary name
                numpy.savez(handle, **arrays)

        write_atomically(output, save)
        return
    rows = len(next(iter(columns.values())))

    def write(temporary: str) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for i in range(rows):
                writer.writerow([_cell(values[i]) for values in columns.values()])

    write_atomically(output, write)


def _cell(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, (float, numpy.floating)) else value


def run_prediction(run: Run, dataset: str | None, split: str, fields: dict[str, str], output: Path) -> Path:
    """Predict for `dataset` (a file or folder; the run's own data when None) and write `output`."""
    if output.suffix not in FORMATS:
        raise DataError(f"cannot tell what to write to {output}: end it in .npz or .csv")
    columns = predict_dataset(run, open_dataset(dataset) if dataset else run.dataset, split, fields)
    if not any(c != "split" for c in columns):
        raise DataError(f"{run.path}'s model has no supervised variable: there is nothing to predict")
    try:
        write_predictions(columns, output)
    except OSError as exc:
        raise DataError(f"cannot write {output}: {exc.strerror or exc}") from None
    rows = len(next(iter(columns.values())))
    click.echo(f"wrote {output}: {rows} rows, columns {', '.join(columns)}")
    return output
