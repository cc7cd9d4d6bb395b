"""Data-parallel training on ``torch.distributed``, as launched by ``torchrun``.

``torchrun --nproc-per-node N -m rssm train ...`` starts N copies of ``rssm train``; each reads
its rank from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, set by torchrun), and
:func:`session` joins the process group (gloo on CPU, NCCL on CUDA). Every rank then has its own
environments, replay and random streams, and all ranks train one agent: after each backward
pass :func:`average_gradients` averages the gradients over the ranks (one all-reduce of a flat
buffer per optimiser), so the ranks take identical optimiser steps from identical weights. Batch
statistics that are not means (the return normaliser's percentiles) are taken over the gathered
batch (:func:`gather`). What else is synchronised, and what is not, is written in
docs/scaling.md.

Outside torchrun (``WORLD_SIZE`` unset or 1) every function here is a no-op on one rank, so the
single-process code path is unchanged.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "DistributedError",
    "World",
    "active",
    "average_gradients",
    "broadcast_object",
    "gather",
    "gather_objects",
    "rank",
    "reduce_flags",
    "session",
    "split_batch",
    "world_size",
]

RANK_SEED_STRIDE = 100_000  # rank r's environments, replay and generators use seed + r * this


class DistributedError(RuntimeError):
    """A collective failed: another rank stopped (crashed, killed) or the group broke."""


@dataclass(frozen=True)
class World:
    """This process's place in the group: ``rank`` of ``size``; ``local_rank`` on its machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = World()  # a run without torchrun


def active() -> bool:
    """Whether a process group of more than one rank is initialised."""
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def rank() -> int:
    return torch.distributed.get_rank() if active() else 0


def world_size() -> int:
    return torch.distributed.get_world_size() if active() else 1


def _launched() -> World | None:
    """The rank torchrun (or another launcher using its variables) gave this process."""
    size = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if size <= 1:
        return None
    try:
        return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    except (KeyError, ValueError):
        raise DistributedError(
            f"WORLD_SIZE={size} is set but RANK is missing or not an int; start multi-process "
            "training with torchrun (torchrun --nproc-per-node N -m rssm train ...)"
        ) from None


@contextlib.contextmanager
def session(device: str, timeout_minutes: float = 30.0) -> Iterator[tuple[World, str]]:
    """Joins the process group when this process was launched by torchrun with more than one
    rank, and leaves it at the end.

    Yields:
        ``(world, device)``: this rank's place, and its device (``cuda`` becomes
        ``cuda:<LOCAL_RANK>``, one GPU per rank).
    """
    launched = _launched()
    if launched is None or active():  # one process, or a group the caller already joined
        yield (World(rank(), world_size(), launched.local_rank if launched else 0), device)
        return
    kind = torch.device(device).type
    if kind == "cuda":
        device = f"cuda:{launched.local_rank}"
        torch.cuda.set_device(device)
    backend = "nccl" if kind == "cuda" else "gloo"
    try:
        torch.distributed.init_process_group(
            backend, timeout=datetime.timedelta(minutes=timeout_minutes)
        )
    except (RuntimeError, ValueError) as error:
        raise DistributedError(
            f"rank {launched.rank} of {launched.size} could not join the process group "
            f"({backend}): {error}; check torchrun's --rdzv-endpoint / --master-addr and port"
        ) from None
    try:
        yield launched, device
    finally:
        with contextlib.suppress(RuntimeError, ValueError):
            torch.distributed.destroy_process_group()


def _failed(what: str, error: BaseException) -> DistributedError:
    return DistributedError(
        f"rank {rank()} of {world_size()}: {what} failed ({str(error).splitlines()[0][:200]}); "
        "another rank has most likely stopped (its own error is printed above). Checkpoints in "
        "the run directory are only ever complete: rerun the same torchrun command with --resume "
        "to go on from the last one"
    )


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (RuntimeError, ValueError) as error:  # DistBackendError is a RuntimeError
        raise _failed(what, error) from error


def split_batch(batch_size: int, size: int) -> int:
    """Each rank's share of the global batch ``replay.batch_size``.

    Raises:
        ValueError: ``size`` does not divide ``batch_size``.
    """
    if batch_size % size:
        fits = [n for n in range(1, batch_size + 1) if batch_size % n == 0]
        raise ValueError(
            f"replay.batch_size {batch_size} (the global batch) is not divisible by the "
            f"{size} ranks torchrun started; use --nproc-per-node (x --nnodes) in "
            f"{fits}, or a batch size divisible by {size}"
        )
    return batch_size // size


def average_gradients(params: Iterable[torch.nn.Parameter], loss: Tensor) -> Tensor:
    """Replaces each parameter's gradient by its mean over the ranks (a missing gradient counts
    as zeros) in one all-reduce; returns the loss averaged the same way, which is not finite
    when any rank's loss is not, so that every rank skips the same non-finite updates."""
    params = list(params)
    if not active():
        return loss
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float()])
    _call("the gradient all-reduce", torch.distributed.all_reduce, flat)
    flat /= world_size()
    sizes = [p.numel() for p in params]
    for param, chunk in zip(params, flat[:-1].split(sizes), strict=True):
        param.grad = chunk.view_as(param).to(param.dtype)
    return flat[-1]


def gather(tensor: Tensor) -> Tensor:
    """The ranks' ``tensor`` (equal shapes) concatenated along dim 0, rank 0's rows first."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    _call("an all-gather", torch.distributed.all_gather, parts, tensor.contiguous())
    return torch.cat(parts)


def reduce_flags(*flags: bool) -> tuple[bool, ...]:
    """Each flag ORed over the ranks (e.g. "stop now"), so that all ranks take the same branch."""
    if not active():
        return flags
    values = torch.tensor([float(f) for f in flags])
    _call("agreeing on the loop's flags", torch.distributed.all_reduce, values,
          op=torch.distributed.ReduceOp.MAX)  # fmt: skip
    return tuple(bool(v) for v in values)


def gather_objects(value: Any) -> list[Any] | None:
    """Every rank's ``value`` (picklable) on rank 0, in rank order; None on the other ranks."""
    if not active():
        return [value]
    out: list[Any] | None = [None] * world_size() if rank() == 0 else None
    _call("gathering the ranks' states", torch.distributed.gather_object, value, out, dst=0)
    return out


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not active():
        return value
    box = [value]
    _call("a broadcast from rank 0", torch.distributed.broadcast_object_list, box, src=0)
    return box[0]
