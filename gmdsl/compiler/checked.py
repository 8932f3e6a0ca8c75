"""The checked spec: what phase 2 (check) hands to phase 3 (lower).

It holds everything the checker resolved, once: the symbol table, each factor's distribution
arguments bound to parameters, each network's options and widths, the estimators and the
objective with their defaults filled in, the dependency edges of p and q, and every diagnostic.
The lowering reads it and never validates again. `to_dict` is its printed form
(`gmdsl compile SPEC --dump-checked`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gmdsl.runtime.registry import DistributionInfo, NetworkBuilder

from . import ast
from .diagnostics import Diagnostic
from .distargs import Bound
from .pretty import factor_text, numbers_text
from .scope import Edge, Scope
from .widths import NetworkUse


@dataclass(frozen=True)
class ResolvedOptions:
    """An estimator's or objective's name and its options, defaults filled in."""

    name: str
    options: dict[str, Any]


@dataclass(frozen=True)
class CheckedFactor:
    factor: ast.Factor
    distribution: DistributionInfo
    bound: tuple[Bound, ...]  # the arguments, each bound to the parameters it gives
    estimator: ResolvedOptions | None  # a discrete q factor's (the default when no `by`)
    options: dict[str, Any]  # the distribution's options (`rank`, `components`), defaults filled in


@dataclass(frozen=True)
class CheckedNetwork:
    declaration: ast.NetDecl
    builder: NetworkBuilder
    options: dict[str, Any]
    use: NetworkUse | None  # its first call (widths); None when it is never called


@dataclass(frozen=True)
class CheckedSpec:
    spec: ast.Spec
    scope: Scope
    factors: dict[tuple[str, str], CheckedFactor]  # ("q", "z") -> the factor of z in q
    networks: dict[str, CheckedNetwork]
    objective: ResolvedOptions | None  # None only when the objective itself is wrong
    edges: dict[str, tuple[Edge, ...]]  # "p" / "q" -> (source, target, networks reading it)
    diagnostics: tuple[Diagnostic, ...]  # sorted by position

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed): the lowering may run."""
        return not any(d.is_error for d in self.diagnostics)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of what the checker resolved."""
        scope = self.scope
        return {
            "model": scope.model_name,
            "variables": {
                name: {"role": v.role, "type": v.type.base.name, "shape": list(v.type.shape)}
                for name, v in scope.variables.items()
            },
            "lets": {
                name: {
                    "type": let.type.base.name,
                    "shape": list(let.type.shape),
                    "function" if scope.calls_function(let.call) else "network": let.call.net.name,
                    "inputs": [a.name for a in let.call.args],
                }
                for name, let in scope.lets.items()
            },
            "factors": [
                {
                    "text": factor_text(f.factor),
                    "distribution": f.distribution.name,
                    "arguments": [
                        {"params": [p.name for p in b.params], "value": _value_text(b.value)} for b in f.bound
                    ],
                    "estimator": _options_dict(f.estimator),
                    **({"options": f.options} if f.options else {}),
                }
                for f in self.factors.values()
            ],
            "networks": {
                name: {
                    "builder": n.builder.name,
                    "options": _jsonable(n.options),
                    "input_width": n.use.input_width if n.use else None,
                    "output_width": n.use.output_width if n.use else None,
                }
                for name, n in self.networks.items()
            },
            "objective": _options_dict(self.objective),
            "edges": {model: [[s, t, list(nets)] for s, t, nets in edges] for model, edges in self.edges.items()},
            "diagnostics": [
                {
                    "severity": d.severity,
                    "code": d.code,
                    "message": d.message,
                    "line": d.span.line,
                    "column": d.span.column,
                }
                for d in self.diagnostics
            ],
        }


def _value_text(value: ast.ArgValue) -> str | int | float:
    if isinstance(value, ast.Number):
        return value.value
    if isinstance(value, ast.Vector):
        return numbers_text(item.value for item in value.items)
    if isinstance(value, ast.Reference):
        return value.name.name
    return f"{value.net.name}({', '.join(a.name for a in value.args)})"


def _options_dict(resolved: ResolvedOptions | None) -> dict[str, Any] | None:
    return None if resolved is None else {"name": resolved.name, "options": _jsonable(resolved.options)}


def _jsonable(options: dict[str, Any]) -> dict[str, Any]:
    """Options as JSON values; an unset one (`output_bias`) is left out, as the IR leaves it."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in options.items() if v is not None}
