"""Pictures of a model: p and q side by side, as PNG or SVG (matplotlib, no system
binary) or as Graphviz DOT text. Observed nodes are shaded, supervised ones drawn with a
double ring and half shaded, `let` nodes are small squares, and each edge carries the
name of the network that reads its source."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, Rectangle, Wedge

from .ir import Graph, LetNode, ModelIR

FORMATS = ("png", "svg", "dot")
_FILL = {"observed": "#b8b8b8", "supervised": "#dedede", "latent": "white", "deterministic": "#f4f4f4"}
_TITLES = {"p": "generative model p", "q": "recognition model q"}
_RADIUS = 0.5
_ROW_HEIGHT = 1.8
_COLUMN_WIDTH = 1.7  # at least; wider when edge labels need it
_CHARACTER = 0.1  # at least the width of a 7-point character, in layout units (0.75 inch each)
_MAX_INCHES = 40  # a model of hundreds of variables still fits in memory


def layout(graph: Graph) -> dict[str, tuple[float, float]]:
    """Layered top-down positions: a node's row is its depth, rows are centred, and nodes
    in a row keep the graph's order. Columns are wide enough for two edge labels side by side."""
    longest = max((len(", ".join(e.networks)) for e in graph.edges), default=0)
    # edges that meet at one node have labels 30% of the way down (where that is free): 70% of a
    # column apart
    column = max(_COLUMN_WIDTH, (longest * _CHARACTER + 0.4) / 0.7)
    positions = {}
    for depth, layer in enumerate(nx.topological_generations(graph.digraph)):
        layer = sorted(layer, key=graph.order.index)
        for index, node in enumerate(layer):
            positions[node] = (column * (index - (len(layer) - 1) / 2), -_ROW_HEIGHT * depth)
    return positions


def _node_label(graph: Graph, name: str) -> str:
    node = graph.node(name)
    return f"{name}\n{node.type}[{','.join(map(str, node.shape))}]"


def _draw_node(axes, graph: Graph, name: str, xy: tuple[float, float]) -> None:
    node = graph.node(name)
    role = node.role
    if isinstance(node, LetNode):
        side = 1.4 * _RADIUS
        axes.add_patch(
            Rectangle(
                (xy[0] - side / 2, xy[1] - side / 2),
                side,
                side,
                facecolor=_FILL[role],
                edgecolor="black",
                linestyle="--",
                zorder=2,
                gid="node",
            )
        )
    else:
        axes.add_patch(
            Circle(xy, _RADIUS, facecolor=_FILL[role], edgecolor="black", linewidth=1.2, zorder=2, gid="node")
        )
        if role == "supervised":
            axes.add_patch(Wedge(xy, _RADIUS, 90, 270, facecolor=_FILL["observed"], edgecolor="none", zorder=2))
            axes.add_patch(
                Circle(xy, _RADIUS * 1.18, facecolor="none", edgecolor="black", linewidth=1.0, zorder=2, gid="node")
            )
    axes.text(xy[0], xy[1], _node_label(graph, name), ha="center", va="center", fontsize=6.5, zorder=3)


def _edge_geometry(source_xy, target_xy, skips_rows: bool, label: str, along: float = 0.3):
    """(start, end, bend, label position) of an arrow from rim to rim. An edge that skips a
    row bends (matplotlib's arc3), so it passes beside the nodes in between, and its label sits
    outside the bend; a straight edge's label sits `along` of the way down."""
    (x1, y1), (x2, y2) = source_xy, target_xy
    dx, dy = x2 - x1, y2 - y1
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / length, dy / length
    start = (x1 + ux * _RADIUS, y1 + uy * _RADIUS)
    end = (x2 - ux * _RADIUS * 1.05, y2 - uy * _RADIUS * 1.05)
    cdx, cdy = end[0] - start[0], end[1] - start[1]
    if not skips_rows:
        return start, end, 0.0, (start[0] + along * cdx, start[1] + along * cdy)
    bend = 0.8
    # the curve's apex: the chord's midpoint moved by bend / 2 * (dy, -dx) of the chord; the
    # label goes half its width further out, along the same direction
    apex = ((start[0] + end[0]) / 2 + bend / 2 * cdy, (start[1] + end[1]) / 2 - bend / 2 * cdx)
    chord = max((cdx * cdx + cdy * cdy) ** 0.5, 1e-9)
    out = len(label) * _CHARACTER / 2 + 0.1
    return start, end, bend, (apex[0] + out * cdy / chord, apex[1] - out * cdx / chord)


def _draw_edge(axes, geometry, label: str):
    """The arrow, and its label's text (None without a label)."""
    start, end, bend, label_xy = geometry
    axes.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            linewidth=1.0,
            shrinkA=0,
            shrinkB=0,
            connectionstyle=f"arc3,rad={bend}",
            color="#333333",
            zorder=1,
        )
    )
    if not label:
        return None
    return axes.text(
        *label_xy,
        label,
        gid="edge-label",
        fontsize=7,
        color="#1f4e9c",
        ha="center",
        va="center",
        zorder=4,
        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
    )


# where along a straight edge its label may sit, in the order tried: near the source first, so
# that the labels of edges meeting at one node stay apart
_ALONG = (0.3, 0.6, 0.45, 0.2, 0.75)


