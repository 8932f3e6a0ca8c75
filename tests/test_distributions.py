"""Every distribution of the registry against a float64 oracle written out from its formula
(math on Python floats, one element at a time, not torch.distributions), on random parameters;
draws in the support; reparameterised draws carry gradients wherever q may use the law."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gmdsl.runtime import distributions as rt
from gmdsl.runtime.registry import DISTRIBUTIONS, MIXTURE_FAMILIES

SIZE = 3  # elements of the value (a simplex and a onehot: one group of 3)


def _normal(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)


def _laplace(x, loc, scale):
    return -abs(x - loc) / scale - math.log(2 * scale)


def _lognormal(x, loc, scale):
    return _normal(math.log(x), loc, scale) - math.log(x)


def _gamma(x, concentration, rate):
    a, b = concentration, rate
    return a * math.log(b) + (a - 1) * math.log(x) - b * x - math.lgamma(a)


def _beta(x, concentration1, concentration0):
    a, b = concentration1, concentration0
    return (a - 1) * math.log(x) + (b - 1) * math.log(1 - x) + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)


def _continuous_bernoulli(x, logits):
    p = 1 / (1 + math.exp(-logits))
    constant = 2.0 if abs(p - 0.5) < 1e-6 else 2 * math.atanh(1 - 2 * p) / (1 - 2 * p)
    return x * math.log(p) + (1 - x) * math.log(1 - p) + math.log(constant)


def _exponential(x, rate):
    return math.log(rate) - rate * x


def _student_t(x, df, loc, scale):
    y = (x - loc) / scale
    return (
        math.lgamma((df + 1) / 2)
        - math.lgamma(df / 2)
        - 0.5 * math.log(df * math.pi)
        - math.log(scale)
        - (df + 1) / 2 * math.log1p(y * y / df)
    )


def _poisson(x, rate):
    return x * math.log(rate) - rate - math.lgamma(x + 1)


ELEMENTWISE = {
    "Normal": _normal,
    "Laplace": _laplace,
    "LogNormal": _lognormal,
    "Gamma": _gamma,
    "Beta": _beta,
    "Exponential": _exponential,
    "StudentT": _student_t,
}


def _sum(law, value, params):
    """The log-density of a value under a law that holds element by element."""
    return sum(law(value[i], *(p[i] for p in params)) for i in range(len(value)))


def _dirichlet(value, concentration):
    a = concentration
    return (
        math.lgamma(sum(a))
        - sum(math.lgamma(c) for c in a)
        + sum((c - 1) * math.log(v) for c, v in zip(a, value, strict=True))
    )


def _low_rank_normal(value, loc, factor, diagonal):
    """The dense Gaussian, its covariance built and inverted outright (torch's uses Woodbury)."""
    x, mu = torch.tensor(value, dtype=torch.float64), torch.tensor(loc, dtype=torch.float64)
    f = torch.tensor(factor, dtype=torch.float64).reshape(len(value), -1)
    covariance = f @ f.T + torch.diag(torch.tensor(diagonal, dtype=torch.float64))
    centred = x - mu
    quadratic = float(centred @ torch.linalg.inv(covariance) @ centred)
    return -0.5 * (quadratic + float(torch.logdet(covariance)) + len(value) * math.log(2 * math.pi))


def _positive(draw) -> float:
    return draw(st.floats(0.2, 4.0))


@st.composite
def cases(draw, name: str):
    """(distribution, flat value, log-density by the oracle) for random parameters."""
    # away from 0: at logits 0 torch's continuous Bernoulli draws by a series with no gradient
    reals = st.builds(lambda size, sign: size * sign, st.floats(0.1, 2.0), st.sampled_from((-1, 1)))
    if name in ELEMENTWISE:
        info = DISTRIBUTIONS[name]
        params = {
            p.name: [draw(reals) if p.constraint == "real" else _positive(draw) for _ in range(SIZE)]
            for p in info.positional()
        }
        value = [draw(_support(info.support[0])) for _ in range(SIZE)]
        oracle = _sum(ELEMENTWISE[name], value, list(params.values()))
        return getattr(rt, name)(**{k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()}), value, oracle
    if name == "ContinuousBernoulli":
        logits = [draw(reals) for _ in range(SIZE)]
        value = [draw(st.floats(0.0, 1.0)) for _ in range(SIZE)]
        oracle = _sum(_continuous_bernoulli, value, [logits])
        return rt.ContinuousBernoulli(logits=torch.tensor(logits, dtype=torch.float64)), value, oracle
    if name == "Bernoulli":
        logits = [draw(reals) for _ in range(SIZE)]
        value = [float(draw(st.integers(0, 1))) for _ in range(SIZE)]
        oracle = sum(v * lg - math.log1p(math.exp(lg)) for v, lg in zip(value, logits, strict=True))
        return rt.Bernoulli(logits=torch.tensor(logits, dtype=torch.float64)), value, oracle
    if name == "Categorical":
        logits = [draw(reals) for _ in range(SIZE)]
        chosen = draw(st.integers(0, SIZE - 1))
        value = [float(i == chosen) for i in range(SIZE)]
        oracle = logits[chosen] - math.log(sum(math.exp(lg) for lg in logits))
        return rt.Categorical(logits=torch.tensor(logits, dtype=torch.float64)), value, oracle
    if name == "Poisson":
        rates = [_positive(draw) for _ in range(SIZE)]
        value = [float(draw(st.integers(0, 12))) for _ in range(SIZE)]
        return rt.Poisson(rate=torch.tensor(rates, dtype=torch.float64)), value, _sum(_poisson, value, [rates])
    if name == "Dirichlet":
        concentration = [_positive(draw) for _ in range(SIZE)]
        weights = [draw(st.floats(0.05, 1.0)) for _ in range(SIZE)]
        value = [w / sum(weights) for w in weights]
        law = rt.Dirichlet(concentration=torch.tensor(concentration, dtype=torch.float64))
        return law, value, _dirichlet(value, concentration)
    if name == "LowRankMultivariateNormal":
        rank = draw(st.integers(1, 2))
        loc = [draw(reals) for _ in range(SIZE)]
        factor = [draw(reals) for _ in range(SIZE * rank)]
        diagonal = [_positive(draw) for _ in range(SIZE)]
        value = [draw(reals) for _ in range(SIZE)]
        law = rt.LowRankMultivariateNormal(
            rank=rank,
            loc=torch.tensor(loc, dtype=torch.float64),
            cov_factor=torch.tensor(factor, dtype=torch.float64),
            cov_diag=torch.tensor(diagonal, dtype=torch.float64),
        )
        return law, value, _low_rank_normal(value, loc, factor, diagonal)
    family = name.removesuffix("Mixture")
    assert family in MIXTURE_FAMILIES, f"no oracle for {name}"
    components = draw(st.integers(2, 3))
    logits = [draw(reals) for _ in range(components)]
    members = DISTRIBUTIONS[family].emitted()
    params = {
        p.name: [draw(reals) if p.constraint == "real" else _positive(draw) for _ in range(components * SIZE)]
        for p in members
    }
    value = [draw(_support(DISTRIBUTIONS[family].support[0])) for _ in range(SIZE)]
    per_component = [
        math.log(math.exp(logits[k]) / sum(math.exp(lg) for lg in logits))
        + _sum(ELEMENTWISE[family], value, [v[k * SIZE : (k + 1) * SIZE] for v in params.values()])
        for k in range(components)
    ]
    top = max(per_component)
    oracle = top + math.log(sum(math.exp(c - top) for c in per_component))
    law = getattr(rt, name)(
        components=components,
        logits=torch.tensor(logits, dtype=torch.float64),
        **{k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()},
    )
    return law, value, oracle


def _support(type_name: str):
    return {"real": st.floats(-3.0, 3.0), "positive": st.floats(0.05, 5.0), "unit": st.floats(0.02, 0.98)}[type_name]


def _bound(law: rt.Distribution) -> rt.Distribution:
    """What the trace does when a factor is written: the law learns its value's size."""
    law.size = SIZE
    if hasattr(law, "categories"):
        law.categories = SIZE
    return law


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_distribution_scores_values_as_its_formula_does(name: str, data) -> None:
    law, value, oracle = data.draw(cases(name))
    scored = _bound(law).log_prob(torch.tensor([value], dtype=torch.float64))
    assert scored.shape == (1,)
    assert scored.item() == pytest.approx(oracle, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_every_distribution_draws_inside_its_support_with_the_batch_shape(name: str, data) -> None:
    torch.manual_seed(0)
    law, _, _ = data.draw(cases(name))
    shape = torch.Size([4, 5, SIZE])
    draws = _bound(law).sample(shape, torch.float64, torch.device("cpu"))
    assert draws.shape == shape
    assert torch.isfinite(_bound(law).log_prob(draws)).all()
    support = DISTRIBUTIONS[name].support[0]
    if support == "simplex":
        assert torch.allclose(draws.sum(-1), torch.ones(4, 5, dtype=torch.float64))
    if support == "count":
        assert (draws >= 0).all() and (draws == draws.round()).all()


@pytest.mark.parametrize("name", sorted(n for n, d in DISTRIBUTIONS.items() if not d.discrete and not d.not_in_q))
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_what_q_may_draw_is_reparameterised(name: str, data) -> None:
    """A continuous law q may use gives draws whose gradient reaches its parameters."""
    torch.manual_seed(0)
    law, _, _ = data.draw(cases(name))
    tensors = [v for v in law.params.values() if isinstance(v, torch.Tensor)]
    for tensor in tensors:
        tensor.requires_grad_(True)
    draws = _bound(law).rsample(torch.Size([8, SIZE]), torch.float64, torch.device("cpu"))
    (draws * torch.arange(1.0, SIZE + 1, dtype=torch.float64)).sum().backward()  # not the sum: a simplex's is 1
    assert any(t.grad is not None and t.grad.abs().sum() > 0 for t in tensors)


def test_a_network_output_splits_into_parameters_of_their_own_sizes() -> None:
    """One network's output for a mixture: the weights' logits (one per component), then each
    member parameter (one per component and element), each through its link."""
    output = torch.arange(2 + 2 * 2 * SIZE, dtype=torch.float64)
    law = rt.NormalMixture.from_network(output, components=2)
    assert law.params["logits"].tolist() == [0.0, 1.0]
    assert law.params["loc"].tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert torch.allclose(
        law.params["scale"], torch.nn.functional.softplus(torch.arange(8.0, 14.0, dtype=torch.float64))
    )
    low_rank = rt.LowRankMultivariateNormal.from_network(torch.zeros(SIZE * 4), rank=2)
    assert [low_rank.params[k].numel() for k in ("loc", "cov_factor", "cov_diag")] == [SIZE, 2 * SIZE, SIZE]
