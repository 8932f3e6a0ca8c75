"""The figures of bench/faces_table.py, from each spec's best run (lowest validation identity
error, ties broken by the light's RMSE) at the figure's label count: a test face relit,
identities under one light, and inferred against true light direction. Each figure puts the
generator's truth beside the models'."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from disentanglement import direction
from matplotlib.figure import Figure

from gmdsl.data import faces, open_dataset
from gmdsl.train import runs
from gmdsl.train.evaluation import predictions

SPECS = ("faces", "faces_physics")  # the baseline has no generative model to draw with
AZIMUTHS = np.linspace(-60, 60, 7)


def _or_inf(value: float | None) -> float:
    return math.inf if value is None else value


def best_run_names(results: dict, labels: int) -> dict[str, str]:
    """The run the figures show of each generative spec: of its runs with `labels` labels, the best on validation."""
    best = {}
    for setting in SPECS:
        chosen = [r for r in results["runs"] if r["setting"] == setting and r["labels"] == labels]
        if chosen:
            # as each run's checkpoint was chosen: identity error, ties broken by the light's RMSE
            run = min(
                chosen, key=lambda r: (_or_inf(r["validation_identity_error"]), _or_inf(r.get("validation_light_rmse")))
            )
            best[setting] = run["name"]
    return best


def _best_runs(results: dict, runs_root: Path, labels: int) -> dict[str, runs.Run]:
    return {
        setting: runs.open_run(runs_root / name, "cpu", "best")
        for setting, name in best_run_names(results, labels).items()
    }


@torch.no_grad()
def _decode(run: runs.Run, identity: torch.Tensor, light: np.ndarray, latents: dict[str, torch.Tensor]) -> np.ndarray:
    """p's mean image for each row: [N, H, W]."""
    given = {"identity": identity, "light": torch.tensor(light, dtype=torch.float32), **latents}
    drawn = run.model.sample(len(identity), given=given, observed_means=True)
    return drawn["x"].reshape(len(identity), faces.SIZE, faces.SIZE).numpy()


def _grid(rows: list[tuple[str, np.ndarray]], titles: list[str], path: Path) -> None:
    columns = len(titles)
    figure = Figure(figsize=(1.1 * columns + 1.4, 1.15 * len(rows) + 0.4))
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            axis = axes[r][c]
            axis.imshow(np.clip(images[c], 0, 1), cmap="gray", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if r == 0:
                axis.set_title(titles[c], fontsize=7)
        axes[r][0].set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


@torch.no_grad()
def draw_figures(results: dict, out: Path, runs_root: Path, dataset_name: str, labels: int) -> None:
    best = _best_runs(results, runs_root, labels)
    if not best:
        return
    dataset = open_dataset(dataset_name)
    test = dataset.test
    torch.manual_seed(0)
    # a test face relit from left to right
    row = 0
    lights = np.stack([direction(a, 10.0) for a in AZIMUTHS])
    truth_face = faces.Face(test["normals"][row].numpy().astype(float), test["albedo"][row].numpy().astype(float))
    relit = [("generator", faces.render(truth_face, lights)[:, 0])]
    for setting, run in best.items():
        data = run.split("test")
        image = {"x": data["x"][row : row + 1]}
        identity = run.model.predict(image)["identity"].argmax(-1).repeat(len(lights))
        latents = {name: value.repeat(len(lights), 1) for name, value in run.model.infer(image).items()}
        relit.append((setting, _decode(run, identity, lights, latents)))
    _grid(relit, [f"{a:+.0f} deg" for a in AZIMUTHS], out / "faces_relit.png")
    # identities 0-9 under a frontal light
    front = direction(0.0, 0.0)[None].repeat(10, 0)
    first = [int(np.flatnonzero(test["identity"].numpy() == i)[0]) for i in range(10)]
    truth = [
        faces.render(
            faces.Face(test["normals"][i].numpy().astype(float), test["albedo"][i].numpy().astype(float)), front[:1]
        )[0, 0]
        for i in first
    ]
    people = [("generator", np.stack(truth))]
    for setting, run in best.items():
        latents = {v.name: torch.zeros(10, math.prod(v.shape)) for v in run.model.variables if v.role == "latent"}
        people.append((setting, _decode(run, torch.arange(10), front, latents)))
    _grid(people, [f"identity {i}" for i in range(10)], out / "faces_identities.png")
    # inferred against true light direction
    figure = Figure(figsize=(8, 3.6))
    axes = figure.subplots(1, 2)
    for setting, run in best.items():
        data = run.split("test")
        inferred = predictions(run.model, data)["light"].numpy()
        for axis, angle in zip(axes, (_azimuth, _elevation), strict=True):
            axis.scatter(angle(data["light"].numpy()), angle(inferred), s=4, alpha=0.5, label=setting)
    for axis, what in zip(axes, ("azimuth", "elevation"), strict=True):
        axis.plot([-90, 90], [-90, 90], color="grey", linewidth=0.8)
        axis.set_xlabel(f"true light {what} (degrees)")
        axis.set_ylabel(f"inferred {what} (degrees)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "faces_light.png", dpi=110)


def _azimuth(light: np.ndarray) -> np.ndarray:
    return np.degrees(np.arctan2(light[:, 0], light[:, 2]))


def _elevation(light: np.ndarray) -> np.ndarray:
    return np.degrees(np.arcsin(np.clip(light[:, 1] / np.linalg.norm(light, axis=1), -1, 1)))
