"""The pictures of a run (matplotlib, PNG). `curves` draws RUN/curves.png as a run trains;
`show` draws RUN/figures/NAME.png, each where it fits the run and its data:

reconstructions  the first test rows beside their reconstructions: images where the observed
                 variable is an image (`image_shape`), else its values by dimension
style_grid       image data and a class label: the paper's style (rows) x class (columns) grid
traversals       image data: each latent dimension (the first 32) swept from -3 to 3
confusion        a class label the data gives: true against predicted class
latents          real latent variables outside a repeat, scattered (by principal components
                 above 2-D), coloured by the true class where there is one
predictions      real labels the data gives: predicted against true, per dimension
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gmdsl.data.labels import label_indices
from gmdsl.files import write_atomically
from gmdsl.runtime.batch import MASK_SUFFIX
from gmdsl.runtime.trace import Variable

from .evaluation import predictions
from .runs import Run

Batch = dict[str, torch.Tensor]
Colour = str | tuple[float, float, float, float]
Group = tuple[str, Colour, numpy.ndarray]  # a legend entry: its name, its colour, which rows

_TRAVERSAL = torch.linspace(-3, 3, 9)
_MIN_IMAGE_SIDE = 16  # a flat variable of fewer values is a vector, not an image: 16-D points are no 4x4 picture
_IMAGE_ROWS = 10  # rows drawn as images in reconstructions.png
_VALUE_ROWS = 6  # rows drawn as values by dimension
_LATENT_ROWS = 2000  # rows scattered in latents.png
_VALUE_PANELS = 6  # dimensions drawn per real label
_UNLABELLED = "lightgrey"


def curves(log: list[dict], path: Path) -> Path:
    """Loss, and any validation error or RMSE, per epoch."""
    epochs = [r["epoch"] for r in log]
    extra = sorted({k for r in log for k in r if k.startswith(("validation_error_", "validation_rmse_"))})
    figure = Figure(figsize=(4 * (1 + len(extra)), 3))
    axes = figure.subplots(1, 1 + len(extra), squeeze=False)
    axes[0, 0].plot(epochs, [r["loss"] for r in log], marker="o")
    axes[0, 0].set(title="training loss (-objective)", xlabel="epoch")
    for ax, key in zip(axes[0, 1:], extra, strict=False):
        ax.plot(epochs, [r.get(key) for r in log], marker="o", color="tab:red")
        ax.set(title=key.replace("_", " ") + (" (%)" if "error" in key else ""), xlabel="epoch")
    figure.tight_layout()
    write_atomically(
        path, lambda temporary: figure.savefig(temporary, format="png", dpi=120, metadata={"Software": "gmdsl"})
    )
    return path


# --- which variables, and what the data says about them


def image_shape(run: Run, variable: Variable) -> tuple[int, ...] | None:
    """How to draw a variable's value as an image, [H, W] or [C, H, W]; None when it is no
    image: its declared shape is 3-D, its dataset field's is 2-D or 3-D with as many values, or
    it is flat with a square number of values, at least 16 x 16."""
    if len(variable.shape) == 3:
        return variable.shape
    field_shape = tuple(run.data.get("field_shapes", {}).get(variable.name, ()))
    if len(field_shape) in (2, 3) and math.prod(field_shape) == variable.size:
        return field_shape
    side = math.isqrt(variable.size)
    flat_square = len(variable.shape) == 1 and side * side == variable.size and side >= _MIN_IMAGE_SIDE
    return (side, side) if flat_square else None


def _image(run: Run) -> tuple[Variable, tuple[int, ...]] | None:
    """The first observed variable that can be drawn as an image, and its image's shape."""
    shapes = ((v, image_shape(run, v)) for v in run.model.variables if v.role == "observed")
    return next(((v, shape) for v, shape in shapes if shape is not None), None)


def _label_variable(run: Run) -> Variable | None:
    """The first class label with one class per row (not inside a repeat)."""
    return next(
        (v for v in run.model.variables if v.role == "supervised" and v.type == "onehot" and v.repeat is None), None
    )


