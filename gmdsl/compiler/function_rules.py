"""The checker's rules for built-in functions (the registry's FUNCTIONS) called in `let`s:
their arguments' shapes fit the function's signature, and the `let` is declared as what the
function gives, `real` of its output shape (no link is applied to a function's value)."""

from __future__ import annotations

from gmdsl.runtime.registry import FUNCTIONS

from .diagnostics import error
from .rules import Rules
from .widths import shape_of


def _typed(name: str, shape: tuple[int, ...]) -> str:
    return f"{name} : real[{', '.join(map(str, shape))}]"


class FunctionRules(Rules):
    def check_functions(self) -> None:
        scope = self.scope
        for name, let in scope.lets.items():
            if not scope.calls_function(let.call):
                continue
            function = FUNCTIONS[let.call.net.name]
            shapes = [shape_of(scope, arg.name) for arg in let.call.args]
            if any(shape is None for shape in shapes):
                continue  # an unknown argument is reported by the `let` rules
            known = tuple(s for s in shapes if s is not None)
            output = function.output_shape(known)
            if output is None:
                given = ", ".join(_typed(arg.name, shape) for arg, shape in zip(let.call.args, known, strict=True))
                self.report(
                    error(
                        "E0408",
                        f"`{function.name}` cannot take ({given})",
                        let.call.span,
                        help=f"it is {function.signature}",
                    )
                )
            elif output != let.type.shape or let.type.base.name != "real":
                self.report(
                    error(
                        "E0409",
                        f"`{function.name}` gives real[{', '.join(map(str, output))}] here, but `{name}` is "
                        f"declared {let.type.base.name}[{', '.join(map(str, let.type.shape))}]",
                        let.type.span,
                        help=f"write `let {_typed(name, output)} = ...`",
                    )
                )
