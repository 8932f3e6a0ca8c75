"""Traces: what one pass of a compiled encoder (q) or decoder (p) drew and scored.

The generated `forward` methods call `sample` once per factor, in topological order. Values
are flat tensors whose leading dimensions follow one layout, right-aligned:

    [enumerated_k, ..., enumerated_1, samples, batch, flat value]

A tensor carries only the dimensions it depends on (x is [B, 784]; a sample of z is
[S, B, 50]; the k-th variable summed `by enumeration` adds its own dimension k + 2 places
from the right), and broadcasting lines them up. Nothing loops over samples or rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .distributions import Categorical, Distribution
from .registry import ENUMERATION_LIMIT
from .repeat import Repeat
from .shapes import broadcast_shapes


@dataclass(frozen=True)
class Variable:
    name: str
    role: str  # "observed" | "supervised" | "latent"
    type: str
    shape: tuple[int, ...]  # a repeated variable's starts with its steps: (K_max, *one step's shape)
    repeat: str | None = None  # the index of the `repeat` it is declared in
    impossible: tuple[int, ...] = ()  # a onehot's classes the spec gives probability 0: q never proposes them

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def step_size(self) -> int:
        """The size of one draw: one step's, for a repeated variable."""
        return math.prod(self.shape[1:]) if self.repeat is not None else self.size


class _Trace:
    sums: tuple[str, ...] = ()  # the running sums a `repeat` weights by its count (runtime/repeat.py)

    def __init__(self, variables: dict[str, Variable], dtype: torch.dtype, device: torch.device):
        self.variables = variables
        self.dtype = dtype
        self.device = device
        self.values: dict[str, torch.Tensor] = {}
        self.distributions: dict[str, Distribution] = {}  # a repeated variable's: its last step's
        self.step_distributions: dict[str, list[Distribution]] = {}  # a repeated variable's, step by step
        self.repeating: Repeat | None = None  # the `repeat` block running now
        self.repeated: dict[str, Repeat] = {}  # each kept `let` and variable of a finished block -> its block
        self.empty = self._zero()  # what each running sum starts as, until a term is added (`_add`)

    def repeat(self, index: str, bound: str, steps: int, lets: dict[str, int] | None = None):
        """Run `repeat index < bound`: iterate over the steps 1..steps (see runtime/repeat.py);
        `lets` names the block's `let`s read at the step before or after the block, with their sizes."""
        block = Repeat(self, index, bound, steps, lets or {})
        self.repeating = block
        yield from block.run()
        self.repeating = None
        self.repeated.update({name: block for name in [*block.let_sizes, *block.variables]})

    def _block(self) -> Repeat:
        # compiled code calls before/keep only inside the loop of a repeat
        assert self.repeating is not None, "before(), keep() and step_number() are for the steps of a repeat"
        return self.repeating

    def before(self, name: str) -> torch.Tensor:
        """A name's value at the step before, inside a repeat (zeros at step 1)."""
        return self._block().before(name)

    def keep(self, name: str, value: torch.Tensor) -> torch.Tensor:
        """Record a `let`'s value at this step (for `before` and `final`); returns it."""
        return self._block().keep(name, value)

    def step_number(self) -> torch.Tensor:
        """The number of the step running now, 1..K_max, as a value [1] (`step(k)` in a spec)."""
        return torch.full((1,), float(self._block().step), dtype=self.dtype, device=self.device)

    def final(self, name: str) -> torch.Tensor:
        """A repeat's `let` or variable after the block: its value at the last step that holds."""
        return self.repeated[name].final(name)

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), dtype=self.dtype, device=self.device)

    def _add(self, name: str, term: torch.Tensor) -> None:
        """Add `term` to the running sum `name`; the first term becomes the sum (one operation
        fewer per sum than adding it to the starting zero, forward and backward)."""
        total = getattr(self, name)
        setattr(self, name, term if total is self.empty else total + term)

    def _bind(self, name: str, distribution: Distribution) -> Distribution:
        variable = self.variables[name]
        distribution.size = variable.step_size
        if hasattr(distribution, "categories"):
            distribution.categories = variable.shape[-1]
        self.distributions[name] = distribution
        return distribution

    def _shape(self, distribution: Distribution, lead: tuple[int, ...]) -> torch.Size:
        """The shape of a fresh draw: the parameters' dimensions with `lead` (+ size) broadcast in."""
        return broadcast_shapes(*distribution.parameter_shapes(), (*lead, distribution.size))


