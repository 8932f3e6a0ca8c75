"""Phase 4, emit: `ModelGraph` -> the Python source of the compiled model.

The module reads like the paper's model: an `Encoder` (q) and a `Decoder` (p), each a
`torch.nn.Module` whose `forward` has one line per factor in topological order, with the
factor as a comment above it and `# spec.gm:LINE` after it. It imports torch and
`gmdsl.runtime` only.
"""

from __future__ import annotations

import json
import keyword
from pathlib import Path

import networkx as nx

from .lowering import ModelGraph, Network
from .registry import CONSTRAINTS, DISTRIBUTIONS
from .pretty import number_text

# Locals of the generated forward methods, and its module-level names.
_TAKEN = {"self", "p", "q", "torch", "F", "rt"}
_LINK_CODE = {"identity": "{}", "softplus": "F.softplus({})", "sigmoid": "torch.sigmoid({})"}


class _Names:
    """Python names for spec names: unchanged where possible, never clashing."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)
        self.chosen: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.chosen:
            candidate = name if not keyword.iskeyword(name) else name + "_"
            while candidate in self.taken:
                candidate += "_"
            self.taken.add(candidate)
            self.chosen[name] = candidate
        return self.chosen[name]


def _module_attributes() -> set[str]:
    import torch  # only to learn which attribute names an nn.Module already has

    return set(dir(torch.nn.Module))


def emit(model: ModelGraph) -> str:
    """The compiled module's source text."""
    return _Emitter(model).module()


def constant_weights(model: ModelGraph) -> bool:
    """True when no supervised variable has a sampled ancestor in q: then the importance
    weights q(y | x, z_s) do not vary with the samples and log q(y | x) is exact."""
    q = model.q
    for node, attributes in q.nodes(data=True):
        if attributes.get("role") == "supervised":
            ancestors = nx.ancestors(q, node)
            if any(q.nodes[a]["kind"] == "variable" and q.nodes[a]["role"] != "observed" for a in ancestors):
                return False
    return True


