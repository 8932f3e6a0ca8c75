"""`gmdsl show`: which pictures it draws for which data (images, or points of a few dimensions),
and that their titles and labels say what they show and fit on the figure."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from tiny_data import make_tiny_mnist

import gmdsl
from gmdsl import cli
from gmdsl.runtime.trace import Variable
from gmdsl.train import figures, runs
from gmdsl.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--epochs", "1", "--batch-size", "32", "--samples", "2", "--no-progress"]

NETS = """
net classifier = mlp(hidden = [16])
net encoder    = mlp(hidden = [16])
net decoder    = mlp(hidden = [16])
objective semisupervised(alpha = 0.1, samples = 2)
"""

POINTS = (
    """model points
observed   x : real[16]
supervised y : onehot[3]
latent     z : real[2]

p(y)        = Categorical(probs = uniform)
p(z)        = Normal(0, 1)
p(x | y, z) = Normal(loc = decoder(y, z), scale = 0.5)
q(y | x)    = Categorical(logits = classifier(x)) by relaxation(temperature = 0.66)
q(z | x, y) = Normal(encoder(x, y))
"""
    + NETS
)

# a class label, a real label, a 5-D latent (drawn by principal components) and a 1-D one
POSITIONS = (
    """model positions
observed   x   : real[16]
supervised y   : onehot[3]
supervised pos : real[2]
latent     z   : real[5]
latent     w   : real[1]

p(y)   = Categorical(probs = uniform)
p(pos) = Normal(0, 1)
p(z)   = Normal(0, 1)
p(w)   = Normal(0, 1)
p(x | y, pos, z, w) = Normal(loc = decoder(y, pos, z, w), scale = 0.5)
q(y | x)            = Categorical(logits = classifier(x)) by relaxation(temperature = 0.66)
q(pos | x)          = Normal(pos_net(x))
q(z | x, y, pos)    = Normal(encoder(x, y, pos))
q(w | x)            = Normal(w_net(x))

net pos_net = mlp(hidden = [16])
net w_net   = mlp(hidden = [16])
"""
    + NETS
)

TWO_CLASSES = POINTS.replace("onehot[3]", "onehot[2]")


def points_data(path: Path, seed: int = 0) -> Path:
    """16-D points around one centre per class, moved by a 2-D position; a third of the class
    labels missing (-1) and a third of the positions (NaN), in both splits."""
    rng = numpy.random.default_rng(seed)

    def split(rows: int) -> dict[str, numpy.ndarray]:
        y = rng.integers(0, 3, rows)
        pos = rng.normal(size=(rows, 2)).astype("float32")
        x = rng.normal(size=(rows, 16)).astype("float32") * 0.3 + y[:, None] + pos @ rng.normal(size=(2, 16))
        y[rng.random(rows) < 0.3] = -1
        pos[rng.random(rows) < 0.3] = numpy.nan
        return {"x": x.astype("float32"), "y": y, "pos": pos}

    train, test = split(160), split(60)
    numpy.savez(path, **{f"{k}_train": v for k, v in train.items()}, **{f"{k}_test": v for k, v in test.items()})
    return path


def trained(folder: Path, spec_text: str, dataset: Path, *flags: str) -> Path:
    """A run of the spec, trained one epoch, and `gmdsl show` on it."""
    spec = folder / "spec.gm"
    spec.write_text(spec_text)
    run_dir = folder / "run"
    assert cli.main(["train", str(spec), "--dataset", str(dataset), "--run", str(run_dir), *FAST, *flags]) == 0
    assert cli.main(["show", str(run_dir)]) == 0
    return run_dir


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return points_data(tmp_path_factory.mktemp("data") / "points.npz")


@pytest.fixture(scope="module")
def points_run(tmp_path_factory, npz: Path) -> Path:
    return trained(tmp_path_factory.mktemp("points"), POINTS, npz, "--fields", "x=x,y=y")


@pytest.fixture(scope="module")
def positions_run(tmp_path_factory, npz: Path) -> Path:
    return trained(tmp_path_factory.mktemp("positions"), POSITIONS, npz)


def drawn(run_dir: Path) -> set[str]:
    return {path.stem for path in (run_dir / "figures").glob("*.png")}


def texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text) if t.get_visible() and t.get_text()]


def assert_fits(figure: Figure) -> None:
    """Everything drawn (titles, labels, legends) lies inside the figure: nothing cut off at an edge."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    canvas.draw()  # the layout's two passes, as figures.save runs them
    drawn_box, page = figure.get_tightbbox(canvas.get_renderer()), figure.bbox_inches  # both in inches
    assert drawn_box.x0 >= -0.01 and drawn_box.y0 >= -0.01, (drawn_box, page)
    assert drawn_box.x1 <= page.x1 + 0.01 and drawn_box.y1 <= page.y1 + 0.01, (drawn_box, page)