class Recognition(_Trace):
    """A pass of q. Supervised values given in the batch are used where their mask is set and
    sampled elsewhere; `log_q` scores every value, `log_enumeration` holds the log-weights of
    enumerated values, `log_w_supervised` the log q of the given labels (the importance weights)."""

    sums = ("log_q", "log_enumeration", "log_w_supervised")

    def __init__(
        self,
        variables,
        data: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        samples: int,
        batch_size: int,
        dtype,
        device,
        enumerate_relaxed: bool = False,
    ):
        super().__init__(variables, dtype, device)
        self.enumerate_relaxed = enumerate_relaxed  # sum exactly where training used a relaxation
        self.data = data
        self.masks = masks
        self.samples = samples
        self.batch_size = batch_size
        self.log_q = self.empty
        self.log_enumeration = self.empty
        self.log_w_supervised = self.empty
        self.enumerated = 0

    def observed(self, name: str) -> torch.Tensor:
        value = self.data[name]
        self.values[name] = value
        return value

    def sample(
        self, name: str, distribution: Distribution, relaxation: float | None = None, enumeration: bool = False
    ) -> torch.Tensor:
        distribution = self._bind(name, distribution)
        if isinstance(distribution, Categorical):  # q's classes restricted to those the spec allows
            distribution.impossible = self.variables[name].impossible
        given, mask = self.data.get(name), self.masks.get(name)
        if given is not None and self.repeating is not None:
            given, mask = self._this_step(name, self.repeating.step, given, mask)
        # a repeated variable stays relaxed: its steps' values would multiply
        summable = self.enumerate_relaxed and self.repeating is None
        if relaxation is not None and summable and distribution.support_size() <= ENUMERATION_LIMIT:
            relaxation, enumeration = None, True
        if given is not None and mask is None:  # labelled on every row: nothing to draw
            value = given
        elif enumeration:
            value = self._enumerate(distribution, given, mask)
        else:
            shape = self._shape(distribution, (self.samples, self.batch_size))
            if relaxation is not None:
                draw = distribution.relaxed_rsample(shape, relaxation, self.dtype, self.device)
            else:
                draw = distribution.rsample(shape, self.dtype, self.device)
            value = draw if given is None or mask is None else torch.where(mask[:, None], given, draw)
        log_q = distribution.log_prob(value)
        self._add("log_q", log_q)
        if enumeration and not (given is not None and mask is None):
            self._add("log_enumeration", self._enumeration_weight(log_q, mask))
        if given is not None:
            self._add("log_w_supervised", log_q if mask is None else torch.where(mask, log_q, 0.0))
        self.values[name] = value
        return value

    def _this_step(
        self, name: str, step: int, given: torch.Tensor, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A repeated label's value at `step`, and where it is given: on labelled rows whose
        step has one (a step without one, a row of zeros for a onehot and of NaN otherwise, is
        drawn like a hidden label)."""
        variable = self.variables[name]
        size = variable.step_size
        value = given[..., (step - 1) * size : step * size]
        if variable.type == "onehot":
            has_label = value.sum(-1) > 0
        else:
            has_label = ~torch.isnan(value).any(-1)
            value = torch.nan_to_num(value)  # never read where missing: zeros keep NaN out of every product
        return value, has_label if mask is None else mask & has_label

    def _enumerate(self, distribution, given, mask) -> torch.Tensor:
        """Every value of the variable along a new leading dimension (labelled rows keep their label)."""
        self.enumerated += 1
        support = distribution.support(self.dtype, self.device)
        value = support.reshape(support.shape[0], *([1] * (self.enumerated + 1)), support.shape[1])
        return value if given is None else torch.where(mask[:, None], given, value)

    def _enumeration_weight(self, log_q: torch.Tensor, mask) -> torch.Tensor:
        """log q(value) where the value is enumerated; on labelled rows the label counts once
        (weight 1 on the first enumerated slot, 0 on the others)."""
        if mask is None:
            return log_q
        count = log_q.shape[-(self.enumerated + 2)]
        first_only = torch.full((count,), float("-inf"), dtype=self.dtype, device=self.device)
        first_only[0] = 0.0
        first_only = first_only.reshape(count, *([1] * (self.enumerated + 1)))
        return torch.where(mask, first_only, log_q)


class Generation(_Trace):
    """A pass of p: scores the values it is given (from q and the data) and draws the others
    (for `Model.sample`). Log-probabilities of observed variables and of the rest are kept apart,
    so the objective can weight the latter by beta."""

    sums = ("log_p_observed", "log_p_latent")

    def __init__(
        self,
        variables,
        values: dict[str, torch.Tensor],
        dtype,
        device,
        count: int | None = None,
        observed_means: bool = False,
    ):
        super().__init__(variables, dtype, device)
        self.values.update(values)
        self.count = count  # rows to draw, for values not given
        self.observed_means = observed_means  # draw observed variables as their means (for pictures)
        self.log_p_observed = self.empty
        self.log_p_latent = self.empty

    def sample(self, name: str, distribution: Distribution) -> torch.Tensor:
        distribution = self._bind(name, distribution)
        value = self.values.get(name)
        if value is None:
            # only Model.sample leaves values to draw, and it always says how many rows
            assert self.count is not None, f"p must draw `{name}` but was not told how many rows"
            shape = self._shape(distribution, (self.count,))
            if self.observed_means and self.variables[name].role == "observed":
                value = distribution.mean(self.dtype, self.device).expand(shape)
            else:
                value = distribution.sample(shape, self.dtype, self.device)
        log_p = distribution.log_prob(value)
        self._add("log_p_observed" if self.variables[name].role == "observed" else "log_p_latent", log_p)
        self.values[name] = value
        return value
