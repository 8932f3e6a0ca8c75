"""Phase 4, emit: `ModelIR` -> the Python source of the compiled model.

The module reads like the paper's model: an `Encoder` (q) and a `Decoder` (p), each a
`torch.nn.Module` whose `forward` has one line per factor in the spec's order (topological
where the graph demands it), with the factor as a comment above it and `# spec.gm:LINE`
after it. Its docstring states the objective it is trained with. It imports torch and
`gmdsl.runtime` only. The emitter reads the typed IR and nothing else.
"""

from __future__ import annotations

import json
import keyword
import math
from pathlib import Path

from gmdsl.runtime.registry import FUNCTIONS, NETWORK_BUILDERS

from .analyses import constant_weights, estimators, impossible_classes
from .docstring import objective_lines
from .ir import Graph, LetNode, ModelIR, Network, NetworkParameter, Parameter, VariableNode, read
from .pretty import factor_head, factor_line, network_call_text, number_text, numbers_text
from .reserved import MODULE_ATTRIBUTES

# Locals of the generated forward methods, and its module-level names.
_TAKEN = {"self", "p", "q", "torch", "rt"}


class _Names:
    """Python names for spec names: unchanged where possible, never clashing."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.chosen: dict[str, str] = {}

    def __call__(self, name: str, preferred: str | None = None) -> str:
        """The Python name for `name` (chosen from `preferred` where `name` is no Python name)."""
        if name not in self.chosen:
            candidate = preferred or name
            candidate = candidate if not keyword.iskeyword(candidate) else candidate + "_"
            while candidate in self.taken:
                candidate += "_"
            self.taken.add(candidate)
            self.chosen[name] = candidate
        return self.chosen[name]


def emit(model: ModelIR) -> str:
    """The compiled module's source text."""
    return _Emitter(model).module()