def opened(run_dir: Path, classes: list[str] | None = None) -> tuple[runs.Run, dict[str, torch.Tensor]]:
    run = runs.open_run(run_dir, device="cpu")
    if classes:
        run.data["classes"] = {"y": classes}
    return run, run.split("test")


def test_points_are_drawn_as_values_not_images(points_run: Path) -> None:
    assert drawn(points_run) == {"reconstructions", "confusion", "latents"}
    run, batch = opened(points_run)
    assert figures.image_shape(run, run.model.by_name["x"]) is None
    figure = figures.reconstructions(run, batch)
    assert not figure.axes[0].images  # values by dimension, no image
    assert "x by dimension: 6 test rows (points) and their reconstructions (lines)" in texts(figure)
    assert {"dimension", "test row 0", "data", "reconstruction"} <= set(texts(figure))
    assert_fits(figure)


def test_latents_of_two_dimensions_are_coloured_by_class_names(points_run: Path) -> None:
    run, batch = opened(points_run, classes=["cat", "dog", "bird"])
    assert "y_observed" in batch  # some test labels are missing: they are drawn grey
    figure = figures.latents(run, batch)
    words = texts(figure)
    assert {"z[0]", "z[1]", "true y", "unlabelled", "cat", "dog", "bird"} <= set(words)
    assert any("coloured by their true y" in w for w in words)
    assert_fits(figure)

    matrix = figures.confusion(run, batch)
    labelled = int(batch["y_observed"].sum())
    assert {"cat", "dog", "bird", "predicted y", "true y"} <= set(texts(matrix))
    assert any(f"({labelled} rows, error" in w for w in texts(matrix))
    assert_fits(matrix)


def test_latents_without_labels_are_one_colour(points_run: Path) -> None:
    run, batch = opened(points_run)
    figure = figures.latents(run, {"x": batch["x"]})
    assert figure.axes[0].get_legend() is None and "unlabelled" not in texts(figure)
    assert len(figure.axes[0].collections) == 1


def test_real_labels_and_principal_components(positions_run: Path) -> None:
    assert drawn(positions_run) == {"reconstructions", "confusion", "latents", "predictions"}
    run, batch = opened(positions_run)
    latents = figures.latents(run, batch)
    words = texts(latents)
    assert any(w.startswith("z: 1st principal component (") and w.endswith("% of variance)") for w in words)
    assert any(w.startswith("z: 2nd principal component (") for w in words)
    assert "z (5-D), by its first two principal components" in words and "w (1-D)" in words
    assert_fits(latents)

    predictions = figures.predicted_values(run, batch)
    labelled = int(batch["pos_observed"].sum())
    assert {f"pos[0] ({labelled} rows)", f"pos[1] ({labelled} rows)", "true pos[0]", "predicted"} <= set(
        texts(predictions)
    )
    assert any("predicted (the mean of q) against true" in w for w in texts(predictions))
    diagonal = predictions.axes[0].lines[0].get_xydata()
    assert numpy.allclose(diagonal[:, 0], diagonal[:, 1])
    assert_fits(predictions)


def test_two_classes_fit_the_confusion_matrix_and_its_title(tmp_path: Path) -> None:
    """A model built by hand, untrained: the figures do not need a trained one."""
    model = gmdsl.compile(TWO_CLASSES).eval()
    data = {"fields": {"x": "x", "y": "y"}, "field_shapes": {"x": [16], "y": []}, "classes": {"y": ["no", "yes"]}}
    run = runs.Run(tmp_path, model, TrainSettings(), data, torch.device("cpu"), "best", 1)
    batch = {"x": torch.randn(40, 16), "y": torch.arange(40) % 2}
    matrix = figures.confusion(run, batch)
    assert {"no", "yes"} <= set(texts(matrix))
    assert_fits(matrix)
    assert figures.show(run, batch) == [
        tmp_path / "figures" / f"{name}.png" for name in ("reconstructions", "confusion", "latents")
    ]


def test_image_shapes_are_chosen_on_purpose() -> None:
    class Fake:
        data = {"field_shapes": {"flat": [784], "grid": [8, 8], "stack": [2, 4, 4]}}

    def shape(name: str, *declared: int):
        return figures.image_shape(Fake(), Variable(name, "observed", "real", declared))

    assert shape("points", 16) is None and shape("points", 64) is None and shape("points", 100) is None
    assert shape("pixels", 256) == (16, 16) and shape("flat", 784) == (28, 28)
    assert shape("grid", 64) == (8, 8) and shape("stack", 32) == (2, 4, 4)
    assert shape("canvas", 1, 8, 8) == (1, 8, 8) and shape("table", 16, 16) is None


