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
