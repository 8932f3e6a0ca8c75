"""Invariance hoisting (gmdsl/compiler/hoisting.py): a hoisted module computes what the plain
one computes, with the same parameters, on specs with relaxation, enumeration, `let` nodes and
image networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gmdsl.build import compile_spec
from gmdsl.compiler.hoisting import BATCH, SAMPLES, leading_dimensions

ROOT = Path(__file__).resolve().parent.parent

# conv reading the image and a relaxed label; deconv reading an enumerated label and a draw
CONV_RELAXED = """
model conv_relaxed
observed   x : binary[1, 12, 12]
supervised y : onehot[4]
latent     z : real[3]
p(y) = Categorical(probs = uniform)
p(z) = Normal(0, 1)
p(x | y, z) = Bernoulli(logits = decoder(y, z))
q(y | x) = Categorical(logits = classifier(x)) by relaxation(temperature = 0.5)
q(z | x, y) = Normal(encoder(x, y))
net classifier = mlp(hidden = [16])
net encoder = conv(channels = [4, 8], hidden = [16])
net decoder = mlp(hidden = [16])
objective semisupervised(alpha = 0.1, samples = 3)
"""
DECONV_ENUMERATED = """
model deconv_enumerated
observed   x : binary[1, 12, 12]
supervised y : onehot[4]
latent     z : real[3]
p(y) = Categorical(probs = uniform)
p(z) = Normal(0, 1)
let style : real[6] = stylist(z)
p(x | y, z) = Bernoulli(logits = decoder(y, style))
q(y | x) = Categorical(logits = classifier(x)) by enumeration
q(z | x, y) = Normal(encoder(x, y))
net classifier = mlp(hidden = [16])
net encoder = mlp(hidden = [16])
net stylist = mlp(hidden = [])
net decoder = deconv(channels = [8, 4], hidden = [16])
objective semisupervised(alpha = 0.1, samples = 2)
"""
SPECS = {
    "mnist": ROOT / "specs" / "mnist.gm",
    "mnist_enum": ROOT / "specs" / "mnist_enum.gm",
    "digit_after_style": ROOT / "specs" / "digit_after_style.gm",
    "faces": ROOT / "specs" / "faces.gm",
    "conv_relaxed": CONV_RELAXED,
    "deconv_enumerated": DECONV_ENUMERATED,
}


def _twins(spec) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The hoisted and the plain module of a spec, in float64, with the same weights."""
    torch.manual_seed(0)
    hoisted = compile_spec(spec).new_model().double()
    plain = compile_spec(spec, hoisting=False).new_model().double()
    plain.load_state_dict(hoisted.state_dict(), strict=True)  # the same parameters, by the same keys
    return hoisted, plain


def _batch(model, rows: int = 6) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    batch: dict[str, torch.Tensor] = {}
    for variable in model.variables:
        if variable.role == "observed":
            batch[variable.name] = (
                (torch.rand(rows, *variable.shape, generator=generator) < 0.3).double()
                if variable.type == "binary"
                else torch.randn(rows, *variable.shape, generator=generator, dtype=torch.float64)
            )
        elif variable.role == "supervised":
            if variable.type == "onehot":
                batch[variable.name] = torch.randint(0, variable.shape[-1], (rows,), generator=generator)
            else:
                batch[variable.name] = torch.randn(rows, *variable.shape, generator=generator, dtype=torch.float64)
            batch[f"{variable.name}_observed"] = torch.arange(rows) % 2 == 0
    return batch


def _same(run, hoisted, plain) -> None:
    """`run(model)` gives the same tensors on both, from the same random draws."""
    torch.manual_seed(2)
    expected = run(plain)
    torch.manual_seed(2)
    actual = run(hoisted)
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SPECS)
def test_hoisted_and_plain_modules_agree(name: str) -> None:
    hoisted, plain = _twins(SPECS[name])
    batch = _batch(plain)
    observed = plain.observed_part(batch)

    def elbo_and_gradients(model):
        result = model.objective(batch)
        model.zero_grad()
        result.loss.backward()
        gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
        return [result.elbo, torch.nan_to_num(result.log_q_supervised), *gradients]

    _same(elbo_and_gradients, hoisted, plain)
    _same(lambda m: m.objective(batch, samples=5, estimator="iwae").elbo, hoisted, plain)
    _same(lambda m: m.log_likelihood(observed, samples=4), hoisted, plain)
    _same(lambda m: m.predict(observed), hoisted, plain)
    _same(lambda m: m.sample(3), hoisted, plain)


@pytest.mark.parametrize(
    "name, network, hoisted",
    [
        ("mnist", "encoder", ["x"]),  # x is the same for every relaxed draw of y
        ("mnist_enum", "encoder", ["x"]),  # ... and for every enumerated value of y
        ("mnist_enum", "decoder", ["y"]),  # y's share once per value, not per value, draw and row
        ("digit_after_style", "classifier", ["h"]),  # a let of x, read beside a draw of z
        ("deconv_enumerated", "decoder", ["y"]),
        ("conv_relaxed", "encoder", ["x"]),  # the convolutions run once per image
    ],
)
def test_the_pass_hoists_what_does_not_vary(name: str, network: str, hoisted: list[str]) -> None:
    model = compile_spec(SPECS[name]).model
    calls = [
        binding.hoisted
        for graph in (model.q, model.p)
        for node in graph.nodes
        for binding in ([node] if node.kind == "let" else node.factor.parameters if node.factor else [])
        if getattr(binding, "network", None) == network
    ]
    assert calls == [hoisted]
    source = compile_spec(SPECS[name]).source
    assert f"{network}_{hoisted[0]} = rt.Share({hoisted[0]})" in source  # one named line
    assert "hoisted" not in compile_spec(SPECS[name], hoisting=False).source


def test_nothing_is_hoisted_where_every_input_varies_alike() -> None:
    model = compile_spec(SPECS["mnist"]).model
    decoder_call = model.p.node("x").factor.parameters[0]
    assert decoder_call.network == "decoder" and decoder_call.hoisted == []  # y and z are both drawn per sample
    classifier_call = model.q.node("y").factor.parameters[0]
    assert classifier_call.hoisted == []  # one input: nothing to split


def test_leading_dimensions() -> None:
    dimensions = leading_dimensions(compile_spec(SPECS["mnist_enum"]).model)
    assert dimensions["x"] == {BATCH}
    assert dimensions["y"] == {"enumerated y", BATCH}  # labelled rows keep their label
    assert dimensions["z"] == {"enumerated y", SAMPLES, BATCH}
