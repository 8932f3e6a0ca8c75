"""`gmdsl test SPEC`: property checks of a model structure before anyone trains it.

Each property runs under hypothesis on random valid batches (`gmdsl.testing.batches`); a
failure carries a small counterexample (the batch recipe and the seed of the draws), made
small in a few bounded steps rather than by an open-ended search. When
the objective is not finite, the factor whose log-probability is not finite is named, and the
properties that need a finite objective are skipped rather than failed as knock-ons.

    objective is finite          elbo and log q(y | x) are finite on every valid batch
    every parameter learns       gradients are finite, and each parameter gets a non-zero one
    rows are independent         row i's objective does not depend on row j (its gradient is zero)
    hidden labels do not leak    changing a label on a row whose mask is False changes nothing
    label estimate within bound  log q(y | x) <= 0 for one-hot labels, and its mean does not
                                 fall as the number of samples grows (Jensen: E log of a mean
                                 of S weights rises with S)
    sample and predict fit       sample() and predict() give the declared shapes and supports
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import Flaky

from gmdsl.runtime.errors import UserError
from gmdsl.runtime.model import CompiledModel
from gmdsl.runtime.trace import Generation

from .strategies import BatchRecipe, batch_recipes, random_batch

# What each property says about a model, printed beside its name.
MEANINGS = {
    "objective is finite": "elbo and the label estimate are finite numbers on every valid batch",
    "every parameter learns": "every network parameter gets a finite, non-zero gradient on some batch",
    "rows are independent": "no example's objective depends on another example in its batch",
    "hidden labels do not leak": "a label on a row marked unlabelled changes nothing",
    "label estimate within bound": "log q(labels | observed) is at most 0 for one-hot labels, and does "
    "not fall as samples grow",
    "sample and predict fit": "sample() and predict() return the declared shapes and supports",
}
NEEDS_FINITE_OBJECTIVE = (
    "every parameter learns",
    "rows are independent",
    "hidden labels do not leak",
    "label estimate within bound",
)
NEEDS_A_LABEL = ("hidden labels do not leak", "label estimate within bound")  # listed as skipped without one


class ModelCrashed(RuntimeError):
    """A compiled model raised something other than a property's assertion or a user's mistake:
    an internal error of gmdsl, which `gmdsl test` reports as such (exit 3), not a failed property."""


@dataclass
class PropertyResult:
    name: str
    passed: bool
    detail: str = ""  # why it failed, and the counterexample
    skipped: bool = False

    @property
    def meaning(self) -> str:
        return MEANINGS[self.name]


def _supervised(model: CompiledModel):
    return [v for v in model.variables if v.role == "supervised"]


def _labelled_rows(model: CompiledModel, batch: dict) -> torch.Tensor:
    rows = torch.zeros(len(next(iter(batch.values()))), dtype=torch.bool)
    for variable in _supervised(model):
        rows |= batch[variable.name + "_observed"]
    return rows


def _objective(model: CompiledModel, batch: dict, draws: int, samples: int | None = None):
    torch.manual_seed(draws)
    return model.objective(batch, samples=samples)


def objective_is_finite(model: CompiledModel, batch: dict, draws: int) -> None:
    with torch.no_grad():
        result = _objective(model, batch, draws)
    bad = ~torch.isfinite(result.elbo)
    if bad.any():
        culprit = non_finite_factor(model, batch, draws)
        raise AssertionError(
            f"elbo is {result.elbo[bad].tolist()} on rows {torch.nonzero(bad).flatten().tolist()}"
            + (f": {culprit}" if culprit else "")
        )
    labelled = _labelled_rows(model, batch)
    estimate = result.log_q_supervised[labelled]
    assert torch.isfinite(estimate).all(), f"log q(y | x) is {estimate.tolist()} on labelled rows"


def non_finite_factor(model: CompiledModel, batch: dict, draws: int) -> str | None:
    """Which factor of q or p has a log-probability that is not finite on this batch, and at
    which value, from a pass of the same draws as the objective's."""
    torch.manual_seed(draws)
    with torch.no_grad():
        q = model._recognise(batch, None)
        p = Generation(model.by_name, q.values, q.dtype, q.device)
        model.decoder(p)
    for which, trace in (("q", q), ("p", p)):
        for name, distribution in trace.distributions.items():
            value = trace.values[name]
            if model.by_name[name].repeat is not None:  # the trace keeps the last step's distribution
                value = value[..., -model.by_name[name].step_size :]
            log_prob = distribution.log_prob(value)
            bad = ~torch.isfinite(log_prob)
            if bad.any():
                lead = torch.broadcast_shapes(log_prob.shape, value.shape[:-1])
                at = value.expand(*lead, value.shape[-1])[bad.expand(lead)][0]
                shown = ", ".join(f"{v:.3g}" for v in at[:6].tolist()) + (", ..." if len(at) > 6 else "")
                return (
                    f"{which}({name}) = {distribution.name}(...) gives log-probability "
                    f"{log_prob[bad][0].item()} at {name} = [{shown}]"
                )
    return None


