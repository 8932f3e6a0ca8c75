"""Invariance hoisting, a pass over the typed IR.

Under S importance samples, or K enumerated values of a discrete variable, the values of a
pass carry leading dimensions (runtime/trace.py): x is [B, 784], a draw of z [S, B, 50], an
enumerated y [K, 1, 1, 10]. A network reading join(x, y) would expand x to y's dimensions and
multiply it by the first layer S (or K) times. Since W [x; y] = W_x x + W_y y, the pass marks
each call whose inputs vary over fewer dimensions than the call as a whole: the emitter names
each marked input as an `rt.Share`, and the network's `finish` multiplies it by its own block of
the first layer at its own dimensions and adds the products, broadcasting them
(runtime/networks.py). The weights are the same either way, so checkpoints load into both forms.
"""

from __future__ import annotations

from gmdsl.runtime.registry import NETWORK_BUILDERS

from .ir import Graph, LetNode, ModelIR, NetworkParameter, VariableNode, read

BATCH = "batch"
SAMPLES = "samples"


def leading_dimensions(model: ModelIR) -> dict[str, frozenset[str]]:
    """The leading dimensions each value carries in q's pass, which p's pass reads in the
    objective: observed values only the batch; a sampled value the samples and the batch, and
    whatever its parameters vary over; an enumerated value its own dimension (and the batch,
    for a supervised one, whose labels replace the enumerated values on labelled rows)."""
    dimensions: dict[str, frozenset[str]] = {}

    def of(names: list[str]) -> frozenset[str]:
        return frozenset().union(*(dimensions.get(read(name)[0], frozenset({BATCH})) for name in names))

    for graph in (model.q, model.p):
        for node in graph.nodes:
            if node.name in dimensions:
                continue
            if isinstance(node, LetNode):
                dimensions[node.name] = of(node.inputs)
            elif node.factor is None:
                dimensions[node.name] = frozenset({BATCH})
            elif node.factor.estimator is not None and node.factor.estimator.name == "enumeration":
                own = frozenset({f"enumerated {node.name}"})
                dimensions[node.name] = own | ({BATCH} if node.role == "supervised" else frozenset())
            else:
                dimensions[node.name] = frozenset({SAMPLES, BATCH}) | of(_read_by(node))
    return dimensions


def _read_by(node: VariableNode) -> list[str]:
    assert node.factor is not None
    names = list(node.factor.parents)
    for binding in node.factor.parameters:
        if binding.kind == "network":
            names += binding.inputs
        elif binding.kind == "reference":
            names.append(binding.source)
    return names


def hoistable(inputs: list[str], dimensions: dict[str, frozenset[str]]) -> list[str]:
    """The inputs of a network call that vary over fewer dimensions than the call (none when
    all vary alike: then there is nothing to save)."""
    of = {name: dimensions.get(read(name)[0], frozenset({BATCH})) for name in inputs}
    call = frozenset().union(*of.values())
    # a value of the step before is a different tensor at every step: nothing to hoist
    return [name for name in inputs if of[name] < call and not read(name)[1]]


def hoist(model: ModelIR) -> ModelIR:
    """The model with `hoisted` set on every network call that has inputs to hoist."""
    dimensions = leading_dimensions(model)
    # a recurrent cell's gates mix all its inputs at once: it has no first layer to split
    whole = {n.name for n in model.networks if NETWORK_BUILDERS[n.builder].state_input}
    q, p = (_hoisted_graph(graph, dimensions, whole) for graph in (model.q, model.p))
    return model.model_copy(update={"q": q, "p": p})


def _hoisted_graph(graph: Graph, dimensions: dict[str, frozenset[str]], whole: set[str]) -> Graph:
    nodes = []
    for node in graph.nodes:
        if isinstance(node, LetNode):
            if node.network is not None and node.network not in whole:  # a function has no first layer to split
                node = node.model_copy(update={"hoisted": hoistable(node.inputs, dimensions)})
        elif node.factor is not None:
            parameters = [
                b.model_copy(update={"hoisted": hoistable(b.inputs, dimensions)})
                if isinstance(b, NetworkParameter) and b.network not in whole
                else b
                for b in node.factor.parameters
            ]
            node = node.model_copy(update={"factor": node.factor.model_copy(update={"parameters": parameters})})
        nodes.append(node)
    return Graph(model=graph.model, nodes=nodes, edges=graph.edges)  # a new Graph: its cached views start afresh