class _Emitter:
    def __init__(self, model: ModelIR):
        self.model = model
        # the one piece of free text in generated source (every name is an identifier by the
        # grammar): quoted, so that no file name can end a comment or docstring and add code
        self.spec_file = _text(Path(model.path).name if model.path != "<string>" else "<string>")
        self.local = _Names(_TAKEN)
        self.attribute = _Names(set(MODULE_ATTRIBUTES))
        self.hoisted_lines: list[str] = []  # lines the current statement needs first
        self.shared: set[str] = set()  # the Share locals the current forward has named
        self.which = "q"  # the trace of the forward being written: q or p
        # the repeat each node is declared in (None outside every repeat)
        self.repeat_of = {n.name: n.repeat for graph in (model.p, model.q) for n in graph.nodes}

    # --- the module ---------------------------------------------------------------------

    def module(self) -> str:
        model = self.model
        objective = "\n".join(objective_lines(model))
        header = (
            f'"""The model `{model.name}`, compiled by gmdsl from {self.spec_file}.\n\n{objective}\n\n'
            "Generated code: change the spec and recompile rather than editing this file.\n"
            '"""\n\n'
            "# Each statement is one factor or network on one line, ending in the spec line it compiles.\n"
            "# ruff: noqa: E501\n\n"
            "import torch\n\nfrom gmdsl import runtime as rt"
        )
        return "\n\n\n".join([header, self.part(model.q), self.part(model.p), self.model_class()]) + "\n"

    def shared_modules(self) -> list[str]:
        """The networks and `param`s that q and p both use: q's module holds each, p's is handed
        it, so that one name is one set of weights."""
        in_q = {n.name for n in self.networks_of(self.model.q)} | {n.name for n in _params_of(self.model.q)}
        in_p = [n.name for n in self.networks_of(self.model.p)] + [n.name for n in _params_of(self.model.p)]
        return [name for name in in_p if name in in_q]

    def part(self, graph: Graph) -> str:
        which = graph.model
        cls = "Encoder" if which == "q" else "Decoder"
        title = "recognition model" if which == "q" else "generative model"
        handed = self.shared_modules() if which == "p" else []
        lines = [
            f"class {cls}(torch.nn.Module):",
            f'    """The {title} {self.factorisation(graph)}."""',
            "",
            f"    def __init__({', '.join(['self', *(self.attribute(name) for name in handed)])}):",
            "        super().__init__()",
        ]
        lines += [
            f"        self.{self.attribute(name)} = {self.attribute(name)}  # shared with the recognition model"
            for name in handed
        ]
        lines += [
            f"        self.{self.attribute(n.name)} = {self.network(n)}  # {self.spec_file}:{n.line}"
            for n in self.networks_of(graph)
            if n.name not in handed
        ]
        lines += [
            f"        self.{self.attribute(n.name)} = torch.nn.Parameter({_start(n)})  # {self.spec_file}:{n.line}"
            for n in _params_of(graph)
            if n.name not in handed
        ]
        lines += [
            f"        self.register_buffer({_str(self.constant(node.name, param))}, torch.tensor({values!r}), "
            f"persistent=False)  # {self.spec_file}:{node.line}"
            for node, param, values in _listed_constants(graph)
        ]
        trace = "rt.Recognition" if which == "q" else "rt.Generation"
        lines += ["", f"    def forward(self, {which}: {trace}) -> None:"]
        read_now, read_before = _read_in(graph)
        kept = _kept_lets(graph, read_before)
        self.shared, self.which = set(), which
        current = None  # the repeat whose loop is open
        for node in graph.nodes:
            if node.repeat != current:
                if current is not None:
                    lines += self.finals(graph, current, kept)
                if node.repeat is not None:
                    lines += self.loop(node.repeat, kept)
                current = node.repeat
            statement = self.statement(which, node, node.name in read_now, node.name in kept)
            lines += [("    " + line if current is not None else line) for line in statement]
        if current is not None:
            lines += self.finals(graph, current, kept)
        return "\n".join(lines)

    def loop(self, index: str, kept: dict[str, int]) -> list[str]:
        """The head of a repeat's loop: every step 1..K_max runs; the bound weighs them after."""
        repeat = self.model.repeat(index)
        lets = {name: size for name, size in kept.items() if self.repeat_of.get(name) == index}
        keyword = f", lets={{{', '.join(f'{_str(n)}: {size}' for n, size in lets.items())}}}" if lets else ""
        bound = repeat.bound
        return [
            f"        # repeat {index} < {bound}: steps 1..{repeat.steps}; those past the value of {bound} add nothing",
            f"        for _ in {self.which}.repeat({_str(index)}, "
            f"{_str(bound)}, steps={repeat.steps}{keyword}):  # {self.spec_file}:{repeat.line}",
        ]

    def finals(self, graph: Graph, index: str, kept: dict[str, int]) -> list[str]:
        """After a repeat's loop: each of its `let`s read later, at the last step that holds."""
        after = {
            name
            for node in graph.nodes
            if node.repeat != index
            for name in _inputs_of(node)
            if self.repeat_of.get(name) == index
        }
        bound = self.model.repeat(index).bound
        # the block's variables keep their steps anyway; its lets only where `kept`
        finals = [name for name in self.model.declaration_order if name in after] + [n for n in kept if n in after]
        return [
            f"        {self.local(name)} = {self.which}.final({_str(name)})  # its value at step {bound}"
            for name in finals
        ]

    def constant(self, variable: str, param: str) -> str:
        """The buffer holding a factor's list of constants: `where_loc` for `p(where) = Normal(loc = [...])`."""
        return self.attribute(f"{variable}.{param}", preferred=f"{variable}_{param}")

    def value(self, text: str) -> str:
        """The expression for an input: its local, or the trace's value of the step before."""
        name, earlier = read(text)
        return f"{self.which}.before({_str(name)})" if earlier else self.local(name)

    def networks_of(self, graph: Graph) -> list[Network]:
        """The networks a graph calls, in the order of their first call."""
        names: list[str] = []
        for node in graph.nodes:
            if isinstance(node, LetNode):
                candidates = [node.network] if node.network is not None else []
            else:
                parameters = node.factor.parameters if node.factor else []
                candidates = [b.network for b in parameters if isinstance(b, NetworkParameter)]
            names += [n for n in candidates if n not in names]
        return [self.model.network(n) for n in names]

    def factorisation(self, graph: Graph) -> str:
        """`q(y, z | x) = q(y | x) q(z | x, y)`: variables in declaration order, factors in order."""
        declared = self.model.declaration_order
        modelled = [n for n in declared if n in graph and getattr(graph.node(n), "factor", None) is not None]
        given = [n for n in declared if n in graph and n not in modelled]
        head = f"{graph.model}({', '.join(modelled)}{' | ' + ', '.join(given) if given else ''})"
        factors = " ".join(
            factor_head(graph.model, node.name, node.factor.parents)
            for node in graph.variables()
            if node.factor is not None
        )
        return f"{head} = {factors}"

    def model_class(self) -> str:
        model = self.model
        options = model.objective.options
        lines = [
            "class Model(rt.CompiledModel):",
            f'    """{model.name}: q is `Encoder`, p is `Decoder`."""',
            "",
            f"    name = {_str(model.name)}",
            "    variables = (",
        ]
        impossible = impossible_classes(model)
        for node in model.variables():
            if node.repeat is None:
                shape, where = tuple(node.shape), ""
            else:  # its steps side by side
                shape, where = (model.repeat(node.repeat).steps, *node.shape), f", repeat={_str(node.repeat)}"
            if node.name in impossible:
                where += f", impossible={impossible[node.name]!r}"
            lines.append(
                f"        rt.Variable({_str(node.name)}, {_str(node.role)}, {_str(node.type)}, {shape!r}{where}),"
            )
        lines += [
            "    )",
            f"    options = rt.ObjectiveOptions(alpha={float(options['alpha'])!r}, "
            f"samples={options['samples']}, beta={float(options['beta'])!r}, "
            f"estimator={_str(options['estimator'])})",
        ]
        if constant_weights(model):
            lines.append("    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact")
        else:
            lines.append(
                "    constant_weights = False  # a label sits below a sampled variable in q: importance weights"
            )
        enumerated = tuple(node.name for node, _ in estimators(model, "enumeration"))
        if enumerated:
            names = "".join(f"{_str(name)}, " for name in enumerated).rstrip(" ")
            lines.append(f"    enumerated = ({names})  # summed over every value in q where not given")
        shared = self.shared_modules()
        if shared:
            handed = ", ".join(f"encoder.{self.attribute(name)}" for name in shared)
            lines += [
                "",
                "    def __init__(self):",
                "        encoder = Encoder()",
                f"        super().__init__(encoder, Decoder({handed}))",
            ]
        else:
            lines += ["", "    def __init__(self):", "        super().__init__(Encoder(), Decoder())"]
        return "\n".join(lines)

    # --- one node -------------------------------------------------------------------------

    def shape_of(self, name: str) -> list[int]:
        """The declared shape of a variable or `let` node."""
        return next(n.shape for graph in (self.model.p, self.model.q) for n in graph.nodes if n.name == name)

    def statement(self, which: str, node: VariableNode | LetNode, is_read: bool, kept: bool = False) -> list[str]:
        """The node's line; its value gets a local name only when a later line reads it, and a
        repeat's `let` read at the step before or after the block is kept by the trace."""
        where = f"  # {self.spec_file}:{node.line}"
        target = f"{self.local(node.name)} = " if is_read else ""
        if isinstance(node, LetNode) and node.is_param:
            shape = ", ".join(map(str, node.shape))
            value = _linked(node.link, f"self.{self.attribute(node.name)}", node.shape[-1])
            return [f"        # param {node.name} : {node.type}[{shape}]", f"        {target}{value}{where}"]
        if isinstance(node, LetNode):
            callee = node.network or node.function or ""
            shape = ", ".join(map(str, node.shape))
            reads_step = node.function is not None and FUNCTIONS[node.function].reads_index
            inputs = [node.repeat or ""] if reads_step else [_spec_text(name) for name in node.inputs]
            text = f"let {node.name} : {node.type}[{shape}] = {network_call_text(callee, inputs)}"
            if reads_step:  # `step(k)`: the number of the step running
                call = f"{which}.step_number()"
            elif node.function is not None:  # a built-in function on the flat values (runtime/functions.py)
                arguments = [self.value(name) for name in node.inputs]
                if FUNCTIONS[node.function].shaped:  # flat values do not say their shapes: the inputs', then its own
                    shapes = (*(tuple(self.shape_of(read(name)[0])) for name in node.inputs), tuple(node.shape))
                    arguments.append(f"shapes={shapes!r}")
                call = f"rt.{node.function}({', '.join(arguments)})"
            else:
                call = _linked(node.link, self.call(callee, node.inputs, node.hoisted), node.shape[-1])
            if kept:
                call = f"{which}.keep({_str(node.name)}, {call})"
            return [f"        # {text}", *self.take_hoisted(), f"        {target}{call}{where}"]
        factor = node.factor
        if factor is None:  # observed, in q
            return [f"        {target}q.observed({_str(node.name)}){where}"]
        extra = ""
        if factor.estimator is not None and factor.estimator.name == "relaxation":
            extra = f", relaxation={float(factor.estimator.options['temperature'])!r}"
        elif factor.estimator is not None:
            extra = ", enumeration=True"
        distribution = self.distribution(node)
        return [
            f"        # {self.factor_text(which, node)}",
            *self.take_hoisted(),
            f"        {target}{which}.sample({_str(node.name)}, {distribution}{extra}){where}",
        ]

    def distribution(self, node: VariableNode) -> str:
        assert node.factor is not None
        name = node.factor.distribution
        bindings = node.factor.parameters
        first = bindings[0]
        options = [f"{key}={value!r}" for key, value in node.factor.options.items()]
        if len(bindings) == 1 and isinstance(first, NetworkParameter) and len(first.params) > 1:
            call = self.call(first.network, first.inputs, first.hoisted)
            return f"rt.{name}.from_network({', '.join([call, *options])})"
        arguments = []
        for binding in bindings:
            (param,) = binding.params
            if binding.kind == "constant":
                constant = binding.value  # a list is a buffer of the module (see part)
                value = (
                    repr(float(constant))
                    if not isinstance(constant, list)
                    else f"self.{self.constant(node.name, param)}"
                )
            elif binding.kind == "uniform":
                value = "rt.UNIFORM"
            elif binding.kind == "reference":
                value = self.value(binding.source)
            else:
                param = binding.argument or param
                value = _linked(binding.link or "identity", self.call(binding.network, binding.inputs, binding.hoisted))
            arguments.append(f"{param}={value}")
        return f"rt.{name}({', '.join(arguments + options)})"

    def factor_text(self, which: str, node: VariableNode) -> str:
        """The factor as a spec would write it, for the comment above its line."""
        assert node.factor is not None
        factor = node.factor
        arguments = [_parameter_text(b) for b in factor.parameters]
        arguments += [f"{key} = {value}" for key, value in factor.options.items()]
        estimator = factor.estimator
        options = [f"{k} = {number_text(v)}" for k, v in estimator.options.items()] if estimator else None
        return factor_line(
            which,
            node.name,
            factor.parents,
            factor.distribution,
            arguments,
            estimator.name if estimator else None,
            options,
        )

    def call(self, network: str, inputs: list[str], hoisted: list[str]) -> str:
        """`self.net(rt.join(a, b))`; with hoisted inputs `self.net.finish(a_share, b)`, each
        hoisted input named as an `rt.Share` on a line of its own (`take_hoisted`)."""
        net = f"self.{self.attribute(network)}"
        if not hoisted:
            return f"{net}(rt.join({', '.join(self.value(i) for i in inputs)}))"
        arguments = []
        for name in inputs:
            argument = self.value(name)
            if name in hoisted:
                argument = self.local(f"{network}.share({name})", preferred=f"{network}_{name}")
                if argument in self.shared:  # named already, for an earlier call of the network
                    arguments.append(argument)
                    continue
                self.shared.add(argument)
                self.hoisted_lines.append(
                    f"        {argument} = rt.Share({self.local(name)})  # hoisted: {network}'s first layer "
                    f"multiplies {name} at {name}'s own dimensions, not once per draw"
                )
            arguments.append(argument)
        return f"{net}.finish({', '.join(arguments)})"

    def take_hoisted(self) -> list[str]:
        lines, self.hoisted_lines = self.hoisted_lines, []
        return lines

    def network(self, network: Network) -> str:
        """`rt.BUILDER(sizes..., options...)`: the sizes the registry's builder entry names."""
        sizes = [_size(getattr(network, field)) for field in NETWORK_BUILDERS[network.builder].arguments]
        options = [f"{k}={_option(v)}" for k, v in network.options.items()]
        return f"rt.{network.builder}({', '.join(sizes + options)})"


