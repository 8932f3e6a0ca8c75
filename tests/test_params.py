"""Learned constants (`param`): where they start, what they compute, that they learn, and that
a `param` or network read by both p and q is one set of weights."""

from __future__ import annotations

import math

import pytest
import torch

import gmdsl

PRIORS = """
observed x : real[2]
supervised y : onehot[3]
param prior : simplex[3]
param noise : positive[1] = 0.5
param centre : real[2] = [1, -1]
param share : unit[1] = 0.25
p(y) = Categorical(probs = prior)
p(x | y) = Normal(loc = centre, scale = noise)
q(y | x) = Categorical(logits = classifier(x, share))
net classifier = mlp()
"""


def test_params_start_where_the_spec_says_through_their_links() -> None:
    model = gmdsl.compile(PRIORS).double()
    decoder, encoder = model.decoder, model.encoder
    assert torch.allclose(torch.softmax(decoder.prior, -1), torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.nn.functional.softplus(decoder.noise).item() == pytest.approx(0.5)
    assert decoder.centre.tolist() == [1.0, -1.0]
    assert torch.sigmoid(encoder.share).item() == pytest.approx(0.25)


def test_a_labelled_batch_scores_the_params_as_the_closed_form_does() -> None:
    """On rows labelled throughout, the objective is log p(y) + log p(x | y) + alpha log q(y | x):
    the first two read only the params, so their gradients are the closed forms."""
    model = gmdsl.compile(PRIORS).double()
    x = torch.tensor([[0.5, 0.0], [1.5, -2.0], [1.0, -1.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2])
    result = model.objective({"x": x, "y": y})
    prior = torch.softmax(model.decoder.prior, -1)
    noise = torch.nn.functional.softplus(model.decoder.noise)
    log_q = model.objective({"x": x, "y": y}).log_q_supervised
    log_p = torch.log(prior[y]) + (
        -0.5 * ((x - model.decoder.centre) / noise) ** 2 - torch.log(noise) - 0.5 * math.log(2 * math.pi)
    ).sum(-1)
    assert torch.allclose(result.elbo, log_p + model.options.alpha * log_q)
    result.loss.backward()
    counts = torch.bincount(y, minlength=3).double()
    # d(-mean log softmax(raw)[y]) / d raw = softmax(raw) - the labels' shares
    assert torch.allclose(model.decoder.prior.grad, prior.detach() - counts / len(y))
    expected_centre = -((x - model.decoder.centre.detach()) / noise.detach() ** 2).mean(0)
    assert torch.allclose(model.decoder.centre.grad, expected_centre)


def test_params_learn_the_data() -> None:
    """Trained on labels drawn 1 : 2 : 7 and x around (2, 0), the params find them."""
    torch.manual_seed(0)
    model = gmdsl.compile(PRIORS).double()
    y = torch.tensor([0] * 10 + [1] * 20 + [2] * 70)
    x = torch.tensor([2.0, 0.0], dtype=torch.float64) + 0.2 * torch.randn(100, 2, dtype=torch.float64)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(200):
        optimiser.zero_grad()
        model.objective({"x": x, "y": y}).loss.backward()
        optimiser.step()
    prior = torch.softmax(model.decoder.prior, -1)
    assert torch.allclose(prior, torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64), atol=0.02)
    assert torch.allclose(model.decoder.centre, x.mean(0), atol=0.05)
    assert torch.nn.functional.softplus(model.decoder.noise).item() == pytest.approx(0.2, abs=0.05)


def test_a_network_and_a_param_read_by_p_and_q_are_one_set_of_weights() -> None:
    model = gmdsl.compile(
        """
        observed x : real[2]
        latent z : real[2]
        param offset : real[2]
        p(z) = Normal(0, 1)
        p(x | z) = Normal(loc = shared(z, offset), scale = 1)
        q(z | x) = Normal(loc = shared(x, offset), scale = 1)
        net shared = mlp()
        """
    )
    assert model.encoder.shared is model.decoder.shared
    assert model.encoder.offset is model.decoder.offset
    names = [name for name, _ in model.named_parameters()]
    assert sorted(names) == ["encoder.offset", "encoder.shared.0.bias", "encoder.shared.0.weight"]
    result = model.objective({"x": torch.randn(4, 2)})
    result.loss.backward()
    assert model.encoder.offset.grad is not None and model.encoder.offset.grad.abs().sum() > 0


def test_a_trained_run_with_params_saves_and_loads_them(tmp_path) -> None:
    """A checkpoint holds the params (a shared one once) and loads them back."""
    from safetensors.torch import load_model, save_model

    model = gmdsl.compile(PRIORS)
    with torch.no_grad():
        model.decoder.prior.copy_(torch.tensor([1.0, 2.0, 3.0]))
    save_model(model, str(tmp_path / "m.safetensors"))
    fresh = gmdsl.compile(PRIORS)
    load_model(fresh, str(tmp_path / "m.safetensors"))
    assert fresh.decoder.prior.tolist() == [1.0, 2.0, 3.0]


def test_training_a_spec_with_nothing_to_learn_says_so(gmdsl_cli, tmp_path) -> None:
    """No network and no param: a user's mistake with its fix, not an optimiser's error."""
    import numpy as np

    np.savez(tmp_path / "coins.npz", x_train=np.ones((12, 4), np.float32), x_test=np.ones((4, 4), np.float32))
    (tmp_path / "coins.gm").write_text("observed x : binary[4]\np(x) = Bernoulli(probs = 0.5)\n", encoding="utf-8")
    code, _, err = gmdsl_cli(
        "train", str(tmp_path / "coins.gm"), "--dataset", str(tmp_path / "coins.npz"), "--run", str(tmp_path / "run")
    )
    assert code == 1 and "nothing to learn" in err and "param" in err


def test_a_simplex_of_one_category_starts_at_one() -> None:
    """Its one probability is 1: a start of 1 is in range (the random specs found it refused)."""
    from gmdsl.build import check_spec

    checked = check_spec("observed x : real[1]\nparam one : simplex[1] = [1]\np(x) = Normal(loc = one, scale = 1)\n")
    assert checked.ok, [d.message for d in checked.diagnostics]
