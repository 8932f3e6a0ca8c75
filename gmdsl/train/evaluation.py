"""Numbers of a trained model on held-out data: classification error for each discrete
supervised variable, RMSE for continuous ones and, for a variable declared a direction, the
angle between the predicted and the true direction (on validation each epoch, and on test in
`gmdsl eval`), the ELBO, and an importance-weighted log-likelihood."""

from __future__ import annotations

import math

import torch

from gmdsl.data.labels import class_error
from gmdsl.runtime.batch import MASK_SUFFIX
from gmdsl.runtime.model import CompiledModel


def _chunks(data: dict[str, torch.Tensor], size: int):
    rows = len(next(iter(data.values())))
    for start in range(0, rows, size):
        yield {k: v[start : start + size] for k, v in data.items()}


@torch.no_grad()
def predictions(
    model: CompiledModel,
    data: dict[str, torch.Tensor],
    samples: int | None = None,
    method: str = "q",
    chunk: int = 1000,
) -> dict[str, torch.Tensor]:
    """model.predict over the whole set, in chunks."""
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in _chunks(model.observed_part(data), chunk):
        for name, value in model.predict(batch, samples, method).items():
            parts.setdefault(name, []).append(value)
    return {name: torch.cat(values) for name, values in parts.items()}


@torch.no_grad()
def supervised_metrics(
    model: CompiledModel,
    data: dict[str, torch.Tensor],
    split: str,
    samples: int | None = None,
    method: str = "q",
    directions: tuple[str, ...] | list[str] = (),
) -> dict[str, float]:
    """`SPLIT_error_NAME` (percent) for discrete, `SPLIT_rmse_NAME` for continuous supervised
    variables: those the data labels, on the rows that have a label (a mask `NAME_observed`
    says which, where some are missing). For a variable named in `directions` (a direction,
    like a light's), also the angle between the predicted and the true direction.
    `samples` and `method`: how to predict (model.predict)."""
    out = {}
    for name, predicted in predictions(model, data, samples, method).items():
        if name not in data:
            continue
        truth = data[name]
        given = data.get(name + MASK_SUFFIX)
        if given is not None:
            if not bool(given.any()):
                continue
            truth, predicted = truth[given], predicted[given]
        present = ~torch.isnan(truth)  # a repeated variable's steps without a label are NaN
        if model.by_name[name].type == "onehot":
            out[f"{split}_error_{name}"] = class_error(predicted, truth)
        elif model.by_name[name].type == "binary":
            wrong = (predicted > 0.5).float() != truth.round()
            out[f"{split}_error_{name}"] = 100.0 * wrong[present].float().mean().item()
        else:
            out[f"{split}_rmse_{name}"] = math.sqrt(((predicted - truth)[present] ** 2).mean().item())
            if name in directions:  # how far the predicted direction is off
                cosine = torch.nn.functional.cosine_similarity(predicted, truth.to(predicted.dtype), dim=-1)
                out[f"{split}_angle_{name}"] = torch.rad2deg(torch.arccos(cosine.clamp(-1, 1))).mean().item()
                out[f"{split}_cosine_distance_{name}"] = (1 - cosine).mean().item()
    return out


@torch.no_grad()
def mean_elbo(model: CompiledModel, data: dict[str, torch.Tensor], chunk: int = 500) -> float:
    """The spec's objective of the observed variables alone (every label hidden), per example."""
    observed = model.observed_part(data)
    return torch.cat([model.objective(batch).elbo for batch in _chunks(observed, chunk)]).mean().item()


@torch.no_grad()
def evaluate(
    model: CompiledModel,
    data: dict[str, torch.Tensor],
    log_likelihood_samples: int,
    log_likelihood_rows: int,
    predict_samples: int | None = None,
    method: str = "q",
    directions: tuple[str, ...] | list[str] = (),
) -> dict[str, float]:
    """Everything `gmdsl eval` reports on the test set. The ELBO uses the spec's estimator and
    samples on every test row, labels hidden; the log-likelihood uses the iwae bound on the
    first rows."""
    out = supervised_metrics(model, data, "test", predict_samples, method, directions)
    out["test_elbo"] = mean_elbo(model, data)
    observed = model.observed_part(data)
    first = {k: v[:log_likelihood_rows] for k, v in observed.items()}
    # the bound sums relaxed categories exactly: each row takes samples x categories passes of p
    # (38 faces identities x 10 samples x 2,000 rows ran out of 24 GB), so rows per chunk shrink
    categories = math.prod(v.shape[-1] for v in model.variables if v.type == "onehot" and v.role != "observed")
    chunk = max(1, 20000 // (log_likelihood_samples * categories))
    values = [model.log_likelihood(batch, log_likelihood_samples) for batch in _chunks(first, chunk)]
    out["test_log_likelihood"] = torch.cat(values).mean().item()
    out["log_likelihood_samples"] = log_likelihood_samples
    out["log_likelihood_rows"] = len(next(iter(first.values())))
    return out