class _Emitter:
    def __init__(self, model: ModelGraph):
        self.model = model
        self.spec_file = Path(model.path).name if model.path != "<string>" else "<string>"
        self.local = _Names(_TAKEN)
        self.attribute = _Names(_module_attributes())

    # --- the module ---------------------------------------------------------------------

    def module(self) -> str:
        model = self.model
        header = (f'"""The model `{model.name}`, compiled by gmdsl from {self.spec_file}.\n\n'
                  "Generated code: change the spec and recompile rather than editing this file.\n"
                  '"""\n\n'
                  "import torch\nimport torch.nn.functional as F\n\nfrom gmdsl import runtime as rt")
        return "\n\n\n".join([header, self.part("q"), self.part("p"), self.model_class()]) + "\n"

    def part(self, which: str) -> str:
        graph = self.model.q if which == "q" else self.model.p
        cls = "Encoder" if which == "q" else "Decoder"
        title = "recognition model" if which == "q" else "generative model"
        order = self.model.order(which)
        networks = self.networks_of(graph, order)
        lines = [f"class {cls}(torch.nn.Module):",
                 f'    """The {title} {self.factorisation(which)}."""', "",
                 "    def __init__(self):", "        super().__init__()"]
        lines += [f"        self.{self.attribute(n.name)} = {self.network(n)}  # {self.spec_file}:{n.span[0]}"
                  for n in networks]
        trace = "rt.Recognition" if which == "q" else "rt.Generation"
        lines += ["", f"    def forward(self, {which}: {trace}) -> None:"]
        for node in order:
            lines += self.statement(which, graph, node)
        return "\n".join(lines)

    def networks_of(self, graph: nx.DiGraph, order: list[str]) -> list[Network]:
        names: list[str] = []
        for node in order:
            attributes = graph.nodes[node]
            candidates = [attributes["network"]] if attributes["kind"] == "let" else attributes.get("networks", [])
            names += [n for n in candidates if n not in names]
        return [self.model.networks[n] for n in names]

    def factorisation(self, which: str) -> str:
        graph = self.model.q if which == "q" else self.model.p
        order = [n for n in self.model.order(which) if graph.nodes[n]["kind"] == "variable"]
        modelled = [n for n in order if "distribution" in graph.nodes[n]]
        given = [n for n in order if n not in modelled]
        head = f"{which}({', '.join(modelled)}{' | ' + ', '.join(given) if given else ''})"
        factors = " ".join(_factor_head(which, n, graph.nodes[n]["parents"]) for n in modelled)
        return f"{head} = {factors}"

    def model_class(self) -> str:
        model = self.model
        objective = model.objective
        variables = [n for n in model.order("p") if model.p.nodes[n]["kind"] == "variable"]
        lines = ["class Model(rt.CompiledModel):", f'    """{model.name}: q is `Encoder`, p is `Decoder`."""', "",
                 f"    name = {_str(model.name)}", "    variables = ("]
        for name in sorted(variables, key=lambda n: model.p.nodes[n]["order"]):
            a = model.p.nodes[name]
            lines.append(f"        rt.Variable({_str(name)}, {_str(a['role'])}, {_str(a['type'])}, {tuple(a['shape'])!r}),")
        lines += ["    )",
                  f"    options = rt.ObjectiveOptions(alpha={float(objective['alpha'])!r}, "
                  f"samples={objective['samples']}, beta={float(objective['beta'])!r}, "
                  f"estimator={_str(objective['estimator'])})"]
        if constant_weights(model):
            lines.append("    constant_weights = True  # no label has a sampled ancestor in q: log q(y | x) is exact")
        else:
            lines.append("    constant_weights = False  # a label sits below a sampled variable in q: importance weights")
        lines += ["", "    def __init__(self):", "        super().__init__(Encoder(), Decoder())"]
        return "\n".join(lines)

    # --- one node -------------------------------------------------------------------------

    def statement(self, which: str, graph: nx.DiGraph, node: str) -> list[str]:
        attributes = graph.nodes[node]
        where = f"  # {self.spec_file}:{attributes['span'][0]}"
        target = self.local(node)
        if attributes["kind"] == "let":
            call = self.call(attributes["network"], attributes["inputs"])
            link = CONSTRAINTS[attributes["type"]].link  # a let's type (real, positive, unit) names its constraint
            text = f"let {node} : {attributes['type']}[{', '.join(map(str, attributes['shape']))}] = " \
                   f"{attributes['network']}({', '.join(attributes['inputs'])})"
            return [f"        # {text}", f"        {target} = {_LINK_CODE[link].format(call)}{where}"]
        if "distribution" not in attributes:  # observed, in q
            return [f"        {target} = q.observed({_str(node)}){where}"]
        extra = ""
        estimator = attributes.get("estimator")
        if estimator is not None and estimator["name"] == "relaxation":
            extra = f", relaxation={float(estimator['options']['temperature'])!r}"
        elif estimator is not None:
            extra = ", enumeration=True"
        return [f"        # {_factor_text(which, node, attributes)}",
                f"        {target} = {which}.sample({_str(node)}, {self.distribution(attributes)}{extra}){where}"]

    def distribution(self, attributes: dict) -> str:
        name = attributes["distribution"]
        info = DISTRIBUTIONS[name]
        bindings = attributes["parameters"]
        if len(bindings) == 1 and bindings[0]["kind"] == "network" and len(bindings[0]["params"]) > 1:
            return f"rt.{name}.from_network({self.call(bindings[0]['network'], bindings[0]['inputs'])})"
        constraints = {p.name: p.constraint for ps in info.parameterisations for p in ps}
        arguments = []
        for binding in bindings:
            (param,) = binding["params"]
            constraint = constraints[param]
            if binding["kind"] == "constant":
                value = repr(float(binding["value"]))
            elif binding["kind"] == "uniform":
                value = "rt.UNIFORM"
            elif binding["kind"] == "reference":
                value = self.local(binding["source"])
            else:
                value = self.call(binding["network"], binding["inputs"])
                if constraint == "simplex":  # softmax-linked probabilities are logits
                    param, constraint = "logits", "real"
                value = _LINK_CODE[CONSTRAINTS[constraint].link].format(value)
            arguments.append(f"{param}={value}")
        return f"rt.{name}({', '.join(arguments)})"

    def call(self, network: str, inputs: list[str]) -> str:
        return f"self.{self.attribute(network)}(rt.join({', '.join(self.local(i) for i in inputs)}))"

    def network(self, network: Network) -> str:
        options = dict(network.options)
        keywords = ", ".join(f"{k}={_str(v) if isinstance(v, str) else list(v) if isinstance(v, tuple) else v}"
                             for k, v in options.items())
        if network.builder == "conv":
            return (f"rt.conv({tuple(network.first_input_shape)!r}, {network.input_width}, "
                    f"{network.output_width}, {keywords})")
        if network.builder == "deconv":
            return f"rt.deconv({network.input_width}, {tuple(network.output_shape)!r}, {keywords})"
        return f"rt.mlp({network.input_width}, {network.output_width}, {keywords})"


def _str(text: str) -> str:
    return json.dumps(text)


def _factor_head(which: str, node: str, parents: list[str]) -> str:
    return f"{which}({node}{' | ' + ', '.join(parents) if parents else ''})"


def _factor_text(which: str, node: str, attributes: dict) -> str:
    """The factor as a spec would write it, for the comment above its line."""
    arguments = []
    for binding in attributes["parameters"]:
        if binding["kind"] == "network":
            value = f"{binding['network']}({', '.join(binding['inputs'])})"
        elif binding["kind"] == "constant":
            value = number_text(binding["value"])
        elif binding["kind"] == "uniform":
            value = "uniform"
        else:
            value = binding["source"]
        single_emitter = binding["kind"] == "network" and len(binding["params"]) > 1
        arguments.append(value if single_emitter else f"{binding['params'][0]} = {value}")
    text = f"{_factor_head(which, node, attributes['parents'])} = {attributes['distribution']}({', '.join(arguments)})"
    estimator = attributes.get("estimator")
    if estimator is not None:
        options = ", ".join(f"{k} = {number_text(v)}" for k, v in estimator["options"].items())
        text += f" by {estimator['name']}{f'({options})' if options else ''}"
    return text
