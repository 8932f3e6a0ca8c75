"""Intrinsic faces: a generated stand-in for the Extended Yale B faces of the paper's second
experiment (Yale B cannot be fetched here). Each of 38 identities (as in Extended Yale B) is a
smooth face-like surface, a height field over the image plane: a mean face (a rounded head,
brow, eye sockets, nose, lips, chin) plus the identity's own random low-frequency deformations,
with its own reflectance (albedo) map: skin tone, brows, eyes, lips, hair line. Every image is
that surface lit from one known direction, rendered with Lambertian shading

    image = albedo * max(0, normal . light) + noise,

then stored as 8-bit grey values (like the Yale B photographs). Yale B shows each person in one
pose under 64 flash directions; here each image draws its direction at random from a similar
front-facing range, so that a light direction is a continuous variable. Every image records its
identity, light direction (a unit vector), and the identity's per-pixel normals and albedo, so
that a model's inferred factors can be checked against the true ones.

Coordinates: x to the right of the image, y up, z towards the viewer; the camera looks along -z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IDENTITIES = 38
SIZE = 32  # images are SIZE x SIZE
TRAIN_PER_IDENTITY = 120  # gmdsl's default validation split holds a sixth of them (20) out
TEST_PER_IDENTITY = 24
NOISE = 0.01  # standard deviation of the pixel noise, on the [0, 1] scale
AZIMUTH = (-75.0, 75.0)  # degrees; left-right range of the light
ELEVATION = (-35.0, 65.0)  # degrees; below-above range of the light
SEED = 2017
VERSION = 1  # bumped whenever the generated data change, so a cached copy is rebuilt


@dataclass(frozen=True)
class Face:
    """One identity's surface and reflectance: normals [3, H, W] (unit vectors; (0, 0, 1) off
    the face) and albedo [1, H, W] (0 off the face: the background stays black)."""

    normals: np.ndarray
    albedo: np.ndarray


def shade(normals: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Lambertian shading max(0, normal . light): normals [..., 3, H, W], light [..., 3] ->
    [..., 1, H, W]."""
    cosine = np.einsum("...chw,...c->...hw", normals, light)
    return np.maximum(cosine, 0.0)[..., None, :, :]


def render(face: Face, light: np.ndarray) -> np.ndarray:
    """The noiseless image of `face` under unit light directions [N, 3]: [N, 1, H, W] in [0, 1]."""
    return face.albedo[None] * shade(face.normals[None], light)


