"""Time one training step (objective, backward, Adam) of a compiled MNIST spec against its
hand-written PyTorch twin (bench/handwritten_mnist.py), in the same run, and print the ratio.

    .venv/bin/python bench/step_time.py [--spec mnist|mnist_enum|mnist_wide] [--batch 128] [--samples 8]
        [--rounds 30] [--device cpu|cuda]

The two models share weights and random draws, and the script checks that they compute the
same objective before timing them, so it compares like with like. Both use fused Adam, and the
compiled model skips the per-batch value checks, as `gmdsl train` does.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from handwritten_mnist import HAND_WRITTEN, HandWrittenMnist

import gmdsl

ROOT = Path(__file__).resolve().parent.parent


def batch_of(size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = (torch.rand(size, 784, generator=generator) < 0.2).float()
    labels = torch.randint(0, 10, (size,), generator=generator)
    labelled = torch.rand(size, generator=generator) < 0.1  # semi-supervised: a few labels per batch
    return {"x": x, "y": labels, "y_observed": labelled}


def twin_models(samples: int, spec: str = "mnist") -> tuple[torch.nn.Module, HandWrittenMnist]:
    """The compiled specs/SPEC.gm and its hand-written twin, with the same weights."""
    compiled = gmdsl.compile(ROOT / "specs" / f"{spec}.gm")
    hand = HandWrittenMnist(samples=samples, **HAND_WRITTEN[spec])
    networks = {
        "classifier": compiled.encoder.classifier,
        "encoder": compiled.encoder.encoder,
        "decoder": compiled.decoder.decoder,
    }
    hand.load_state_dict(
        {f"{name}.{key}": value for name, network in networks.items() for key, value in network.state_dict().items()}
    )
    return compiled, hand


def assert_same_objective(
    compiled: torch.nn.Module, hand: HandWrittenMnist, batch: dict[str, torch.Tensor], samples: int
) -> None:
    """The twins compute the same objective from the same random draws (else timing them means nothing)."""
    onehot = torch.nn.functional.one_hot(batch["y"], 10).float()
    torch.manual_seed(1)
    compiled_elbo = compiled.objective(batch, samples=samples).elbo
    torch.manual_seed(1)
    hand_elbo = hand.elbo(batch["x"], onehot, batch["y_observed"])
    torch.testing.assert_close(compiled_elbo, hand_elbo, rtol=1e-4, atol=1e-3)


def synchronise(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock read means it is done (GPUs only)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(spec: str, batch_size: int, samples: int, rounds: int, device: str = "cpu") -> dict[str, float]:
    """Median seconds of a training step, compiled and hand-written, timed in alternation so
    that drifts in the machine's load hit both alike."""
    compiled, hand = twin_models(samples, spec)
    batch = batch_of(batch_size, torch.Generator().manual_seed(0))
    assert_same_objective(compiled, hand, batch, samples)
    where = torch.device(device)
    compiled, hand = compiled.to(where), hand.to(where)
    batch = {name: value.to(where) for name, value in batch.items()}
    onehot = torch.nn.functional.one_hot(batch["y"], 10).float()
    given = {**batch, "y": onehot}  # both take one-hot labels, as `gmdsl train` makes them once for its data
    optimisers = {
        "compiled": torch.optim.Adam(compiled.parameters(), 1e-3, fused=True),
        "hand-written": torch.optim.Adam(hand.parameters(), 1e-3, fused=True),
    }
    losses = {
        "compiled": lambda: compiled.objective(given, samples=samples, check_values=False).loss,
        "hand-written": lambda: -hand.elbo(batch["x"], onehot, batch["y_observed"]).mean(),
    }

    def step(name: str) -> float:
        synchronise(where)
        start = time.perf_counter()
        loss = losses[name]()
        optimisers[name].zero_grad()
        loss.backward()
        optimisers[name].step()
        synchronise(where)
        return time.perf_counter() - start

    for name in losses:  # warm up (as many steps as are timed, up to 5: a smoke run of 1 round is quick)
        for _ in range(min(5, rounds)):
            step(name)
    times: dict[str, list[float]] = {name: [] for name in losses}
    for _ in range(rounds):
        for name in losses:
            times[name].append(step(name))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", choices=sorted(HAND_WRITTEN), default="mnist")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = parser.parse_args()
    median = step_times(args.spec, args.batch, args.samples, args.rounds, args.device)
    print(
        f"{args.spec}.gm training step, batch {args.batch}, samples {args.samples}, {args.rounds} rounds, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    for name, value in median.items():
        print(f"  {name:>12}: {value * 1e3:7.2f} ms (median)")
    print(f"  ratio compiled / hand-written: {median['compiled'] / median['hand-written']:.3f}")


if __name__ == "__main__":
    main()
