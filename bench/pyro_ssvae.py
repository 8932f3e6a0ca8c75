"""Baseline for the time-to-accuracy benchmark: Pyro's SS-VAE (the M2 model of Kingma et al.,
2014) as pyro-ppl's examples/vae/ss_vae_M2.py trains it, on the caller's MNIST split.

    .venv/bin/python bench/pyro_ssvae.py --budget 40 --evaluate-every 100

Written against pyro-ppl 1.9.2 (pyro-api 0.1.2, opt-einsum 3.4.0), following ss_vae_M2.py as of
the 1.9.1 tag (unchanged on master through Oct 2024), run with the configuration of its EXAMPLE_RUN line
`--aux-loss -alm 46 -enum parallel -sup 3000 -zd 50 -hl 500 -lr 0.00042 -b1 0.95 -bs 200`:

- model p(z) = N(0, I) with z of 50 dims, p(y) uniform over 10 one-hot classes,
  p(x|y,z) = Bernoulli(decoder(z, y)) scoring the pixel intensities in [0, 1] (not binarised:
  utils/mnist_cached.py only divides by 255, and the Bernoulli has validate_args=False);
- guide q(y|x) = Categorical(encoder_y(x)), q(z|x,y) = N(encoder_z(x, y)); every network is an
  MLP with one hidden layer of 500 Softplus units (utils/custom_mlp.py: hidden layers initialised
  N(0, 0.001), output layers PyTorch's default; Softmax, (identity, exp) and Sigmoid outputs);
- y is summed out exactly: TraceEnum_ELBO(max_plate_nesting=1) with the guide wrapped in
  config_enumerate(..., "parallel", expand=True), not JIT-compiled (`--jit` is off);
- the auxiliary classification loss: a second SVI (Trace_ELBO) on -46 * log q(y|x) of the
  labelled examples (`-alm 46`), sharing the one pyro.optim.Adam(lr=0.00042, betas=(0.95, 0.999));
- batches of 200; each epoch shuffles the labelled and unlabelled rows separately and walks
  ceil(labelled/200) + ceil(unlabelled/200) batches, batch i being labelled when
  i % int(train rows / labelled rows) == 1 until the labelled batches run out; every batch
  steps both SVIs, as run_inference_for_epoch does.

A "step" below is one batch of that loop (two SVI steps). Where this differs from the example:
- the caller's 60000 training rows are used, the labelled ones chosen by the caller and all the
  others unlabelled; the example holds out the last 10000 as a validation set (used only to
  report a best-validation accuracy), so its interval is int(50000/3000) = 16 and here 20;
- batches are gathered by indexing tensors rather than through a DataLoader collating single
  items, which only makes Pyro's clock faster;
- test accuracy (argmax of q(y|x)) is measured every `evaluate_every` steps rather than per epoch,
  off the training clock, and training stops at the time budget or at 95% test accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam  # type: ignore[attr-defined]  # generated at import from torch.optim
from torch import nn

from gmdsl.data import open_dataset

CLASSES = 10
PIXELS = 784
Z_DIM = 50
HIDDEN = 500
LEARNING_RATE = 0.00042
BETAS = (0.95, 0.999)
BATCH_SIZE = 200
AUX_LOSS_MULTIPLIER = 46.0
TARGET_ACCURACY = 0.95


def concat(*tensors: torch.Tensor) -> torch.Tensor:
    """Concatenate on the last dim, broadcasting the rest: under enumeration y has a leading
    dim of 10 that x does not."""
    shape = torch.broadcast_shapes(*(t.shape[:-1] for t in tensors))
    return torch.cat([t.expand(*shape, t.shape[-1]) for t in tensors], dim=-1)


def hidden_layer(inputs: int) -> nn.Sequential:
    linear = nn.Linear(inputs, HIDDEN)
    # the example's MLP draws hidden layers from N(0, 0.001) "for numerical stability"
    nn.init.normal_(linear.weight, 0.0, 0.001)
    nn.init.normal_(linear.bias, 0.0, 0.001)
    return nn.Sequential(linear, nn.Softplus())


class GaussianEncoder(nn.Module):
    """q(z|x,y): one hidden layer, then separate loc and log-scale heads (scale = exp)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = hidden_layer(PIXELS + CLASSES)
        self.loc = nn.Linear(HIDDEN, Z_DIM)
        self.log_scale = nn.Linear(HIDDEN, Z_DIM)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.hidden(inputs)
        return self.loc(hidden), self.log_scale(hidden).exp()


class SSVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder_y = nn.Sequential(hidden_layer(PIXELS), nn.Linear(HIDDEN, CLASSES), nn.Softmax(dim=-1))
        self.encoder_z = GaussianEncoder()
        self.decoder = nn.Sequential(hidden_layer(Z_DIM + CLASSES), nn.Linear(HIDDEN, PIXELS), nn.Sigmoid())

    def model(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        pyro.module("ss_vae", self)
        batch = xs.shape[0]
        with pyro.plate("data"):
            prior_z = dist.Normal(xs.new_zeros(batch, Z_DIM), xs.new_ones(batch, Z_DIM))
            zs = pyro.sample("z", prior_z.to_event(1))
            ys = pyro.sample("y", dist.OneHotCategorical(xs.new_full((batch, CLASSES), 1.0 / CLASSES)), obs=ys)
            # intensities in [0, 1] are outside a Bernoulli's support; the example scores them anyway
            likelihood = dist.Bernoulli(self.decoder(concat(zs, ys)), validate_args=False)
            pyro.sample("x", likelihood.to_event(1), obs=xs)

    def guide(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        with pyro.plate("data"):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(self.encoder_y(xs)))
            loc, scale = self.encoder_z(concat(xs, ys))
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def model_classify(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """The auxiliary loss: -AUX_LOSS_MULTIPLIER * log q(y|x) on labelled batches."""
        pyro.module("ss_vae", self)
        with pyro.plate("data"):
            if ys is not None:
                with pyro.poutine.scale(scale=AUX_LOSS_MULTIPLIER):
                    pyro.sample("y_aux", dist.OneHotCategorical(self.encoder_y(xs)), obs=ys)

    def guide_classify(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """model_classify has no latent variables to guide."""


@torch.no_grad()
def test_accuracy(ssvae: SSVAE, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (ssvae.encoder_y(images).argmax(dim=-1) == labels).float().mean().item()


def batch_schedule(labelled_batches: int, unlabelled_batches: int, interval: int) -> list[bool]:
    """Which batches of an epoch are labelled, as run_inference_for_epoch decides it."""
    schedule = []
    taken = 0
    for i in range(labelled_batches + unlabelled_batches):
        labelled = i % interval == 1 and taken < labelled_batches
        taken += labelled
        schedule.append(labelled)
    if taken != labelled_batches:
        raise ValueError(f"the example's schedule cannot fit {labelled_batches} labelled batches in an epoch")
    return schedule


def run(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    labelled_index: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    budget_seconds: float,
    evaluate_every: int,
    threads: int,
    seed: int,
) -> list[dict]:
    """Train until the training clock passes `budget_seconds` or test accuracy reaches 95%;
    one record per evaluation (every `evaluate_every` steps and at the end)."""
    torch.set_num_threads(threads)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)

    ssvae = SSVAE()
    optimizer = Adam({"lr": LEARNING_RATE, "betas": BETAS})
    guide = config_enumerate(ssvae.guide, "parallel", expand=True)
    elbo = SVI(
        ssvae.model, guide, optimizer, loss=TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)
    )
    aux = SVI(ssvae.model_classify, ssvae.guide_classify, optimizer, loss=Trace_ELBO())

    is_labelled = torch.zeros(train_images.shape[0], dtype=torch.bool)
    is_labelled[labelled_index] = True
    labelled_x = train_images[labelled_index]
    labelled_y = nn.functional.one_hot(train_labels[labelled_index], CLASSES).to(train_images.dtype)
    unlabelled_x = train_images[~is_labelled]  # their labels are never read
    schedule = batch_schedule(
        math.ceil(len(labelled_x) / BATCH_SIZE),
        math.ceil(len(unlabelled_x) / BATCH_SIZE),
        int(train_images.shape[0] / len(labelled_x)),
    )

    records: list[dict] = []
    step = 0
    train_seconds = 0.0
    resumed = time.perf_counter()
    while True:
        labelled_batches = iter(torch.randperm(len(labelled_x)).split(BATCH_SIZE))
        unlabelled_batches = iter(torch.randperm(len(unlabelled_x)).split(BATCH_SIZE))
        for labelled in schedule:
            if labelled:
                rows = next(labelled_batches)
                elbo.step(labelled_x[rows], labelled_y[rows])
                aux.step(labelled_x[rows], labelled_y[rows])
            else:
                xs = unlabelled_x[next(unlabelled_batches)]
                elbo.step(xs)
                # no aux loss here, but the example still steps it: Adam then moves every parameter
                # again on its momentum alone (SVI zeroes gradients rather than dropping them)
                aux.step(xs)
            step += 1
            out_of_time = train_seconds + time.perf_counter() - resumed > budget_seconds
            if step % evaluate_every == 0 or out_of_time:
                train_seconds += time.perf_counter() - resumed
                accuracy = test_accuracy(ssvae, test_images, test_labels)
                records.append(
                    {
                        "step": step,
                        "epoch": step / len(schedule),
                        "train_seconds": train_seconds,
                        "test_accuracy": accuracy,
                    }
                )
                if out_of_time or accuracy >= TARGET_ACCURACY:
                    return records
                resumed = time.perf_counter()


def balanced_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """`count // CLASSES` random rows of each class, as the example's split picks its labelled set."""
    generator = torch.Generator().manual_seed(seed)
    per_class = []
    for digit in range(CLASSES):
        rows = (labels == digit).nonzero().squeeze(1)
        per_class.append(rows[torch.randperm(len(rows), generator=generator)[: count // CLASSES]])
    return torch.cat(per_class)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds")
    parser.add_argument("--evaluate-every", type=int, default=100, help="steps (batches) between test evaluations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=int, default=3000, help="labelled training examples, class-balanced")
    args = parser.parse_args()

    ds = open_dataset("mnist")
    # the example scales pixels to [0, 1] (utils/mnist_cached.py) and does not binarise them
    train_images = ds.train["image"].reshape(-1, PIXELS).float() / 255
    test_images = ds.test["image"].reshape(-1, PIXELS).float() / 255
    records = run(
        train_images,
        ds.train["label"],
        balanced_subset(ds.train["label"], args.labels, args.seed),
        test_images,
        ds.test["label"],
        budget_seconds=args.budget,
        evaluate_every=args.evaluate_every,
        threads=args.threads,
        seed=args.seed,
    )
    for record in records:
        print(json.dumps(record))


if __name__ == "__main__":
    main()
