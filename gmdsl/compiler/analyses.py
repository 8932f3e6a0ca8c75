"""Analyses over the typed IR: facts about a model that the emitter (and later passes) use.
Each is a function of `ModelIR` alone; networkx answers the graph questions."""

from __future__ import annotations

import networkx as nx

from .ir import Estimator, ModelIR, VariableNode


def constant_weights(model: ModelIR) -> bool:
    """True when no supervised variable has a sampled ancestor in q: then the importance
    weights q(y | parents)(z_s) do not vary with the samples and log q(y | x) is exact."""
    q = model.q
    for node in q.variables():
        if node.role != "supervised":
            continue
        for ancestor in nx.ancestors(q.digraph, node.name):
            other = q.node(ancestor)
            if isinstance(other, VariableNode) and other.role != "observed":
                return False
    return True


def estimators(model: ModelIR, name: str) -> list[tuple[VariableNode, Estimator]]:
    """The discrete variables q treats with the estimator `name` (relaxation or
    enumeration), in q's order."""
    return [
        (node, node.factor.estimator)
        for node in model.q.variables()
        if node.factor is not None and node.factor.estimator is not None and node.factor.estimator.name == name
    ]


def impossible_classes(model: ModelIR) -> dict[str, tuple[int, ...]]:
    """The classes of each onehot variable that a constant `probs` list of its factor in p or q
    gives probability 0: q never proposes them, and no label may name them."""
    out: dict[str, set[int]] = {}
    for graph in (model.p, model.q):
        for node in graph.variables():
            factor = node.factor
            if factor is None or factor.distribution != "Categorical":
                continue
            for parameter in factor.parameters:
                if parameter.kind == "constant" and parameter.params == ["probs"] and isinstance(parameter.value, list):
                    zeros = {index for index, probability in enumerate(parameter.value) if probability == 0}
                    if zeros:
                        out.setdefault(node.name, set()).update(zeros)
    return {name: tuple(sorted(classes)) for name, classes in out.items()}