class _GradientCheck:
    """Finite gradients on every batch; a non-zero gradient for each parameter on some batch."""

    def __init__(self, model: CompiledModel):
        self.model = model
        self.learnt = {name: False for name, _ in model.named_parameters()}

    def check(self, model: CompiledModel, batch: dict, draws: int) -> None:
        self.model.zero_grad(set_to_none=True)
        loss = _objective(self.model, batch, draws).loss
        if loss.requires_grad:  # else no parameter reaches the objective: never_learnt says which
            loss.backward()
        for name, parameter in self.model.named_parameters():
            if parameter.grad is None:
                continue
            assert torch.isfinite(parameter.grad).all(), f"the gradient of {_network_of(name)} is not finite"
            self.learnt[name] |= bool((parameter.grad != 0).any())

    def never_learnt(self) -> list[str]:
        return sorted({_network_of(name) for name, learnt in self.learnt.items() if not learnt})


def _network_of(parameter: str) -> str:
    """`encoder.classifier.0.weight` -> `network classifier (q), layer 0 weight`."""
    part, network, *rest = parameter.split(".")
    return f"network `{network}` ({'q' if part == 'encoder' else 'p'}) parameter {'.'.join(rest)}"


def rows_are_independent(model: CompiledModel, batch: dict, draws: int, row: int) -> None:
    """A row's objective does not depend on the other rows' values: its gradient with respect to
    them is exactly zero. (A gradient, not a second pass with changed rows, because samplers such
    as Beta's draw a varying amount of randomness, so a second pass would see other draws.)"""
    rows = len(next(iter(batch.values())))
    row %= rows
    inputs = {k: v.clone().requires_grad_() for k, v in batch.items() if v.is_floating_point()}
    elbo = _objective(model, {**batch, **inputs}, draws).elbo
    gradients = torch.autograd.grad(elbo[row], list(inputs.values()), allow_unused=True)
    others = torch.arange(rows) != row
    for name, gradient in zip(inputs, gradients, strict=True):
        if gradient is None or not others.any():
            continue
        leak = gradient[others].abs().max().item()
        assert leak == 0.0, f"row {row}'s objective depends on other rows of `{name}` (gradient {leak:.3g})"


def hidden_labels_do_not_leak(model: CompiledModel, batch: dict, draws: int, other_seed: int) -> None:
    rows = len(next(iter(batch.values())))
    other = random_batch(model, rows, seed=other_seed)
    changed = dict(batch)
    for variable in _supervised(model):
        hidden = ~batch[variable.name + "_observed"]
        value = batch[variable.name].clone()
        value[hidden] = other[variable.name][hidden].to(value)
        changed[variable.name] = value
    with torch.no_grad():
        before = _objective(model, batch, draws).elbo
        after = _objective(model, changed, draws).elbo
    assert torch.allclose(before, after, rtol=1e-6, atol=1e-6), (
        f"labels on unlabelled rows changed the objective: {before.tolist()} -> {after.tolist()}"
    )


