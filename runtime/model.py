"""The base of every compiled model: the generated module defines the encoder (q) and the
decoder (p) and a subclass of `CompiledModel` naming its variables and objective options;
this class turns them into `objective`, `predict` and `sample`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from . import objective as estimators
from .batch import BatchError, flat_value, prepare
from .networks import Network
from .registry import DEFAULT_OBJECTIVE, OBJECTIVES
from .shapes import broadcast_shapes
from .trace import Generation, Recognition, Variable

_DEFAULTS = OBJECTIVES[DEFAULT_OBJECTIVE].defaults()
# what the networks compute in, by name (CompiledModel.set_precision); None: the model's own dtype
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class ObjectiveOptions:
    alpha: float = _DEFAULTS["alpha"]
    samples: int = _DEFAULTS["samples"]
    beta: float = _DEFAULTS["beta"]
    estimator: str = _DEFAULTS["estimator"]


@dataclass
class Objective:
    """The objective of a batch: `elbo` [B] to maximise, `log_q_supervised` [B] (the estimate of
    log q(y | x) on labelled rows, NaN elsewhere), and the values q drew (flat)."""

    elbo: torch.Tensor
    log_q_supervised: torch.Tensor
    values: dict[str, torch.Tensor]

    @property
    def loss(self) -> torch.Tensor:
        """The mean negative objective, the number to minimise."""
        return -self.elbo.mean()


class CompiledModel(nn.Module):
    """Subclasses set `name`, `variables`, `options`, `constant_weights`, `enumerated` and
    pass their encoder and decoder modules."""

    name: str = ""
    variables: tuple[Variable, ...] = ()
    options = ObjectiveOptions()
    constant_weights = False  # no label has a sampled ancestor in q: log q(y | x) is exact
    enumerated: tuple[str, ...] = ()  # the discrete variables q sums out by enumeration
    precision = "fp32"  # what the networks compute in: set_precision

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.register_buffer("_dtype_device", torch.zeros(()), persistent=False)  # follows .to() and .double()
        self.by_name = {v.name: v for v in self.variables}

    def set_precision(self, precision: str) -> CompiledModel:
        """Run every network in `precision`: fp32, or bf16 (matrix products and convolutions
        under torch.autocast, each network's output back in fp32). The log-densities, the
        importance weights and the objective's sums stay in fp32, and so do the weights."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, not {precision!r}")
        for module in self.modules():
            if isinstance(module, Network):
                module.compute_dtype = PRECISIONS[precision]
        self.precision = precision
        return self

    def _dtype_and_device(self) -> tuple[torch.dtype, torch.device]:
        """The dtype and device the model's parameters are in (a buffer follows .to() and .double())."""
        marker = self.get_buffer("_dtype_device")
        return marker.dtype, marker.device

    def _recognise(
        self,
        batch: Mapping[str, torch.Tensor],
        samples: int | None,
        enumerate_relaxed: bool = False,
        check_values: bool = True,
    ) -> Recognition:
        dtype, device = self._dtype_and_device()
        data, masks, size = prepare(batch, self.by_name, dtype, device, check_values)
        samples = self.options.samples if samples is None else samples
        if samples < 1:
            raise BatchError(f"samples must be at least 1, not {samples}")
        q = Recognition(self.by_name, data, masks, samples, size, dtype, device, enumerate_relaxed)
        self.encoder(q)
        return q

    def _labelled(self, q: Recognition) -> torch.Tensor:
        """Which rows have some label: the union of the given labels' masks."""
        labelled: torch.Tensor | None = None
        for variable in self.variables:
            if variable.role == "supervised" and variable.name in q.data:
                mask = q.masks.get(variable.name)
                if mask is None:  # labelled on every row
                    return torch.ones(q.batch_size, dtype=torch.bool, device=q.device)
                labelled = mask if labelled is None else labelled | mask
        return torch.zeros(q.batch_size, dtype=torch.bool, device=q.device) if labelled is None else labelled

    def objective(
        self,
        batch: Mapping[str, torch.Tensor],
        samples: int | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        estimator: str | None = None,
        enumerate_relaxed: bool = False,
        check_values: bool = True,
        explore: float = 0.0,
    ) -> Objective:
        """The semi-supervised objective of each row (see gmdsl.runtime.objective).
        `alpha`, `beta` and `estimator` (snis or iwae) override the spec's; `enumerate_relaxed`
        sums exactly over discrete variables the spec relaxes (for evaluation);
        `check_values=False` skips the per-batch finite and support checks, for data checked
        once (the training loop); `explore` spreads that share of the enumerated values' weight
        evenly (training's explore_epochs)."""
        q = self._recognise(batch, samples, enumerate_relaxed, check_values)
        p = Generation(self.by_name, q.values, q.dtype, q.device)
        self.decoder(p)
        elbo, log_q_supervised = estimators.semisupervised(
            p.log_p_observed,
            p.log_p_latent,
            q.log_q,
            q.log_enumeration,
            q.log_w_supervised,
            self._labelled(q),
            alpha=self.options.alpha if alpha is None else alpha,
            beta=self.options.beta if beta is None else beta,
            estimator=estimator or self.options.estimator,
            constant_weights=self.constant_weights,
            explore=explore,
        )
        return Objective(elbo, log_q_supervised, q.values)

    @torch.no_grad()
    def log_likelihood(self, batch: Mapping[str, torch.Tensor], samples: int = 100) -> torch.Tensor:
        """An importance-weighted estimate of log p(observed) per row [B]: the iwae bound with
        `samples` draws, relaxed discrete variables summed exactly where they are small enough."""
        return self.objective(self.observed_part(batch), samples=samples, estimator="iwae", enumerate_relaxed=True).elbo

    @torch.no_grad()
    def reconstruct(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """p's mean of each observed variable, given one draw of q from the batch: [B, *shape]."""
        q = self._recognise(batch, 1)
        p = Generation(self.by_name, q.values, q.dtype, q.device)
        self.decoder(p)
        return {
            v.name: _average_draws(p.distributions[v.name].mean(q.dtype, q.device), q.log_enumeration, q.batch_size, v)
            for v in self.variables
            if v.role == "observed"
        }

    @torch.no_grad()
    def infer(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One draw of each latent variable from q given the batch ([B, *shape]); a variable
        summed by enumeration gives its q-weighted mean."""
        q = self._recognise(batch, 1)
        return {
            v.name: _average_draws(q.values[v.name], q.log_enumeration, q.batch_size, v)
            for v in self.variables
            if v.role == "latent"
        }

    def observed_part(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The entries of a batch that are observed variables (what predict and eval read)."""
        return {k: v for k, v in batch.items() if k in self.by_name and self.by_name[k].role == "observed"}

    @torch.no_grad()
    def predict(
        self, batch: Mapping[str, torch.Tensor], samples: int | None = None, method: str = "q"
    ) -> dict[str, torch.Tensor]:
        """Per supervised variable, its class probabilities (discrete) or mean (continuous) given
        the observed variables only.

        method "q": the recognition model's answer, averaged over q's draws of its other
        unknowns (q(y | x) = E_q(z | x) q(y | x, z) where y sits below z).
        method "importance": the generative model's posterior p(y | x), estimated from q's draws
        weighted by p(x, y, z) / q(y, z | x) (self-normalised importance sampling); a discrete
        variable the spec relaxes is summed exactly instead of drawn.

        Where a label sits below a sampled variable in q, q relaxes a discrete unknown, or the
        method is "importance", the answer is a Monte Carlo average over `samples` draws (the
        spec's by default): it varies a little from call to call unless torch's seed is fixed,
        and more samples steady it."""
        if method not in ("q", "importance"):
            raise ValueError(f"predict's method is q or importance, not {method!r}")
        importance = method == "importance"
        q = self._recognise(self.observed_part(batch), samples, enumerate_relaxed=importance)
        log_weights = q.log_enumeration
        if importance:
            p = Generation(self.by_name, q.values, q.dtype, q.device)
            self.decoder(p)
            log_weights = log_weights + p.log_p_observed + p.log_p_latent - q.log_q
        out = {}
        for variable in self.variables:
            if variable.role != "supervised":
                continue
            # a repeated variable's summaries step by step, side by side
            distributions = q.step_distributions.get(variable.name, [q.distributions[variable.name]])
            if importance:
                summary = q.values[variable.name]  # the drawn (or enumerated) value, weighted by p / q
            elif distributions[0].discrete:
                summary = _side_by_side([d.probabilities(q.dtype, q.device) for d in distributions])
            else:
                summary = _side_by_side([d.mean(q.dtype, q.device) for d in distributions])
            out[variable.name] = _average_draws(summary, log_weights, q.batch_size, variable)
        return out

    @torch.no_grad()
    def sample(
        self, n: int, given: Mapping[str, torch.Tensor] | None = None, observed_means: bool = False
    ) -> dict[str, torch.Tensor]:
        """Draw n examples from p, ancestrally; `given` fixes some variables ([n, *shape] each);
        `observed_means` gives observed variables their mean rather than a draw (for pictures)."""
        dtype, device = self._dtype_and_device()
        values = {}
        for name, tensor in (given or {}).items():
            if name not in self.by_name:
                raise BatchError(
                    f"given['{name}'] is not a variable of this model; its variables are " + ", ".join(self.by_name)
                )
            value = flat_value(name, tensor, self.by_name[name], dtype, device, container="given")
            if len(value) != n:
                raise BatchError(
                    f"given['{name}'] has {len(value)} rows, but sample() was asked for {n}", variable=name
                )
            values[name] = value
        p = Generation(self.by_name, values, dtype, device, count=n, observed_means=observed_means)
        self.decoder(p)
        return {v.name: p.values[v.name].expand(n, v.size).reshape(n, *v.shape) for v in self.variables}


def _side_by_side(values: list[torch.Tensor]) -> torch.Tensor:
    if len(values) == 1:
        return values[0]
    lead = broadcast_shapes(*(value.shape[:-1] for value in values))
    return torch.cat([value.expand(*lead, value.shape[-1]) for value in values], dim=-1)


def _average_draws(summary: torch.Tensor, log_enumeration: torch.Tensor, rows: int, variable: Variable) -> torch.Tensor:
    """Average a per-draw summary [..., B, size] over enumerated values (weighted by q) and samples."""
    summary = summary.expand(*summary.shape[:-1], variable.size)
    lead = broadcast_shapes(summary.shape[:-1], log_enumeration.shape, (rows,))
    weights = torch.softmax(log_enumeration.expand(lead).reshape(-1, rows), dim=0)
    flat = summary.expand(*lead, variable.size).reshape(-1, rows, variable.size)
    return (weights[..., None] * flat).sum(0).reshape(rows, *variable.shape)
