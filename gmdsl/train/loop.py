"""The training loop of `gmdsl train`: Adam over batches taken by index from tensors that live
on the device, labelled examples mixed into every batch at a set rate and weight, the
learning-rate and beta schedules, metrics and an atomic checkpoint each epoch (and the best
one on validation, and optionally every few steps or minutes within an epoch), and resumption
that continues bitwise where a run stopped, mid-epoch included.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from gmdsl.data.labels import class_error
from gmdsl.runtime.batch import flat_value
from gmdsl.runtime.errors import UserError
from gmdsl.runtime.model import CompiledModel, Objective

from . import distributed
from .checkpoints import CheckpointError, Checkpoints, Position
from .data import TrainingData
from .metrics import write_metrics
from .settings import ConfigError, TrainSettings


class TrainingDiverged(UserError, RuntimeError):
    """The loss stopped being a finite number."""

    code = "training"


class TrainingInterrupted(UserError):
    """Ctrl-C (or SIGTERM) during training; every finished epoch is saved, and the message says
    how to go on. Exits as the shell reports a process stopped by the signal: 128 + its number."""

    code = "interrupted"
    exit_code = 130  # SIGINT's

    def __init__(self, message: str, *, location: str | None = None, exit_code: int = 130):
        super().__init__(message, location=location)
        self.exit_code = exit_code


class OutOfMemory(UserError, RuntimeError):
    """A step, or an evaluation, that needed more memory than the device has: the settings that
    size it are the user's to lower."""

    code = "memory"


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation that failed (torch says so in a RuntimeError on CPUs)."""
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "allocate" in str(exc)
    )


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `kill` and job schedulers send), raised where training stands, so that it
    stops as Ctrl-C stops it."""


# The stop signal a process of a several-process run received and has not acted on yet (0: none).
_deferred_signal = 0


@contextlib.contextmanager
def stopping_on_signals(deferred: bool = False) -> Iterator[None]:
    """Within: SIGTERM raises `Terminated`, as Ctrl-C raises KeyboardInterrupt (in the main
    thread; elsewhere they are left alone). `deferred` (a process of several): both are only
    recorded, and the processes stop together where the training loop next agrees on it
    (`Trainer.agreed`). A process stopped where it stands may leave the others inside a
    collective that then fails ("Connection closed by peer") instead of saying what happened."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, frame: object) -> None:
        global _deferred_signal
        if deferred:
            _deferred_signal = _deferred_signal or number
            return
        raise Terminated() if number == signal.SIGTERM else KeyboardInterrupt()

    caught = (signal.SIGTERM, signal.SIGINT) if deferred else (signal.SIGTERM,)
    before = {number: signal.signal(number, stop) for number in caught}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


_CHECK_EVERY = 20  # steps between reads of the loss on the host (each read waits for a GPU)


def learning_rate_at(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """The rate of step `step` (from 0): a function of the step alone, so a resumed run
    continues the same curve without saving any scheduler state."""
    rate = settings.learning_rate
    if settings.lr_schedule == "cosine":
        return rate * 0.5 * (1 + math.cos(math.pi * step / (settings.epochs * steps_per_epoch)))
    period = settings.lr_period * steps_per_epoch
    if settings.lr_schedule == "step":
        return rate * settings.lr_decay ** (step // period)
    if settings.lr_schedule == "restarts":
        return rate * 0.5 * (1 + math.cos(math.pi * (step % period) / period))
    return rate


def _ramp(step: int, epochs: int, steps_per_epoch: int) -> float:
    """Rising linearly from 0 to 1 over the first `epochs` epochs, then 1 (at once with 0 epochs)."""
    if not epochs:
        return 1.0
    return min(1.0, (step + 1) / (epochs * steps_per_epoch))


def beta_at(settings: TrainSettings, step: int, steps_per_epoch: int, beta: float) -> float:
    """The objective's beta at step `step` (from 0): rising linearly from 0 to the spec's over
    the first `kl_warmup` epochs, so early steps fit the data before the prior pulls."""
    return beta * _ramp(step, settings.kl_warmup, steps_per_epoch)


def explore_at(settings: TrainSettings, step: int, steps_per_epoch: int) -> float:
    """The share of each row's weight spread evenly over the values of the variables summed by
    enumeration at step `step` (from 0): falling linearly from 1 to 0 over the first
    `explore_epochs` epochs, so that the values q first finds unlikely still learn."""
    return 1.0 - _ramp(step, settings.explore_epochs, steps_per_epoch)


class Shard(NamedTuple):
    """A process's part of a global batch split over `world` processes: the global batch's rows
    and labelled rows, which each process's loss is normalised by. DistributedDataParallel
    averages the processes' gradients, so each loss is scaled by `world` to make the average
    the gradient of the global batch's loss."""

    rows: int
    labelled: torch.Tensor  # a 0-dim count, left on the device (no step waits to read it)
    world: int


