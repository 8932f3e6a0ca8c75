"""A Categorical `probs` list may give a class probability 0 (`p(count) = Categorical(probs =
[0, 0.5, 0.5])`): the compiled model marks the class impossible, q never proposes it (its logits
are masked, enumeration skips it, relaxed draws put no mass there), p never draws it, and a label
naming it is a located batch error. The objective is checked against an exact sum over the
classes that remain."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import gmdsl
from gmdsl.runtime.batch import BatchError

SPEC = """
model ruled_out
observed   x : real[2]
supervised c : onehot[3]
p(c)     = Categorical(probs = [0, 0.25, 0.75])
p(x | c) = Normal(loc = dec(c), scale = 0.7)
q(c | x) = Categorical(logits = enc(x)) by ESTIMATOR
net dec = mlp(hidden = [4])
net enc = mlp(hidden = [4])
objective semisupervised(alpha = 0.5, samples = 3)
"""
X = torch.tensor([[0.5, -0.1], [1.5, 2.0], [-1.0, 0.0], [0.2, 0.3]], dtype=torch.float64)


def compiled(estimator: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return gmdsl.compile(SPEC.replace("ESTIMATOR", estimator)).double()


def test_the_compiled_model_marks_the_class_and_says_so() -> None:
    source = gmdsl.compile_source(SPEC.replace("ESTIMATOR", "enumeration"))
    assert 'rt.Variable("c", "supervised", "onehot", (3,), impossible=(0,))' in source
    assert "c is never class 0: the spec gives it probability 0" in source
    assert "c is summed by enumeration: every one of its 2 values" in source


def test_enumeration_sums_over_the_possible_classes_exactly() -> None:
    model = compiled("enumeration")
    elbo = model.objective({"x": X}).elbo
    exact = []
    for row in X:
        log_q = torch.log_softmax(model.encoder.enc(row)[1:], -1)  # q renormalised over classes 1 and 2
        total = torch.tensor(0.0, dtype=torch.float64)
        for k, log_prior in ((1, math.log(0.25)), (2, math.log(0.75))):
            c = torch.nn.functional.one_hot(torch.tensor(k), 3).double()
            log_joint = log_prior + D.Normal(model.decoder.dec(c), 0.7).log_prob(row).sum()
            total = total + log_q[k - 1].exp() * (log_joint - log_q[k - 1])
        exact.append(total)
    torch.testing.assert_close(elbo, torch.stack(exact))


def test_q_gives_the_class_no_probability_and_p_never_draws_it() -> None:
    model = compiled("enumeration")
    predicted = model.predict({"x": X})["c"]
    assert (predicted[:, 0] == 0).all()
    torch.testing.assert_close(predicted.sum(-1), torch.ones(len(X), dtype=torch.float64))
    assert (model.sample(200)["c"][:, 0] == 0).all()


def test_relaxed_draws_put_no_mass_on_the_class_and_gradients_stay_finite() -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(SPEC.replace("supervised c", "latent c").replace("ESTIMATOR", "relaxation")).double()
    loss = model.objective({"x": X}).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    draws = model.infer({"x": X})["c"]
    assert (draws[..., 0] == 0).all() and (draws[..., 1:] > 0).any()


@pytest.mark.parametrize("estimator", ["enumeration", "relaxation(temperature = 0.5)"])
def test_labelled_rows_train_with_finite_gradients(estimator: str) -> None:
    model = compiled(estimator)
    batch = {"x": X, "c": torch.tensor([1, 2, 2, 1]), "c_observed": torch.tensor([True, False, True, False])}
    loss = model.objective(batch).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_a_label_naming_the_class_is_a_batch_error() -> None:
    model = compiled("enumeration")
    with pytest.raises(BatchError) as caught:
        model.objective({"x": X, "c": torch.tensor([1, 0, 2, 0])})
    assert "batch['c'] names class 0 on 2 row(s), but the spec gives `c` probability 0" in str(caught.value)
    # a hidden row's placeholder is never read, even when no row is labelled
    model.objective({"x": X, "c": torch.tensor([1, 0, 2, 1]), "c_observed": torch.tensor([True, False, True, True])})
    model.objective({"x": X, "c": torch.tensor([0, 0, 0, 0]), "c_observed": torch.zeros(4, dtype=torch.bool)})
    with pytest.raises(BatchError, match="given\\['c'\\] names class 0"):
        model.sample(2, given={"c": torch.nn.functional.one_hot(torch.tensor([0, 1]), 3).double()})
