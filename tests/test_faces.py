"""The generated intrinsic faces (gmdsl/train/faces.py): the renderer against hand-computed
Lambertian shading, the generator's splits and records, the cached and checksummed dataset,
and a few training steps of specs/faces.gm lowering its loss on them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import gmdsl
from gmdsl.data import DataError, cache, faces, open_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_shading_is_the_clamped_cosine_computed_by_hand() -> None:
    # four pixels facing the viewer, right, left, and up-right
    up_right = [math.sqrt(0.5), math.sqrt(0.5), 0.0]
    normals = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], up_right]).T.reshape(3, 2, 2)
    light = np.array([0.6, 0.0, 0.8])
    expected = np.array([[0.8, 0.6], [0.0, 0.6 * math.sqrt(0.5)]])  # the left-facing pixel is in shadow
    np.testing.assert_allclose(faces.shade(normals, light), expected[None])
    albedo = np.array([[[0.5, 1.0], [0.3, 0.2]]])
    image = faces.render(faces.Face(normals=normals, albedo=albedo), light[None])
    np.testing.assert_allclose(image, (albedo * expected)[None])


def test_light_directions_are_unit_vectors_in_the_front_range() -> None:
    light = faces.light_directions(2000, np.random.default_rng(0))
    np.testing.assert_allclose(np.linalg.norm(light, axis=-1), 1.0)
    azimuth = np.degrees(np.arctan2(light[:, 0], light[:, 2]))
    elevation = np.degrees(np.arcsin(light[:, 1]))
    assert faces.AZIMUTH[0] <= azimuth.min() < -70 and 70 < azimuth.max() <= faces.AZIMUTH[1]
    assert faces.ELEVATION[0] <= elevation.min() and elevation.max() <= faces.ELEVATION[1]


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    return faces.generate(identities=4, train_per_identity=6, test_per_identity=3, seed=5)


def test_every_identity_is_in_both_splits_with_its_records(small: dict[str, np.ndarray]) -> None:
    size = faces.SIZE
    for split, per_identity in (("train", 6), ("test", 3)):
        rows = 4 * per_identity
        assert small[f"image_{split}"].shape == (rows, 1, size, size) and small[f"image_{split}"].dtype == np.uint8
        assert small[f"light_{split}"].shape == (rows, 3)
        assert small[f"normals_{split}"].shape == (rows, 3, size, size)
        assert small[f"albedo_{split}"].shape == (rows, 1, size, size)
        assert np.bincount(small[f"identity_{split}"]).tolist() == [per_identity] * 4
        np.testing.assert_allclose(np.linalg.norm(small[f"normals_{split}"], axis=1), 1.0, rtol=1e-5)
    # an identity's surface and skin are the same in every image of it, in either split
    first_test = np.flatnonzero(small["identity_test"] == 2)[0]
    for record in ("normals", "albedo"):
        np.testing.assert_array_equal(small[f"{record}_train"][12], small[f"{record}_test"][first_test])
        assert not np.array_equal(small[f"{record}_train"][0], small[f"{record}_train"][12])  # people differ


def test_each_image_is_its_recorded_factors_rendered_plus_a_little_noise(small: dict[str, np.ndarray]) -> None:
    clean = small["albedo_train"] * faces.shade(small["normals_train"], small["light_train"])
    image = small["image_train"] / 255.0
    error = image - clean
    assert np.abs(error).max() < 6 * faces.NOISE + 0.5 / 255  # noise, then 8-bit rounding
    assert 0.5 * faces.NOISE < error.std() < 2 * faces.NOISE
    assert (small["albedo_train"] == 0).any() and (image[small["albedo_train"] == 0] < 0.07).all()  # black background


def test_the_generator_is_seeded(small: dict[str, np.ndarray]) -> None:
    again = faces.generate(identities=4, train_per_identity=6, test_per_identity=3, seed=5)
    assert all(np.array_equal(small[k], again[k]) for k in small)
    other = faces.generate(identities=4, train_per_identity=6, test_per_identity=3, seed=6)
    assert not np.array_equal(small["image_train"], other["image_train"])


def test_a_grazing_light_casts_the_nose_s_shadow_and_a_frontal_one_none() -> None:
    """Cast shadows (Difficulty.shadows): a light from the viewer's side lights every point; a
    light grazing from the right darkens points just left of the nose, which its tip hides."""
    face = faces.make_face(np.random.default_rng(0))
    assert face.depth is not None
    front, grazing = np.array([[0.0, 0.0, 1.0]]), np.array([[math.sin(1.4), 0.0, math.cos(1.4)]])
    assert faces.lit(face.depth, front).all()
    lit = faces.lit(face.depth, grazing)[0]
    centre, nose_row = faces.SIZE // 2, faces.SIZE // 2 + 2  # the nose sits just below the image's centre
    assert not lit[nose_row - 2 : nose_row + 3, centre - 4 : centre].all()  # left of the nose: some in shadow
    assert lit[nose_row - 2 : nose_row + 3, centre + 1 : centre + 5].all()  # right of it, facing the light: lit
    shadowed = faces.render(face, grazing, shadows=True)
    plain = faces.render(face, grazing)
    assert (shadowed <= plain).all() and (shadowed < plain).any()


def test_harder_faces_are_more_alike_shifted_and_noisier_and_the_defaults_are_version_1_s(
    small: dict[str, np.ndarray],
) -> None:
    """A smaller spread draws identities closer to the mean face; shift moves each image; the
    default difficulty is version 1's faces (the same arrays)."""
    options = {"identities": 4, "train_per_identity": 6, "test_per_identity": 3, "seed": 5}
    default = faces.generate(**options, difficulty=faces.Difficulty())
    assert all(np.array_equal(small[k], default[k]) for k in small)

    def spread_of(arrays: dict[str, np.ndarray]) -> float:
        albedo = arrays["albedo_train"][::6].reshape(4, -1)  # one image per identity
        return float(np.mean([np.abs(a - b).mean() for a in albedo for b in albedo]))

    alike = faces.generate(**options, difficulty=faces.Difficulty(spread=0.3))
    assert spread_of(alike) < 0.6 * spread_of(small)
    moved = faces.generate(**options, difficulty=faces.Difficulty(shift=2, noise=0.0))
    still = faces.generate(**options, difficulty=faces.Difficulty(noise=0.0))
    assert not np.array_equal(moved["image_train"], still["image_train"])
    assert np.array_equal(moved["normals_train"], still["normals_train"])  # the identity's, before the shift
    hard = faces.generate(**options, difficulty=faces.HARD)
    assert hard["image_train"].shape == small["image_train"].shape and hard["image_train"].dtype == np.uint8


