"""Phase 3, lower: a `CheckedSpec` without errors -> `ModelIR`, the typed model graph.

A pure function of what the checker resolved: it reads the scope, the bound arguments, the
networks' widths, the estimators, the objective and the edges, and validates nothing again.
networkx orders each graph: topologically, ties broken by the order the spec writes the
factors (and `let`s) in, so `p(z)` written before `p(y)` is emitted before it.
"""

from __future__ import annotations

import math

import networkx as nx

from gmdsl.runtime.registry import CONSTRAINTS, FUNCTIONS

from . import ast, ir
from .checked import CheckedFactor, CheckedSpec
from .diagnostics import InternalCompilerError
from .distargs import Bound
from .scope import block_of, blocks, lets_computed


def lower(checked: CheckedSpec) -> ir.ModelIR:
    """The model graph of a spec that `check` accepted (else: an internal error)."""
    if not checked.ok:
        raise InternalCompilerError("lower was given a spec with errors; check it first")
    if checked.objective is None:
        raise InternalCompilerError("a checked spec without errors has no objective")
    scope = checked.scope
    return ir.ModelIR(
        name=scope.model_name,
        path=checked.spec.path,
        declaration_order=list(scope.variables),
        p=_graph(checked, "p"),
        q=_graph(checked, "q"),
        networks=[_network(checked, name) for name, network in checked.networks.items() if network.use is not None],
        objective=ir.Objective(kind=checked.objective.name, options=dict(checked.objective.options)),
        repeats=[_repeat(checked, repeat) for repeat in scope.repeats.values()],
    )


def _repeat(checked: CheckedSpec, repeat: ast.Repeat) -> ir.Repeat:
    if repeat.bound is None:
        raise InternalCompilerError(f"repeat {repeat.index.name} of a checked spec has no bound")
    bound = checked.scope.variables[repeat.bound.name]
    return ir.Repeat(
        index=repeat.index.name,
        bound=repeat.bound.name,
        steps=bound.type.shape[-1] - 1,
        line=repeat.span.line,
        column=repeat.span.column,
    )


def _input(ident: ast.Ident) -> str:
    """An input as the IR writes it: its name, or `name[k-1]` for the step before."""
    return ir.earlier(ident.name, ident.step.index.name) if ident.step is not None and ident.earlier else ident.name


def _graph(checked: CheckedSpec, model: str) -> ir.Graph:
    scope = checked.scope
    nodes: dict[str, ir.VariableNode | ir.LetNode] = {}
    written: dict[str, int] = {}  # the statement that defines each node in this graph
    for name, declaration in scope.variables.items():
        factor = checked.factors.get((model, name))
        if factor is not None:
            nodes[name] = _variable(declaration, factor.factor.span, _factor(factor))
            written[name] = scope.written[(model, name)]
        elif model == "q" and declaration.role == "observed":
            nodes[name] = _variable(declaration, declaration.span, None)
            written[name] = scope.order[name]
    edges = checked.edges[model]
    for source, target, _ in edges:
        for name in (source, target):
            if name not in nodes:
                if name in scope.params:
                    nodes[name] = _param(scope.params[name])
                elif name in scope.lets:
                    nodes[name] = _let(scope.lets[name], scope.calls_function(scope.lets[name].call))
                else:
                    raise InternalCompilerError(f"`{name}` is read in {model} but has no {model} factor")
                written[name] = scope.order[name]
    for name in lets_computed(scope, model) - set(nodes):  # lets read only at the step before
        nodes[name] = _let(scope.lets[name], scope.calls_function(scope.lets[name].call))
        written[name] = scope.order[name]
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from((source, target) for source, target, _ in edges)
    if not nx.is_directed_acyclic_graph(graph):
        raise InternalCompilerError(f"the {model} graph of a checked spec has a cycle")
    order = _order(checked, graph, written)
    position = {name: index for index, name in enumerate(order)}
    in_repeat = {name: nodes[name].model_copy(update={"repeat": scope.repeat_of.get(name)}) for name in order}
    return ir.Graph(
        model=model,  # type: ignore[arg-type]  # "p" or "q", by construction
        nodes=[in_repeat[name] for name in order],
        edges=[
            ir.Edge(source=s, target=t, networks=list(n))
            for s, t, n in sorted(edges, key=lambda e: (position[e[1]], position[e[0]]))
        ],
    )


def _order(checked: CheckedSpec, graph: nx.DiGraph, written: dict[str, int]) -> list[str]:
    """Topological, ties broken by where the spec writes each node; a repeat's nodes stay
    together (they run in one loop), so each repeat is ordered as one block, after its bound,
    and its nodes are then ordered within it."""
    scope = checked.scope
    contracted = blocks(scope, graph)
    block_written = dict(written)
    block_written.update({block_of(index): scope.repeat_order[index] for index in scope.repeats})
    if not nx.is_directed_acyclic_graph(contracted):
        raise InternalCompilerError("a checked spec's repeat depends on what depends on it")
    order: list[str] = []
    for item in nx.lexicographical_topological_sort(contracted, key=block_written.__getitem__):
        if item in graph:
            order.append(item)
        else:
            members = graph.subgraph([name for name, index in scope.repeat_of.items() if block_of(index) == item])
            order += nx.lexicographical_topological_sort(members, key=written.__getitem__)
    return order


