"""The generated multi-MNIST (gmdsl/train/multi_mnist.py): balanced counts and classes, digits
where their boxes say, test canvases from test digits only, seeding, and the cached copy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_data import make_tiny_mnist

from gmdsl.data import DataError, multi_mnist, open_dataset
from gmdsl.runtime.functions import glimpse


def _digits(value: int, count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """`count` solid 28x28 squares of grey `value`, classes 0..9 in turn."""
    return np.full((count, 28, 28), value, dtype=np.uint8), np.arange(count) % 10


@pytest.fixture(scope="module")
def made() -> dict[str, np.ndarray]:
    return multi_mnist.generate(_digits(255), _digits(100), train=300, test=60, seed=3)


def test_counts_and_classes_are_balanced(made: dict[str, np.ndarray]) -> None:
    assert np.bincount(made["count_train"]).tolist() == [0, 100, 100, 100]
    classes = made["digits_train"][made["digits_train"] >= 0]
    assert len(classes) == 600 and set(np.bincount(classes, minlength=10)) == {60}
    for split in ("train", "test"):
        count, digits, boxes = (made[f"{f}_{split}"] for f in ("count", "digits", "boxes"))
        steps = np.arange(multi_mnist.MAX_COUNT)
        assert ((digits >= 0) == (steps < count[:, None])).all()  # -1 exactly past the count
        assert ((boxes[..., 0] >= 0) == (steps < count[:, None])).all()


def test_each_digit_is_where_its_box_says_and_nowhere_else(made: dict[str, np.ndarray]) -> None:
    canvas = multi_mnist.CANVAS
    for image, count, boxes in zip(made["image_train"], made["count_train"], made["boxes_train"], strict=True):
        inside = np.zeros((canvas, canvas), dtype=bool)
        for x, y, width, height in boxes[:count]:
            assert 0 <= x and x + width <= canvas and 0 <= y and y + height <= canvas
            assert multi_mnist.MIN_SIZE <= width == height <= 28
            # a solid square stays solid where it is scaled: its box's middle is full grey
            assert image[0, y + height // 2, x + width // 2] == 255
            inside[y : y + height, x : x + width] = True
        assert not image[0][~inside].any()


def test_boxes_do_not_overlap_where_the_canvas_has_room(made: dict[str, np.ndarray]) -> None:
    for count, boxes in zip(made["count_train"], made["boxes_train"], strict=True):
        placed = boxes[:count]
        for i in range(count):
            for j in range(i):
                (xi, yi, si, _), (xj, yj, sj, _) = placed[i], placed[j]
                assert xi + si <= xj or xj + sj <= xi or yi + si <= yj or yj + sj <= yi


def test_test_canvases_use_only_test_digits(made: dict[str, np.ndarray]) -> None:
    assert made["image_train"].max() == 255
    assert made["image_test"].max() == 100  # the test digits' grey, never the training digits'


def test_the_same_seed_gives_the_same_data() -> None:
    a = multi_mnist.generate(_digits(255), _digits(100), train=30, test=6, seed=1)
    b = multi_mnist.generate(_digits(255), _digits(100), train=30, test=6, seed=1)
    c = multi_mnist.generate(_digits(255), _digits(100), train=30, test=6, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["boxes_train"], c["boxes_train"])


def test_a_new_test_seed_changes_the_test_canvases_and_not_the_training_ones() -> None:
    a = multi_mnist.generate(_digits(255), _digits(100), train=30, test=12, seed=1, test_seed=7)
    b = multi_mnist.generate(_digits(255), _digits(100), train=30, test=12, seed=1, test_seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a if k.endswith("_train"))
    assert not np.array_equal(a["boxes_test"], b["boxes_test"])


def test_fetch_builds_it_from_the_cached_mnist_and_checks_it(gmdsl_cli, tmp_path: Path, monkeypatch) -> None:
    make_tiny_mnist(tmp_path / "mnist")
    monkeypatch.setenv("GMDSL_DATA", str(tmp_path))
    monkeypatch.setattr(multi_mnist, "TRAIN", 90)
    monkeypatch.setattr(multi_mnist, "TEST", 30)
    code, out, err = gmdsl_cli("data", "fetch", "multi-mnist")
    assert code == 0, err
    folder = tmp_path / "multi-mnist"
    manifest = json.loads((folder / "multi-mnist.json").read_text())
    assert manifest["settings"]["train"] == 90 and len(manifest["sha256"]) == 64
    dataset = open_dataset("multi-mnist")
    assert dataset.fields() == ["boxes", "count", "digits", "image", "where"]  # `where`: derived from `boxes`
    assert dataset.train["image"].shape == (90, 1, 64, 64) and dataset.test["count"].shape == (30,)
    assert dataset.train["where"].shape == (90, 3, 3) and dataset.train["where"].dtype == torch.float32
    torch.testing.assert_close(dataset.test["where"], multi_mnist.boxes_as_where(dataset.test["boxes"]), equal_nan=True)
    data = (folder / "multi-mnist.npz").read_bytes()
    (folder / "multi-mnist.npz").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DataError, match="delete .* and run `gmdsl data fetch multi-mnist` again"):
        open_dataset("multi-mnist")


def test_digits_are_listed_left_to_right_each_with_its_own_box() -> None:
    """Each class is a solid square of its own grey, so a box's middle tells its digit's class."""
    classes = np.arange(200) % 10
    images = np.repeat((25 * (classes + 1)).astype(np.uint8)[:, None, None], 28, 1).repeat(28, 2)
    made = multi_mnist.generate((images, classes), (images, classes), train=90, test=6, seed=5)
    for image, count, digits, boxes in zip(
        *(made[f"{f}_train"] for f in ("image", "count", "digits", "boxes")), strict=True
    ):
        placed = boxes[:count]
        assert (np.diff(placed[:, 0]) >= 0).all()
        for digit, (x, y, width, height) in zip(digits[:count], placed, strict=True):
            assert image[0, y + height // 2, x + width // 2] == 25 * (digit + 1)


def test_where_is_each_box_as_glimpse_reads_it(made: dict[str, np.ndarray]) -> None:
    """`where` (read back with the set) is the box as a side and a centre in glimpse's
    coordinates: a glimpse there reads the whole solid square and nothing around it; NaN past
    the count."""
    boxes = torch.from_numpy(made["boxes_train"][:40])
    count = torch.from_numpy(made["count_train"][:40])
    where = multi_mnist.boxes_as_where(boxes)
    steps = torch.arange(multi_mnist.MAX_COUNT)
    assert (torch.isnan(where).all(-1) == (steps >= count[:, None])).all()
    x, y, side = boxes[0, 0, 0].item(), boxes[0, 0, 1].item(), boxes[0, 0, 2].item()
    expected = [side / 64, (x + side / 2) / 32 - 1, (y + side / 2) / 32 - 1]
    torch.testing.assert_close(where[0, 0], torch.tensor(expected))
    image = torch.from_numpy(made["image_train"][:40]).float() / 255
    for row in range(40):
        for step in range(int(count[row])):
            seen = glimpse(image[row].reshape(1, -1), where[row, step][None], shapes=((1, 64, 64), (3,), (1, 28, 28)))
            inner = seen.reshape(28, 28)[2:-2, 2:-2]  # bilinear reads blur the rim
            assert inner.min() > 0.9, (row, step)


def test_the_unsupervised_spec_trains_without_labels_with_explore_epochs(gmdsl_cli, tmp_path: Path) -> None:
    """specs/multi_mnist_unsupervised.gm as results/multi_mnist.md trains it (no labels, no
    validation, --explore-epochs), on a few canvases of the user's own: it finishes, records the
    setting, and its evaluation counts."""
    data = tmp_path / "canvases.npz"
    np.savez_compressed(data, **multi_mnist.generate(_digits(255), _digits(100), train=64, test=16, seed=4))
    root = Path(__file__).resolve().parent.parent
    run = tmp_path / "run"
    code, out, err = gmdsl_cli(
        "train", str(root / "specs" / "multi_mnist_unsupervised.gm"), "--dataset", str(data), "--labels", "0",
        "--validation", "0", "--explore-epochs", "1", "--kl-warmup", "1", "--epochs", "2", "--batch-size", "32",
        "--no-progress", "--run", str(run),
    )  # fmt: skip
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["explore_epochs"] == 1
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(np.isfinite(losses))
    code, out, err = gmdsl_cli("eval", str(run), "--samples", "2", "--rows", "8")
    assert code == 0, err
    assert 0 <= json.loads((run / "eval-last.json").read_text())["test_error_count"] <= 100
