"""What a fit needs to run on several processes: the process group, sharding, BatchNorm sync.

A fit is distributed when ``torch.distributed`` is initialised with more than one process, or
when the ``torchrun`` environment (``WORLD_SIZE`` > 1, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) is set, in which case :func:`join` initialises the default
process group itself (``nccl`` on GPUs, ``gloo`` on CPUs). The loss collectives
(:mod:`stratify.distributed`) run on a second group of the same processes, so that they never
interleave with DistributedDataParallel's gradient all-reduces.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from stratify.distributed import World, all_reduce_sum

__all__ = [
    "GroupBatchNorm",
    "join",
    "local_world_size",
    "on_main",
    "process_world",
    "shard",
    "sync_batchnorm",
]

T = TypeVar("T")

_LOSS_GROUPS: dict[int, Any] = {}


def _torchrun_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def local_world_size() -> int:
    """Processes of this fit on this machine (``LOCAL_WORLD_SIZE`` of torchrun, else 1)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def process_world() -> World | None:
    """The :class:`World` of the initialised default group (None: single process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    default = dist.group.WORLD
    key = id(default)
    if key not in _LOSS_GROUPS:  # every rank reaches this in the same order
        _LOSS_GROUPS[key] = dist.new_group(backend=dist.get_backend())
    return World(rank=dist.get_rank(), size=dist.get_world_size(), group=_LOSS_GROUPS[key])


def join(device: str) -> tuple[World | None, torch.device | None]:
    """Join the distributed fit this process belongs to, if any.

    Parameters
    ----------
    device : str
        The ``TrainConfig.device`` setting: under a process group, ``"auto"`` and ``"cuda"``
        mean this process's GPU ``cuda:LOCAL_RANK`` when CUDA is available.

    Returns
    -------
    world : World or None
        None for a single process.
    device : torch.device or None
        The device of this rank (None: resolve ``device`` as for a single process).

    Raises
    ------
    RuntimeError
        When the torchrun environment is incomplete (the message names the missing variable).
    """
    if not (dist.is_available() and dist.is_initialized()) and _torchrun_size() > 1:
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise RuntimeError(
                f"WORLD_SIZE={os.environ['WORLD_SIZE']} asks for a distributed fit, but the "
                f"environment lacks {missing}. Launch with torchrun, or unset WORLD_SIZE."
            )
        cuda = torch.cuda.is_available() and device != "cpu"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(_leave)
    world = process_world()
    if world is None:
        return None, None
    if device in ("auto", "cuda") and torch.cuda.is_available():
        return world, torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return world, None


def _leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def on_main(fn: Callable[[], T], world: World | None) -> T:
    """Run ``fn`` on rank 0 and give every rank its result, or raise its error on every rank.

    For steps that read or check files (a checkpoint to resume, an existing checkpoint) that
    may exist on the first node only; without a world, ``fn()``.
    """
    if world is None:
        return fn()
    box: list[Any] = [None]
    if world.rank == 0:
        try:
            box[0] = ("ok", fn())
        except Exception as error:
            box[0] = ("error", error)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value


def shard(rows: Tensor, world: World | None) -> Tensor:
    """The part of a global batch this rank takes: ``rows`` cut in W near-equal runs.

    Parameters
    ----------
    rows : Tensor of int64, shape (B,)
        The global batch (B >= W under a world).

    Returns
    -------
    Tensor of int64, shape (B // W or B // W + 1,)
    """
    if world is None:
        return rows
    return rows.tensor_split(world.size)[world.rank]


class GroupBatchNorm(nn.Module):
    """BatchNorm whose batch statistics are those of every rank's batch together (any device).

    ``torch.nn.SyncBatchNorm`` runs on GPUs only; this module does the same on the CPU (and
    anywhere a process group runs): in training, the per-channel mean, then the per-channel
    mean squared deviation, are all-reduced over the ranks (two passes, differentiable
    through :func:`stratify.distributed.all_reduce_sum`), so a distributed step normalises
    with the statistics of the global batch, and the running statistics (unbiased variance,
    as ``nn.BatchNorm``) are the same on every rank. It reuses the wrapped BatchNorm's
    parameters and buffers, so :func:`sync_batchnorm` can put the original back.

    Parameters
    ----------
    norm : nn.modules.batchnorm._BatchNorm
        The BatchNorm1d/2d/3d to replace.
    world : World
    """

    weight: nn.Parameter | None
    bias: nn.Parameter | None
    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor

    def __init__(self, norm: nn.modules.batchnorm._BatchNorm, world: World) -> None:
        super().__init__()
        self.original = [norm]  # a list, so the module is not registered twice
        self.world = world
        self.eps, self.momentum = norm.eps, norm.momentum
        self.track_running_stats = norm.track_running_stats
        self.weight, self.bias = norm.weight, norm.bias
        self.register_buffer("running_mean", norm.running_mean)
        self.register_buffer("running_var", norm.running_var)
        self.register_buffer("num_batches_tracked", norm.num_batches_tracked)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape (N, C, *S) per channel."""
        if not (self.training or self.running_mean is None):
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        dims = [0, *range(2, x.ndim)]
        shape = (1, -1) + (1,) * (x.ndim - 2)
        count = all_reduce_sum(x.new_tensor(float(x.numel() // x.shape[1])), self.world)
        mean = all_reduce_sum(x.sum(dim=dims), self.world) / count
        centred = x - mean.view(shape)
        var = all_reduce_sum(centred.pow(2).sum(dim=dims), self.world) / count
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats and self.running_mean is not None:
            self._update_running(mean.detach(), var.detach(), float(count))
        return y

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, count: float) -> None:
        if self.running_mean is None or self.running_var is None:
            return
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = var * count / max(count - 1.0, 1.0)
        self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def _swap(module: nn.Module, make: Callable[[nn.Module], nn.Module | None]) -> None:
    for name, child in module.named_children():
        replacement = make(child)
        if replacement is not None:
            setattr(module, name, replacement)
        else:
            _swap(child, make)


@contextlib.contextmanager
def sync_batchnorm(model: nn.Module, world: World | None, device: torch.device) -> Iterator[None]:
    """Synchronise the BatchNorm layers of ``model`` over the ranks inside the block.

    On CUDA the layers become ``torch.nn.SyncBatchNorm``, elsewhere :class:`GroupBatchNorm`;
    both share the original parameters and buffers. The original layers are put back on exit
    (so the fitted model is the same class as after a single-process fit). Without a world,
    nothing changes.
    """
    if world is None:
        yield
        return
    originals: dict[int, nn.Module] = {}

    def to_sync(child: nn.Module) -> nn.Module | None:
        if not isinstance(child, nn.modules.batchnorm._BatchNorm):
            return None
        if device.type == "cuda":
            sync = nn.SyncBatchNorm.convert_sync_batchnorm(child, process_group=world.group)
        else:
            sync = GroupBatchNorm(child, world)
        originals[id(sync)] = child
        return sync

    def back(child: nn.Module) -> nn.Module | None:
        original = originals.get(id(child))
        if original is None:
            return None
        if isinstance(child, nn.SyncBatchNorm):  # its running stats are new tensors
            original.load_state_dict(child.state_dict())
        return original

    _swap(model, to_sync)
    try:
        yield
    finally:
        _swap(model, back)