def test_fetching_faces_generates_caches_and_checks_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path))
    with pytest.raises(DataError, match="run `gmdsl data fetch faces`"):
        open_dataset("faces", fetch_missing=False)
    folder = cache.fetch("faces")
    manifest = json.loads((folder / "faces.json").read_text())
    assert manifest["settings"]["identities"] == 38 and manifest["settings"]["seed"] == faces.SEED
    dataset = open_dataset("faces")
    assert dataset.fields() == ["albedo", "identity", "image", "light", "normals"]
    assert len(dataset.train["image"]) == 38 * faces.TRAIN_PER_IDENTITY
    assert len(dataset.test["image"]) == 38 * faces.TEST_PER_IDENTITY
    stamp = (folder / "faces.npz").stat().st_mtime_ns
    assert cache.fetch("faces") == folder and (folder / "faces.npz").stat().st_mtime_ns == stamp  # cached
    # a changed generator makes the cached copy stale: the next fetch rebuilds it
    monkeypatch.setattr(faces, "VERSION", faces.VERSION + 1)
    assert not cache.is_fetched("faces", folder)
    monkeypatch.undo()
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path))
    # a damaged manifest makes the copy stale too; a damaged file is refused with what to do
    manifest = (folder / "faces.json").read_text()
    (folder / "faces.json").write_text("{not json")
    assert not cache.is_fetched("faces", folder)
    (folder / "faces.json").write_text(manifest)
    data = bytearray((folder / "faces.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "faces.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"sha256 .* delete .* and run `gmdsl data fetch faces` again"):
        open_dataset("faces")


def test_the_hard_faces_are_their_own_cached_set_from_their_own_seed(tmp_path: Path, monkeypatch) -> None:
    """`gmdsl data fetch faces-hard`: faces.HARD's faces from HARD_SEED (no calibration set's),
    cached beside the easy ones with the difficulty in the manifest (a change to it rebuilds)."""
    import dataclasses
    import functools

    monkeypatch.setenv("GMDSL_DATA", str(tmp_path))
    monkeypatch.setattr(faces, "generate", functools.partial(faces.generate, train_per_identity=2, test_per_identity=1))
    folder = cache.fetch("faces-hard")
    settings = json.loads((folder / "faces-hard.json").read_text())["settings"]
    assert settings["seed"] == faces.HARD_SEED != faces.SEED and settings["difficulty"]["shadows"] is True
    hard, easy = open_dataset("faces-hard"), open_dataset("faces")
    assert hard.fields() == easy.fields() and len(hard.train["image"]) == 38 * 2
    assert not torch.equal(hard.train["image"], easy.train["image"])
    monkeypatch.setattr(faces, "HARD", dataclasses.replace(faces.HARD, noise=0.05))
    assert not cache.is_fetched("faces-hard", folder)


def test_lambert_and_product_on_flat_values_with_leading_dimensions() -> None:
    from gmdsl import runtime as rt

    # two pixels, normals (channels first, flat as real[3, 1, 2] flattens): (0, 0, 2) and (-3, 0, 0)
    normals = torch.tensor([0.0, -3.0, 0.0, 0.0, 2.0, 0.0])
    light = torch.tensor([[0.6, 0.0, 0.8], [-1.0, 0.0, 0.0]])  # two draws of the light [S = 2, 3]
    shading = rt.lambert(normals, light)  # normals made unit: (0, 0, 1) and (-1, 0, 0)
    torch.testing.assert_close(shading, torch.tensor([[0.8, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(rt.product(torch.tensor([0.5, 2.0]), shading), torch.tensor([[0.4, 0.0], [0.0, 2.0]]))


def test_the_physics_spec_renders_its_mean_with_lambert(small: dict[str, np.ndarray]) -> None:
    """In faces_physics.gm the image's mean is albedo * max(0, n . light) exactly: with the
    surface network's output and the skin's fixed, p's mean is the renderer's image."""
    torch.manual_seed(0)
    model = gmdsl.compile(ROOT / "specs" / "faces_physics.gm")
    normals = torch.from_numpy(small["normals_train"][:3]).flatten(1)
    albedo = torch.from_numpy(small["albedo_train"][:3]).clamp(0.01, 0.99).flatten(1)
    model.decoder.surface.forward = lambda _: normals  # type: ignore[method-assign]
    model.decoder.skin.forward = lambda _: torch.logit(albedo)  # type: ignore[method-assign]
    light = torch.from_numpy(small["light_train"][:3])
    drawn = model.sample(3, given={"light": light, "identity": torch.tensor([0, 0, 0])}, observed_means=True)
    expected = albedo.reshape(3, 1, 32, 32).numpy() * faces.shade(small["normals_train"][:3], small["light_train"][:3])
    np.testing.assert_allclose(drawn["x"].reshape(3, 1, 32, 32).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("spec", ["faces.gm", "faces_physics.gm"])
def test_a_few_steps_of_the_faces_models_lower_their_loss(spec: str, small: dict[str, np.ndarray]) -> None:
    torch.manual_seed(0)
    model = gmdsl.compile(ROOT / "specs" / spec)
    # identities 0..3 of the model's 38; two rows in three labelled
    labelled = torch.arange(24) % 3 != 0
    batch = {
        "x": torch.from_numpy(small["image_train"]).float() / 255,
        "identity": torch.from_numpy(small["identity_train"]),
        "light": torch.from_numpy(small["light_train"]),
        "identity_observed": labelled,
        "light_observed": labelled,
    }
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss() -> torch.Tensor:
        return -model.objective(batch).elbo.mean()

    before = loss().item()
    for _ in range(30):
        optimiser.zero_grad()
        loss().backward()
        optimiser.step()
    torch.manual_seed(1)
    assert loss().item() < before - 0.2 * abs(before)
