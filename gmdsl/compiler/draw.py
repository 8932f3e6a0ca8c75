"""Pictures of a model: p and q side by side, as PNG or SVG (matplotlib, no system
binary) or as Graphviz DOT text. Observed nodes are shaded, supervised ones drawn with a
double ring and half shaded, `let` nodes are small squares, and each edge carries the
name of the network that reads its source. A `repeat`'s nodes sit in a box (a plate)
labelled with its steps, in columns of their own."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle, Wedge

from .ir import Graph, LetNode, ModelIR, Repeat

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
    layers = [sorted(layer, key=graph.order.index) for layer in nx.topological_generations(graph.digraph)]
    groups = list(dict.fromkeys(node.repeat for node in graph.nodes))
    if groups == [None]:  # no repeat: each row centred
        return {
            node: (column * (index - (len(layer) - 1) / 2), -_ROW_HEIGHT * depth)
            for depth, layer in enumerate(layers)
            for index, node in enumerate(layer)
        }
    # each repeat's nodes in columns of their own, right of the others, so its box holds only them
    widths = {g: max(sum(graph.node(n).repeat == g for n in layer) for layer in layers) for g in groups}
    starts, start = {}, 0
    for group in groups:
        starts[group] = start
        start += widths[group]
    positions = {}
    for depth, layer in enumerate(layers):
        for group in groups:
            members = [n for n in layer if graph.node(n).repeat == group]
            for index, node in enumerate(members):
                x = starts[group] + index + (widths[group] - len(members)) / 2 - (start - 1) / 2
                positions[node] = (column * x, -_ROW_HEIGHT * depth)
    return positions


def plates(graph: Graph, positions: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float, float, float]]:
    """Each repeat's box around its nodes: (left, bottom, width, height)."""
    boxes = {}
    for index in dict.fromkeys(n.repeat for n in graph.nodes if n.repeat is not None):
        xs, ys = zip(*(positions[n.name] for n in graph.nodes if n.repeat == index), strict=True)
        pad = _RADIUS * 1.5
        below = pad + 0.35  # room for the label, two lines at the bottom right
        boxes[index] = (min(xs) - pad, min(ys) - below, max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + pad + below)
    return boxes


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


def _edge_geometry(source_xy, target_xy, skips_rows: bool, label: str, along: float = 0.3, bend: float = 0.8):
    """(start, end, bend, label position) of an arrow from rim to rim. An edge that skips a
    row bends (matplotlib's arc3; a negative bend to the other side), so it passes beside the
    nodes in between, and its label sits outside the bend; a straight edge's label sits `along`
    of the way down."""
    (x1, y1), (x2, y2) = source_xy, target_xy
    dx, dy = x2 - x1, y2 - y1
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / length, dy / length
    start = (x1 + ux * _RADIUS, y1 + uy * _RADIUS)
    end = (x2 - ux * _RADIUS * 1.05, y2 - uy * _RADIUS * 1.05)
    cdx, cdy = end[0] - start[0], end[1] - start[1]
    if not skips_rows:
        return start, end, 0.0, (start[0] + along * cdx, start[1] + along * cdy)
    # the curve's apex: the chord's midpoint moved by bend / 2 * (dy, -dx) of the chord; the
    # label goes half its width further out, along the same direction
    apex = ((start[0] + end[0]) / 2 + bend / 2 * cdy, (start[1] + end[1]) / 2 - bend / 2 * cdx)
    chord = max((cdx * cdx + cdy * cdy) ** 0.5, 1e-9)
    out = (len(label) * _CHARACTER / 2 + 0.1) * (1 if bend > 0 else -1)
    return start, end, bend, (apex[0] + out * cdy / chord, apex[1] - out * cdx / chord)


