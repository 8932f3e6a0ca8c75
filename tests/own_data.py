"""Small generated datasets of a user's own kind for the tests: 16-D points from 3 classes,
labelled for some of them, and the spec a user would write for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

POINTS_SPEC = """\
model points

observed   x : real[16]
supervised y : onehot[3]
latent     z : real[2]

p(y)        = Categorical(probs = uniform)
p(z)        = Normal(0, 1)
p(x | y, z) = Normal(loc = decoder(y, z), scale = 0.5)

q(y | x)    = Categorical(logits = classifier(x))
q(z | x, y) = Normal(encoder(x, y))

net classifier = mlp(hidden = [16])
net encoder    = mlp(hidden = [16])
net decoder    = mlp(hidden = [16])

objective semisupervised(alpha = 1, samples = 2)
"""

# the same points with a real label: where each point's cluster centre lies (its first 2 values)
POSITION_SPEC = (
    POINTS_SPEC.replace("supervised y : onehot[3]", "supervised y : real[2]")
    .replace("p(y)        = Categorical(probs = uniform)", "p(y)        = Normal(0, 1)")
    .replace("q(y | x)    = Categorical(logits = classifier(x))", "q(y | x)    = Normal(classifier(x))")
)


def points(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 2, size=(3, 16))
    classes = rng.integers(0, 3, rows)
    return (centres[classes] + rng.normal(0, 1, (rows, 16))).astype(np.float32), classes


def write_points(folder: Path, missing: float, seed: int = 0, train: int = 240, test: int = 60) -> Path:
    """points.npz whose train split lacks the share `missing` of its labels (-1), and the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = points(train, seed)
    x_test, y_test = points(test, seed + 1)
    hidden = np.random.default_rng(seed + 2).random(train) < missing
    y_train = np.where(hidden, -1, y_train)
    np.savez(folder / "points.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    (folder / "points.gm").write_text(POINTS_SPEC, encoding="utf-8")
    return folder / "points.npz"
