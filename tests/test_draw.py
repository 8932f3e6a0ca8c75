"""Pictures of models: no edge label covers a node or another label."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from matplotlib.backends.backend_agg import FigureCanvasAgg

import gmdsl
from gmdsl.compiler.draw import figure_of
from gmdsl.compiler.pretty import pretty
from gmdsl.testing import spec_trees

ROOT = Path(__file__).resolve().parent.parent

# small, with long network names: the case a new user found overlapping
SMALL = """
observed x : binary[4]
supervised y : onehot[3]
latent z : real[2]
p(y) = Categorical(probs = uniform)
p(z) = Normal(0, 1)
p(x | y, z) = Bernoulli(logits = decoder_network(y, z))
q(y | x) = Categorical(logits = classifier_network(x))
q(z | x, y) = Normal(encoder_network(x, y))
net decoder_network = mlp()
net classifier_network = mlp()
net encoder_network = mlp()
"""


def collisions(model: gmdsl.ModelIR) -> list[tuple[str, str]]:
    figure = figure_of(model)
    renderer = FigureCanvasAgg(figure).get_renderer()
    found = []
    for axes in figure.axes:
        labels = [(t.get_text(), t.get_window_extent(renderer)) for t in axes.texts if t.get_gid() == "edge-label"]
        nodes = [("a node", p.get_window_extent(renderer)) for p in axes.patches if p.get_gid() == "node"]
        pairs = itertools.chain(itertools.combinations(labels, 2), itertools.product(labels, nodes))
        found += [(a, b) for (a, box_a), (b, box_b) in pairs if box_a.overlaps(box_b)]
    return found


@pytest.mark.parametrize(
    "spec", [SMALL, *sorted((ROOT / "specs").glob("*.gm"))], ids=lambda s: getattr(s, "name", "small")
)
def test_edge_labels_cover_no_node_and_no_label(spec) -> None:
    assert collisions(gmdsl.load(spec)) == []


@settings(max_examples=15, deadline=None)
@given(spec_trees(max_variables=4))
def test_random_models_draw_without_collisions(tree) -> None:
    assert collisions(gmdsl.load(pretty(tree))) == []