def _draw_edge(axes, geometry, label: str):
    """The arrow, and its label's text (None without a label)."""
    start, end, bend, label_xy = geometry
    arrow = axes.add_patch(
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
        return arrow, None
    return arrow, axes.text(
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


# how far an edge that skips rows may bend, in the order tried, to either side
_BENDS = (0.8, -0.8, 0.4, -0.4, 1.3, -1.3)
# where along a straight edge its label may sit, in the order tried: near the source first, so
# that the labels of edges meeting at one node stay apart
_ALONG = (0.3, 0.6, 0.45, 0.2, 0.75)


def _candidates(graph: Graph, positions) -> dict:
    """Each edge's geometries, one per place its label may take (`_ALONG`; a bent edge's label
    sits outside the bend, bent to either side), bent edges first."""
    candidates = {}
    for e in sorted(graph.edges, key=lambda e: abs(positions[e.source][1] - positions[e.target][1]), reverse=True):
        source, target = positions[e.source], positions[e.target]
        skips_rows = abs(source[1] - target[1]) > _ROW_HEIGHT * 1.5
        label = ", ".join(e.networks)
        if skips_rows:
            places = [_edge_geometry(source, target, True, label, bend=bend) for bend in _BENDS]
        else:
            places = [_edge_geometry(source, target, False, label, a) for a in _ALONG]
        candidates[(e.source, e.target)] = places
    return candidates


def _half_width(graph: Graph) -> float:
    """Half the panel's width: its widest row, and room for bent edges and their labels."""
    positions = layout(graph)
    xs = [abs(x) for x, _ in positions.values()]
    xs += [abs(g[3][0]) + 0.5 for places in _candidates(graph, positions).values() for g in places]
    return max(xs, default=0.0) + _RADIUS + 0.6


def _draw_graph(axes, graph: Graph, title: str, rows: int, repeats: dict[str, Repeat]) -> None:
    """Nodes, then edges; each edge's label takes the place, of its candidates, whose rendered
    box covers the fewest nodes and then the fewest labels placed before it."""
    half_width = _half_width(graph)
    axes.set_xlim(-half_width, half_width)
    below = 1.3 if repeats else 0.7  # room under the last row for a plate's edge
    axes.set_ylim(-_ROW_HEIGHT * (rows - 1) - below, below)
    axes.set_aspect("equal")
    axes.set_title(title, fontsize=10)
    axes.axis("off")
    axes.apply_aspect()  # so that the boxes measured below are where the picture puts them
    positions = layout(graph)
    for node, xy in positions.items():
        _draw_node(axes, graph, node, xy)
    for index, (left, bottom, width, height) in plates(graph, positions).items():
        label = _plate_label(repeats[index])
        axes.add_patch(
            FancyBboxPatch(
                (left, bottom), width, height, boxstyle="round,pad=0,rounding_size=0.2", facecolor="none", zorder=1
            )
        )
        axes.text(left + width - 0.1, bottom + 0.1, label, ha="right", va="bottom", fontsize=6.5)
    renderer = axes.figure.canvas.get_renderer()
    nodes = [patch.get_window_extent(renderer) for patch in axes.patches if patch.get_gid() == "node"]
    placed: list = []
    networks = {(e.source, e.target): e.networks for e in graph.edges}
    for edge, places in _candidates(graph, positions).items():
        arrow, text = _draw_edge(axes, places[0], ", ".join(networks[edge]))
        if text is None:
            continue

        def covered(geometry, text=text) -> tuple[int, int]:
            text.set_position(geometry[3])
            box = text.get_window_extent(renderer)
            return sum(box.overlaps(n) for n in nodes), sum(box.overlaps(p) for p in placed)

        best = min(places, key=covered)
        text.set_position(best[3])
        arrow.set_connectionstyle(f"arc3,rad={best[2]}")  # a bent edge takes its label's side
        placed.append(text.get_window_extent(renderer))


def _plate_label(repeat: Repeat) -> str:
    return f"{repeat.index} = 1..{repeat.bound}\n(at most {repeat.steps})"


def _legend(figure) -> None:
    handles = [
        Circle((0, 0), 1, facecolor=_FILL["observed"], edgecolor="black", label="observed"),
        Circle((0, 0), 1, facecolor=_FILL["supervised"], edgecolor="black", label="supervised (labelled sometimes)"),
        Circle((0, 0), 1, facecolor=_FILL["latent"], edgecolor="black", label="latent"),
        Rectangle(
            (0, 0),
            1,
            1,
            facecolor=_FILL["deterministic"],
            edgecolor="black",
            linestyle="--",
            label="let (computed) or param (learned)",
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
        repeats = {r.index: r for r in model.repeats}
        _draw_graph(ax, model.p if which == "p" else model.q, _TITLES[which], rows, repeats)
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
        for repeat in model.repeats:
            members = " ".join(f"{which}_{n.name};" for n in graph.nodes if n.repeat == repeat.index)
            if members:
                label = _plate_label(repeat).replace("\n", " ")
                lines.append(f'    subgraph cluster_{which}_{repeat.index} {{ label="{label}"; {members} }}')
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
