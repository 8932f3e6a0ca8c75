"""The typed IR: the one model graph. The lowering builds it, every analysis reads it, the
emitter reads nothing else, and `gmdsl compile SPEC --dump-ir` prints exactly it.

Pydantic models: frozen, unknown keys forbidden, nodes and parameter bindings discriminated
unions on `kind`, so a dumped IR validates back (`ModelIR.model_validate_json`) and
`ModelIR.model_json_schema()` documents the format. networkx is the graph-algorithm engine
behind it: `Graph.digraph` is the same graph as a DiGraph, for ancestors, layers and cycles.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, Literal

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- distribution parameters: what each argument of a factor gives -----------------------


class ConstantParameter(_Frozen):
    kind: Literal["constant"]
    params: list[str]
    value: int | float | list[int | float]  # as the spec writes it: one number, or one per element


class UniformParameter(_Frozen):
    kind: Literal["uniform"]
    params: list[str]


class ReferenceParameter(_Frozen):
    kind: Literal["reference"]
    params: list[str]
    source: str  # a variable or `let` node passed through unchanged (`name[k-1]`: see `read`)


class NetworkParameter(_Frozen):
    """A network's output; one network may give several parameters (`Normal(encoder(x))`),
    each through its link, which the runtime's `Dist.from_network` applies. For one parameter,
    `link` maps the raw output into its constraint and `argument` is the keyword the runtime
    distribution takes (`logits` for a Categorical's softmax-linked `probs`)."""

    kind: Literal["network"]
    params: list[str]
    network: str
    inputs: list[str]
    argument: str | None = None
    link: str | None = None
    hoisted: list[str] = []  # inputs whose share of the first layer is computed once (see hoisting.py)


Parameter = Annotated[
    ConstantParameter | UniformParameter | ReferenceParameter | NetworkParameter, Field(discriminator="kind")
]


def earlier(name: str, index: str) -> str:
    """How an input read at the step before (`h[k - 1]` in the spec) is written in `inputs`."""
    return f"{name}[{index}-1]"


def read(text: str) -> tuple[str, bool]:
    """An entry of `inputs` (or a reference's `source`): (the node it reads, whether at the step before)."""
    if text.endswith("-1]"):
        return text[: text.index("[")], True
    return text, False


# --- nodes -------------------------------------------------------------------------------


class Estimator(_Frozen):
    """How q treats a discrete variable: `relaxation` (options: temperature) or `enumeration`."""

    name: str
    options: dict[str, float]


class Factor(_Frozen):
    """`p(v | parents) = distribution(parameters)`, or q's, with q's estimator for a discrete v."""

    distribution: str
    parents: list[str]
    parameters: list[Parameter]
    estimator: Estimator | None = None
    options: dict[str, int] = {}  # the distribution's options (`rank`, `components`)


class VariableNode(_Frozen):
    """A variable; `factor` is None only for an observed variable in q (a root, given by the data)."""

    kind: Literal["variable"]
    name: str
    role: Literal["observed", "supervised", "latent"]
    type: str
    shape: list[int]
    line: int  # where its factor (or, without one, its declaration) is written
    column: int
    factor: Factor | None = None
    repeat: str | None = None  # the index of the `repeat` it is declared in: one value per step


class LetNode(_Frozen):
    """A deterministic node: a network's output, through the link its type names, or a
    built-in function's value (`function`, from the registry's FUNCTIONS; then `network` is
    None and the link the identity), or a learned constant (a `param`: no network, no function,
    no inputs; `start` is where its raw tensor starts, before the link: one number for every
    element, or one per element)."""

    kind: Literal["let"]
    name: str
    role: Literal["deterministic"] = "deterministic"
    type: str
    shape: list[int]
    line: int
    column: int
    network: str | None
    inputs: list[str]  # node names; `h[k-1]` reads h at the step before (see `read`)
    link: str
    function: str | None = None
    start: float | list[float] | None = None  # a `param`'s raw start (None for every other let)
    hoisted: list[str] = []  # as in NetworkParameter
    repeat: str | None = None  # as in VariableNode

    @property
    def is_param(self) -> bool:
        return self.start is not None


Node = Annotated[VariableNode | LetNode, Field(discriminator="kind")]


class Edge(_Frozen):
    source: str
    target: str
    networks: list[str]  # the networks through which target reads source (none for a bare reference)


class Graph(_Frozen):
    """p or q: its nodes in order (topological, ties broken by the order the spec writes the
    factors and `let`s in; a repeat's nodes together, where the block is first needed), and its
    edges (within a step: reads of the step before are no edges)."""

    model: Literal["p", "q"]
    nodes: list[Node]
    edges: list[Edge]

    @property
    def order(self) -> list[str]:
        return [node.name for node in self.nodes]

    @cached_property
    def by_name(self) -> dict[str, VariableNode | LetNode]:
        return {node.name: node for node in self.nodes}

    def node(self, name: str) -> VariableNode | LetNode:
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def variables(self) -> list[VariableNode]:
        """The variable nodes, in order."""
        return [node for node in self.nodes if isinstance(node, VariableNode)]

    @cached_property
    def digraph(self) -> nx.DiGraph:
        """The graph for networkx's algorithms: nodes by name, edges with their `networks`."""
        graph = nx.DiGraph()
        graph.add_nodes_from(self.order)
        graph.add_edges_from((e.source, e.target, {"networks": tuple(e.networks)}) for e in self.edges)
        return graph


# --- networks and the objective ------------------------------------------------------------


class Network(_Frozen):
    """A network with its inferred sizes. `image_shape` is a `conv` network's first input."""

    name: str
    builder: str
    options: dict[str, Any]
    input_width: int
    output_width: int
    output_shape: list[int]
    image_shape: list[int] | None = None
    line: int
    column: int


class Repeat(_Frozen):
    """`repeat index < bound`: its nodes hold once per step 1..steps, where bound is
    onehot[steps + 1]; steps past the bound's value count for nothing."""

    index: str
    bound: str
    steps: int
    line: int
    column: int


class Objective(_Frozen):
    kind: str
    options: dict[str, Any]  # alpha, samples, beta, estimator for `semisupervised`


class ModelIR(_Frozen):
    name: str
    path: str
    declaration_order: list[str]  # the variables, as the spec declares them
    p: Graph
    q: Graph
    networks: list[Network]
    objective: Objective
    repeats: list[Repeat] = []

    def repeat(self, index: str) -> Repeat:
        return next(r for r in self.repeats if r.index == index)

    def graph(self, model: str) -> Graph:
        return self.p if model == "p" else self.q

    def order(self, model: str) -> list[str]:
        return self.graph(model).order

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def variables(self) -> list[VariableNode]:
        """Every variable once, in declaration order, with its p factor (p holds them all)."""
        return [node for name in self.declaration_order if isinstance(node := self.p.node(name), VariableNode)]