def label_estimate_within_bound(model: CompiledModel, batch: dict, draws: int) -> None:
    labelled_batch = dict(batch)
    for variable in _supervised(model):
        labelled_batch[variable.name + "_observed"] = torch.ones_like(batch[variable.name + "_observed"])
    # a probability is at most 1; a binary label may have a ContinuousBernoulli (a density)
    discrete = all(v.type == "onehot" for v in _supervised(model))
    means, errors = [], []
    with torch.no_grad():
        for samples in (1, 8, 64):
            estimates = torch.stack(
                [_objective(model, labelled_batch, draws + r, samples).log_q_supervised for r in range(6)]
            )
            if discrete:
                assert (estimates <= 1e-5).all(), (
                    f"log q(y | x) estimate {estimates.max().item():.4g} > 0 with {samples} samples"
                )
            means.append(estimates.mean(0))
            errors.append(estimates.std(0) / math.sqrt(len(estimates)))
    for i in range(len(means) - 1):
        slack = 4 * (errors[i] + errors[i + 1]) + 1e-4
        falls = means[i + 1] < means[i] - slack
        assert not falls.any(), (
            f"the mean estimate of log q(y | x) falls as samples grow: "
            f"{means[i][falls].tolist()} -> {means[i + 1][falls].tolist()}"
        )


def sample_and_predict_fit(model: CompiledModel, batch: dict, draws: int) -> None:
    rows = len(next(iter(batch.values())))
    torch.manual_seed(draws)
    drawn = model.sample(rows)
    for variable in model.variables:
        value = drawn[variable.name]
        assert value.shape == (rows, *variable.shape), (
            f"sample()['{variable.name}'] has shape {list(value.shape)}, expected {[rows, *variable.shape]}"
        )
        _assert_support(f"sample()['{variable.name}']", value, variable.type, variable.shape)
    predicted = model.predict(batch)  # it reads the observed variables only
    for variable in _supervised(model):
        value = predicted[variable.name]
        assert value.shape == (rows, *variable.shape), f"predict()['{variable.name}'] has shape {list(value.shape)}"
        assert torch.isfinite(value).all(), f"predict()['{variable.name}'] is not finite"
        if variable.type == "onehot":
            sums = value.reshape(rows, -1, variable.shape[-1]).sum(-1)
            assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4), (
                "predicted class probabilities do not sum to 1"
            )


def _assert_support(what: str, value: torch.Tensor, type_name: str, shape) -> None:
    assert torch.isfinite(value).all(), f"{what} is not finite"
    if type_name == "binary":
        assert ((value >= 0) & (value <= 1)).all(), f"{what} is not in [0, 1]"
    elif type_name == "onehot":
        grouped = value.reshape(len(value), -1, shape[-1])
        assert ((grouped == 0) | (grouped == 1)).all() and (grouped.sum(-1) == 1).all(), f"{what} is not one-hot"
    elif type_name == "positive":
        assert (value > 0).all(), f"{what} is not > 0"
    elif type_name == "unit":
        assert ((value > 0) & (value < 1)).all(), f"{what} is not in (0, 1)"


def _run(name: str, test: Callable, model: CompiledModel, strategies: dict, examples: int, seed: int) -> PropertyResult:
    """Run `test(model, batch, **drawn)` under hypothesis on batches built from drawn recipes.
    Hypothesis only searches; a failure is then made small by `_shrink`, a few bounded steps,
    so a model that fails everywhere is reported in seconds."""
    failing: dict = {}

    def property_of(recipe: BatchRecipe, **drawn) -> None:
        try:
            test(model, recipe.build(model), **drawn)
        except (AssertionError, UserError):
            failing.update(recipe=recipe, drawn=drawn)
            raise
        except Exception as exc:  # noqa: BLE001 - not a property failing but the model crashing: gmdsl's bug
            raise ModelCrashed(
                f"the compiled model crashed while `{name}` was checked ({type(exc).__name__}: {exc}); "
                f"counterexample: recipe={recipe!r}, {drawn!r}"
            ) from exc

    runner = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        report_multiple_bugs=False,  # one failure, of one kind: a crash is not hidden in a group
        phases=[Phase.explicit, Phase.generate],
    )(given(recipe=batch_recipes(model), **strategies)(property_of))
    try:
        hypothesis_seed(seed)(runner)()
    except (AssertionError, UserError, Flaky):  # the property fails (hypothesis re-raises what failed)
        recipe, drawn = _shrink(test, model, failing["recipe"], failing["drawn"])
        message = _failure(test, model, recipe, drawn) or "it failed once, and passes when run again"
        example = ", ".join([f"recipe={recipe!r}"] + [f"{key}={value!r}" for key, value in drawn.items()])
        rebuild = (
            "rebuild it: batch = gmdsl.testing.BatchRecipe(rows, seed, masks).build(model); torch.manual_seed(draws)"
        )
        return PropertyResult(name, False, f"{message}\ncounterexample: {example}\n{rebuild}")
    return PropertyResult(name, True)


