"""One pass of a `repeat k < count { ... }` block over a trace (q's or p's).

The compiled code runs the block as a loop over every step k = 1..K_max, whatever count is:
a step's values are computed for all rows at once, and count decides afterwards what each
step is worth. With c the flat onehot value of count ([..., K_max + 1]; enumerated, given,
drawn or relaxed alike):

- every log-density summed inside the block (log q, log p, ...) is replaced by
  sum_j c_j (sum of steps 1..j): the steps past count contribute nothing;
- a `let` or variable of the block read after it is sum_j c_j (its value at step j), with zeros
  at step 0;
- a repeated variable's value after the block is its steps side by side: [..., K_max * size].

Inside the block, `before(name)` is a name's value at the step before (zeros at step 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from .shapes import broadcast_shapes

if TYPE_CHECKING:
    from .trace import _Trace


class Repeat:
    def __init__(self, trace: _Trace, index: str, bound: str, steps: int, lets: dict[str, int]):
        self.trace = trace
        self.index = index
        self.bound = bound
        self.steps = steps
        self.let_sizes = lets  # the lets kept for `before` and `final`, with their flat sizes
        self.variables = [v.name for v in trace.variables.values() if v.repeat == index]
        self.history: dict[str, list[torch.Tensor]] = {name: [] for name in [*self.variables, *lets]}
        self.step = 0

    def run(self) -> Iterator[int]:
        """Yield k = 1..K_max, the trace's sums reset before each step; afterwards the sums
        weighted by count and the repeated variables' steps stacked (see the module doc)."""
        trace = self.trace
        given = {name: trace.values.pop(name) for name in self.variables if name in trace.values}
        totals = {name: getattr(trace, name) for name in trace.sums}
        terms: dict[str, list[torch.Tensor]] = {name: [] for name in trace.sums}
        nothing = trace.empty  # a sum still this object after a step had nothing added
        for k in range(1, self.steps + 1):
            self.step = k
            for name in self.variables:
                if name in given:  # p scores q's draw of this step
                    size = trace.variables[name].step_size
                    trace.values[name] = given[name][..., (k - 1) * size : k * size]
                else:  # drawn afresh at every step, not read back from the step before
                    trace.values.pop(name, None)
            for name in trace.sums:
                setattr(trace, name, nothing)
            yield k
            for name in trace.sums:
                terms[name].append(getattr(trace, name))
            for name in self.variables:
                self.history[name].append(trace.values[name])
                trace.step_distributions.setdefault(name, []).append(trace.distributions[name])
        weights = trace.values[self.bound]
        for name, total in totals.items():
            added = [term for term in terms[name] if term is not nothing]
            setattr(trace, name, total + _at_count(weights, terms[name], nothing) if added else total)
        for name in self.variables:
            steps = self.history[name]
            lead = broadcast_shapes(*(value.shape[:-1] for value in steps))
            trace.values[name] = torch.cat([value.expand(*lead, value.shape[-1]) for value in steps], dim=-1)
        self.step = 0

    def before(self, name: str) -> torch.Tensor:
        """A repeated variable's or kept `let`'s value at the step before (zeros at step 1)."""
        if self.step == 1:
            size = self.let_sizes[name] if name in self.let_sizes else self.trace.variables[name].step_size
            return torch.zeros(size, dtype=self.trace.dtype, device=self.trace.device)
        return self.history[name][self.step - 2]

    def keep(self, name: str, value: torch.Tensor) -> torch.Tensor:
        self.history[name].append(value)
        return value

    def final(self, name: str) -> torch.Tensor:
        """A kept `let`'s or a repeated variable's value at step count: sum_j c_j (value at
        step j), zeros at step 0."""
        steps = self.history[name]
        size = self.let_sizes[name] if name in self.let_sizes else self.trace.variables[name].step_size
        zeros = torch.zeros(size, dtype=self.trace.dtype, device=self.trace.device)
        values = [zeros, *steps]
        lead = broadcast_shapes(*(value.shape[:-1] for value in values))
        stacked = torch.stack([value.expand(*lead, value.shape[-1]) for value in values], dim=-2)
        weights = self.trace.values[self.bound].unsqueeze(-1)
        return (weights * stacked).sum(-2)


def _at_count(weights: torch.Tensor, terms: list[torch.Tensor], nothing: torch.Tensor) -> torch.Tensor:
    """sum_j c_j (terms 1..j summed): per-step log-densities [..., S, B] weighted by count [..., B, K + 1]."""
    prefix = [nothing]
    for term in terms:
        prefix.append(prefix[-1] + term)
    lead = broadcast_shapes(*(value.shape for value in prefix))
    stacked = torch.stack([value.expand(lead) for value in prefix], dim=-1)
    # a weight of exactly 0 leaves out its prefix even where that is -inf (0 * -inf is NaN)
    return torch.where(weights > 0, weights * stacked, torch.zeros_like(stacked)).sum(-1)
