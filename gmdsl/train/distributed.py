"""Training over several processes with PyTorch distributed: `gmdsl train --nproc N` starts
them through torchrun, and a process that torchrun started (its RANK and WORLD_SIZE in the
environment) joins the group, nccl on GPUs and gloo on CPUs.

Every process builds the same global batches (the same seeded order); each trains on its shard
of every batch, its share of the new rows and of the labelled rows, and
DistributedDataParallel averages the gradients, so a step is the step of one process on the
global batch. Only rank 0 writes: the run directory, metrics, checkpoints and pictures."""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes (the only one that does)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of `rows`: the shares differ by at most one row, and
        together they are `rows` in order."""
        base, extra = divmod(len(rows), self.world)
        start = self.rank * base + min(self.rank, extra)
        return rows[start : start + base + (self.rank < extra)]


def from_environment() -> Ranks:
    """The ranks torchrun gave this process (RANK, WORLD_SIZE, LOCAL_RANK); one process otherwise."""
    if "WORLD_SIZE" not in os.environ:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))


def join(ranks: Ranks, device: torch.device) -> None:
    """Join the process group (once per process): nccl for GPUs, gloo for CPUs."""
    if not ranks.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def device_of(ranks: Ranks, device: torch.device) -> torch.device:
    """Each process's own GPU (its local rank) when training on GPUs."""
    return torch.device("cuda", ranks.local_rank) if ranks.distributed and device.type == "cuda" else device


def broadcast_text(ranks: Ranks, text: str | None) -> str:
    """Rank 0's `text` on every process (a run directory chosen by rank 0)."""
    if not ranks.distributed:
        assert text is not None
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)  # a str between our own processes, not from a file
    assert box[0] is not None
    return box[0]


def all_ranks(ranks: Ranks, state: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """Every process's copy of a tensor of one shape (each process's random-number state)."""
    if not ranks.distributed:
        return [state]
    moved = state.to(device)
    gathered = [torch.empty_like(moved) for _ in range(ranks.world)]
    dist.all_gather(gathered, moved)
    return [g.cpu() for g in gathered]


def total(ranks: Ranks, value: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """`value` summed (or its maximum) over the processes; itself for one process."""
    if ranks.distributed:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return value


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def leave() -> None:
    """Leave the process group. The collector runs first: the training's DistributedDataParallel
    wrapper sits in reference cycles, and freed only at interpreter exit, its gloo work objects
    abort the process (SIGABRT, "terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """Run `gmdsl ARGV` in `nproc` processes on this machine through torchrun (its exit code)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        # "--": what follows is gmdsl's, not torchrun's (it would read --run as its own --run-path)
        torchrun(["--standalone", "--nproc-per-node", str(nproc), "--module", "gmdsl", "--", *argv])
    except SystemExit as exc:  # torchrun reports a failed process by raising
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except SignalException as exc:  # Ctrl-C or SIGTERM reached torchrun: its processes were stopped and said so
        return 128 + int(exc.sigval)
    except ChildFailedError as exc:
        # the first process to fail says why (torchrun then stops the others, which fail after it)
        _, first = exc.get_first_failure()
        if first.exitcode in (1, 130, 143):  # a mistake of the user's, or a signal: rank 0 said so
            return first.exitcode
        print("error: a training process failed; its own message is above", file=sys.stderr)
        return 3 if first.exitcode == 3 else 1
    return 0