def _row_mean(values: torch.Tensor, shard: Shard | None) -> torch.Tensor:
    """The mean over the (global) batch's rows of `values`, this process's share of it."""
    return values.mean() if shard is None else values.sum() * shard.world / shard.rows


def dataset_objective(
    objective: Objective, labelled: torch.Tensor, labelled_share: float, alpha: float, shard: Shard | None = None
) -> torch.Tensor:
    """The batch's estimate of the training set's objective per example, (1/N) [sum over
    unlabelled examples of their ELBO + sum over labelled ones of (ELBO + alpha N / N_l log q(y | x))]:
    each stratum's batch mean weighted by its share of the data, whatever share of the batch
    it fills (label_weight = dataset)."""
    log_q = torch.where(labelled, objective.log_q_supervised, 0.0)
    elbo = objective.elbo - alpha * log_q  # each row's own ELBO, without the labels' extra term
    rows = labelled.to(elbo.dtype)
    if shard is None:
        labelled_rows = rows.sum().clamp(min=1)
        unlabelled_rows = (1 - rows).sum().clamp(min=1)
        scale = 1
    else:  # the global batch's strata, this process's share of each sum
        labelled_rows = shard.labelled.to(elbo.dtype).clamp(min=1)
        unlabelled_rows = (shard.rows - shard.labelled.to(elbo.dtype)).clamp(min=1)
        scale = shard.world
    return scale * (
        (1 - labelled_share) * (elbo * (1 - rows)).sum() / unlabelled_rows
        + labelled_share * (elbo * rows).sum() / labelled_rows
        + alpha * log_q.sum() / labelled_rows
    )


TrainingLoss = Callable[[dict[str, torch.Tensor], torch.Tensor, float, int, "Shard | None", float], torch.Tensor]


