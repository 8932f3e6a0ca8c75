"""What every group of the checker's rules shares: the scope they read, where they report,
and how an unknown name is reported."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import ast
from .diagnostics import Diagnostic, did_you_mean, error
from .scope import Scope


class Rules:
    def __init__(self, scope: Scope, report: Callable[[Diagnostic], None]):
        self.scope = scope
        self.report = report

    def unknown_name(self, ident: ast.Ident, kind: str, known: Iterable[str]) -> None:
        if kind == "variable" and ident.name in self.scope.repeats:
            self.report(
                error(
                    "E0103",
                    f"`{ident.name}` is the index of `repeat {ident.name}`, not a value",
                    ident.span,
                    help=f"the index counts steps: read a variable at a step as `name[{ident.name}]` or "
                    f"`name[{ident.name} - 1]`",
                )
            )
            return
        self.report(
            error(
                "E0104" if kind == "network" else "E0103",
                f"unknown {kind} `{ident.name}`",
                ident.span,
                help=did_you_mean(ident.name, known) or f"declare it: {_how_to_declare(kind, ident.name)}",
            )
        )


def _how_to_declare(kind: str, name: str) -> str:
    return f"`net {name} = mlp(hidden = [256])`" if kind == "network" else f"`latent {name} : real[8]`"