def light_directions(count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` unit vectors, azimuth and elevation uniform in their ranges: [count, 3]."""
    azimuth = np.radians(rng.uniform(*AZIMUTH, size=count))
    elevation = np.radians(rng.uniform(*ELEVATION, size=count))
    return np.stack(
        [np.sin(azimuth) * np.cos(elevation), np.sin(elevation), np.cos(azimuth) * np.cos(elevation)], axis=-1
    )


def _grid() -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in [-1, 1], x to the right and y up: two [H, W] arrays."""
    centres = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    return np.meshgrid(centres, -centres)


def _bump(x: np.ndarray, y: np.ndarray, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def make_face(rng: np.random.Generator) -> Face:
    """A random identity: the mean face's parts moved, resized and deepened a little, plus a
    few random smooth bumps on the surface and blotches on the skin."""
    x, y = _grid()
    width, height = rng.uniform(0.68, 0.82), rng.uniform(0.86, 0.96)
    inside = (x / width) ** 2 + (y / height) ** 2
    mask = inside < 1
    eye_x, eye_y = rng.uniform(0.26, 0.36), rng.uniform(0.05, 0.2)
    nose_y, mouth_y = rng.uniform(-0.2, -0.1), rng.uniform(-0.5, -0.38)
    depth = np.sqrt(np.clip(1 - inside, 0, None)) * rng.uniform(0.55, 0.75)
    depth += rng.uniform(0.18, 0.32) * _bump(x, y, 0, nose_y + 0.1, rng.uniform(0.07, 0.11), 0.22)  # nose
    for side in (-1, 1):
        depth -= rng.uniform(0.08, 0.14) * _bump(x, y, side * eye_x, eye_y, 0.11, 0.08)  # eye socket
        depth += 0.06 * _bump(x, y, side * eye_x, eye_y + 0.16, 0.16, 0.05)  # brow ridge
        depth += rng.uniform(0.02, 0.06) * _bump(x, y, side * 0.42, nose_y - 0.05, 0.14, 0.14)  # cheek
    depth += 0.04 * _bump(x, y, 0, mouth_y, 0.16, 0.05) - 0.03 * _bump(x, y, 0, mouth_y - 0.12, 0.1, 0.04)  # lips
    for _ in range(8):  # the identity's own low-frequency deformations
        cx, cy = rng.uniform(-0.7, 0.7), rng.uniform(-0.8, 0.8)
        depth += rng.normal(0, 0.04) * _bump(x, y, cx, cy, *rng.uniform(0.2, 0.45, size=2))
    spacing = 2 / SIZE
    d_dy, d_dx = np.gradient(depth, -spacing, spacing)  # y runs up while rows run down
    normals = np.stack([-d_dx, -d_dy, np.ones_like(depth)])
    normals /= np.linalg.norm(normals, axis=0, keepdims=True)
    normals[:, ~mask] = np.array([0.0, 0.0, 1.0])[:, None]

    albedo = np.full_like(depth, rng.uniform(0.55, 0.9))
    for _ in range(4):  # uneven skin
        cx, cy = rng.uniform(-0.6, 0.6), rng.uniform(-0.7, 0.7)
        albedo += rng.normal(0, 0.06) * _bump(x, y, cx, cy, *rng.uniform(0.15, 0.35, size=2))
    for side in (-1, 1):
        albedo *= 1 - 0.6 * _bump(x, y, side * eye_x, eye_y, 0.06, 0.035)  # eye
        albedo *= 1 - rng.uniform(0.3, 0.6) * _bump(x, y, side * eye_x, eye_y + 0.15, 0.12, 0.03)  # brow
    albedo *= 1 - rng.uniform(0.2, 0.4) * _bump(x, y, 0, mouth_y, 0.14, 0.035)  # lips
    hairline = rng.uniform(0.5, 0.72) + 0.08 * np.cos(math.pi * x / width)
    albedo = np.where(y > hairline, rng.uniform(0.12, 0.45), albedo)  # hair
    albedo = np.clip(albedo, 0.05, 1.0) * mask
    return Face(normals=normals, albedo=albedo[None])


def generate(
    identities: int = IDENTITIES,
    train_per_identity: int = TRAIN_PER_IDENTITY,
    test_per_identity: int = TEST_PER_IDENTITY,
    seed: int = SEED,
) -> dict[str, np.ndarray]:
    """The dataset as arrays NAME_train / NAME_test (the .npz layout gmdsl reads): image
    (uint8 [N, 1, H, W]), identity (int64 [N]), light (float32 [N, 3], unit vectors), normals
    (float32 [N, 3, H, W]) and albedo (float32 [N, 1, H, W]). The same seed gives the same data."""
    rng = np.random.default_rng(seed)
    faces = [make_face(rng) for _ in range(identities)]
    arrays: dict[str, np.ndarray] = {}
    for split, per_identity in (("train", train_per_identity), ("test", test_per_identity)):
        identity = np.repeat(np.arange(identities), per_identity)
        light = light_directions(len(identity), rng)
        clean = np.concatenate([render(faces[i], light[identity == i]) for i in range(identities)])
        noisy = clean + rng.normal(0, NOISE, size=clean.shape)
        arrays[f"image_{split}"] = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
        arrays[f"identity_{split}"] = identity.astype(np.int64)
        arrays[f"light_{split}"] = light.astype(np.float32)
        arrays[f"normals_{split}"] = np.stack([faces[i].normals for i in identity]).astype(np.float32)
        arrays[f"albedo_{split}"] = np.stack([faces[i].albedo for i in identity]).astype(np.float32)
    return arrays