def training_loss(
    model: CompiledModel, settings: TrainSettings, labelled_share: float, every_label: bool = True
) -> TrainingLoss:
    """The loss of a training batch, given its labelled rows, the objective's beta, how many of
    its last rows are all labelled, the process's shard of the global batch (None: one
    process) and the share of the enumerated values' weight spread evenly (`explore_at`): the
    negative objective, averaged over rows or weighted as the whole data set (`label_weight`).
    The data was checked once, so not again per batch. Through torch.compile when the settings
    ask for it, with dynamic shapes, so an epoch's shorter last batch does not compile it a
    second time.

    `given_rows`: the batch's last rows are all labelled. Where the model enumerates a
    variable, they are scored in a pass of their own in which every label is given, so q
    enumerates only the other rows (the same per-row objective; at half the batch labelled,
    a 1.6x faster step). Where a labelled row may lack some variable's label (`every_label`
    False), those rows keep their masks."""
    alpha = model.options.alpha if settings.alpha is None else settings.alpha

    def objective(batch: dict[str, torch.Tensor], beta: float, given_rows: int, explore: float) -> Objective:
        def score(part: dict[str, torch.Tensor]) -> Objective:
            return model.objective(
                part, samples=settings.samples, alpha=alpha, beta=beta, check_values=False, explore=explore
            )

        rows = len(next(iter(batch.values())))
        if not (model.enumerated and 0 < given_rows < rows):
            return score(batch)
        mixed = score({name: values[: rows - given_rows] for name, values in batch.items()})
        given = score(
            {n: v[rows - given_rows :] for n, v in batch.items() if not (every_label and n.endswith("_observed"))}
        )
        return Objective(
            torch.cat([mixed.elbo, given.elbo]), torch.cat([mixed.log_q_supervised, given.log_q_supervised]), {}
        )

    def loss(
        batch: dict[str, torch.Tensor],
        labelled: torch.Tensor,
        beta: float,
        given_rows: int,
        shard: Shard | None,
        explore: float = 0.0,
    ) -> torch.Tensor:
        scored = objective(batch, beta, given_rows, explore)
        if settings.supervised_only:  # every row is labelled (Trainer.batches)
            return -_row_mean(scored.log_q_supervised, shard)
        if settings.label_weight == "row":
            return -_row_mean(scored.elbo, shard)
        return -dataset_objective(scored, labelled, labelled_share, alpha, shard)

    if not settings.compile:
        return loss
    from torch._inductor import config as inductor

    # torch's own random numbers rather than inductor's: the same draws as eager steps (the
    # arithmetic still rounds a little differently, so results match eager ones closely, not bitwise)
    inductor.fallback_random = True
    return torch.compile(loss, dynamic=True)


def _rank_seed(seed: int, *parts: int) -> int:
    """A seed for a process other than rank 0, from the run's seed and its rank (and position)."""
    for part in parts:
        seed = seed * 65_537 + part + 1
    return seed % 2**63


class _LossModule(torch.nn.Module):
    """The training loss as a module's forward, which DistributedDataParallel wraps: its
    gradients are averaged over the processes in backward."""

    def __init__(self, model: CompiledModel, loss: TrainingLoss) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, *arguments: Any) -> torch.Tensor:
        return self.loss(*arguments)


def selection_keys(select: str, model: CompiledModel, supervised: tuple[str, ...]) -> list[str]:
    """The validation numbers that choose the best checkpoint, most important first (`select`):
    a supervised variable's error (a category's or a binary's) or RMSE (a real's), or the ELBO;
    `auto` is every supervised variable the data labels, in the spec's order, then the ELBO."""
    names = [part.strip() for part in select.split(",")]
    if names == ["auto"]:
        names = [*supervised, "elbo"]
    keys = []
    for name in names:
        if name == "elbo":
            keys.append("validation_elbo")
        elif name in supervised:
            kind = "error" if model.by_name[name].type in ("onehot", "binary") else "rmse"
            keys.append(f"validation_{kind}_{name}")
        else:
            choices = ", ".join([*supervised, "elbo", "auto"])
            raise ConfigError(
                f"select names `{name}`, which is not a supervised variable the data labels: choose from {choices}"
            )
    return keys


def _ranked(record: dict, keys: list[str]) -> list[float]:
    """The epoch's selection numbers as one list to minimise (the ELBO is maximised)."""
    return [-record[key] if key == "validation_elbo" else record[key] for key in keys if key in record]