def _variable(declaration: ast.VarDecl, span: ast.Span, factor: ir.Factor | None) -> ir.VariableNode:
    return ir.VariableNode(
        kind="variable",
        name=declaration.name.name,
        role=declaration.role,  # type: ignore[arg-type]
        type=declaration.type.base.name,
        shape=list(declaration.type.shape),
        line=span.line,
        column=span.column,
        factor=factor,
    )


def _let(let: ast.LetDecl, calls_function: bool) -> ir.LetNode:
    callee = let.call.net.name
    return ir.LetNode(
        kind="let",
        # a network's let takes the link its type (real, positive, unit) names; a function's
        # value is used as it is (the checker made its let `real`)
        link="identity" if calls_function else CONSTRAINTS[let.type.base.name].link,
        name=let.name.name,
        type=let.type.base.name,
        shape=list(let.type.shape),
        line=let.span.line,
        column=let.span.column,
        network=None if calls_function else callee,
        function=callee if calls_function else None,
        # `step(k)` reads the step running, not a value: the index is no input
        inputs=[] if calls_function and FUNCTIONS[callee].reads_index else [_input(a) for a in let.call.args],
    )


def _param(param: ast.ParamDecl) -> ir.LetNode:
    """A learned constant: a let of no inputs whose raw tensor starts where its link maps to the
    written start (the link's neutral point where none is written: 0 for real, 1/2 for unit,
    softplus(0) for positive, equal probabilities for a simplex)."""
    base = param.type.base.name
    link = CONSTRAINTS[base].link
    start = param.initial
    raw: float | list[float]
    if start is None:
        raw = 0.0
    elif isinstance(start, ast.Number):
        raw = _unlinked(link, start.value)
    else:
        raw = [_unlinked(link, item.value) for item in start.items]
    return ir.LetNode(
        kind="let",
        link=link,
        name=param.name.name,
        type=base,
        shape=list(param.type.shape),
        line=param.span.line,
        column=param.span.column,
        network=None,
        inputs=[],
        start=raw,
    )


def _unlinked(link: str, value: float) -> float:
    """The raw number that `link` maps to `value` (the checker put it in the link's range)."""
    if link == "softplus":  # log(exp(v) - 1), kept finite for large v
        return value + math.log(-math.expm1(-value))
    if link == "sigmoid":
        return math.log(value / (1 - value))
    if link == "softmax":  # any constant added to every logit gives the same probabilities
        return math.log(value)
    return float(value)


def _factor(checked: CheckedFactor) -> ir.Factor:
    estimator = None
    if checked.estimator is not None:
        estimator = ir.Estimator(name=checked.estimator.name, options=dict(checked.estimator.options))
    return ir.Factor(
        distribution=checked.distribution.name,
        parents=[p.name for p in checked.factor.parents],
        parameters=[_parameter(item) for item in checked.bound],
        estimator=estimator,
        options=dict(checked.options),
    )


def _parameter(item: Bound) -> ir.ConstantParameter | ir.UniformParameter | ir.ReferenceParameter | ir.NetworkParameter:
    names = [p.name for p in item.params]
    value = item.value
    if isinstance(value, ast.Number):
        return ir.ConstantParameter(kind="constant", params=names, value=value.value)
    if isinstance(value, ast.Vector):
        return ir.ConstantParameter(kind="constant", params=names, value=[item.value for item in value.items])
    if isinstance(value, ast.Reference):
        if value.name.name == "uniform":
            return ir.UniformParameter(kind="uniform", params=names)
        return ir.ReferenceParameter(kind="reference", params=names, source=_input(value.name))
    argument, link = None, None
    if len(item.params) == 1:  # one parameter: its link and keyword here; several: from_network's
        (param,) = item.params
        argument, link = param.name, CONSTRAINTS[param.constraint].link
        if link == "softmax":  # softmax of raw outputs = a Categorical with them as logits
            argument, link = "logits", "identity"
    return ir.NetworkParameter(
        kind="network",
        params=names,
        network=value.net.name,
        inputs=[_input(a) for a in value.args],
        argument=argument,
        link=link,
    )


def _network(checked: CheckedSpec, name: str) -> ir.Network:
    network = checked.networks[name]
    use = network.use
    if use is None or use.input_width is None:
        raise InternalCompilerError(f"network `{name}` has no inferred width in a checked spec")
    declaration = network.declaration
    return ir.Network(
        name=name,
        builder=network.builder.name,
        options={k: v for k, v in network.options.items() if v is not None},  # unset (output_bias): left out
        input_width=use.input_width,
        output_width=use.output_width,
        output_shape=list(use.output_shape),
        image_shape=list(use.first_input_shape) if network.builder.image_input and use.first_input_shape else None,
        line=declaration.span.line,
        column=declaration.span.column,
    )