def test_mnist_images_keep_their_figures(tmp_path: Path) -> None:
    tiny = make_tiny_mnist(tmp_path / "tiny", train=200, test=50)
    run_dir = trained(tmp_path, (ROOT / "specs" / "mnist.gm").read_text(), tiny, "--labels", "20")
    assert drawn(run_dir) == {"reconstructions", "style_grid", "traversals", "confusion", "latents"}
    run, batch = opened(run_dir)
    traversal = figures.traversals(run, batch)
    assert "latent traversals, -3 to 3: z[0..31] of 50" in texts(traversal)
    assert "z[31]" in texts(traversal) and "z[32]" not in texts(traversal)
    assert_fits(traversal)
    assert figures.reconstructions(run, batch).axes[0].images
    grid = figures.style_grid(run, batch)
    assert {"data", "0", "9"} <= set(texts(grid))
    assert_fits(grid)
    latents = figures.latents(run, batch)
    assert any("z: 1st principal component" in w for w in texts(latents))


def hand_built(tmp_path: Path, spec: str, directions: tuple[str, ...] = (), classes: dict | None = None) -> runs.Run:
    """An untrained model of a spec as a run: the figures need no training."""
    model = gmdsl.compile(ROOT / "specs" / spec).eval()
    data = {"fields": {}, "field_shapes": {}, "classes": classes or {}}
    return runs.Run(tmp_path, model, TrainSettings(directions=list(directions)), data, torch.device("cpu"), "best", 1)


def drawable(run: runs.Run, batch: dict[str, torch.Tensor]) -> dict[str, Figure]:
    """The figures `show` would draw, by name (built, not saved)."""
    built = {name: draw(run, batch) for name, draw in figures.FIGURES.items()}
    return {name: figure for name, figure in built.items() if figure is not None}


def test_faces_many_classes_and_a_direction(tmp_path: Path) -> None:
    names = [f"person {k}" for k in range(38)]
    run = hand_built(tmp_path, "faces.gm", directions=("light",), classes={"identity": names})
    rows = 40
    light = torch.nn.functional.normalize(torch.randn(rows, 3), dim=-1)
    batch = {"x": torch.rand(rows, 1, 32, 32), "identity": torch.arange(rows) % 38, "light": light}
    with torch.no_grad():
        built = drawable(run, batch)
    assert list(built) == ["reconstructions", "style_grid", "traversals", "confusion", "latents", "predictions"]
    traversal = built["traversals"]
    assert "latent traversals, -3 to 3: shading[0..15] of 16; reflectance[0..15] of 16" in texts(traversal)
    assert "predicted direction (unit length)" in texts(built["predictions"])
    assert {"person 0", "person 37"} <= set(texts(built["style_grid"]))
    for name in ("traversals", "predictions", "style_grid", "latents"):
        assert_fits(built[name])


def test_repeated_variables(tmp_path: Path) -> None:
    """A repeated real label (NaN past each row's count) is drawn on the steps it has, a
    repeated class label is sampled with as it was inferred; latents inside a repeat get no
    scatter plot."""
    run = hand_built(tmp_path, "multi_mnist_boxes.gm")
    rows = 12
    count = torch.arange(rows) % 4
    present = torch.arange(3)[None] < count[:, None]
    batch = {
        "x": torch.rand(rows, 1, 64, 64),
        "count": count,
        "digits": torch.where(present, 7, -1),
        "where": torch.where(present[..., None], torch.rand(rows, 3, 3), torch.nan),
    }
    with torch.no_grad():
        assert figures.latents(run, batch) is None
        assert figures.style_grid(run, batch) is not None
        title = figures.traversals(run, batch, max_dimensions=2).axes[0].get_title()
        assert title == "latent traversals, -3 to 3: style[0..1] of 30"
        steps = int(present.sum())
        assert f"where[0] ({steps} rows)" in texts(figures.predicted_values(run, batch))


def test_traversals_name_the_latents_they_leave_out(tmp_path: Path) -> None:
    run = hand_built(tmp_path, "mnist_aux.gm")
    batch = {"x": (torch.rand(4, 784) < 0.3).float(), "y": torch.tensor([3, -1, 1, 2])}
    batch["y_observed"] = batch["y"] >= 0
    with torch.no_grad():
        title = figures.traversals(run, batch, max_dimensions=3).axes[0].get_title()
    assert title == "latent traversals, -3 to 3: z[0..2] of 50; a (100) not shown"