def _inputs_of(node: VariableNode | LetNode) -> list[str]:
    """What a node reads (as a network input or a parameter), as the IR writes it."""
    if isinstance(node, LetNode):
        return list(node.inputs)
    names: list[str] = []
    for binding in node.factor.parameters if node.factor is not None else []:
        if binding.kind == "network":
            names += binding.inputs
        elif binding.kind == "reference":
            names.append(binding.source)
    return names


def _read_in(graph: Graph) -> tuple[set[str], set[str]]:
    """The nodes whose value some node of the graph reads at its own step, and those read at
    the step before (inside a repeat)."""
    now: set[str] = set()
    before: set[str] = set()
    for node in graph.nodes:
        for text in _inputs_of(node):
            name, earlier = read(text)
            (before if earlier else now).add(name)
    return now, before


def _kept_lets(graph: Graph, read_before: set[str]) -> dict[str, int]:
    """A repeat's `let`s that the trace keeps, with their flat sizes: those read at the step
    before, or by a node outside the repeat (as their value at the last step that holds)."""
    repeat_of = {node.name: node.repeat for node in graph.nodes}
    # read outside its own block: at the top level, or in another repeat's steps
    read_after = {
        name
        for node in graph.nodes
        for name in (read(text)[0] for text in _inputs_of(node))
        if repeat_of.get(name) is not None and repeat_of.get(name) != node.repeat
    }
    return {
        node.name: math.prod(node.shape)
        for node in graph.nodes
        if isinstance(node, LetNode)
        and node.repeat is not None
        and (node.name in read_before or node.name in read_after)
    }


