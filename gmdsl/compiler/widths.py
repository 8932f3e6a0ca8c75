"""Shape inference for networks: each call site's input width (its arguments flattened
and concatenated) and output width (what the `let` node or the distribution's parameters
need). The checker demands one width per network and hands the first use of each on."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gmdsl.runtime.registry import Param, parameter_width

from . import ast
from .distargs import Bound
from .scope import Scope


@dataclass(frozen=True)
class NetworkUse:
    """One call of a network. Widths are None where an argument is undeclared."""

    call: ast.NetCall
    input_width: int | None
    output_width: int
    output_shape: tuple[int, ...]
    first_input_shape: tuple[int, ...] | None


def shape_of(scope: Scope, name: str) -> tuple[int, ...] | None:
    declaration = scope.value(name)
    return declaration.type.shape if declaration is not None else None


def _use(scope: Scope, call: ast.NetCall, output_shape: tuple[int, ...]) -> NetworkUse:
    shapes = [shape_of(scope, arg.name) for arg in call.args]
    known = [s for s in shapes if s is not None]
    input_width = sum(math.prod(s) for s in known) if len(known) == len(shapes) else None
    return NetworkUse(call, input_width, math.prod(output_shape), output_shape, shapes[0] if shapes else None)


def network_uses(scope: Scope, factors: Iterable[tuple[str, tuple[Bound, ...], dict[str, Any]]]) -> list[NetworkUse]:
    """Every network call in the spec, in source order: those of the `let` nodes, and those of
    the factors given as (variable, its bound arguments, its distribution's options)."""
    uses: list[NetworkUse] = []
    for let in scope.lets.values():
        if not scope.calls_function(let.call):  # a built-in function has no widths to agree on
            uses.append(_use(scope, let.call, let.type.shape))
    for variable, bound, options in factors:
        shape = scope.variables[variable].type.shape
        for item in bound:
            if isinstance(item.value, ast.NetCall):
                uses.append(_use(scope, item.value, output_shape(item.params, shape, options)))
    return sorted(uses, key=lambda use: (use.call.span.line, use.call.span.column))


def output_shape(params: tuple[Param, ...], shape: tuple[int, ...], options: dict[str, Any]) -> tuple[int, ...]:
    """The shape of a network's output that gives `params` of a variable of `shape`:
    parameters of one value per element stack on the first axis (an image's stay images);
    others (a covariance factor, a mixture's weights) make the output flat."""
    if all(p.size == "value" for p in params):
        return (len(params) * shape[0], *shape[1:])
    return (sum(parameter_width(p, math.prod(shape), options) for p in params),)
