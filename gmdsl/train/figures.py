"""The pictures of a run (matplotlib, PNG): training curves, reconstructions, the paper's
disentanglement grid (style rows x label columns), latent traversals, and the confusion matrix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy
import torch
from matplotlib.figure import Figure

from .data import label_indices
from .evaluation import predictions
from .runs import Run

_TRAVERSAL = torch.linspace(-3, 3, 9)


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
    figure.savefig(path, dpi=120, metadata={"Software": "gmdsl"})
    return path


def _image_variable(run: Run):
    """The first observed variable that can be drawn as an image."""
    return next((v for v in run.model.variables if v.role == "observed" and image_shape(run, v)), None)


def image_shape(run: Run, variable) -> tuple[int, ...] | None:
    """How to draw a variable's value: [H, W] or [C, H, W], or None when it is no image."""
    if len(variable.shape) == 3:
        return variable.shape
    field_shape = tuple(run.data["field_shapes"].get(variable.name, ()))
    if len(field_shape) in (2, 3) and math.prod(field_shape) == variable.size:
        return field_shape
    side = math.isqrt(variable.size)
    return (side, side) if side * side == variable.size and side > 1 else None


def _tile(values: torch.Tensor, shape) -> numpy.ndarray:
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


def _grid(rows: list[list[torch.Tensor]], shape, path: Path, title: str, row_labels=None, column_labels=None) -> Path:
    tiles = [[_tile(values, shape) for values in row] for row in rows]
    n_rows, n_columns = len(tiles), len(tiles[0])
    height, width = tiles[0][0].shape[:2]
    figure = Figure(figsize=(0.8 * n_columns + 0.8, 0.8 * n_rows + 0.6))
    ax = figure.subplots()
    ax.imshow(_mosaic(tiles), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (width + 2) + width / 2 for j in range(n_columns)], column_labels or [], fontsize=8)
    ax.set_yticks([i * (height + 2) + height / 2 for i in range(n_rows)], row_labels or [], fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)  # placed above the column labels, which sit on top
    figure.tight_layout()
    figure.savefig(path, dpi=100, metadata={"Software": "gmdsl"})
    return path


def _first_rows(test: dict[str, torch.Tensor], count: int) -> dict[str, torch.Tensor]:
    return {k: v[:count] for k, v in test.items()}


def reconstructions(run: Run, test, folder: Path, count: int = 10) -> Path | None:
    variable = _image_variable(run)
    shape = image_shape(run, variable) if variable else None
    if shape is None:
        return None
    batch = _first_rows(test, count)
    means = run.model.reconstruct({variable.name: batch[variable.name]})[variable.name]
    rows = [[batch[variable.name][i] for i in range(count)], [means[i] for i in range(count)]]
    return _grid(
        rows,
        shape,
        folder / "reconstructions.png",
        "test images (top) and their reconstructions",
        row_labels=["data", "recon."],
    )


def _label_variable(run: Run):
    return next((v for v in run.model.variables if v.role == "supervised" and v.type == "onehot"), None)


def style_grid(run: Run, test, folder: Path, rows: int = 8) -> Path | None:
    """The paper's figure: each row keeps the style inferred from one test image, each column
    sets the label to one class."""
    image, label = _image_variable(run), _label_variable(run)
    shape = image_shape(run, image) if image else None
    if shape is None or label is None:
        return None
    batch = {k: v for k, v in _first_rows(test, rows).items() if run.model.by_name[k].role != "latent"}
    styles = run.model.infer(batch)
    classes = label.shape[-1]
    grid = []
    for i in range(rows):
        given = {name: value[i : i + 1].expand(classes, *value.shape[1:]) for name, value in styles.items()}
        given[label.name] = torch.eye(classes, device=run.device)
        drawn = run.model.sample(classes, given=given, observed_means=True)[image.name]
        grid.append([batch[image.name][i]] + [drawn[k] for k in range(classes)])
    return _grid(
        grid,
        shape,
        folder / "style_grid.png",
        f"style inferred from a test image (rows) x {label.name} (columns)",
        column_labels=["data"] + [str(k) for k in range(classes)],
    )


def traversals(run: Run, test, folder: Path, max_dimensions: int = 32) -> Path | None:
    """Each latent dimension swept over -3..3 (others at the values inferred for one test image)."""
    image = _image_variable(run)
    shape = image_shape(run, image) if image else None
    latents = [v for v in run.model.variables if v.role == "latent" and v.type == "real"]
    if shape is None or not latents:
        return None
    batch = {k: v for k, v in _first_rows(test, 1).items() if run.model.by_name[k].role != "latent"}
    base = run.model.infer(batch)
    fixed = {k: v for k, v in batch.items() if run.model.by_name[k].role == "supervised"}
    rows: list[list[torch.Tensor]] = []
    labels: list[str] = []
    for latent in latents:
        for d in range(min(latent.size, max_dimensions - len(rows))):
            given = {name: value.expand(len(_TRAVERSAL), *value.shape[1:]).clone() for name, value in base.items()}
            flat = given[latent.name].reshape(len(_TRAVERSAL), -1)
            flat[:, d] = _TRAVERSAL.to(flat)
            given[latent.name] = flat.reshape(given[latent.name].shape)
            for name, value in fixed.items():
                label = (
                    torch.nn.functional.one_hot(label_indices(value), run.model.by_name[name].shape[-1])
                    if run.model.by_name[name].type == "onehot" and value.dim() == 1
                    else value
                )
                given[name] = label.to(flat).expand(len(_TRAVERSAL), *label.shape[1:])
            drawn = run.model.sample(len(_TRAVERSAL), given=given, observed_means=True)[image.name]
            rows.append([drawn[k] for k in range(len(_TRAVERSAL))])
            labels.append(f"{latent.name}[{d}]")
    return _grid(
        rows,
        shape,
        folder / "traversals.png",
        "latent traversals, -3 to 3",
        row_labels=labels,
        column_labels=[f"{v:.1f}" for v in _TRAVERSAL.tolist()],
    )


def confusion(run: Run, test, folder: Path) -> Path | None:
    label = _label_variable(run)
    if label is None or label.name not in test:  # a label the dataset does not give has no confusion matrix
        return None
    predicted = predictions(run.model, test, run.config.predict_samples, run.config.prediction)[label.name]
    predicted = predicted.argmax(-1).cpu()
    truth = label_indices(test[label.name]).cpu()
    classes = label.shape[-1]
    matrix = torch.zeros(classes, classes, dtype=torch.long)
    matrix.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    figure = Figure(figsize=(0.5 * classes + 2, 0.5 * classes + 1.5))
    ax = figure.subplots()
    ax.imshow(matrix.numpy(), cmap="Blues")
    for i in range(classes):
        for j in range(classes):
            ax.text(
                j,
                i,
                str(matrix[i, j].item()),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > matrix.max() / 2 else "black",
            )
    error = 100.0 * (1 - matrix.diag().sum().item() / matrix.sum().item())
    ax.set(
        xlabel=f"predicted {label.name}",
        ylabel=f"true {label.name}",
        xticks=range(classes),
        yticks=range(classes),
        title=f"test confusion matrix (error {error:.2f}%)",
    )
    figure.tight_layout()
    figure.savefig(folder / "confusion.png", dpi=120, metadata={"Software": "gmdsl"})
    return folder / "confusion.png"


def show(run: Run, test) -> list[Path]:
    folder = run.path / "figures"
    folder.mkdir(exist_ok=True)
    with torch.no_grad():
        made = [f(run, test, folder) for f in (reconstructions, style_grid, traversals, confusion)]
    return [p for p in made if p is not None]