def _class_names(run: Run, label: Variable) -> list[str]:
    """The label's class names where the data named them, else their indices."""
    names = run.data.get("classes", {}).get(label.name)
    return list(names) if names and len(names) == label.shape[-1] else [str(k) for k in range(label.shape[-1])]


def _true_classes(batch: Batch, label: Variable) -> torch.Tensor:
    """[N] each row's class index, -1 where its label is missing (on the CPU)."""
    indices = label_indices(batch[label.name]).cpu()
    given = batch.get(label.name + MASK_SUFFIX)
    return indices if given is None else torch.where(given.cpu(), indices, -1)


def _first_rows(batch: Batch, count: int) -> Batch:
    return {k: v[:count] for k, v in batch.items()}


# --- drawing helpers


def _wrapped(title: str, width_inches: float, fontsize: float) -> str:
    """The title broken into lines that fit the figure's width (DejaVu Sans: about 0.7 em a character)."""
    return textwrap.fill(title, max(20, int(width_inches * 72 / (0.7 * fontsize))))


def _colours(count: int) -> list[Colour]:
    if count <= 20:
        palette = colormaps["tab10" if count <= 10 else "tab20"]
        return [palette(k) for k in range(count)]  # an integer picks a listed colour
    return [colormaps["turbo"](k / (count - 1)) for k in range(count)]


def _tile(values: torch.Tensor, shape: tuple[int, ...]) -> numpy.ndarray:
    image = values.detach().float().cpu().reshape(*shape).clamp(0, 1)
    if image.dim() == 3:
        image = image.permute(1, 2, 0) if image.shape[0] == 3 else image[0]  # RGB, else the first channel
    return image.numpy()


def _mosaic(tiles: list[list[numpy.ndarray]], gap: int = 2) -> numpy.ndarray:
    """The tiles as one image, a white gap between them (one imshow instead of an axes per tile,
    which costs matplotlib seconds for a few hundred tiles)."""
    height, width = tiles[0][0].shape[:2]
    channels = tiles[0][0].shape[2:]
    mosaic = numpy.ones(
        (len(tiles) * (height + gap) - gap, len(tiles[0]) * (width + gap) - gap, *channels), dtype=numpy.float32
    )
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            top, left = i * (height + gap), j * (width + gap)
            mosaic[top : top + height, left : left + width] = tile
    return mosaic


