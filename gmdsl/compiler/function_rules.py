"""The checker's rules for built-in functions (the registry's FUNCTIONS) called in `let`s:
their arguments are continuous and their shapes fit the function's signature, and the `let` is
declared as what the function gives, `real` of its output shape (no link is applied to a
function's value)."""

from __future__ import annotations

from gmdsl.runtime.registry import FUNCTIONS, TYPES

from . import ast
from .diagnostics import error
from .rules import Rules


def _typed(name: str, base: str, shape: tuple[int, ...]) -> str:
    return f"{name} : {base}[{', '.join(map(str, shape))}]"


class FunctionRules(Rules):
    def check_functions(self) -> None:
        scope = self.scope
        for name, let in scope.lets.items():
            if not scope.calls_function(let.call):
                continue
            function = FUNCTIONS[let.call.net.name]
            if function.reads_index:
                self.check_index_reader(name, let)
                continue
            declarations = [scope.value(arg.name) for arg in let.call.args]
            if any(d is None for d in declarations):
                continue  # an unknown argument is reported by the `let` rules
            types = [d.type for d in declarations if d is not None]
            known = tuple(t.shape for t in types)
            discrete = any(TYPES[t.base.name].discrete for t in types if t.base.name in TYPES)
            refused = discrete and not function.reads_discrete
            output = None if refused else function.output_shape(known, let.type.shape)
            if output is None:
                given = ", ".join(
                    _typed(arg.name, t.base.name, t.shape) for arg, t in zip(let.call.args, types, strict=True)
                )
                self.report(
                    error(
                        "E0408",
                        f"`{function.name}` cannot take ({given})",
                        let.call.span,
                        help=f"it is {function.signature}; its arguments are continuous values",
                    )
                )
            elif output != let.type.shape or let.type.base.name != "real":
                self.report(
                    error(
                        "E0409",
                        f"`{function.name}` gives real[{', '.join(map(str, output))}] here, but `{name}` is "
                        f"declared {let.type.base.name}[{', '.join(map(str, let.type.shape))}]",
                        let.type.span,
                        help=f"write `let {_typed(name, 'real', output)} = ...`",
                    )
                )

    def check_index_reader(self, name: str, let: ast.LetDecl) -> None:
        """`let pos : real[1] = step(k)`: inside `repeat k`, given k itself."""
        function = FUNCTIONS[let.call.net.name]
        within = self.scope.repeat_of.get(name)
        args = let.call.args
        if within is None or len(args) != 1 or args[0].name != within or args[0].step is not None:
            where = f"`repeat {within}`" if within is not None else "a `repeat`"
            index = within or "k"
            self.report(
                error(
                    "E0408",
                    f"`{function.name}` takes the index of the `repeat` its `let` is in",
                    let.call.span,
                    help=f"inside {where}, write `let {name} : real[1] = {function.name}({index})`",
                )
            )
        elif let.type.shape != (1,) or let.type.base.name != "real":
            self.report(
                error(
                    "E0409",
                    f"`{function.name}` gives real[1], but `{name}` is declared "
                    f"{let.type.base.name}[{', '.join(map(str, let.type.shape))}]",
                    let.type.span,
                    help=f"write `let {_typed(name, 'real', (1,))} = ...`",
                )
            )
