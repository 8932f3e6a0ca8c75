"""Distributions as compiled models use them.

Every value is stored flat: a variable of shape [1, 28, 28] is a tensor [..., 784], its
leading dimensions the batch layout [enumerations..., samples, batch] (any of them may be
missing and broadcast). A distribution's `log_prob` sums over that last dimension, so it
returns one number per row and sample. Parameters may be tensors or plain numbers; the
numbers are made tensors of the value's dtype and device when used.

The parameter names, their order and the links applied to a network's raw output come from
`gmdsl.runtime.registry`, the table the compiler checks specs against; the links from
`gmdsl.runtime.links`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import distributions as D

from .links import LINKS, at_least
from .registry import CONSTRAINTS, DISTRIBUTIONS, MIXTURE_FAMILIES, parameter_width, variable_size

UNIFORM = "uniform"  # a Categorical's `probs = uniform`


@functools.cache
def _emitted_layout(
    name: str, width: int, options: tuple[tuple[str, Any], ...]
) -> tuple[tuple[str, ...], list[int], tuple[Callable[[torch.Tensor], torch.Tensor], ...]]:
    """How a network's output of `width` splits into a distribution's emitted parameters: their
    names, widths and links (worked out once per distribution, width and options, not per step)."""
    emitted = DISTRIBUTIONS[name].emitted()
    size = variable_size(emitted, width, dict(options))
    widths = [parameter_width(p, size, dict(options)) for p in emitted]
    links = tuple(LINKS[CONSTRAINTS[p.constraint].link] for p in emitted)
    return tuple(p.name for p in emitted), widths, links


class Distribution:
    """A distribution over a flat variable. `params` maps parameter names to tensors or
    numbers, already in their constraint; the trace sets `size` (the flat width)."""

    name: str = ""
    discrete = False

    def __init__(self, **params):
        self.params = params
        self.size = 0

    @classmethod
    def from_network(cls, output: torch.Tensor, **options) -> Distribution:
        """Split a network's output into the emitted parameterisation, each through its link
        (a simplex's softmax is left to the distribution, which takes raw logits)."""
        names, widths, links = _emitted_layout(cls.name, output.shape[-1], tuple(sorted(options.items())))
        chunks = output.split(widths, dim=-1)
        return cls(**{name: link(c) for name, link, c in zip(names, links, chunks, strict=True)}, **options)

    def _tensors(self, like: torch.Tensor | None = None, dtype=None, device=None) -> dict[str, torch.Tensor]:
        dtype = like.dtype if like is not None else dtype
        device = like.device if like is not None else device
        return {
            k: torch.as_tensor(v, dtype=dtype, device=device) if not isinstance(v, torch.Tensor) else v
            for k, v in self.params.items()
            if not isinstance(v, str)
        }

    def torch_distribution(self, dtype=None, device=None, like=None) -> D.Distribution:
        raise NotImplementedError

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Its tensor parameters' shapes, as a value of the variable would broadcast with them
        (one parameter per element: their own shapes)."""
        return [tuple(v.shape) for v in self.params.values() if isinstance(v, torch.Tensor)]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.torch_distribution(like=value).log_prob(value).sum(-1)

    def rsample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        distribution = self.torch_distribution(dtype=dtype, device=device)
        return distribution.expand(shape).rsample()

    def sample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        distribution = self.torch_distribution(dtype=dtype, device=device)
        return distribution.expand(shape).sample()

    def mean(self, dtype, device) -> torch.Tensor:
        return self.torch_distribution(dtype=dtype, device=device).mean

    # What only discrete distributions (Bernoulli, Categorical) do: the checker lets `by`
    # clauses, and so relaxation and enumeration, reach no other.
    def relaxed_rsample(self, shape: torch.Size, temperature: float, dtype, device) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is continuous: it has no relaxation")

    def support_size(self) -> int:
        raise NotImplementedError(f"{self.name} is continuous: its values cannot be enumerated")

    def support(self, dtype, device) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is continuous: its values cannot be enumerated")

    def probabilities(self, dtype, device) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is continuous: it has no class probabilities")


# The families whose law holds element by element: each value's parameters -> its torch law.
_ELEMENTWISE = {
    "Normal": lambda loc, scale: D.Normal(loc, scale, validate_args=False),
    "Laplace": lambda loc, scale: D.Laplace(loc, scale, validate_args=False),
    "LogNormal": lambda loc, scale: D.LogNormal(loc, scale, validate_args=False),
    "Gamma": lambda concentration, rate: D.Gamma(concentration, rate, validate_args=False),
    "Beta": lambda concentration1, concentration0: D.Beta(concentration1, concentration0, validate_args=False),
    "ContinuousBernoulli": lambda probs=None, logits=None: D.ContinuousBernoulli(
        probs=probs, logits=logits, validate_args=False
    ),
    "Exponential": lambda rate: D.Exponential(rate, validate_args=False),
    "StudentT": lambda df, loc, scale: D.StudentT(df, loc, scale, validate_args=False),
    "Poisson": lambda rate: D.Poisson(rate, validate_args=False),
}


def _torch_backed(registry_name: str):
    """A Distribution whose elementwise law is a torch.distributions class."""
    factory = _ELEMENTWISE[registry_name]

    def torch_distribution(self, dtype=None, device=None, like=None):
        return factory(**self._tensors(like, dtype, device))

    return type(registry_name, (Distribution,), {"name": registry_name, "torch_distribution": torch_distribution})


_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


class Normal(_torch_backed("Normal")):  # type: ignore[misc]
    """The Normal, with its log-density and draws written out: the most used factor of all, so
    the hot path avoids building a torch.distributions object (and tensors of constant
    parameters) in every step. Draws take the same random stream as torch's Normal."""

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        loc, scale = self.params["loc"], self.params["scale"]
        # a standard Normal's (a prior written `loc = 0, scale = 1`) skips subtracting 0 and dividing by 1
        centred = value if isinstance(loc, (int, float)) and loc == 0 else value - loc
        standard = centred if isinstance(scale, (int, float)) and scale == 1 else centred / scale
        log_scale = math.log(scale) if isinstance(scale, (int, float)) else torch.log(scale)
        return (-0.5 * standard * standard - log_scale).sum(-1) - self.size * _HALF_LOG_TWO_PI

    def rsample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        noise = torch.empty(shape, dtype=dtype, device=device).normal_()
        return self.params["loc"] + self.params["scale"] * noise


Laplace = _torch_backed("Laplace")
LogNormal = _torch_backed("LogNormal")
Gamma = _torch_backed("Gamma")
Beta = _torch_backed("Beta")
ContinuousBernoulli = _torch_backed("ContinuousBernoulli")
Exponential = _torch_backed("Exponential")
StudentT = _torch_backed("StudentT")


class Poisson(_torch_backed("Poisson")):  # type: ignore[misc]
    """Counts; p scores and draws them (q cannot: the checker keeps it out of q)."""

    discrete = True


def _flat_parameter(value: torch.Tensor, width: int) -> torch.Tensor:
    """A parameter as [..., width]: a number (0-d, or a `param` of shape [1]) spread over every entry."""
    if value.dim() == 0:
        return value.expand(width)
    return value.expand(*value.shape[:-1], width) if value.shape[-1] == 1 else value


class Dirichlet(Distribution):
    """Probabilities over groups of `categories` elements of the flat value (the last size of
    the variable's shape), each group drawn from a Dirichlet."""

    name = "Dirichlet"

    def __init__(self, **params):
        super().__init__(**params)
        self.categories = 0  # set by the trace: the last size of the variable's shape

    def _grouped(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(*t.shape[:-1], self.size // self.categories, self.categories)

    def torch_distribution(self, dtype=None, device=None, like=None):
        concentration = _flat_parameter(self._tensors(like, dtype, device)["concentration"], self.size)
        return D.Dirichlet(self._grouped(concentration), validate_args=False)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.torch_distribution(like=value).log_prob(self._grouped(value)).sum(-1)

    def _draw(self, shape: torch.Size, dtype, device, reparameterised: bool) -> torch.Tensor:
        law = self.torch_distribution(dtype=dtype, device=device)
        law = law.expand((*shape[:-1], self.size // self.categories))
        draw = law.rsample() if reparameterised else law.sample()
        # a float32 draw from small concentrations can round a probability to exactly 0, where
        # the log-density is -inf: keep every one at least the smallest normal number
        draw = draw.clamp_min(torch.finfo(dtype).tiny)
        return draw.reshape(shape)

    def rsample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        return self._draw(shape, dtype, device, reparameterised=True)

    def sample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        return self._draw(shape, dtype, device, reparameterised=False)

    def mean(self, dtype, device) -> torch.Tensor:
        law = self.torch_distribution(dtype=dtype, device=device)
        return law.mean.reshape(*law.batch_shape[:-1], self.size)


class _WholeValue(Distribution):
    """A law over the whole flat value at once (not element by element): its log-density is
    one number per row and sample already, and its draws are drawn whole."""

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """Its parameters' leading dimensions, with the value's size last: a parameter holds other
        numbers than one per element (a covariance factor, mixture weights)."""
        return [(*v.shape[:-1], self.size) for v in self.params.values() if isinstance(v, torch.Tensor) and v.dim()]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return self.torch_distribution(like=value).log_prob(value)

    def rsample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        return self.torch_distribution(dtype=dtype, device=device).expand(shape[:-1]).rsample()

    def sample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        return self.torch_distribution(dtype=dtype, device=device).expand(shape[:-1]).sample()

    def mean(self, dtype, device) -> torch.Tensor:
        return self.torch_distribution(dtype=dtype, device=device).mean


class LowRankMultivariateNormal(_WholeValue):
    """A Gaussian over the flat value with covariance F F^T + diag(d), F [size, rank]."""

    name = "LowRankMultivariateNormal"

    def __init__(self, rank: int = 1, **params):
        super().__init__(**params)
        self.rank = rank

    def torch_distribution(self, dtype=None, device=None, like=None):
        params = self._tensors(like, dtype, device)
        factor = _flat_parameter(params["cov_factor"], self.size * self.rank)
        diagonal = _flat_parameter(params["cov_diag"], self.size)
        # torch factors I + F^T diag^-1 F by Cholesky, which fails once diag^-1 is near the
        # float range: a variance below sqrt(eps) is raised to it (the gradient kept), well
        # below anything the data can resolve
        diagonal = at_least(diagonal, torch.finfo(diagonal.dtype).eps ** 0.5)
        return D.LowRankMultivariateNormal(
            _flat_parameter(params["loc"], self.size),
            factor.reshape(*factor.shape[:-1], self.size, self.rank),
            diagonal,
            validate_args=False,
        )


class _Mixture(_WholeValue):
    """A mixture of `components` members of one family over the flat value (torch's
    MixtureSameFamily): `weights` or `logits` [..., components], and each member parameter
    [..., components * size], component by component."""

    family = ""

    def __init__(self, components: int = 2, **params):
        super().__init__(**params)
        self.components = components

    def torch_distribution(self, dtype=None, device=None, like=None):
        params = self._tensors(like, dtype, device)
        dtype = like.dtype if like is not None else dtype
        device = like.device if like is not None else device
        if "logits" in params:
            mixture = D.Categorical(logits=_flat_parameter(params.pop("logits"), self.components), validate_args=False)
        elif "weights" in params:
            weights = _flat_parameter(params.pop("weights"), self.components)
            mixture = D.Categorical(probs=weights, validate_args=False)
        else:  # `weights = uniform`
            mixture = D.Categorical(logits=torch.zeros(self.components, dtype=dtype, device=device))
        members = {
            name: (lambda t: t.reshape(*t.shape[:-1], self.components, self.size))(
                _flat_parameter(value, self.components * self.size)
            )
            for name, value in params.items()
        }
        member = D.Independent(_ELEMENTWISE[self.family](**members), 1)
        return D.MixtureSameFamily(mixture, member, validate_args=False)

    def rsample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} has no reparameterised draw: the checker keeps it out of q")


def _mixture(family: str) -> type[_Mixture]:
    name = f"{family}Mixture"
    return type(name, (_Mixture,), {"name": name, "family": family})


MIXTURES = {f"{family}Mixture": _mixture(family) for family in MIXTURE_FAMILIES}
globals().update(MIXTURES)  # `rt.NormalMixture`, as compiled code names every distribution


class Bernoulli(Distribution):
    """Independent coin flips; values may be soft (relaxed samples, intensities in [0, 1])."""

    name = "Bernoulli"
    discrete = True

    def logits(self, like=None, dtype=None, device=None) -> torch.Tensor:
        params = self._tensors(like, dtype, device)
        if "logits" in params:
            return params["logits"]
        eps = torch.finfo(params["probs"].dtype).eps  # probs of exactly 0 or 1 would give infinite logits
        return torch.logit(params["probs"], eps=eps)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        params = self._tensors(like=value)
        if "probs" in params:  # xlogy keeps probs of exactly 0 or 1 exact (0 * log 0 = 0)
            probs = params["probs"]
            return (torch.xlogy(value, probs) + torch.xlogy(1 - value, 1 - probs)).sum(-1)
        # x l - softplus(l), summed: one product-and-sum and one softplus pass over the logits
        # (binary_cross_entropy_with_logits makes several, and needs the value expanded first)
        logits = params["logits"]
        if logits.dim() == 0 or logits.shape[-1] != value.shape[-1]:  # a constant: one per element
            logits = logits.expand(*logits.shape[:-1], value.shape[-1]) if logits.dim() else logits.expand(value.shape)
        return torch.linalg.vecdot(logits, value) - F.softplus(logits).sum(-1)

    def torch_distribution(self, dtype=None, device=None, like=None):
        return D.Bernoulli(logits=self.logits(like, dtype, device), validate_args=False)

    def relaxed_rsample(self, shape: torch.Size, temperature: float, dtype, device) -> torch.Tensor:
        logits = self.logits(dtype=dtype, device=device).expand(shape)
        return D.RelaxedBernoulli(
            torch.as_tensor(temperature, dtype=dtype, device=device), logits=logits, validate_args=False
        ).rsample()

    def support_size(self) -> int:
        return 2**self.size

    def support(self, dtype, device) -> torch.Tensor:
        """Every value, one per row: [2 ** size, size] (a fresh copy of a table built once)."""
        return _binary_support(self.size, dtype, device).clone()

    def probabilities(self, dtype, device) -> torch.Tensor:
        return torch.sigmoid(self.logits(dtype=dtype, device=device))


class Categorical(Distribution):
    """One-hot categories over groups of `categories` elements of the flat value."""

    name = "Categorical"
    discrete = True

    def __init__(self, **params):
        super().__init__(**params)
        self.categories = 0  # set by the trace: the last size of the variable's shape
        self.impossible: tuple[int, ...] = ()  # classes given no mass (set by q's trace; see Variable)
        # log_probs by dtype and device: q draws from them and then scores the draw, one softmax
        self._log_probs: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def _grouped(self, t: torch.Tensor) -> torch.Tensor:
        t = _flat_parameter(t, self.size)  # a number broadcasts over the whole value
        return t.reshape(*t.shape[:-1], self.size // self.categories, self.categories)

    def log_probs(self, like=None, dtype=None, device=None) -> torch.Tensor:
        """Normalised log-probabilities, grouped: [..., groups, categories]; -inf at the
        impossible classes (computed once per dtype and device)."""
        device = like.device if like is not None else device
        dtype = like.dtype if like is not None else dtype
        key = (dtype, torch.device(device))
        if key not in self._log_probs:
            self._log_probs[key] = self._normalised(dtype, device)
        return self._log_probs[key]

    def _normalised(self, dtype, device) -> torch.Tensor:
        params = self._tensors(dtype=dtype, device=device)
        if isinstance(self.params.get("probs"), str):  # uniform
            log_probs = torch.full(
                (self.size // self.categories, self.categories),
                -math.log(self.categories - len(self.impossible)),
                dtype=dtype,
                device=device,
            )
            return log_probs.masked_fill(self._ruled_out(device), float("-inf")) if self.impossible else log_probs
        if "logits" in params:
            logits = self._grouped(params["logits"])
        else:
            logits = torch.log(self._grouped(params["probs"]))  # log 0 = -inf: a class ruled out
        if self.impossible:
            logits = logits.masked_fill(self._ruled_out(device), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def _ruled_out(self, device) -> torch.Tensor:
        ruled_out = torch.zeros(self.categories, dtype=torch.bool, device=device)
        ruled_out[list(self.impossible)] = True
        return ruled_out

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if isinstance(self.params.get("probs"), str) and not self.impossible:  # uniform: each group sums to 1
            return value.sum(-1) * -math.log(self.categories)
        log_probs = self.log_probs(like=value)
        if self.impossible or "probs" in self.params:
            # A class of probability 0 (-inf) holds 0 in every value that reaches here (q never
            # draws it, labels there are refused): it adds nothing, where 0 * -inf would be NaN.
            log_probs = torch.where(torch.isfinite(log_probs), log_probs, torch.zeros_like(log_probs))
        return (self._grouped(value) * log_probs).sum((-2, -1))

    def _flat(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(*t.shape[:-2], self.size)

    def sample(self, shape: torch.Size, dtype, device) -> torch.Tensor:
        log_probs = self.log_probs(dtype=dtype, device=device)
        grouped_shape = (*shape[:-1], self.size // self.categories, self.categories)
        index = D.Categorical(logits=log_probs.expand(grouped_shape), validate_args=False).sample()
        return self._flat(F.one_hot(index, self.categories).to(dtype))

    def relaxed_rsample(self, shape: torch.Size, temperature: float, dtype, device) -> torch.Tensor:
        """A Concrete (Gumbel-softmax) draw, written out as torch's RelaxedOneHotCategorical
        draws it (the same uniforms), without building its objects, whose inner Categorical
        validates its arguments and so reads them back from the device in every step."""
        log_probs = self.log_probs(dtype=dtype, device=device)
        grouped_shape = (*shape[:-1], self.size // self.categories, self.categories)
        tiny = torch.finfo(dtype).eps
        uniforms = torch.rand(grouped_shape, dtype=dtype, device=device).clamp(tiny, 1 - tiny)
        gumbels = -(-uniforms.log()).log()
        return self._flat(torch.softmax((log_probs + gumbels) / temperature, dim=-1))

    def support_size(self) -> int:
        return (self.categories - len(self.impossible)) ** (self.size // self.categories)

    def support(self, dtype, device) -> torch.Tensor:
        """Every possible value, one per row: [possible classes ** groups, size] (built once per
        shape, dtype and device)."""
        return _onehot_support(self.size // self.categories, self.categories, self.impossible, dtype, device).clone()

    def probabilities(self, dtype, device) -> torch.Tensor:
        return self._flat(self.log_probs(dtype=dtype, device=device).exp())

    def mean(self, dtype, device) -> torch.Tensor:
        return self.probabilities(dtype, device)


# Enumeration tables depend only on the variable's shape: built on first use, then reused by
# every forward pass. Callers only read them (they are broadcast, never written in place).
@functools.lru_cache(maxsize=64)
def _binary_support(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    rows = list(itertools.product((0.0, 1.0), repeat=size))
    return torch.tensor(rows, dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def _onehot_support(
    groups: int, categories: int, impossible: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    eye = torch.eye(categories, dtype=dtype, device=device)
    possible = [c for c in range(categories) if c not in impossible]
    rows = [torch.cat([eye[i] for i in combination]) for combination in itertools.product(possible, repeat=groups)]
    return torch.stack(rows)
