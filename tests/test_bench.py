"""The benchmark's hand-written model computes the same objective as the compiled spec, so
bench/step_time.py compares like with like (the timing itself is not a test)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import step_time  # noqa: E402


def test_hand_written_mnist_matches_the_compiled_spec() -> None:
    compiled, hand = step_time.twin_models(samples=3)
    batch = step_time.batch_of(16, torch.Generator().manual_seed(0))
    onehot = torch.nn.functional.one_hot(batch["y"], 10).float()
    torch.manual_seed(4)
    expected = compiled.objective(batch, samples=3).elbo
    torch.manual_seed(4)
    torch.testing.assert_close(hand.elbo(batch["x"], onehot, batch["y_observed"]), expected, rtol=1e-4, atol=1e-3)
