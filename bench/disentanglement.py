"""How disentangled a trained faces run is, measured against the generated faces' known factors
(issue #34: the paper's title claim). Two measures, both on the test split:

- **Relighting.** Each test face's identity and latents are inferred, the model's own generator
  p draws it again under new lights, and q infers from what it drew: how often the identity is
  the one inferred first (%), and how far the inferred light is from the light that was set
  (mean angle, degrees). A model whose light controls only the shading keeps the identity and
  reads back the light it was given.
- **Linear probes.** For each variable q infers (the identity's probabilities, the light, each
  latent) and each true factor (identity, light azimuth, light elevation), a least-squares linear
  map fitted on a random half of the test faces predicts the factor on the other half: accuracy (%) for
  identity, R^2 for the two angles. A disentangled model carries each factor in its own variable
  and little of it elsewhere.

bench/faces_table.py measures every generative run once, after its evaluation, and keeps the
result beside its eval.json (logs/NAME.disentanglement.json).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gmdsl.train import runs

# the lights each test face is redrawn under: left to right, a little above the horizon
RELIGHT_AZIMUTHS = (-60.0, -30.0, 0.0, 30.0, 60.0)
RELIGHT_ELEVATION = 10.0
RIDGE = 1e-3  # keeps a probe's least squares well posed when a variable has more numbers than faces


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """The unit light vector of an azimuth and elevation in degrees (the generator's convention)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    return np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])


def azimuth(light: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.atan2(light[:, 0], light[:, 2]))


def elevation(light: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.asin((light[:, 1] / light.norm(dim=1).clamp_min(1e-12)).clamp(-1, 1)))


def _angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Degrees between the rows of a and b."""
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cosine))


def _class_index(value: torch.Tensor) -> torch.Tensor:
    return value.argmax(-1) if value.dim() > 1 else value.long()


@torch.no_grad()
def relighting(run: runs.Run, data: dict[str, torch.Tensor], rows: int = 200) -> dict[str, float]:
    """Identity kept (%) and light error (degrees) when the first `rows` test faces are redrawn
    by the model under each of RELIGHT_AZIMUTHS and inferred again."""
    torch.manual_seed(0)
    model = run.model
    faces = {"x": data["x"][:rows]}
    identity = _class_index(model.predict(faces)["identity"])
    latents = model.infer(faces)
    kept, errors = [], []
    for angle in RELIGHT_AZIMUTHS:
        light = torch.tensor(direction(angle, RELIGHT_ELEVATION), dtype=torch.float32).expand(len(identity), 3)
        given = {"identity": identity, "light": light, **latents}
        drawn = model.sample(len(identity), given=given, observed_means=True)
        again = model.predict({"x": drawn["x"]})
        kept.append(_class_index(again["identity"]) == identity)
        errors.append(_angle(again["light"], light))
    return {
        "relit_identity_kept": 100.0 * torch.cat(kept).float().mean().item(),
        "relit_light_error": torch.cat(errors).mean().item(),
        "relit_faces": len(identity),
        "relit_lights": len(RELIGHT_AZIMUTHS),
    }


def _probe(features: torch.Tensor, target: torch.Tensor, classes: int | None) -> float:
    """A ridge least-squares map from `features` to `target`, fitted on a random half of the rows
    (the same for every variable) and scored on the other: accuracy (%) of the largest one-hot
    output for `classes`, else R^2."""
    inputs = torch.cat([features, torch.ones(len(features), 1)], dim=1).double()
    wanted = torch.nn.functional.one_hot(target, classes).double() if classes else target[:, None].double()
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    fit, score = order[: len(order) // 2], order[len(order) // 2 :]
    a = inputs[fit]
    weights = torch.linalg.solve(a.T @ a + RIDGE * torch.eye(a.shape[1], dtype=a.dtype), a.T @ wanted[fit])
    predicted = inputs[score] @ weights
    if classes:
        return 100.0 * (predicted.argmax(1) == target[score]).double().mean().item()
    residual = ((predicted - wanted[score]) ** 2).sum()
    total = ((wanted[score] - wanted[score].mean()) ** 2).sum().clamp_min(1e-12)
    return (1 - residual / total).item()


@torch.no_grad()
def probes(run: runs.Run, data: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """For each inferred variable, each true factor's probe score: {variable: {factor: score}}."""
    torch.manual_seed(0)
    model = run.model
    faces = {"x": data["x"]}
    predicted = model.predict(faces)
    inferred = {"identity": predicted["identity"], "light": predicted["light"], **model.infer(faces)}
    light = data["light"]
    truth = {"identity": _class_index(data["identity"]), "azimuth": azimuth(light), "elevation": elevation(light)}
    classes = int(data["identity"].shape[-1]) if data["identity"].dim() > 1 else int(truth["identity"].max()) + 1
    return {
        name: {
            factor: _probe(value.reshape(len(value), -1).float(), target, classes if factor == "identity" else None)
            for factor, target in truth.items()
        }
        for name, value in inferred.items()
    }


def measure(run: runs.Run) -> dict:
    """Both measures of a faces run (its loaded checkpoint), on its test split."""
    data = run.split("test")
    return {**relighting(run, data), "probes": probes(run, data)}
