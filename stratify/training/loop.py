"""The training loop: the one place that calls ``zero_grad``, ``backward`` and ``step``.

:func:`train` feeds an Objective exactly what its terms require (see
:data:`stratify.losses.INPUT_KEYS`), computing only what is needed:

* ``"x"``: the clean batch as floats in [0, 1] (uint8 images are divided by 255 per batch);
* ``"mu"``, ``"logvar"``: the encoder's heads on the clean batch;
* ``"recon"``: decoder logits of the clean batch, decoded from ``mu`` (AE) or from a
  reparameterised sample drawn with the fit's generator (VAE);
* ``"z1"``, ``"z2"``: projections of ``mu`` of two augmented views of the batch;
* ``"labels"``, ``"metadata"``: per-batch float tensors (NaN = missing).

When both the clean batch and the views are needed, the three are encoded in one forward
pass (so batch-norm statistics are shared). :func:`embed` returns the latents ``mu`` used
downstream. Under ``torchrun`` the same loop trains on every rank with
DistributedDataParallel (see :func:`train`, Notes).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stratify import distributed
from stratify._validation import check_array_images
from stratify.data.augment import TwoViewAugment
from stratify.distributed import World
from stratify.losses.functional import kl_per_dimension
from stratify.training import memory, parallel
from stratify.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from stratify.training.config import TrainConfig

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "NonFiniteLossError",
    "TrainResult",
    "embed",
    "physical_cores",
    "train",
]

Callback = Callable[[int, dict[str, float]], Any]
Augment = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch, batch and term."""


@dataclass
class TrainResult:
    """What :func:`train` returns (the model itself is trained in place).

    Attributes
    ----------
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (from 1), each term's mean value, ``total``,
        ``<term>_weight`` (the weight at the epoch's end, for terms with a warm-up), for a
        VAE ``active_units`` and ``kl_dim_0`` ... ``kl_dim_<D-1>`` (see
        :data:`ACTIVE_UNIT_THRESHOLD`), ``val_loss`` (when there is validation data), ``lr``
        (of the epoch's last step) and ``seconds``.
    best_epoch : int or None
        Epoch with the lowest validation loss (None without validation data).
    stopped_early : bool
        Whether early stopping ended the fit (the best weights were then restored).
    checkpoint_path : pathlib.Path or None
        The last checkpoint written, if any.
    device : str
        Device the model was trained on.
    num_threads : int
        Torch CPU threads used during the fit (per process).
    world_size : int
        Processes the fit ran on (1 without torchrun).
    batch_size : int
        The batch size used (per process): ``config.batch_size``, or what ``"auto"`` chose.
    """

    history: pd.DataFrame
    best_epoch: int | None
    stopped_early: bool
    checkpoint_path: Path | None
    device: str
    num_threads: int
    world_size: int = 1
    batch_size: int = 0


# --------------------------------------------------------------------------- environment


def physical_cores() -> int:
    """Number of physical CPU cores available to this process (logical count as fallback)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text(), (topo / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Expected an available device, got {device!r} but CUDA is not available.")
    return resolved


def _seed_from(random_state: Any) -> int:
    """An int seed from None, an int, a numpy Generator or a numpy RandomState."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31 - 1))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"Expected random_state >= 0, got {random_state}.")
        return int(random_state)
    raise TypeError(
        "Expected random_state to be None, an int, a numpy Generator or RandomState, got "
        f"{type(random_state).__name__}."
    )


# --------------------------------------------------------------------------- data


@dataclass
class _Data:
    """Images kept as given (uint8 stays uint8) plus per-sample float columns, and the rows
    of this split; batches are gathered and converted one at a time."""

    images: Tensor  # (N_all, C, *S) uint8 or float, CPU
    metadata: dict[str, Tensor]  # column -> (N_all,) float32
    labels: Tensor | None  # (N_all,) float32
    rows: Tensor  # (n,) int64 indices of this split

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, idx: Tensor) -> dict[str, Any]:
        """Gather the batch at positions ``idx`` of this split (CPU tensors, not converted)."""
        rows = self.rows[idx]
        return {
            "x": self.images.index_select(0, rows),
            "metadata": {c: v[rows] for c, v in self.metadata.items()},
            "labels": None if self.labels is None else self.labels[rows],
        }


def _as_image_tensor(images: Any, name: str) -> Tensor:
    array = check_array_images(images, name=name)
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)
    return torch.from_numpy(array)  # shares memory, no float copy


def _columns(
    metadata: Mapping[str, Any] | None, columns: Sequence[str], n: int, name: str
) -> dict[str, Tensor]:
    if not columns:
        return {}
    if metadata is None:
        raise ValueError(
            f"Expected {name} with the column(s) {list(columns)} read by the objective, got "
            "None. Pass metadata={column: array of shape (n_samples,)}."
        )
    out = {}
    for col in columns:
        if col not in metadata:
            raise ValueError(
                f"Expected {name} to hold the column {col!r} read by the objective, got "
                f"columns {sorted(metadata)}."
            )
        values = np.asarray(metadata[col], dtype=np.float32)
        if values.shape != (n,):
            raise ValueError(
                f"Expected {name}[{col!r}] of shape ({n},), got an array of shape {values.shape}."
            )
        out[col] = torch.from_numpy(values.copy())
    return out