def _spec_text(text: str) -> str:
    """An input as the spec writes it: `h[k - 1]` for the IR's `h[k-1]`."""
    return text.replace("-1]", " - 1]")


def _listed_constants(graph: Graph) -> list[tuple[VariableNode, str, list[float]]]:
    """The lists of constants a graph's factors give (`loc = [0.35, 0, 0]`): kept as buffers, so
    they move with the module to its device."""
    return [
        (node, binding.params[0], [float(item) for item in binding.value])
        for node in graph.variables()
        if node.factor is not None
        for binding in node.factor.parameters
        if binding.kind == "constant" and isinstance(binding.value, list)
    ]


def _linked(link: str, code: str, categories: int = 0) -> str:
    """A raw output through its link (runtime/links.py), e.g. `rt.softplus(...)`; a softmax
    normalises each group of `categories` values (a simplex's last size)."""
    if link == "softmax":
        return f"rt.softmax({code}, {categories})"
    return code if link == "identity" else f"rt.{link}({code})"


def _params_of(graph: Graph) -> list[LetNode]:
    """The learned constants a graph reads, in its order."""
    return [node for node in graph.nodes if isinstance(node, LetNode) and node.is_param]


def _start(node: LetNode) -> str:
    """The raw tensor a `param` starts as: flat, like every value of a compiled model."""
    if isinstance(node.start, list):
        return f"torch.tensor({[float(v) for v in node.start]!r})"
    return f"torch.full(({math.prod(node.shape)},), {float(node.start or 0.0)!r})"


def _parameter_text(binding: Parameter) -> str:
    if binding.kind == "network":
        value = network_call_text(binding.network, [_spec_text(name) for name in binding.inputs])
        if len(binding.params) > 1:  # one network emits every parameter
            return value
    elif binding.kind == "constant":
        constant = binding.value
        value = numbers_text(constant) if isinstance(constant, list) else number_text(constant)
    elif binding.kind == "uniform":
        value = "uniform"
    else:
        value = _spec_text(binding.source)
    return f"{binding.params[0]} = {value}"


def _size(value: int | list[int] | None) -> str:
    """A width as a number, a shape as a tuple."""
    return repr(tuple(value)) if isinstance(value, list) else repr(value)


def _option(value: object) -> str:
    """A network option: words quoted, lists of numbers as lists."""
    if isinstance(value, str):
        return _str(value)
    return repr(list(value)) if isinstance(value, (list, tuple)) else repr(value)


def _str(text: str) -> str:
    """A Python string literal of `text`."""
    return json.dumps(text)


def _text(text: str) -> str:
    """`text` as it may stand inside a generated comment or docstring: quotes, backslashes and
    every control character (newlines included) escaped, so it cannot end either one."""
    return json.dumps(text, ensure_ascii=False)[1:-1]
