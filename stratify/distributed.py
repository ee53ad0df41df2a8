"""Collectives for training on several processes (``torchrun``): the world, autograd gathers.

The training loop (:func:`stratify.training.train`) opens a :func:`collective` context
around every forward pass of a distributed fit; inside it, :func:`current` returns the
:class:`World` and the contrastive terms compare their local anchors with the embeddings of
every rank, gathered by :func:`gather`. Outside such a context (a single process, or a user
calling a loss on one rank) :func:`current` is None and nothing is communicated.

Gradients through :func:`gather` and :func:`all_reduce_sum` follow the rule that makes a
distributed step equal to a single-process step on the global batch: every rank
back-propagates its own share ``f_r`` of the loss (the shares average to the global loss),
the backward of the gather **sums** the incoming gradients over ranks and returns this
rank's rows, so rank ``r`` receives ``d(sum_r' f_r') / d x_r = W dL / d x_r``, and
DistributedDataParallel's gradient averaging (division by W) gives ``dL / d theta``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "World",
    "all_reduce_sum",
    "collective",
    "current",
    "gather",
    "gather_objects",
    "is_main_process",
]


@dataclass(frozen=True)
class World:
    """The processes of a distributed fit.

    Attributes
    ----------
    rank : int
        This process, in ``[0, size)``.
    size : int
        Number of processes (``W``).
    group : torch.distributed.ProcessGroup or None
        The group the loss collectives run on (None: the default group).
    """

    rank: int
    size: int
    group: Any = None


_ACTIVE: list[World] = []


@contextlib.contextmanager
def collective(world: World | None) -> Iterator[None]:
    """Make ``world`` the :func:`current` one inside the block (``None``: no change)."""
    if world is None:
        yield
        return
    _ACTIVE.append(world)
    try:
        yield
    finally:
        _ACTIVE.pop()


def current() -> World | None:
    """The world of the enclosing :func:`collective` block, or None (single process)."""
    return _ACTIVE[-1] if _ACTIVE else None


def is_main_process() -> bool:
    """True unless this is a rank other than 0 of an initialised process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def _summed(x: Tensor, world: World) -> Tensor:
    """A copy of ``x`` summed over the ranks (every rank gets the sum)."""
    total = x.contiguous().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=world.group)
    return total


def _sizes(n: int, world: World, device: torch.device) -> list[int]:
    size = torch.tensor([n], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world.size)]
    dist.all_gather(sizes, size, group=world.group)
    return [int(s) for s in sizes]


def _gather_rows(x: Tensor, world: World) -> tuple[Tensor, int]:
    """All-gather along dim 0 with row counts that may differ per rank (padded to the longest)."""
    sizes = _sizes(x.shape[0], world, x.device)
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded, group=world.group)
    out = torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)])
    return out, sum(sizes[: world.rank])


class _Gather(torch.autograd.Function):
    """:func:`_gather_rows`, differentiable."""

    @staticmethod
    def forward(ctx, x: Tensor, world: World) -> Tensor:
        out, start = _gather_rows(x.detach(), world)
        ctx.world, ctx.start, ctx.n = world, start, x.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        # every rank's loss depends on every rank's rows: sum the gradients of all ranks,
        # then keep this rank's slice (not the local gradient alone, not an average)
        return _summed(grad, ctx.world)[ctx.start : ctx.start + ctx.n], None


def gather(x: Tensor, world: World | None = None) -> tuple[Tensor, int]:
    """Rows of every rank, concatenated in rank order, with gradients to their owners.

    Parameters
    ----------
    x : Tensor, shape (n_r, ...)
        This rank's rows (``n_r`` may differ between ranks, trailing shapes may not).
    world : World, optional
        Defaults to :func:`current`; with neither, ``x`` is returned as it is.

    Returns
    -------
    gathered : Tensor, shape (sum_r n_r, ...)
        Differentiable when ``x`` requires grad: the backward sums the gradients of all
        ranks and returns this rank's rows (see the module notes).
    offset : int
        Index of this rank's first row in ``gathered``.
    """
    world = current() if world is None else world
    if world is None or world.size == 1:
        return x, 0
    if not (torch.is_grad_enabled() and x.requires_grad):
        return _gather_rows(x, world)
    out = _Gather.apply(x, world)
    return out, int(out.grad_fn.start)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, world: World) -> Tensor:
        ctx.world = world
        return _summed(x, world)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        # y = sum_r x_r on every rank: d(sum_r' f_r') / d x_r = sum_r' d f_r' / d y
        return _summed(grad, ctx.world), None


def all_reduce_sum(x: Tensor, world: World | None = None) -> Tensor:
    """Sum of ``x`` over the ranks, on every rank, differentiable (identity without a world)."""
    world = current() if world is None else world
    if world is None or world.size == 1:
        return x
    return _AllReduceSum.apply(x, world)


def gather_objects(obj: Any, world: World | None = None) -> list[Any]:
    """Picklable objects of every rank in rank order (``[obj]`` without a world)."""
    world = current() if world is None else world
    if world is None or world.size == 1:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj, group=world.group)
    return out