def _labels(labels: Any, n: int, name: str) -> Tensor | None:
    if labels is None:
        return None
    values = np.asarray(labels, dtype=np.float32)
    if values.shape != (n,):
        raise ValueError(f"Expected {name} of shape ({n},), got an array of shape {values.shape}.")
    return torch.from_numpy(values.copy())


def _make_data(images, metadata, labels, columns, name: str) -> _Data:
    tensor = _as_image_tensor(images, name)
    n = tensor.shape[0]
    meta = _columns(metadata, columns, n, f"{name.replace('images', 'metadata')}")
    lab = _labels(labels, n, f"{name.replace('images', 'labels')}")
    return _Data(tensor, meta, lab, torch.arange(n))


def _split(data: _Data, fraction: float, seed: int) -> tuple[_Data, _Data | None]:
    """Hold out ``fraction`` of the rows at random (numpy generator from ``seed``)."""
    if fraction == 0:
        return data, None
    n = len(data)
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ValueError(
            f"Expected val_fraction to leave training samples, got {fraction} of {n} samples."
        )
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    train = dataclasses.replace(data, rows=data.rows[order[n_val:]])
    return train, dataclasses.replace(data, rows=data.rows[order[:n_val]])


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a gathered batch to ``device`` and convert images to float32 in [0, 1]."""
    nb = device.type == "cuda"
    x = batch["x"].to(device, non_blocking=nb)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    labels = batch["labels"]
    return {
        "x": x,
        "metadata": {c: v.to(device, non_blocking=nb) for c, v in batch["metadata"].items()},
        "labels": None if labels is None else labels.to(device, non_blocking=nb),
    }


def _batches(order: Tensor, batch_size: int, drop_last: bool, world: World | None
             ) -> list[Tensor]:
    """Global batches of ``batch_size`` per rank (``batch_size * W`` rows) in ``order``.

    A last incomplete batch is dropped with ``drop_last``, and under a world when it has
    fewer rows than ranks (at most W - 1 rows of an epoch; every rank needs one).
    """
    size = 1 if world is None else world.size
    chunks = list(order.split(batch_size * size))
    if chunks and len(chunks[-1]) < batch_size * size and len(chunks) > 1 and drop_last:
        chunks.pop()
    if chunks and len(chunks[-1]) < size:
        chunks.pop()
    return chunks


def _iterate(data: _Data, chunks: list[Tensor], config: TrainConfig) -> Iterator[dict]:
    """Yield gathered CPU batches, in the main process or from DataLoader workers."""
    if config.num_workers == 0:
        yield from (data[idx] for idx in chunks)
        return
    loader = torch.utils.data.DataLoader(
        data,
        sampler=chunks,
        batch_size=None,
        num_workers=config.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


# --------------------------------------------------------------------------- model step


@dataclass(frozen=True)
class _Plan:
    """Which tensors the objective needs."""

    latent: bool
    recon: bool
    views: bool

    @classmethod
    def of(cls, objective: Any) -> _Plan:
        req = frozenset(objective.requires)
        recon = "recon" in req
        return cls(
            latent=recon or bool({"mu", "logvar"} & req),
            recon=recon,
            views=bool({"z1", "z2"} & req),
        )


def _forward(
    model: nn.Module,
    objective: Callable,
    batch: dict[str, Any],
    plan: _Plan,
    augment: Augment | None,
    generator: torch.Generator,
    stats: _LatentStats | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Compute the objective on one batch (clean batch, and two views when needed).

    ``stats``, when given, accumulates the posterior of the clean batch (VAE only).
    """
    x = batch["x"]
    n = x.shape[0]
    inputs: dict[str, Any] = dict(batch)
    parts = [x] if plan.latent else []
    if plan.views:
        parts += list(augment(x, generator))
    mu_all, logvar_all = model.encode(torch.cat(parts) if len(parts) > 1 else parts[0])
    if plan.latent:
        mu = mu_all[:n]
        logvar = None if logvar_all is None else logvar_all[:n]
        inputs["mu"], inputs["logvar"] = mu, logvar
        if stats is not None and logvar is not None:
            stats.add(mu, logvar)
        if plan.recon:
            z = mu if logvar is None else model.reparameterize(mu, logvar, generator)
            inputs["recon"] = model.decode(z)
    if plan.views:
        inputs["z1"] = model.project(mu_all[-2 * n : -n])
        inputs["z2"] = model.project(mu_all[-n:])
    return objective(inputs)