@dataclass
class Trainer:
    model: CompiledModel
    data: TrainingData
    settings: TrainSettings
    run: Path
    device: torch.device
    progress: bool = True
    log: list[dict] = field(default_factory=list)
    on_step: Callable[[int], None] | None = None  # told of each finished step (its number from 1), for benchmarks
    ranks: distributed.Ranks = field(default_factory=distributed.Ranks)  # the processes training together
    # a step checkpoint's running totals of the epoch it stopped in: {"total", "first_bad", "seconds"}
    resumed_partial: dict | None = field(default=None, init=False)
    last_saved: float = field(default=0.0, init=False)  # time.monotonic() of the last checkpoint

    def __post_init__(self) -> None:
        if not any(True for _ in self.model.parameters()):
            raise ConfigError(
                "the model has nothing to learn: its spec calls no network and declares no `param`; "
                "give a factor a network (`Normal(encoder(x))`) or a learned constant (`param scale : positive[1]`)"
            )
        # fused: one kernel for all parameters (2x faster than the per-tensor loop on a CPU)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=self.settings.learning_rate, fused=True)
        # a class label as the one-hot row the model computes with, made once for the whole
        # training set rather than in every step (a repeated variable's stay a class per step)
        dtype = next(self.model.parameters()).dtype
        for name in self.data.supervised:
            variable, values = self.model.by_name[name], self.data.train[name]
            if variable.type == "onehot" and variable.repeat is None and not values.is_floating_point():
                self.data.train[name] = flat_value(name, values, variable, dtype, self.device, check_values=False)
        self.checkpoints = Checkpoints(self.run / "checkpoint")
        self.order = torch.Generator().manual_seed(self.settings.seed)  # batch order, saved with the run
        self.labelled_index = torch.nonzero(self.data.labelled).flatten()
        if self.settings.supervised_only and not len(self.labelled_index):
            raise ConfigError(
                "supervised_only trains on the labelled examples alone, and this run has none: "
                "give it labels (--labels N) of a dataset with fields for the supervised variables"
            )
        if self.settings.explore_epochs and not self.model.enumerated:
            raise ConfigError(
                "explore_epochs spreads weight over the values of the variables a spec sums `by enumeration`, "
                "and this spec enumerates none: drop --explore-epochs (or sum a discrete variable of q by enumeration)"
            )
        mixes_labels = len(self.labelled_index) and not self.settings.supervised_only
        per_batch = round(self.settings.label_fraction * self.settings.batch_size) if mixes_labels else 0
        self.labelled_per_batch = min(per_batch, self.settings.batch_size - 1)
        share = self.data.labelled.float().mean().item()
        self.selection = selection_keys(self.settings.select, self.model, self.data.supervised)
        # the labelled rows that end a batch carry every label, unless some labelled rows lack one
        every_label = all(bool(torch.equal(self.data.observed[n], self.data.labelled)) for n in self.data.supervised)
        loss = training_loss(self.model, self.settings, share, every_label)
        self.loss_of: TrainingLoss | torch.nn.Module = loss
        if self.ranks.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.loss_of = DistributedDataParallel(
                _LossModule(self.model, loss),
                device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=self.settings.supervised_only,  # p's networks get no gradient
            )
            if self.ranks.rank:  # each process its own sampling noise (rank 0's is a lone process's)
                torch.manual_seed(_rank_seed(self.settings.seed, self.ranks.rank))

    def resume(self) -> Position:
        """Load the newest checkpoint; where training stands (Position(0) when nothing was saved)."""
        if self.checkpoints.position() is None:
            return Position(0)
        position, state = self.checkpoints.load(self.model, self.device)
        try:
            self.optimiser.load_state_dict(state["optimiser"])
            self._check_optimiser_state()
            self.order.set_state(state["order"])  # mid-epoch: the state the epoch's order was drawn from
            self._restore_random(state, position)
            self.log = _metrics(state["metrics"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
            stem = position.stem
            raise CheckpointError(
                f"the training state {self.checkpoints.folder / stem}.state.* is not this run's ({_first_line(exc)}): "
                "it was changed or copied from another run. Nothing was changed: restore it, or train a new run",
                location=str(self.checkpoints.folder),
            ) from None
        for group in self.optimiser.param_groups:  # a checkpoint from before fused Adam restores fused=None
            group["fused"] = True
        self.resumed_partial = state.get("partial")
        return position

    def _check_optimiser_state(self) -> None:
        """Adam's state of each weight, where it has one, must be whole: its step and moments, each
        moment of its weight's shape and finite."""
        for group in self.optimiser.param_groups:
            for key, default in self.optimiser.defaults.items():  # lr, betas, eps, ...: as a fresh Adam has them
                if key not in group or not _fits(default, group[key]):
                    raise ValueError(f"its optimiser setting {key} is {group.get(key)!r}")
            for parameter in group["params"]:
                state = self.optimiser.state.get(parameter, {})
                if state and not {"step", "exp_avg", "exp_avg_sq"} <= set(state):
                    raise ValueError(f"its optimiser state has {sorted(state)}, not a step and two moments")
                for name, value in state.items():
                    if name == "step" or not isinstance(value, torch.Tensor):
                        continue
                    if value.shape != parameter.shape or not bool(torch.isfinite(value).all()):
                        raise ValueError(f"its {name} does not fit a weight of shape {list(parameter.shape)}")

    def _restore_random(self, state: dict, position: Position) -> None:
        """Each process's random generators as they were; a process the checkpoint has no state
        for (a run resumed with more processes) draws from a seed of its rank and position."""
        if not self.ranks.distributed:
            torch.set_rng_state(state["torch"])
            if torch.cuda.is_available() and state.get("cuda") is not None:
                torch.cuda.set_rng_state_all(state["cuda"])
            return
        saved = state.get("torch_ranks") or [state["torch"]]
        if self.ranks.rank < len(saved):
            torch.set_rng_state(saved[self.ranks.rank])
        else:
            torch.manual_seed(_rank_seed(self.settings.seed, self.ranks.rank, position.epoch, position.step))
        on_devices = state.get("cuda_ranks") or []
        if self.device.type == "cuda" and self.ranks.rank < len(on_devices):
            torch.cuda.set_rng_state(on_devices[self.ranks.rank], self.device)

    def shard_of(self, index: torch.Tensor) -> tuple[torch.Tensor, int, Shard | None]:
        """This process's rows of a global batch (its share of the new rows, then of the
        labelled rows that end every batch), how many of them are those labelled rows, and
        the shard to normalise its loss by (None for a lone process: the batch is its own)."""
        if not self.ranks.distributed:
            return index, self.labelled_per_batch, None
        split = len(index) - self.labelled_per_batch
        extra = self.ranks.shard(index[split:])
        mine = torch.cat([self.ranks.shard(index[:split]), extra])
        return mine, len(extra), Shard(len(index), self.data.labelled[index].sum(), self.ranks.world)

    def batches(self) -> list[torch.Tensor]:
        """One epoch of index batches: every example once (in a fresh order), each batch topped
        up at its end with `labelled_per_batch` examples from the labelled subset, which cycle
        in their own order (the loss scores those last rows apart where it enumerates). The
        supervised-only baseline's rows are the labelled examples alone, cycling in fresh orders
        until it has as many as the training set: its epochs are as long as a full run's, so
        that the two compare epoch for epoch."""
        fresh = self.settings.batch_size - self.labelled_per_batch
        if self.settings.supervised_only:
            rounds = math.ceil(self.data.size / len(self.labelled_index))
            orders = [torch.randperm(len(self.labelled_index), generator=self.order) for _ in range(rounds)]
            everyone = torch.cat([self.labelled_index[order] for order in orders])[: self.data.size]
        else:
            everyone = torch.randperm(self.data.size, generator=self.order)
        steps = math.ceil(len(everyone) / fresh)
        extra = torch.empty(0, dtype=torch.long)
        if self.labelled_per_batch:
            rounds = math.ceil(steps * self.labelled_per_batch / len(self.labelled_index))
            extra = torch.cat(
                [
                    self.labelled_index[torch.randperm(len(self.labelled_index), generator=self.order)]
                    for _ in range(rounds)
                ]
            )
        # one copy of the epoch's order to the device; the batches are slices of it there
        everyone, extra = everyone.to(self.device), extra.to(self.device)
        return [
            torch.cat(
                [
                    everyone[i * fresh : (i + 1) * fresh],
                    extra[i * self.labelled_per_batch : (i + 1) * self.labelled_per_batch],
                ]
            )
            for i in range(steps)
        ]

    def batch(self, index: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The rows at `index`, each supervised variable's mask of them, and which are labelled."""
        batch = {name: values[index] for name, values in self.data.train.items()}
        for name in self.data.supervised:
            batch[name + "_observed"] = self.data.observed[name][index]
        return batch, self.data.labelled[index]

    def agreed(self, first_bad: torch.Tensor) -> torch.Tensor:
        """The first step with a non-finite loss of any process; and where any process received
        a stop signal (`stopping_on_signals`), every process stops here as that signal stops one."""
        if not self.ranks.distributed:
            return first_bad
        import signal

        both = torch.stack([first_bad, torch.tensor(_deferred_signal, device=first_bad.device)])
        first_bad, received = distributed.total(self.ranks, both, "max").unbind()
        if int(received):
            raise Terminated() if int(received) == signal.SIGTERM else KeyboardInterrupt()
        return first_bad

    def check_finite(self, first_bad: int, epoch: int) -> None:
        """Stop with a message once a step's loss was not a finite number (`first_bad` > 0)."""
        if not first_bad:
            return
        saved = self.checkpoints.latest()
        kept = (
            f"the last good checkpoint is epoch {saved} in {self.checkpoints.folder}"
            if saved
            else "no epoch finished, so there is no checkpoint"
        )
        raise TrainingDiverged(
            f"the loss stopped being a finite number (nan or inf) at epoch {epoch}, step {first_bad}; {kept}. "
            "Try a lower learning rate (--learning-rate)."
        )

    def forked_random(self) -> contextlib.AbstractContextManager:
        """Random numbers drawn inside come from copies of the generators: training's own
        draws go on as if nothing had been drawn."""
        return torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])

    @torch.no_grad()
    def labelled_accuracy(self, index: torch.Tensor) -> dict[str, str]:
        """Accuracy of q's class predictions on the batch's labelled rows (for the progress bar)."""
        batch, rows = self.batch(index)
        if not self.data.supervised or not rows.any():
            return {}
        observed = {k: v[rows] for k, v in self.model.observed_part(batch).items()}
        # predict draws random numbers: on forked generators, so that a run shown with a progress
        # bar trains exactly as one without
        with self.forked_random():
            predicted = self.model.predict(observed, samples=1)
        out = {}
        for name, probabilities in predicted.items():
            given = batch[name + "_observed"][rows]
            if self.model.by_name[name].type == "onehot" and given.any():
                error = class_error(probabilities[given], batch[name][rows][given])
                out[f"acc_{name}"] = f"{1 - error / 100:.2f}"
        return out

    def fit(
        self,
        start: Position | None = None,
        evaluate: Callable[[CompiledModel], dict] | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Train from `start` (epochs finished, steps of the next done) to the settings' last
        epoch. `evaluate(model)` returns validation metrics for the epoch's record (the lowest
        best epoch by `select` keeps its weights as the best checkpoint: `selection_keys`);
        `on_epoch(record)` is told of each finished epoch. Ctrl-C raises `TrainingInterrupted`;
        what was checkpointed stays."""
        start = start or Position(0)
        epoch = start.epoch + 1
        # Subnormal floats (below 1e-38), which weights, gradients and Adam's moments drift into
        # over a long run, take a slow path in CPU arithmetic: an enumerated MNIST step became
        # 4x slower by the fifth epoch. Training reads them as zero; the process's mode is
        # restored after, so nothing else computes differently. The mode is the calling
        # thread's: torch's other compute threads have it only if they started after it was set
        # (`gmdsl train` sets it first thing: command.run_training).
        torch.set_flush_denormal(True)
        self.last_saved = time.monotonic()
        try:
            for epoch in range(start.epoch + 1, self.settings.epochs + 1):
                self.epoch(epoch, evaluate, on_epoch, done_steps=start.step if epoch == start.epoch + 1 else 0)
        except KeyboardInterrupt as stopped:
            how = 143 if isinstance(stopped, Terminated) else 130
            saved = self.checkpoints.position()
            if saved is not None:
                where = f"epochs 1..{saved.epoch}" if saved.epoch else "no whole epoch"
                steps = f" and {saved.step} steps of epoch {saved.epoch + 1}" if saved.step else ""
                message = (
                    f"interrupted during epoch {epoch}; {where}{steps} are saved in {self.run}. "
                    f"Continue with `gmdsl train --resume {self.run}`"
                )
            else:
                message = f"interrupted during epoch {epoch}, before any epoch was saved; run the same command again"
            if how == 143:
                message = message.replace("interrupted", "stopped by SIGTERM", 1)
            raise TrainingInterrupted(message, location=str(self.run), exit_code=how) from None
        except (MemoryError, RuntimeError) as exc:
            if not out_of_memory(exc):
                raise
            raise OutOfMemory(
                f"a training step did not fit in the memory of {self.device} ({_first_line(exc)}): lower "
                f"--batch-size ({self.settings.batch_size}) or --samples "
                f"({self.settings.samples or self.model.options.samples})"
            ) from None
        finally:
            torch.set_flush_denormal(False)
        return self.log

    def state(self, order: torch.Tensor, partial: dict | None = None) -> dict:
        """What a checkpoint holds besides the weights: enough to go on bitwise. With several
        processes, every process's random generators (gathered: every process calls this)."""
        state = {
            "optimiser": self.optimiser.state_dict(),
            "order": order,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "metrics": self.log,
            **({"partial": partial} if partial is not None else {}),
        }
        if self.ranks.distributed:
            state["torch_ranks"] = distributed.all_ranks(self.ranks, torch.get_rng_state(), self.device)
            if self.device.type == "cuda":
                own = torch.cuda.get_rng_state(self.device)
                state["cuda_ranks"] = distributed.all_ranks(self.ranks, own, self.device)
        return state

    def save(self, position: Position, order: torch.Tensor, partial: dict | None = None) -> None:
        """A checkpoint at `position`, written by rank 0 (every process takes part in gathering it)."""
        state = self.state(order, partial)
        if self.ranks.main:
            self.checkpoints.save(position, self.model, state)
        self.last_saved = time.monotonic()

    def step_checkpoint_due(self, step: int, steps: int) -> bool:
        """Whether to checkpoint after `step` of an epoch of `steps` (its end has its own)."""
        if step == steps:
            return False
        every, minutes = self.settings.checkpoint_every, self.settings.checkpoint_minutes
        due = bool(every and step % every == 0) or bool(minutes and time.monotonic() - self.last_saved >= 60 * minutes)
        if self.ranks.distributed and minutes:  # clocks differ: the processes agree to checkpoint together
            due = bool(distributed.total(self.ranks, torch.tensor(int(due), device=self.device), "max"))
        return due

    def epoch(
        self,
        epoch: int,
        evaluate: Callable[[CompiledModel], dict] | None,
        on_epoch: Callable[[dict], None] | None,
        done_steps: int = 0,
    ) -> None:
        """One epoch: its steps (from step `done_steps` + 1 of a resumed one), then its record,
        checkpoint and metrics."""
        from tqdm.auto import tqdm  # progress bars only where training runs

        self.model.train()
        started = time.perf_counter()
        # kept on the device, so that no step waits on a read of the loss: the running total and
        # the first step whose loss was not finite (0: none yet)
        total = torch.zeros((), device=self.device)
        first_bad = torch.zeros((), dtype=torch.long, device=self.device)
        earlier_seconds = 0.0
        if done_steps and self.resumed_partial is not None:
            totals = self.resumed_partial.get("totals") or []
            own = totals[self.ranks.rank].reshape(()) if self.ranks.rank < len(totals) else None
            total = (own if own is not None else self.resumed_partial["total"]).to(self.device)
            first_bad.fill_(int(self.resumed_partial["first_bad"]))
            earlier_seconds = float(self.resumed_partial["seconds"])
        order = self.order.get_state()  # the epoch's order is drawn from it: a step checkpoint redraws it
        batches = self.batches()
        bar = tqdm(
            batches[done_steps:],
            desc=f"epoch {epoch}/{self.settings.epochs}",
            disable=not self.progress or not sys.stderr.isatty() or not self.ranks.main,  # no bar in logs
            leave=False,
            dynamic_ncols=True,
            initial=done_steps,
            total=len(batches),
        )
        for step, index in enumerate(bar, start=done_steps + 1):
            done = (epoch - 1) * len(batches) + step - 1  # steps before this one
            for group in self.optimiser.param_groups:
                group["lr"] = learning_rate_at(self.settings, done, len(batches))
            rows, given_rows, shard = self.shard_of(index)
            batch, labelled = self.batch(rows)
            beta = beta_at(self.settings, done, len(batches), self.model.options.beta)
            explore = explore_at(self.settings, done, len(batches))
            loss = self.loss_of(batch, labelled, beta, given_rows, shard, explore)
            self.optimiser.zero_grad(set_to_none=True)
            loss.backward()
            self.optimiser.step()
            total += loss.detach()
            first_bad = torch.where((first_bad == 0) & ~torch.isfinite(loss.detach()), step, first_bad)
            if step % _CHECK_EVERY == 0 or step == len(batches):  # the loss is read only here
                first_bad = self.agreed(first_bad)  # all processes stop together
                self.check_finite(int(first_bad), epoch)
                if not bar.disable:
                    bar.set_postfix(loss=f"{total.item() / step:.2f}", **self.labelled_accuracy(index))
            if self.step_checkpoint_due(step, len(batches)):
                first_bad = self.agreed(first_bad)
                self.check_finite(int(first_bad), epoch)  # never a checkpoint of diverged weights
                seconds = earlier_seconds + time.perf_counter() - started
                partial = {"total": total, "first_bad": int(first_bad), "seconds": seconds}
                if self.ranks.distributed:  # each process's own running total, restored to each
                    partial["totals"] = distributed.all_ranks(self.ranks, total.reshape(1), self.device)
                self.save(Position(epoch - 1, step), order, partial)
            if self.on_step is not None:
                self.on_step((epoch - 1) * len(batches) + step)
        seconds = earlier_seconds + time.perf_counter() - started
        if self.ranks.distributed:  # each process's losses were scaled by the number of processes
            total = distributed.total(self.ranks, total) / self.ranks.world
        record = {"epoch": epoch, "loss": total.item() / len(batches), "seconds": seconds}
        if evaluate is not None:
            self.model.eval()
            # validation's Monte Carlo draws neither shift training's random numbers (how a run
            # is validated does not change how it trains) nor differ from epoch to epoch
            with self.forked_random():
                torch.manual_seed(self.settings.seed)
                record.update(evaluate(self.model))
        keys = [key for key in self.selection if key in record]
        scores = _ranked(record, keys)
        if keys and all(scores < _ranked(earlier, keys) for earlier in self.log if keys[0] in earlier):
            # before the epoch's checkpoint: a run stopped between the two redoes this epoch
            self.checkpoints.save_best(epoch, self.model, {key: record[key] for key in keys}, self.settings.select)
        self.log.append(record)
        self.save(Position(epoch), self.order.get_state())
        if self.ranks.main:
            write_metrics(self.run, self.log)
        if on_epoch is not None:
            on_epoch(record)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _metrics(records: object) -> list[dict]:
    """A checkpoint's per-epoch records, once each is what the loop writes: an epoch and a loss."""
    if not isinstance(records, list) or not all(
        isinstance(r, dict) and isinstance(r.get("epoch"), int) and isinstance(r.get("loss"), float) for r in records
    ):
        raise ValueError("its metrics are not a list of epoch records")
    return records


def _fits(default: object, value: object) -> bool:
    """Whether an optimiser setting read from a checkpoint is of its default's kind: a flag (or
    None, which older checkpoints hold for some), a finite number, or numbers of the same count."""
    if isinstance(default, bool) or default is None:
        return value is None or isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, tuple):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(default)
            and all(_fits(d, v) for d, v in zip(default, value, strict=True))
        )
    return True
