"""The JSON form of the model graph (`gmdsl compile SPEC --dump-ir`), as pydantic models:
frozen, unknown keys forbidden, parameter bindings a discriminated union on `kind`.
`ModelIR.model_json_schema()` documents the format."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from .lowering import ModelGraph


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConstantParameter(_Frozen):
    kind: Literal["constant"]
    params: list[str]
    value: float


class UniformParameter(_Frozen):
    kind: Literal["uniform"]
    params: list[str]


class ReferenceParameter(_Frozen):
    kind: Literal["reference"]
    params: list[str]
    source: str


class NetworkParameter(_Frozen):
    kind: Literal["network"]
    params: list[str]
    network: str
    inputs: list[str]


Parameter = Annotated[
    Union[ConstantParameter, UniformParameter, ReferenceParameter, NetworkParameter], Field(discriminator="kind")
]


class EstimatorIR(_Frozen):
    name: str
    options: dict[str, Any]


class NodeIR(_Frozen):
    name: str
    kind: Literal["variable", "let"]
    role: Literal["observed", "supervised", "latent", "deterministic"]
    type: str
    shape: list[int]
    line: int
    column: int
    distribution: str | None = None
    parents: list[str] = []
    parameters: list[Parameter] = []
    estimator: EstimatorIR | None = None
    network: str | None = None
    inputs: list[str] = []


class EdgeIR(_Frozen):
    source: str
    target: str
    networks: list[str]


class GraphIR(_Frozen):
    order: list[str]  # topological, ties broken by declaration order
    nodes: list[NodeIR]
    edges: list[EdgeIR]


class NetworkIR(_Frozen):
    name: str
    builder: str
    options: dict[str, Any]
    input_width: int
    output_width: int
    output_shape: list[int]


class ModelIR(_Frozen):
    name: str
    path: str
    p: GraphIR
    q: GraphIR
    networks: list[NetworkIR]
    objective: dict[str, Any]


def _graph_ir(model: ModelGraph, which: str) -> GraphIR:
    graph = model.p if which == "p" else model.q
    order = model.order(which)
    nodes = []
    for name in order:
        attributes = dict(graph.nodes[name])
        line, column = attributes.pop("span")
        attributes.pop("order")
        attributes.pop("networks", None)  # derivable from `parameters`
        nodes.append(NodeIR(name=name, line=line, column=column, **attributes))
    position = {name: index for index, name in enumerate(order)}
    edges = sorted(graph.edges(data="networks"), key=lambda e: (position[e[1]], position[e[0]]))
    return GraphIR(order=order, nodes=nodes,
                   edges=[EdgeIR(source=s, target=t, networks=list(n)) for s, t, n in edges])


def to_ir(model: ModelGraph) -> ModelIR:
    networks = [
        NetworkIR(name=n.name, builder=n.builder, options=n.options, input_width=n.input_width,
                  output_width=n.output_width, output_shape=list(n.output_shape))
        for n in model.networks.values()
    ]
    return ModelIR(name=model.name, path=model.path, p=_graph_ir(model, "p"), q=_graph_ir(model, "q"),
                   networks=networks, objective=model.objective)
