"""The checker's rules for networks: every call names a defined network, every definition
names a known builder with valid options, and each network has one input and one output
width (image builders need images)."""

from __future__ import annotations

import math

from gmdsl.runtime.registry import FUNCTIONS, NETWORK_BUILDERS

from . import ast
from .checked import CheckedFactor, CheckedNetwork
from .diagnostics import error, unknown, warning
from .options import resolve_options
from .rules import Rules
from .scope import Scope
from .widths import NetworkUse, network_uses, shape_of


class NetworkRules(Rules):
    def check_networks(self, factors: dict[tuple[str, str], CheckedFactor]) -> dict[str, CheckedNetwork]:
        """Every network call and definition; each defined network with its options and first use."""
        scope = self.scope
        networks: dict[str, CheckedNetwork] = {}
        uses: list[NetworkUse] = network_uses(
            scope, ((variable, checked.bound, checked.options) for (_, variable), checked in factors.items())
        )
        # a call counts as a use even where its factor has other errors (an unknown distribution)
        used_names = {call.net.name for call in _calls(scope)}
        for use in uses:
            name = use.call.net.name
            if (declaration := scope.value(name)) is not None:
                kind = {ast.VarDecl: "variable", ast.LetDecl: "`let` node", ast.ParamDecl: "`param`"}[type(declaration)]
                self.report(
                    error(
                        "E0104",
                        f"`{name}` is a {kind}, not a network",
                        use.call.net.span,
                        help=f"call a network on it instead, e.g. `net({name})`, with `net NAME = mlp(...)` defined",
                    )
                )
            elif scope.calls_function(use.call):  # a function called in a factor, not in a `let`
                self.report(
                    error(
                        "E0406",
                        f"`{name}` is a built-in function: it is called in a `let`, not in a distribution",
                        use.call.net.span,
                        help=f"write `let NAME : real[...] = {name}(...)` and pass NAME here",
                    )
                )
            elif name not in scope.nets:
                self.unknown_name(use.call.net, "network", {*scope.nets, *FUNCTIONS})
        for name, net in scope.nets.items():
            if name in FUNCTIONS:
                self.report(
                    error(
                        "E0407",
                        f"`{name}` is the name of a built-in function",
                        net.name.span,
                        help=f"name the network otherwise; `{name}` means {FUNCTIONS[name].signature}",
                    )
                )
            builder = NETWORK_BUILDERS.get(net.builder.name)
            if builder is None:
                self.report(unknown("E0401", "network builder", net.builder.name, net.builder.span, NETWORK_BUILDERS))
            else:
                options = resolve_options(
                    net.options, builder.options, f"network builder `{builder.name}`", "E0402", self.report
                )
                first = next((use for use in uses if use.call.net.name == name), None)
                networks[name] = CheckedNetwork(net, builder, options, first)
            if name not in used_names:
                self.report(
                    warning(
                        "W0203",
                        f"network `{name}` is never used",
                        net.name.span,
                        help="call it in a factor or a `let`, or remove it",
                    )
                )
        self.check_network_widths(uses)
        return networks

    def check_network_widths(self, uses: list[NetworkUse]) -> None:
        """A network has one input width and one output width; image builders need images."""
        first_use: dict[str, NetworkUse] = {}
        for use in uses:
            name = use.call.net.name
            net = self.scope.nets.get(name)
            builder = NETWORK_BUILDERS.get(net.builder.name) if net else None
            if builder is None or use.input_width is None or use.output_width is None:
                continue
            if not use.call.args:
                self.report(
                    error(
                        "E0405",
                        f"network `{name}` is called with no inputs",
                        use.call.span,
                        help="a network maps its inputs to parameters; for a fixed value write a number",
                    )
                )
                continue
            first_shape = use.first_input_shape or ()  # calls without inputs were skipped above
            if builder.image_input and len(first_shape) != 3:
                self.report(
                    error(
                        "E0404",
                        f"`{name}` is a `conv` network: its first input must be an image "
                        f"[C, H, W], not shape {list(first_shape)}",
                        use.call.args[0].span,
                        help="declare the image with three sizes, e.g. `binary[1, 28, 28]`, or use `mlp`",
                    )
                )
            if builder.image_output and len(use.output_shape) != 3:
                self.report(
                    error(
                        "E0404",
                        f"`{name}` is a `deconv` network: its output must be an image "
                        f"[C, H, W], not shape {list(use.output_shape)}",
                        use.call.span,
                        help="declare the image with three sizes, e.g. `binary[1, 28, 28]`, or use `mlp`",
                    )
                )
            if builder.state_input:
                self.check_state(name, use)
            first = first_use.setdefault(name, use)
            if (first.input_width, first.output_width) != (use.input_width, use.output_width):
                self.report(
                    error(
                        "E0403",
                        f"network `{name}` is used with input width {use.input_width} and output "
                        f"width {use.output_width} here, but {first.input_width} and "
                        f"{first.output_width} at {first.call.span.line}:{first.call.span.column}",
                        use.call.span,
                        help="a network has one shape; define a second network for this use",
                    )
                )

    def check_state(self, name: str, use: NetworkUse) -> None:
        """A recurrent cell's last input is the state it updates: as wide as its output."""
        state = use.call.args[-1]
        shape = shape_of(self.scope, state.name)
        if len(use.call.args) >= 2 and shape is not None and math.prod(shape) == use.output_width:
            return
        self.report(
            error(
                "E0410",
                f"`{name}` is a recurrent cell: its last input is the state it updates, as wide as its "
                f"output ({use.output_width})",
                state.span,
                help=f"pass the state last, after the other inputs: `let h : real[{use.output_width}] = "
                f"{name}(x, h[k - 1])` inside `repeat k`",
            )
        )


def _calls(scope: Scope) -> list[ast.NetCall]:
    """Every network call the spec writes, whether or not its factor checks."""
    calls = [let.call for let in scope.lets.values() if not scope.calls_function(let.call)]
    for factor in scope.factors.values():
        calls += [arg.value for arg in factor.distribution.args if isinstance(arg.value, ast.NetCall)]
    return calls
