"""Phase 3, lower: a checked `ast.Spec` -> `ModelGraph`, the generative model p and the
recognition model q as networkx DAGs with typed node attributes, plus the networks
(with inferred widths) and the resolved objective.

Node attributes (both graphs):
    kind        "variable" | "let"
    role        "observed" | "supervised" | "latent" | "deterministic"
    type, shape the declared type name and shape
    span        (line, column) of the factor or `let` that defines the node here
    order       declaration index, the tie-break of every ordering
  on a variable with a factor in this graph:
    distribution, parents, parameters ([{"params": [...], "kind": ..., ...}]),
    networks (names), estimator ({"name", "options"} or None; q only)
  on a `let`:
    network, inputs
Edge attribute: `networks`, the networks through which the source is read (may be empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import networkx as nx

from . import ast
from .distargs import bind
from .errors import InternalCompilerError
from .options import resolve_options
from .registry import DEFAULT_ESTIMATOR, DEFAULT_OBJECTIVE, DISTRIBUTIONS, ESTIMATORS, NETWORK_BUILDERS, OBJECTIVES
from .scope import Scope, build_scope, dependency_edges
from .widths import network_uses


@dataclass(frozen=True)
class Network:
    name: str
    builder: str
    options: dict[str, Any]
    input_width: int
    output_width: int
    output_shape: tuple[int, ...]
    first_input_shape: tuple[int, ...]  # a `conv` network's image
    span: tuple[int, int]


@dataclass(frozen=True)
class ModelGraph:
    name: str
    path: str
    p: nx.DiGraph
    q: nx.DiGraph
    networks: dict[str, Network]
    objective: dict[str, Any]  # {"kind": ..., **options}

    def order(self, model: str) -> list[str]:
        """A deterministic topological order: ties broken by declaration order."""
        graph = self.p if model == "p" else self.q
        return list(nx.lexicographical_topological_sort(graph, key=lambda n: graph.nodes[n]["order"]))


def _internal(diagnostic) -> None:
    raise InternalCompilerError(f"lowering met an unchecked error: {diagnostic.message}")


def lower(spec: ast.Spec) -> ModelGraph:
    """Build the model graph of a spec that `check` accepted (else: internal error)."""
    scope = build_scope(spec, _internal)
    graphs = {model: _graph(scope, model) for model in ("p", "q")}
    for model, graph in graphs.items():
        if not nx.is_directed_acyclic_graph(graph):
            raise InternalCompilerError(f"the {model} graph of a checked spec has a cycle")
    return ModelGraph(scope.model_name, spec.path, graphs["p"], graphs["q"], _networks(scope), _objective(scope))


def _graph(scope: Scope, model: str) -> nx.DiGraph:
    graph = nx.DiGraph(model=model)
    for name, declaration in scope.variables.items():
        factor = scope.factor(model, name)
        if factor is None and not (model == "q" and declaration.role == "observed"):
            continue  # a latent's p factor may be missing only in unchecked specs
        attributes = _variable_attributes(declaration, scope.order[name])
        if factor is not None:
            attributes.update(_factor_attributes(factor, scope))
        graph.add_node(name, **attributes)
    for source, target, networks in dependency_edges(scope, model):
        for node in (source, target):
            if node not in graph:
                graph.add_node(node, **_node_attributes(scope, node, model))
        graph.add_edge(source, target, networks=networks)
    return graph


def _variable_attributes(declaration: ast.VarDecl, order: int) -> dict[str, Any]:
    return {"kind": "variable", "role": declaration.role, "type": declaration.type.base.name,
            "shape": declaration.type.shape, "span": _position(declaration.span), "order": order}


def _node_attributes(scope: Scope, name: str, model: str) -> dict[str, Any]:
    if name in scope.lets:
        let = scope.lets[name]
        return {"kind": "let", "role": "deterministic", "type": let.type.base.name, "shape": let.type.shape,
                "span": _position(let.span), "order": scope.order[name], "network": let.call.net.name,
                "inputs": [a.name for a in let.call.args]}
    raise InternalCompilerError(f"`{name}` is read in {model} but has no {model} factor")


def _factor_attributes(factor: ast.Factor, scope: Scope) -> dict[str, Any]:
    info = DISTRIBUTIONS[factor.distribution.name.name]
    bound, problems = bind(info, factor.distribution)
    if problems:
        _internal(problems[0])
    parameters = [_parameter(item.params, item.value) for item in bound]
    attributes = {
        "distribution": info.name,
        "parents": [p.name for p in factor.parents],
        "parameters": parameters,
        "networks": [p["network"] for p in parameters if p["kind"] == "network"],
        "span": _position(factor.span),
    }
    if factor.model == "q" and info.discrete:
        attributes["estimator"] = _estimator(factor.estimator)
    return attributes


def _parameter(params, value: ast.ArgValue) -> dict[str, Any]:
    names = [p.name for p in params]
    if isinstance(value, ast.Number):
        return {"params": names, "kind": "constant", "value": value.value}
    if isinstance(value, ast.Reference):
        if value.name.name == "uniform":
            return {"params": names, "kind": "uniform"}
        return {"params": names, "kind": "reference", "source": value.name.name}
    return {"params": names, "kind": "network", "network": value.net.name, "inputs": [a.name for a in value.args]}


def _estimator(estimator: ast.Estimator | None) -> dict[str, Any]:
    name = estimator.name.name if estimator else DEFAULT_ESTIMATOR
    options = estimator.options if estimator else ()
    return {"name": name, "options": resolve_options(options, ESTIMATORS[name].options, name, "E0602", _internal)}


def _networks(scope: Scope) -> dict[str, Network]:
    first_use = {}
    for use in network_uses(scope):
        first_use.setdefault(use.call.net.name, use)
    networks = {}
    for name, net in scope.nets.items():
        use = first_use.get(name)
        if use is None:
            continue  # never called (a warning): nothing to build
        builder = NETWORK_BUILDERS[net.builder.name]
        options = resolve_options(net.options, builder.options, builder.name, "E0402", _internal)
        networks[name] = Network(name, builder.name, options, use.input_width, use.output_width, use.output_shape,
                                 use.first_input_shape, _position(net.span))
    return networks


def _objective(scope: Scope) -> dict[str, Any]:
    declaration = scope.objective
    kind = declaration.kind.name if declaration else DEFAULT_OBJECTIVE
    info = OBJECTIVES[kind]
    options = resolve_options(declaration.options if declaration else (), info.options, kind, "E0702", _internal)
    return {"kind": kind, **options}


def _position(span: ast.Span) -> tuple[int, int]:
    return (span.line, span.column)