class _Step(nn.Module):
    """The model and the objective as one module whose forward is a training step's loss.

    DistributedDataParallel wraps this module (so the objective's own parameters, e.g.
    self-training centroids, are averaged too, and its hooks see the whole step).
    """

    def __init__(self, model: nn.Module, objective: Callable, plan: _Plan,
                 augment: Augment | None) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.plan, self.augment = plan, augment

    def forward(self, batch: dict[str, Any], generator: torch.Generator,
                stats: _LatentStats | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return _forward(self.model, self.objective, batch, self.plan, self.augment, generator,
                        stats)


#: Burda et al. (2016): a latent dimension is active when Cov_x(E[z_j | x]) exceeds this.
ACTIVE_UNIT_THRESHOLD = 0.01


class _LatentStats:
    """Per-dimension KL and variance of the posterior mean over one epoch's clean batches.

    The history gets ``kl_dim_<j>`` (mean KL of dimension j in nats, shape-free columns
    j = 0..D-1) and ``active_units`` (dimensions with Var_x(mu_j) > 0.01 over the epoch;
    the weights move during the epoch, so this is the running estimate, not the exact
    count at the epoch's end).
    """

    def __init__(self) -> None:
        self.n = 0
        self.kl: Tensor | None = None
        self.mu_sum: Tensor | None = None
        self.mu_sq: Tensor | None = None

    @torch.no_grad()
    def add(self, mu: Tensor, logvar: Tensor) -> None:
        mu, logvar = mu.detach().double(), logvar.detach().double()
        kl = kl_per_dimension(mu, logvar) * mu.shape[0]
        parts = (kl, mu.sum(dim=0), mu.pow(2).sum(dim=0))
        if self.kl is None:
            self.kl, self.mu_sum, self.mu_sq = parts
        else:
            self.kl, self.mu_sum, self.mu_sq = (
                a + b for a, b in zip((self.kl, self.mu_sum, self.mu_sq), parts, strict=True)
            )
        self.n += mu.shape[0]

    def reduce(self, world: World | None) -> None:
        """Sum the statistics of every rank (each rank saw its share of the batches)."""
        if world is None or self.kl is None or self.mu_sum is None or self.mu_sq is None:
            return
        packed = torch.cat([self.kl, self.mu_sum, self.mu_sq,
                            self.kl.new_tensor([float(self.n)])])
        packed = distributed.all_reduce_sum(packed, world)
        d = self.kl.shape[0]
        self.kl, self.mu_sum, self.mu_sq = packed[:d], packed[d:2 * d], packed[2 * d:3 * d]
        self.n = int(packed[-1])

    def row(self) -> dict[str, float]:
        if self.kl is None or self.mu_sum is None or self.mu_sq is None:
            return {}
        mean = self.mu_sum / self.n
        variance = self.mu_sq / self.n - mean.pow(2)
        row = {"active_units": float((variance > ACTIVE_UNIT_THRESHOLD).sum())}
        row.update({f"kl_dim_{j}": v for j, v in enumerate((self.kl / self.n).tolist())})
        return row


def _check_finite(total: Tensor, terms: dict[str, Tensor], epoch: int, batch: int, n: int,
                  world: World | None = None) -> None:
    finite = bool(torch.isfinite(total))
    if world is not None:  # every rank must take the same decision
        flags = total.detach().new_tensor([0.0 if finite else 1.0])
        if float(distributed.all_reduce_sum(flags, world)) > 0 and finite:
            raise NonFiniteLossError(
                f"Non-finite loss at epoch {epoch}, batch {batch} of {n} on another rank than "
                f"{world.rank} (see that rank's message). Training stopped before this update."
            )
    if finite:
        return
    total = total.detach()
    bad = [name for name, value in terms.items() if not bool(torch.isfinite(value))]
    name = bad[0] if bad else "total"
    value = float(terms[name]) if bad else float(total)
    raise NonFiniteLossError(
        f"Non-finite loss at epoch {epoch}, batch {batch} of {n}: term {name!r} is {value} "
        f"(total {float(total)}). Training stopped before this update, so the weights are "
        f"still finite. Lower the learning rate, set grad_clip, or check the inputs of {name!r}."
    )


def _lr_at(step: int, total_steps: int, warmup_steps: int, config: TrainConfig) -> float:
    if config.scheduler == "none":
        return config.lr
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def _make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


# --------------------------------------------------------------------------- the loop


@dataclass
class _State:
    """Everything that changes during a fit and goes into a checkpoint."""

    epoch: int = 0  # last completed epoch
    step: int = 0  # optimizer steps taken
    rows: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int | None = None
    best_weights: dict[str, Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


class _Trainer:
    """One fit: holds the pieces so that helpers need few arguments."""

    def __init__(self, model, objective, config, augment, device, seed,
                 world: World | None = None) -> None:
        self.model, self.objective, self.config = model, objective, config
        self.augment, self.device, self.seed = augment, device, seed
        self.world = world
        self.plan = _Plan.of(objective)
        # the epoch order comes from `generator`, identical on every rank; the random draws
        # of the steps (views, reparameterisation) from `draws`, one stream per rank (the
        # same object in a single process)
        self.generator = torch.Generator().manual_seed(seed)
        self.draws = self.generator
        if world is not None:
            rank_seed = np.random.SeedSequence([seed, world.rank]).generate_state(1)[0]
            self.draws = torch.Generator().manual_seed(int(rank_seed))
        self.step_module = _Step(model, objective, self.plan, augment)
        self.runner: nn.Module = self.step_module
        if world is not None:
            self.runner = nn.parallel.DistributedDataParallel(
                self.step_module,
                device_ids=[device.index] if device.type == "cuda" else None,
                # the same parameters take part in every step (some never: the decoder of a
                # contrastive-only fit); DDP finds which in the first step
                static_graph=True,
                forward_sync_buffers=False,  # BatchNorm statistics are synchronised already
            )
        self.np_rng = np.random.default_rng(seed)
        params = [p for p in model.parameters() if p.requires_grad]
        if isinstance(objective, nn.Module):
            params += [p for p in objective.parameters() if p.requires_grad]
        self.optimizer = _make_optimizer(params, config)
        self.use_amp = config.mixed_precision and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        self.state = _State()
        self.fingerprint: str | None = None
        self.bar: Any = None  # the progress bar, advanced once per batch

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        s = self.state
        cfg = dataclasses.asdict(self.config)
        cfg["checkpoint_dir"] = (
            None if cfg["checkpoint_dir"] is None else str(cfg["checkpoint_dir"])
        )
        return {
            "epoch": s.epoch,
            "step": s.step,
            "seed": self.seed,
            "rows": s.rows,
            "early_stopping": {
                "best_loss": s.best_loss,
                "best_epoch": s.best_epoch,
                "best_weights": s.best_weights,
                "bad_epochs": s.bad_epochs,
                "stopped_early": s.stopped_early,
            },
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict()
            if isinstance(self.objective, nn.Module)
            else {},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "torch_generator": self.generator.get_state(),
            "draw_generators": distributed.gather_objects(self.draws.get_state(), self.world),
            "numpy_generator": self.np_rng.bit_generator.state,
            "config": cfg,
            "fingerprint": self.fingerprint,
            "world_size": 1 if self.world is None else self.world.size,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        size = 1 if self.world is None else self.world.size
        stored = int(ckpt.get("world_size", 1))
        if stored != size:
            raise ValueError(
                f"The checkpoint was written by a fit on {stored} process(es), this fit runs "
                f"on {size}. The global batch (batch_size x processes), the schedule and the "
                "random streams of every process depend on it, so it can only be resumed "
                f"with the same number: torchrun --nproc_per_node ... giving {stored} in all. "
                "Nothing was changed."
            )
        self.model.load_state_dict(ckpt["model"])
        if isinstance(self.objective, nn.Module) and ckpt["objective"]:
            self.objective.load_state_dict(ckpt["objective"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler is not None and ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.generator.set_state(ckpt["torch_generator"])
        if self.world is not None:
            self.draws.set_state(ckpt["draw_generators"][self.world.rank])
        self.np_rng.bit_generator.state = ckpt["numpy_generator"]
        early = ckpt["early_stopping"]
        self.state = _State(
            epoch=ckpt["epoch"],
            step=ckpt["step"],
            rows=list(ckpt["rows"]),
            best_loss=early["best_loss"],
            best_epoch=early["best_epoch"],
            best_weights=early["best_weights"],
            bad_epochs=early["bad_epochs"],
            stopped_early=early["stopped_early"],
        )

    # -- epochs
    def _autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _update(self, total: Tensor) -> None:
        opt, clip = self.optimizer, self.config.grad_clip
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            total.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
            opt.step()
            return
        self.scaler.scale(total).backward()
        if clip is not None:
            self.scaler.unscale_(opt)
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
        self.scaler.step(opt)
        self.scaler.update()

    def _local(self, chunks: list[Tensor]) -> list[tuple[Tensor, float]]:
        """This rank's rows of every global batch, and the factor of its loss share.

        Rank ``r`` holding ``n_r`` of the ``B`` rows of a global batch back-propagates its
        local mean loss times ``W n_r / B``: the shares average (over ranks) to the loss of
        the global batch, and DistributedDataParallel's gradient average then gives its
        gradient (see :mod:`stratify.distributed`). In a single process the factor is 1.
        """
        if self.world is None:
            return [(chunk, 1.0) for chunk in chunks]
        size = self.world.size
        out = []
        for chunk in chunks:
            rows = parallel.shard(chunk, self.world)
            out.append((rows, size * rows.numel() / chunk.numel()))
        return out

    def _reduce(self, sums: Tensor) -> Tensor:
        """Sum per-rank sums over the ranks (no-op in a single process)."""
        if self.world is None:
            return sums
        return distributed.all_reduce_sum(sums.detach(), self.world)

    def train_epoch(self, data: _Data, epoch: int, total_steps: int) -> dict[str, float]:
        """One pass over ``data``; returns the sample-weighted mean of total and each term."""
        self.model.train()
        if isinstance(self.objective, nn.Module):
            self.objective.train()
        order = torch.randperm(len(data), generator=self.generator)
        chunks = _batches(order, self.config.batch_size, self.config.drop_last, self.world)
        local = self._local(chunks)
        warmup = round(self.config.warmup_epochs * len(chunks))
        sums, names, seen, lr = None, [], 0, self.config.lr
        set_progress = getattr(self.objective, "set_progress", None)
        stats = _LatentStats()
        batches = _iterate(data, [rows for rows, _ in local], self.config)
        for b, cpu_batch in enumerate(batches, start=1):
            lr = _lr_at(self.state.step, total_steps, warmup, self.config)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if set_progress is not None:
                set_progress(epoch - 1 + b / len(chunks))
            batch = _to_device(cpu_batch, self.device)
            share = local[b - 1][1]
            with self._autocast(), distributed.collective(self.world):
                total, terms = self.runner(batch, self.draws, stats)
                if self.world is not None:
                    total = total * share
                    terms = {name: value * share for name, value in terms.items()}
                _check_finite(total, terms, epoch, b, len(chunks), self.world)
                self._update(total)
            self.state.step += 1
            if self.bar is not None:
                self.bar.update(1)
            # each rank adds its share times B / W: the sum over ranks is the global batch's
            # loss times B
            n = chunks[b - 1].numel() / (1 if self.world is None else self.world.size)
            values = torch.stack([total.detach().float(), *(v.float() for v in terms.values())])
            sums = values * n if sums is None else sums + values * n
            names, seen = list(terms), seen + chunks[b - 1].numel()
        means = (self._reduce(sums) / seen).tolist()  # the only host sync of the epoch's losses
        stats.reduce(self.world)
        row = {**dict(zip(names, means[1:], strict=True)), "total": means[0]}
        warm = getattr(self.objective, "warmup", {})
        if warm:
            weights = self.objective.current_weights()
            row.update({f"{name}_weight": weights[name] for name in warm})
        return {**row, **stats.row(), "lr": lr}

    @torch.no_grad()
    def evaluate(self, data: _Data) -> float:
        """Mean validation loss (eval mode; fixed generator so epochs are comparable)."""
        was_training = self.model.training
        self.model.eval()
        generator = torch.Generator().manual_seed(self.seed + 1)
        if self.world is not None:
            generator.manual_seed(self.seed + 1 + 7919 * self.world.rank)
        total, seen = torch.zeros((), device=self.device), 0
        chunks = _batches(torch.arange(len(data)), self.config.batch_size, False, self.world)
        size = 1 if self.world is None else self.world.size
        try:
            for chunk, (rows, share) in zip(chunks, self._local(chunks), strict=True):
                batch = _to_device(data[rows], self.device)
                with self._autocast(), distributed.collective(self.world):
                    loss, _ = self.step_module(batch, generator)
                total += loss.float() * share * chunk.numel() / size
                seen += chunk.numel()
        finally:
            self.model.train(was_training)
        return float(self._reduce(total)) / seen

    def early_stop(self, val_loss: float, epoch: int) -> bool:
        s, patience = self.state, self.config.patience
        if val_loss < s.best_loss - self.config.min_delta:
            s.best_loss, s.best_epoch, s.bad_epochs = val_loss, epoch, 0
            if patience is not None:
                s.best_weights = copy.deepcopy(self.model.state_dict())
            return False
        s.bad_epochs += 1
        return patience is not None and s.bad_epochs >= patience


def _progress_postfix(row: dict[str, float]) -> dict[str, str]:
    skip = {"epoch", "lr", "seconds"}
    return {
        k: f"{v:.4g}" for k, v in row.items() if k not in skip and not k.startswith("kl_dim_")
    }


def _run(
    trainer: _Trainer,
    train_data: _Data,
    val_data: _Data | None,
    callbacks: Sequence[Callback],
) -> Path | None:
    config, state = trainer.config, trainer.state
    world = trainer.world
    steps_per_epoch = len(
        _batches(torch.arange(len(train_data)), config.batch_size, config.drop_last, world))
    total_steps = steps_per_epoch * config.epochs
    checkpoint_path = None
    bar = tqdm(
        total=total_steps, initial=state.epoch * steps_per_epoch, desc="train", unit="batch",
        disable=not config.progress or (world is not None and world.rank != 0), leave=True,
    )  # fmt: skip
    bar.set_postfix_str(f"epoch {state.epoch + 1}/{config.epochs}")
    trainer.bar = bar
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            if state.stopped_early:
                break
            start = time.perf_counter()
            row: dict[str, float] = {"epoch": epoch}
            row.update(trainer.train_epoch(train_data, epoch, total_steps))
            if val_data is not None:
                row["val_loss"] = trainer.evaluate(val_data)
                state.stopped_early = trainer.early_stop(row["val_loss"], epoch)
            row["lr"] = row.pop("lr")
            row["seconds"] = time.perf_counter() - start
            state.rows.append(row)
            state.epoch = epoch
            last = epoch == config.epochs or state.stopped_early
            if config.checkpoint_dir is not None and (epoch % config.checkpoint_every == 0 or last):
                checkpoint_path = _write_checkpoint(trainer, config.checkpoint_dir)
            bar.set_postfix({"epoch": f"{epoch}/{config.epochs}", **_progress_postfix(row)})
            for callback in callbacks:
                callback(epoch, dict(row))
    finally:
        bar.close()
    return checkpoint_path


def _write_checkpoint(trainer: _Trainer, folder: str | os.PathLike) -> Path:
    """Every rank contributes its random state; rank 0 alone writes (atomically)."""
    state = trainer.state_dict()  # a collective under a world (the ranks' generator states)
    path = Path(folder) / CHECKPOINT_NAME
    if trainer.world is None or trainer.world.rank == 0:
        path = save_checkpoint(state, folder)
    if trainer.world is not None:
        torch.distributed.barrier(group=trainer.world.group)  # written before anyone goes on
    return path


def train(
    model: nn.Module,
    objective: Callable[[dict[str, Any]], tuple[Tensor, dict[str, Tensor]]],
    images: Any,
    *,
    config: TrainConfig | None = None,
    metadata: Mapping[str, Any] | None = None,
    labels: Any = None,
    augment: Augment | None = None,
    val_images: Any = None,
    val_metadata: Mapping[str, Any] | None = None,
    val_labels: Any = None,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    callbacks: Sequence[Callback] | None = None,
    resume_from: str | os.PathLike | None = None,
    fingerprint: str | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``images`` to minimise ``objective``.

    Parameters
    ----------
    model : Autoencoder
        Any module with ``encode(x) -> (mu, logvar_or_None)``, ``decode(z)``,
        ``project(mu)``, ``reparameterize(mu, logvar, generator)`` and ``has_decoder`` (see
        :func:`stratify.models.build_model`). Moved to the configured device.
    objective : Objective
        Callable ``inputs -> (total, {term: value})`` with ``requires`` (a subset of
        :data:`stratify.losses.INPUT_KEYS`) and ``metadata_columns``. Only the required
        inputs are computed. If it has a ``fit`` method it is called once with the training
        split's metadata columns (and ``"labels"``) before the first epoch.
    images : numpy.ndarray or Tensor of shape (N, C, H, W) or (N, C, D, H, W)
        uint8 (kept as uint8 in memory, converted to float / 255 per batch) or floats in
        [0, 1].
    config : TrainConfig, optional
        Defaults to ``TrainConfig()``.
    metadata : mapping of str to array of shape (N,), optional
        Float columns (categoricals integer-coded, NaN for missing); must hold every column
        of ``objective.metadata_columns``.
    labels : array of shape (N,), optional
        Float label codes with NaN for missing (the ``"labels"`` input).
    augment : callable, optional
        ``augment(x, generator) -> (view1, view2)``; defaults to :class:`TwoViewAugment` when
        the objective needs ``"z1"``/``"z2"``.
    val_images, val_metadata, val_labels : optional
        Explicit validation data (otherwise ``config.val_fraction`` of the training data).
    random_state : int, numpy Generator or RandomState, optional
        Seeds a local ``torch.Generator`` (shuffling, augmentation, reparameterisation) and a
        local numpy Generator (validation split). The global RNGs are never seeded. On CPU
        the same seed gives exactly the same weights and history (except ``seconds``).
    callbacks : sequence of callable, optional
        Each called as ``callback(epoch, row)`` after every epoch (after the checkpoint is
        written), ``row`` being that epoch's history row as a dict.
    resume_from : path-like, optional
        A checkpoint file or folder written by an interrupted fit with the same model
        architecture, objective, data and config: model, optimizer, schedule, generator
        states, history and early-stopping state are restored and training continues after
        the checkpoint's epoch. Its seed replaces ``random_state``.
    fingerprint : str, optional
        A digest of the data and settings (the estimator's), written into every checkpoint;
        resuming a checkpoint whose fingerprint differs is refused.

    Returns
    -------
    TrainResult
        ``history`` (a DataFrame, one row per epoch), ``best_epoch``, ``stopped_early``, ...

    Raises
    ------
    NonFiniteLossError
        If the loss of a batch is NaN or infinite (the message names epoch, batch and term);
        the offending update is not applied.
    ValueError
        For inconsistent data or settings (the message says which and how to fix it), or a
        checkpoint to resume from with another fingerprint.
    FileExistsError
        When not resuming and ``config.checkpoint_dir`` already holds a checkpoint (an earlier
        fit's progress is never overwritten); raised before any training.

    Notes
    -----
    **Several processes.** Under ``torchrun`` (or an initialised process group of several
    ranks) the fit is distributed (:mod:`stratify.training.parallel`): ``config.batch_size``
    is per process, so a global batch holds ``batch_size * W`` rows, of which each rank
    takes a contiguous part (near-equal sizes) of the same shuffled order; the
    model and the objective are wrapped together in ``DistributedDataParallel``; BatchNorm
    is synchronised during the fit; the contrastive terms compare the local anchors with the
    global batch (:mod:`stratify.distributed`); each rank back-propagates its local loss
    times ``W n_r / B``, so the step is the single-process step on the global batch; the
    history holds the global values. Random draws (views, reparameterisation) come from one
    stream per rank. Rank 0 writes the checkpoints (with every rank's random state); a
    checkpoint resumes with the same number of processes only. ``TrainResult.world_size``
    says how many took part.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"Expected config to be a TrainConfig, got {type(config).__name__}.")
    world, rank_device = parallel.join(config.device)
    checkpoint = parallel.on_main(
        lambda: load_checkpoint(resume_from) if resume_from is not None else None, world)
    parallel.on_main(lambda: _check_checkpoint(config, checkpoint, fingerprint), world)
    if checkpoint is not None:
        seed = checkpoint["seed"]
    else:  # every rank must shuffle with the same seed: rank 0's
        seed = parallel.on_main(lambda: _seed_from(random_state), world)
    device = rank_device or _resolve_device(config.device)
    if config.mixed_precision and device.type != "cuda":
        warnings.warn("mixed_precision is used on CUDA only; training in float32.", stacklevel=2)
    plan = _Plan.of(objective)
    if not (plan.latent or plan.views):
        raise ValueError(
            "Expected an objective that needs model outputs (some of 'recon', 'mu', 'logvar', "
            f"'z1', 'z2'), got requires={sorted(objective.requires)}."
        )
    if plan.recon and not model.has_decoder:
        raise ValueError(
            "Expected a model with a decoder for the objective's reconstruction terms, got a "
            "model without one. Pass a decoder to build_model or drop the reconstruction terms."
        )
    if plan.views and augment is None:
        augment = TwoViewAugment()
    columns = tuple(objective.metadata_columns)
    data = _make_data(images, metadata, labels, columns, "images")
    if val_images is not None:
        train_data = data
        val_data = _make_data(val_images, val_metadata, val_labels, columns, "val_images")
    else:
        train_data, val_data = _split(data, config.val_fraction, seed)
    if config.patience is not None and val_data is None:
        raise ValueError(
            "Expected validation data for early stopping (patience is set), got none. Set "
            "val_fraction > 0 in TrainConfig or pass val_images."
        )
    if world is not None and len(train_data) < world.size:
        raise ValueError(
            f"Expected at least one training sample per process, got {len(train_data)} "
            f"samples for {world.size} processes."
        )
    _fit_objective(objective, train_data)
    model.to(device)
    if isinstance(objective, nn.Module):
        objective.to(device)
    if checkpoint is not None and config.batch_size == "auto":  # the interrupted fit's batch
        config = dataclasses.replace(config, batch_size=checkpoint["config"]["batch_size"])
    batch_size = parallel.on_main(
        lambda: _fit_batch(model, objective, plan, augment, config, device,
                           tuple(train_data.images.shape[1:])), world)
    config = dataclasses.replace(config, batch_size=batch_size)
    threads = config.num_threads or max(1, physical_cores() // parallel.local_world_size())
    with _torch_threads(threads), parallel.sync_batchnorm(model, world, device):
        trainer = _Trainer(model, objective, config, augment, device, seed, world)
        trainer.fingerprint = fingerprint
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
        path = _run(trainer, train_data, val_data, callbacks or ())
        state = trainer.state
    if config.patience is not None and state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    return TrainResult(
        history=pd.DataFrame(state.rows),
        best_epoch=state.best_epoch,
        stopped_early=state.stopped_early,
        checkpoint_path=path,
        device=str(device),
        num_threads=threads,
        world_size=1 if world is None else world.size,
        batch_size=batch_size,
    )


def _check_checkpoint(config: TrainConfig, checkpoint: dict[str, Any] | None,
                      fingerprint: str | None) -> None:
    """Refuse to overwrite an earlier fit's checkpoint, or to resume another fit's."""
    if checkpoint is None:
        if config.checkpoint_dir is None:
            return
        existing = Path(config.checkpoint_dir) / CHECKPOINT_NAME
        if existing.is_file():
            earlier = load_checkpoint(existing)
            raise FileExistsError(
                f"{existing} holds the checkpoint of an earlier fit (epoch {earlier['epoch']} "
                f"of {earlier['config']['epochs']}); resume it (Stratifier(resume=True), "
                "stratify fit --resume) or choose another checkpoint_dir. It was not touched."
            )
        return
    stored = checkpoint.get("fingerprint")
    if fingerprint is not None and stored is not None and stored != fingerprint:
        raise ValueError(
            "The checkpoint to resume was written by a fit with other data or settings "
            f"(fingerprint {stored[:12]}, this fit {fingerprint[:12]}); resume with the same "
            "images, metadata and parameters, or start a new fit in another checkpoint_dir."
        )


def _fit_batch(model: nn.Module, objective: Any, plan: _Plan, augment: Augment | None,
               config: TrainConfig, device: torch.device, image_shape: tuple[int, ...]) -> int:
    """Resolve ``batch_size="auto"``, or check that an explicit one fits, before any batch.

    The activation bytes of one step are measured on a probe batch
    (:func:`stratify.training.memory.step_bytes_per_sample`).
    """

    def step(probe_model: nn.Module, probe_objective: Any, x: Tensor) -> Tensor:
        n = x.shape[0]
        batch = {
            "x": x,
            "metadata": {c: torch.zeros(n, device=x.device)
                         for c in probe_objective.metadata_columns},
            "labels": torch.zeros(n, device=x.device),
        }
        total, _ = _forward(probe_model, probe_objective, batch, plan, augment,
                            torch.Generator().manual_seed(0))
        return total

    per_sample = memory.step_bytes_per_sample(step, model, objective, image_shape)
    if config.batch_size == "auto":
        budget = config.memory_budget or memory.default_budget(device)
        return memory.train_batch_size(per_sample, budget, memory.BATCH_CAP)
    need = memory.HEADROOM * per_sample * int(config.batch_size)
    free = memory.available_memory(device)
    if free is not None and need > free:
        fits = memory.train_batch_size(per_sample, free, int(config.batch_size))
        raise ValueError(
            f"Expected a batch that fits in memory, got batch_size={config.batch_size}: its "
            f"training step needs about {memory.format_bytes(need)} of activations "
            f"({memory.format_bytes(per_sample)} per sample, measured, times "
            f"{memory.HEADROOM:g} for the backward pass) but {device} has "
            f"{memory.format_bytes(free)} available. batch_size={fits} fits; pass "
            "batch_size='auto' (sized to memory_budget) or a smaller batch_size."
        )
    return int(config.batch_size)


def _fit_objective(objective: Any, data: _Data) -> None:
    fit = getattr(objective, "fit", None)
    if not callable(fit):
        return
    values = {c: v[data.rows].numpy() for c, v in data.metadata.items()}
    if data.labels is not None:
        values["labels"] = data.labels[data.rows].numpy()
    fit(values)


@torch.no_grad()
def embed(
    model: nn.Module,
    images: Any,
    batch_size: int = 256,
    device: str | None = None,
    *,
    logvar: bool = False,
    shard: bool = False,
) -> Any:
    """Latent means ``mu`` of ``images``, computed in batches in eval mode without gradients.

    Parameters
    ----------
    model : Autoencoder
        Anything with ``encode(x) -> (mu, logvar_or_None)``.
    images : numpy.ndarray or Tensor of shape (N, C, *S)
        uint8 (divided by 255 per batch) or floats in [0, 1]; never copied to float as a
        whole.
    batch_size : int, default=256
    device : str, optional
        Device to run on; ``None`` uses the model's current device (``"auto"``: CUDA when
        available). The model is moved there.
    logvar : bool, default=False
        Also return the posterior log-variances.
    shard : bool, default=False
        Under a process group of several ranks (torchrun), every rank embeds its share of
        the rows and the shares are gathered, so every rank returns all rows; every rank
        must then call. Ignored in a single process.

    Returns
    -------
    mu : numpy.ndarray of float32, shape (N, D)
    logvar : numpy.ndarray of float32, shape (N, D), or None
        Only with ``logvar=True``; None for a model without a log-variance head (an AE).

    Notes
    -----
    The model's train/eval mode is restored afterwards.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            f"The 'batch_size' parameter of embed must be an int in the range [1, inf). "
            f"Got {batch_size!r} instead."
        )
    tensor = _as_image_tensor(images, "images")
    world = parallel.process_world() if shard else None
    if world is not None:
        rows = parallel.shard(torch.arange(tensor.shape[0]), world)
        part = embed(model, tensor[rows[0]:rows[-1] + 1] if rows.numel() else tensor[:0],
                     batch_size, device, logvar=True)
        parts = distributed.gather_objects(part, world)
        mu_all = np.concatenate([p[0] for p in parts])
        if not logvar:
            return mu_all
        return mu_all, (None if parts[0][1] is None else np.concatenate([p[1] for p in parts]))
    if device is None:
        param = next(model.parameters(), None)
        target = param.device if param is not None else torch.device("cpu")
    else:
        target = _resolve_device(device)
        model.to(target)
    was_training = model.training
    model.eval()
    try:
        means, logvars = [], []
        for start in range(0, tensor.shape[0], batch_size):
            x = tensor[start : start + batch_size].to(target)
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            mu, log_variance = model.encode(x)
            means.append(mu.float().cpu())
            if log_variance is not None:
                logvars.append(log_variance.float().cpu())
    finally:
        model.train(was_training)
    mu_all = torch.cat(means).numpy()
    if not logvar:
        return mu_all
    return mu_all, (torch.cat(logvars).numpy() if logvars else None)