def _candidates(graph: Graph, positions) -> dict:
    """Each edge's geometries, one per place its label may take (`_ALONG`; a bent edge's label
    has one place, outside the bend), bent edges first."""
    candidates = {}
    for e in sorted(graph.edges, key=lambda e: abs(positions[e.source][1] - positions[e.target][1]), reverse=True):
        source, target = positions[e.source], positions[e.target]
        skips_rows = abs(source[1] - target[1]) > _ROW_HEIGHT * 1.5
        label = ", ".join(e.networks)
        places = _ALONG[:1] if skips_rows else _ALONG
        candidates[(e.source, e.target)] = [_edge_geometry(source, target, skips_rows, label, a) for a in places]
    return candidates


def _half_width(graph: Graph) -> float:
    """Half the panel's width: its widest row, and room for bent edges and their labels."""
    positions = layout(graph)
    xs = [abs(x) for x, _ in positions.values()]
    xs += [abs(g[3][0]) + 0.5 for places in _candidates(graph, positions).values() for g in places]
    return max(xs, default=0.0) + _RADIUS + 0.6


def _draw_graph(axes, graph: Graph, title: str, rows: int) -> None:
    """Nodes, then edges; each edge's label takes the place, of its candidates, whose rendered
    box covers the fewest nodes and then the fewest labels placed before it."""
    half_width = _half_width(graph)
    axes.set_xlim(-half_width, half_width)
    axes.set_ylim(-_ROW_HEIGHT * (rows - 1) - 0.7, 0.7)
    axes.set_aspect("equal")
    axes.set_title(title, fontsize=10)
    axes.axis("off")
    axes.apply_aspect()  # so that the boxes measured below are where the picture puts them
    positions = layout(graph)
    for node, xy in positions.items():
        _draw_node(axes, graph, node, xy)
    renderer = axes.figure.canvas.get_renderer()
    nodes = [patch.get_window_extent(renderer) for patch in axes.patches if patch.get_gid() == "node"]
    placed: list = []
    networks = {(e.source, e.target): e.networks for e in graph.edges}
    for edge, places in _candidates(graph, positions).items():
        text = _draw_edge(axes, places[0], ", ".join(networks[edge]))
        if text is None:
            continue

        def covered(geometry, text=text) -> tuple[int, int]:
            text.set_position(geometry[3])
            box = text.get_window_extent(renderer)
            return sum(box.overlaps(n) for n in nodes), sum(box.overlaps(p) for p in placed)

        text.set_position(min(places, key=covered)[3])
        placed.append(text.get_window_extent(renderer))


def _legend(figure) -> None:
    handles = [
        Circle((0, 0), 1, facecolor=_FILL["observed"], edgecolor="black", label="observed"),
        Circle((0, 0), 1, facecolor=_FILL["supervised"], edgecolor="black", label="supervised (labelled sometimes)"),
        Circle((0, 0), 1, facecolor=_FILL["latent"], edgecolor="black", label="latent"),
        Rectangle(
            (0, 0), 1, 1, facecolor=_FILL["deterministic"], edgecolor="black", linestyle="--", label="let (computed)"
        ),
    ]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=7.5, frameon=False)


def draw(model: ModelIR, output: str | Path, fmt: str | None = None) -> Path:
    """Write the picture of `model` to `output`; the format comes from `fmt` or the suffix."""
    output = Path(output)
    fmt = (fmt or output.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format `{fmt}`: use one of {', '.join(FORMATS)}")
    if fmt == "dot":
        output.write_text(to_dot(model), encoding="utf-8")
        return output
    figure_of(model).savefig(output, format=fmt, dpi=150, bbox_inches="tight", metadata=_metadata(fmt))
    return output


def figure_of(model: ModelIR) -> Figure:
    """p and q side by side, with a legend."""
    graphs = (model.p, model.q)
    rows = max(len(list(nx.topological_generations(g.digraph))) for g in graphs)
    widths = [2 * _half_width(g) for g in graphs]  # equal scale in both panels
    size = (0.75 * sum(widths) + 0.6, 0.75 * (_ROW_HEIGHT * (rows - 1) + 1.4) + 1.3)
    figure = Figure(figsize=(min(size[0], _MAX_INCHES), min(size[1], _MAX_INCHES)))
    FigureCanvasAgg(figure)  # a renderer, to measure the labels while placing them
    axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": widths})
    for ax, which in zip(axes, ("p", "q"), strict=False):
        _draw_graph(ax, model.p if which == "p" else model.q, _TITLES[which], rows)
    figure.suptitle(f"model {model.name}", fontsize=11)
    _legend(figure)
    return figure


def _metadata(fmt: str) -> dict:
    # no timestamps, so the same spec gives the same file
    return {"Date": None} if fmt == "svg" else {"Software": "gmdsl"}


def to_dot(model: ModelIR) -> str:
    """Graphviz DOT text with one cluster per graph (render with `dot -Tpng` if installed)."""
    lines = [f'digraph "{model.name}" {{', "  rankdir=TB;", '  node [fontname="Helvetica", fontsize=10];']
    for which in ("p", "q"):
        graph = model.graph(which)
        lines += [f"  subgraph cluster_{which} {{", f'    label="{_TITLES[which]}";']
        for node in graph.nodes:
            is_let = isinstance(node, LetNode)
            shape = "box" if is_let else ("doublecircle" if node.role == "supervised" else "circle")
            style = "filled,dashed" if is_let else "filled"
            label = _node_label(graph, node.name).replace("\n", "\\n")
            lines.append(
                f'    {which}_{node.name} [label="{label}", shape={shape}, style="{style}", '
                f'fillcolor="{_FILL[node.role]}"];'
            )
        for edge in sorted(graph.edges, key=lambda e: (e.source, e.target)):
            label = f' [label="{", ".join(edge.networks)}"]' if edge.networks else ""
            lines.append(f"    {which}_{edge.source} -> {which}_{edge.target}{label};")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"
