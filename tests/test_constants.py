"""Lists of constants as distribution arguments (`Normal(loc = [0.35, 0, 0], ...)`,
`Categorical(probs = [0.2, 0.3, 0.5])`): one number per element, checked like single numbers,
kept as buffers of the compiled modules. The objective is checked against a hand computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gmdsl
from gmdsl.build import SpecError
from gmdsl.compiler.parser import parse
from gmdsl.compiler.pretty import pretty

SPEC = """
model listed
observed   x : real[4]
supervised y : onehot[3]
latent     z : real[3]

p(y)        = Categorical(probs = [0.2, 0.3, 0.5])
p(z)        = Normal(loc = [0.35, 0, -1], scale = [0.05, 0.5, 2])
p(x | y, z) = Normal(loc = decoder(y, z), scale = 1)
q(y | x)    = Categorical(logits = classifier(x))
q(z | x, y) = Normal(encoder(x, y))

net classifier = mlp(hidden = [8])
net encoder    = mlp(hidden = [8])
net decoder    = mlp(hidden = [8])
objective semisupervised(alpha = 0, samples = 1)
"""
ROWS = 6
LOC, SCALE, PROBS = [0.35, 0.0, -1.0], [0.05, 0.5, 2.0], [0.2, 0.3, 0.5]


def test_a_labelled_row_scores_each_element_with_its_own_constants() -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(SPEC).double()
    x = torch.randn(ROWS, 4, dtype=torch.double)
    y = F.one_hot(torch.arange(ROWS) % 3, 3).double()
    torch.manual_seed(1)
    elbo = model.objective({"x": x, "y": y}).elbo
    torch.manual_seed(1)
    loc, scale = model.encoder.encoder(torch.cat([x, y], -1)).chunk(2, -1)
    scale = F.softplus(scale)
    z = loc + scale * torch.empty(ROWS, 3, dtype=torch.double).normal_()
    prior = torch.distributions.Normal(torch.tensor(LOC).double(), torch.tensor(SCALE).double())
    expected = (
        torch.log(torch.tensor(PROBS).double()[torch.arange(ROWS) % 3])
        + prior.log_prob(z).sum(-1)
        + torch.distributions.Normal(model.decoder.decoder(torch.cat([y, z], -1)), 1.0).log_prob(x).sum(-1)
        - torch.distributions.Normal(loc, scale).log_prob(z).sum(-1)
    )
    torch.testing.assert_close(elbo, expected)


def test_the_constants_are_buffers_that_follow_the_module_but_stay_out_of_checkpoints() -> None:
    model = gmdsl.compile(SPEC).double()
    assert model.decoder.z_loc.dtype == torch.double
    torch.testing.assert_close(model.decoder.z_loc, torch.tensor(LOC).double())
    assert not any("z_loc" in key or "y_probs" in key for key in model.state_dict())
    drawn = model.sample(4000)
    assert torch.allclose(drawn["z"].mean(0), torch.tensor(LOC).double(), atol=0.1)
    assert torch.allclose(drawn["y"].mean(0), torch.tensor(PROBS).double(), atol=0.05)


def test_the_compiled_module_names_the_buffers_and_prints_the_lists() -> None:
    source = gmdsl.build.compile_text(SPEC, "listed.gm").source
    assert 'self.register_buffer("z_loc", torch.tensor([0.35, 0.0, -1.0]), persistent=False)' in source
    assert "# p(z) = Normal(loc = [0.35, 0, -1], scale = [0.05, 0.5, 2])" in source
    assert "rt.Normal(loc=self.z_loc, scale=self.z_scale)" in source
    assert "rt.Categorical(probs=self.y_probs)" in source


def test_pretty_printing_a_list_parses_back_the_same() -> None:
    spec = parse(SPEC)
    assert "loc = [0.35, 0, -1]" in pretty(spec)
    assert parse(pretty(spec)) == spec


@pytest.mark.parametrize(
    ("old", "new", "code", "message"),
    [
        ("loc = [0.35, 0, -1]", "loc = [0.35, 0]", "E0309", "`loc` lists 2 numbers, but `z` has 3 elements"),
        ("scale = [0.05, 0.5, 2]", "scale = [0.05, 0, 2]", "E0305", "each of `scale` of Normal must be a number > 0"),
        ("[0.2, 0.3, 0.5]", "[0.2, 0.3, 0.6]", "E0305", "must sum to 1, but these sum to 1.1"),
        ("[0.2, 0.3, 0.5]", "[-0.5, 1, 0.5]", "E0305", "each of `probs` of Categorical must be >= 0, not -0.5"),
        ("z : real[3]", "z : real[3, 1]", "E0309", "one-dimensional variable, but `z` has shape [3, 1]"),
    ],
)
def test_a_list_that_misfits_is_a_located_error(old: str, new: str, code: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        gmdsl.compile(SPEC.replace(old, new))
    found = [(d.code, d.message) for d in caught.value.diagnostics]
    assert any(c == code and message in m for c, m in found), found
    line = next(d.span.line for d in caught.value.diagnostics if d.code == code)
    assert new.split(" = ")[0].split(" : ")[0] in SPEC.replace(old, new).splitlines()[line - 1]