def _failure(test: Callable, model: CompiledModel, recipe: BatchRecipe, drawn: dict) -> str | None:
    """Why `test` fails on this example, or None when it passes."""
    try:
        test(model, recipe.build(model), **drawn)
    except (AssertionError, UserError) as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - not a property failing but the model crashing: gmdsl's bug
        raise ModelCrashed(
            f"the compiled model crashed on a counterexample (recipe={recipe!r}, {drawn!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return None


def _shrink(test: Callable, model: CompiledModel, recipe: BatchRecipe, drawn: dict) -> tuple[BatchRecipe, dict]:
    """A smaller failing example, in a fixed handful of steps: one row, value seed 0, all labels,
    then no labels, and zero for every drawn number; each step is kept only if it still fails."""
    one_row = BatchRecipe(1, recipe.seed, tuple((name, mask[:1]) for name, mask in recipe.masks))
    candidates: list[Callable[[BatchRecipe, dict], tuple[BatchRecipe, dict]]] = [
        lambda r, d: (one_row, d),
        lambda r, d: (BatchRecipe(r.rows, 0, r.masks), d),
        lambda r, d: (BatchRecipe(r.rows, r.seed, tuple((n, (True,) * r.rows) for n, _ in r.masks)), d),
        lambda r, d: (BatchRecipe(r.rows, r.seed, tuple((n, (False,) * r.rows) for n, _ in r.masks)), d),
        lambda r, d: (r, {key: 0 for key in d}),
    ]
    for step in candidates:
        smaller, smaller_drawn = step(recipe, drawn)
        if (smaller, smaller_drawn) != (recipe, drawn) and _failure(test, model, smaller, smaller_drawn) is not None:
            recipe, drawn = smaller, smaller_drawn
    return recipe, drawn


def check_structure(model: CompiledModel, examples: int = 20, seed: int = 0) -> list[PropertyResult]:
    """Run every property on a compiled model; a result per property, in a fixed order. When
    the objective is not finite, the properties that need it are skipped, not failed."""
    model = model.float()  # the dtype of training, so its overflows show here too
    draws = {"draws": st.integers(0, 2**16)}
    finite = _run("objective is finite", objective_is_finite, model, draws, examples, seed)
    results = [finite]
    properties: list[tuple[str, Callable[[], PropertyResult]]] = [
        ("every parameter learns", lambda: _parameters_learn(model, draws, examples, seed)),
        (
            "rows are independent",
            lambda: _run(
                "rows are independent", rows_are_independent, model, {**draws, "row": st.integers(0, 7)}, examples, seed
            ),
        ),
    ]
    properties += [
        (
            "hidden labels do not leak",
            lambda: _run(
                "hidden labels do not leak",
                hidden_labels_do_not_leak,
                model,
                {**draws, "other_seed": st.integers(0, 2**16)},
                examples,
                seed,
            ),
        ),
        (
            "label estimate within bound",
            lambda: _run(
                "label estimate within bound",
                label_estimate_within_bound,
                model,
                draws,
                max(1, examples // 4),
                seed,
            ),
        ),
    ]
    properties.append(
        (
            "sample and predict fit",
            lambda: _run("sample and predict fit", sample_and_predict_fit, model, draws, max(1, examples // 4), seed),
        )
    )
    for name, run in properties:
        if name in NEEDS_A_LABEL and not _supervised(model):
            results.append(PropertyResult(name, False, "not run: the model has no supervised variable", skipped=True))
        elif not finite.passed and name in NEEDS_FINITE_OBJECTIVE:
            results.append(PropertyResult(name, False, "not run: it needs a finite objective", skipped=True))
        else:
            results.append(run())
    return results


def _parameters_learn(model: CompiledModel, draws: dict, examples: int, seed: int) -> PropertyResult:
    gradients = _GradientCheck(model)
    result = _run("every parameter learns", gradients.check, model, draws, examples, seed)
    never_learnt = gradients.never_learnt()
    if result.passed and never_learnt:
        return PropertyResult(result.name, False, "no batch gave a non-zero gradient to: " + "; ".join(never_learnt))
    return result