def _grid(
    rows: list[list[torch.Tensor]],
    shape: tuple[int, ...],
    title: str,
    row_labels: list[str] | None = None,
    column_labels: list[str] | None = None,
) -> Figure:
    tiles = [[_tile(values, shape) for values in row] for row in rows]
    n_rows, n_columns = len(tiles), len(tiles[0])
    height, width = tiles[0][0].shape[:2]
    figure = Figure(figsize=(0.8 * n_columns + 0.8, 0.8 * n_rows + 0.6), dpi=100, layout="constrained")
    ax = figure.subplots()
    ax.imshow(_mosaic(tiles), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    long_names = max((len(label) for label in column_labels or []), default=0) > 4
    ax.set_xticks(
        [j * (width + 2) + width / 2 for j in range(n_columns)],
        column_labels or [],
        fontsize=8,
        rotation=45 if long_names else 0,
        ha="left" if long_names else "center",
        rotation_mode="anchor",
    )
    ax.set_yticks([i * (height + 2) + height / 2 for i in range(n_rows)], row_labels or [], fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(_wrapped(title, figure.get_figwidth(), 10), fontsize=10)  # above the column labels, on top
    return figure


# --- the figures: each returns a Figure, or None where it does not fit the run or its data


def reconstructions(run: Run, batch: Batch, *, split: str = "test") -> Figure | None:
    """Rows of the split beside p's mean given q's draw from them: as images where the observed
    variable is one, else as values by dimension."""
    image = _image(run)
    variable = image[0] if image else next((v for v in run.model.variables if v.role == "observed"), None)
    if variable is None:
        return None
    rows = run.model.observed_part(_first_rows(batch, _IMAGE_ROWS if image else _VALUE_ROWS))
    data, means = rows[variable.name], run.model.reconstruct(rows)[variable.name]
    if image is None:
        return _values_by_dimension(variable.name, data.flatten(1), means.flatten(1), split)
    return _grid(
        [list(data), list(means)],
        image[1],
        f"{split} images (top) and their reconstructions",
        row_labels=["data", "recon."],
    )


def _values_by_dimension(name: str, data: torch.Tensor, means: torch.Tensor, split: str) -> Figure:
    """One small panel per row: its values (points) and their reconstruction (line) by dimension."""
    count = len(data)
    columns = min(3, count)
    figure = Figure(figsize=(3.4 * columns, 2.4 * math.ceil(count / columns) + 0.6), dpi=120, layout="constrained")
    axes = figure.subplots(math.ceil(count / columns), columns, squeeze=False, sharex=True, sharey=True)
    dimensions = numpy.arange(data.shape[1])
    for i, ax in enumerate(axes.flat):
        if i >= count:
            ax.set_visible(False)
            continue
        ax.plot(dimensions, data[i].float().cpu().numpy(), "o", markersize=3, label="data")
        ax.plot(dimensions, means[i].float().cpu().numpy(), "-", color="tab:red", label="reconstruction")
        ax.set_title(f"{split} row {i}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("dimension")
    for ax in axes[:, 0]:
        ax.set_ylabel(name)
    axes[0, 0].legend(fontsize=7)
    title = f"{name} by dimension: {count} {split} rows (points) and their reconstructions (lines)"
    figure.suptitle(_wrapped(title, figure.get_figwidth(), 11), fontsize=11)
    return figure


def style_grid(run: Run, batch: Batch, rows: int = 8, *, split: str = "test") -> Figure | None:
    """The paper's figure: each row keeps the style inferred from one test image, each column
    sets the label to one class."""
    found, label = _image(run), _label_variable(run)
    if found is None or label is None:
        return None
    image, shape = found
    first = _first_rows(batch, rows)
    styles = _as_given(run, run.model.infer(first))
    classes = label.shape[-1]
    grid = []
    for i in range(len(first[image.name])):
        given = {name: value[i : i + 1].expand(classes, *value.shape[1:]) for name, value in styles.items()}
        given[label.name] = torch.eye(classes, device=run.device)
        drawn = run.model.sample(classes, given=given, observed_means=True)[image.name]
        grid.append([first[image.name][i]] + [drawn[k] for k in range(classes)])
    return _grid(
        grid,
        shape,
        f"style inferred from a {split} image (rows) x {label.name} (columns)",
        column_labels=["data", *_class_names(run, label)],
    )


def _as_given(run: Run, inferred: Batch) -> Batch:
    """Inferred latents as `sample` takes them: a class (a relaxed draw, or q's weighted mean
    where q sums it out) made one-hot at its likeliest; a step without one stays all zeros."""
    out = dict(inferred)
    for name, value in inferred.items():
        if run.model.by_name[name].type == "onehot":
            likeliest = torch.nn.functional.one_hot(value.argmax(-1), value.shape[-1]).to(value)
            out[name] = torch.where(value.sum(-1, keepdim=True) > 0, likeliest, torch.zeros_like(value))
    return out


def traversals(run: Run, batch: Batch, max_dimensions: int = 32, *, split: str = "test") -> Figure | None:
    """Each latent dimension (the first `max_dimensions` of all) swept over -3..3, the others at
    the values inferred for one image of the split, its labels fixed to its own."""
    found = _image(run)
    latents = [v for v in run.model.variables if v.role == "latent" and v.type == "real"]
    if found is None or not latents:
        return None
    image, shape = found
    row = _first_rows(batch, 1)
    base = _as_given(run, run.model.infer(row))
    fixed = _given_labels(run, row)
    steps = len(_TRAVERSAL)
    rows: list[list[torch.Tensor]] = []
    shown: dict[str, int] = {}
    for latent in latents:
        shown[latent.name] = min(latent.size, max_dimensions - len(rows))
        for d in range(shown[latent.name]):
            given = {name: value.expand(steps, *value.shape[1:]).clone() for name, value in base.items()}
            flat = given[latent.name].reshape(steps, -1)
            flat[:, d] = _TRAVERSAL.to(flat)
            given[latent.name] = flat.reshape(given[latent.name].shape)
            given.update({name: value.expand(steps, *value.shape[1:]) for name, value in fixed.items()})
            drawn = run.model.sample(steps, given=given, observed_means=True)[image.name]
            rows.append([drawn[k] for k in range(steps)])
    labels = [f"{latent}[{d}]" for latent, count in shown.items() for d in range(count)]
    return _grid(
        rows,
        shape,
        f"latent traversals, -3 to 3: {_dimensions_shown(latents, shown)}",
        row_labels=labels,
        column_labels=[f"{v:.1f}" for v in _TRAVERSAL.tolist()],
    )


def _given_labels(run: Run, row: Batch) -> Batch:
    """The labels the row has (a missing one is left for the model to draw); a repeated
    variable's steps past its count, NaN in the data, as zeros (`sample` takes no NaN, and
    never reads those steps)."""
    out = {}
    for name, value in row.items():
        given = row.get(name + MASK_SUFFIX)
        if name in run.model.by_name and run.model.by_name[name].role == "supervised" and (given is None or given[0]):
            out[name] = value.nan_to_num(0.0) if value.is_floating_point() else value
    return out


def _dimensions_shown(latents: list[Variable], shown: dict[str, int]) -> str:
    """Which dimensions a traversal shows, e.g. `z[0..31] of 50; a (100) not shown`."""
    parts = [
        f"{v.name}[0..{shown[v.name] - 1}] of {v.size}" if shown[v.name] > 1 else f"{v.name}[0] of {v.size}"
        for v in latents
        if shown[v.name]
    ]
    hidden = [f"{v.name} ({v.size})" for v in latents if not shown[v.name]]
    return "; ".join(parts + ([", ".join(hidden) + " not shown"] if hidden else []))


def latents(run: Run, batch: Batch, count: int = _LATENT_ROWS, *, split: str = "test") -> Figure | None:
    """Each real latent variable outside a repeat, inferred from the observed variables of the
    first `count` rows: scattered as it is (2-D), by its first two principal components (more),
    or as histograms (1-D); coloured by the true class where the rows have one."""
    variables = [v for v in run.model.variables if v.role == "latent" and v.type == "real" and v.repeat is None]
    if not variables:
        return None
    first = _first_rows(batch, count)
    values = _inferred(run, first, variables)
    rows = len(values[variables[0].name])
    label = _label_variable(run)
    if label is not None and label.name not in first:
        label = None  # the rows have no class to colour by
    groups: list[Group] = _groups(run, first, label) if label else [("rows", "tab:blue", numpy.ones(rows, dtype=bool))]
    figure = Figure(figsize=(4.2 * len(variables) + (1.6 if label else 0.4), 4.4), dpi=120, layout="constrained")
    for ax, variable in zip(figure.subplots(1, len(variables), squeeze=False)[0], variables, strict=True):
        _draw_latent(ax, variable.name, values[variable.name], groups)
    title = f"latent variables inferred from the observed values of {rows} {split} rows"
    if label is not None:
        columns = math.ceil(len(groups) / 20)
        figure.axes[-1].legend(
            loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, ncols=columns, title=f"true {label.name}"
        )
        title += f", coloured by their true {label.name}"
    figure.suptitle(_wrapped(title, figure.get_figwidth(), 11), fontsize=11)
    return figure


def _inferred(run: Run, batch: Batch, variables: list[Variable], chunk: int = 500) -> dict[str, torch.Tensor]:
    """The variables inferred from the batch's observed values, [N, size] each, on the CPU."""
    observed = run.model.observed_part(batch)
    rows = len(next(iter(observed.values())))
    parts = [
        run.model.infer({k: v[start : start + chunk] for k, v in observed.items()}) for start in range(0, rows, chunk)
    ]
    return {v.name: torch.cat([part[v.name] for part in parts]).reshape(rows, v.size).float().cpu() for v in variables}


def _groups(run: Run, batch: Batch, label: Variable) -> list[Group]:
    """(name, colour, which rows) of the rows without a label, then of each class present."""
    classes = _true_classes(batch, label).numpy()
    names = _class_names(run, label)
    groups = [("unlabelled", _UNLABELLED, classes < 0)] if (classes < 0).any() else []
    colours = _colours(len(names))
    return groups + [(names[k], colours[k], classes == k) for k in range(len(names)) if (classes == k).any()]


def _draw_latent(ax: Axes, name: str, values: torch.Tensor, groups: list[Group]) -> None:
    size = values.shape[1]
    if size == 1:
        span = (values.min().item(), values.max().item())  # bins shared by the groups
        for group, colour, rows in groups:
            ax.hist(values[rows, 0].numpy(), bins=30, range=span, histtype="step", color=colour, label=group)
        ax.set(xlabel=name, ylabel="rows")
        ax.set_title(f"{name} (1-D)", fontsize=9)
        return
    if size == 2:
        points, xlabel, ylabel = values.numpy(), f"{name}[0]", f"{name}[1]"
    else:
        points, share = _principal_components(values)
        xlabel = f"{name}: 1st principal component ({share[0]:.0%} of variance)"
        ylabel = f"{name}: 2nd principal component ({share[1]:.0%} of variance)"
    for group, colour, rows in groups:
        ax.scatter(points[rows, 0], points[rows, 1], s=8, color=colour, alpha=0.7, label=group, linewidths=0)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"{name} ({size}-D)" + (", by its first two principal components" if size > 2 else ""), fontsize=9)


def _principal_components(values: torch.Tensor) -> tuple[numpy.ndarray, numpy.ndarray]:
    """[N, 2] the values projected on their first two principal components, and the share of
    the variance each explains."""
    centred = values - values.mean(0)
    _, singular, directions = torch.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    return (centred @ directions[:2].T).numpy(), (variance[:2] / variance.sum().clamp_min(1e-12)).numpy()


def confusion(run: Run, batch: Batch, *, split: str = "test") -> Figure | None:
    """True against predicted class of the first class label, on the rows that have one."""
    label = _label_variable(run)
    if label is None or label.name not in batch:  # a label the dataset does not give has no confusion matrix
        return None
    truth = _true_classes(batch, label)
    given = truth >= 0
    if not given.any():
        return None
    predicted = predictions(run.model, batch, run.config.predict_samples, run.config.prediction)[label.name]
    truth, predicted = truth[given], predicted.argmax(-1).cpu()[given]
    classes = label.shape[-1]
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    figure = Figure(figsize=(max(4.5, 0.5 * classes + 2.5), max(3.8, 0.5 * classes + 2)), dpi=120)
    ax = figure.subplots()
    ax.imshow(matrix.numpy(), cmap="Blues", vmin=0)  # counts from 0, so the text colour matches the cell
    for i in range(classes):
        for j in range(classes):
            colour = "white" if matrix[i, j] > matrix.max() / 2 else "black"
            ax.text(j, i, str(matrix[i, j].item()), ha="center", va="center", fontsize=7, color=colour)
    names = _class_names(run, label)
    long_names = max(len(name) for name in names) > 3
    ax.set_xticks(range(classes), names, rotation=45 if long_names else 0, ha="right" if long_names else "center")
    ax.set_yticks(range(classes), names)
    ax.set(xlabel=f"predicted {label.name}", ylabel=f"true {label.name}")
    error = 100.0 * (1 - matrix.diag().sum().item() / matrix.sum().item())
    title = f"{split} confusion matrix of {label.name} ({int(given.sum())} rows, error {error:.2f}%)"
    ax.set_title(_wrapped(title, figure.get_figwidth(), 10), fontsize=10)
    figure.tight_layout()
    return figure


def predicted_values(run: Run, batch: Batch, *, split: str = "test") -> Figure | None:
    """Predicted (the mean of q) against true value of each real supervised variable, one
    panel per dimension (the first few), on the rows that have a label."""
    variables = [
        v
        for v in run.model.variables
        if v.role == "supervised" and v.type not in ("onehot", "binary") and v.name in batch
    ]
    if not variables:
        return None
    predicted = predictions(run.model, batch, run.config.predict_samples, run.config.prediction)
    pairs = [(v, *_labelled_values(run, batch, predicted[v.name], v)) for v in variables]
    pairs = [pair for pair in pairs if len(pair[1])]
    if not pairs:
        return None
    columns = min(_VALUE_PANELS, max(truth.shape[1] for _, truth, _ in pairs))
    figure = Figure(figsize=(2.6 * columns + 0.4, 2.8 * len(pairs) + 0.6), dpi=120, layout="constrained")
    axes = figure.subplots(len(pairs), columns, squeeze=False)
    for row, (variable, truth, guess) in zip(axes, pairs, strict=True):
        for d, ax in enumerate(row):
            if d < truth.shape[1]:
                _against(ax, truth[:, d], guess[:, d], f"{variable.name}[{d}]")
            else:
                ax.set_visible(False)
        row[0].set_ylabel("predicted" + (" direction (unit length)" if variable.name in run.config.directions else ""))
    title = f"real labels: predicted (the mean of q) against true, on the {split} rows that have a label"
    cut = [
        f"{v.name}: dimensions 0..{_VALUE_PANELS - 1} of {truth.shape[1]}"
        for v, truth, _ in pairs
        if truth.shape[1] > _VALUE_PANELS
    ]
    figure.suptitle(_wrapped("; ".join([title, *cut]), figure.get_figwidth(), 10), fontsize=10)
    return figure


def _labelled_values(
    run: Run, batch: Batch, predicted: torch.Tensor, variable: Variable
) -> tuple[numpy.ndarray, numpy.ndarray]:
    """(true, predicted) [rows, step size] on the rows (and, in a repeat, the steps) with a label;
    a direction's prediction scaled to unit length, as its angle is what counts."""
    truth = batch[variable.name]
    given = batch.get(variable.name + MASK_SUFFIX)
    if given is not None:
        truth, predicted = truth[given], predicted[given]
    truth = truth.reshape(-1, variable.step_size).float().cpu()
    predicted = predicted.reshape(-1, variable.step_size).float().cpu()
    if variable.name in run.config.directions:
        predicted = torch.nn.functional.normalize(predicted, dim=-1)
    present = ~torch.isnan(truth).any(-1)  # a repeated variable's steps without a label are NaN
    return truth[present].numpy(), predicted[present].numpy()


def _against(ax: Axes, truth: numpy.ndarray, guess: numpy.ndarray, name: str) -> None:
    low, high = min(truth.min(), guess.min()), max(truth.max(), guess.max())
    ax.plot([low, high], [low, high], "--", color="grey", linewidth=0.8)
    ax.scatter(truth, guess, s=6, alpha=0.7, linewidths=0)
    ax.set_xlabel(f"true {name}")
    ax.set_title(f"{name} ({len(truth)} rows)", fontsize=9)


# each draws from the run and a batch of the split `split` (its name is in the titles)
FIGURES: dict[str, Callable[..., Figure | None]] = {
    "reconstructions": reconstructions,
    "style_grid": style_grid,
    "traversals": traversals,
    "confusion": confusion,
    "latents": latents,
    "predictions": predicted_values,
}


def save(figure: Figure, path: Path) -> Path:
    """The figure as a PNG. Constrained layout is run once before savefig runs it again: its
    first pass moves the axes, and so their ticks, after it made room for their labels."""
    figure.draw_without_rendering()
    # whole or not at all: a full disk leaves no empty PNG behind
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", metadata={"Software": "gmdsl"}))
    return path


def show(run: Run, batch: Batch, split: str = "test") -> list[Path]:
    """Draw every figure that fits the run and its data (a batch of the split named `split`)
    into RUN/figures/NAME.png; the paths written."""
    folder = run.path / "figures"
    folder.mkdir(exist_ok=True)
    made = []
    with torch.no_grad():
        for name, draw in FIGURES.items():
            figure = draw(run, batch, split=split)
            if figure is not None:
                made.append(save(figure, folder / f"{name}.png"))
    return made
