"""One training step: what the objective needs, the forward pass, the schedule, the optimizer.

:func:`step_loss` feeds an Objective exactly what its terms require (see
:data:`stratify.losses.INPUT_KEYS`), computing only what is needed (see
:mod:`stratify.training.loop`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stratify import distributed
from stratify.distributed import World
from stratify.losses.functional import kl_per_dimension
from stratify.training.config import TrainConfig

if TYPE_CHECKING:
    from stratify.models.autoencoder import Autoencoder

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "Augment",
    "LatentStats",
    "NonFiniteLossError",
    "Plan",
    "Step",
    "check_finite",
    "lr_at",
    "make_optimizer",
    "step_loss",
]

Augment = Callable[[Tensor, torch.Generator], tuple[Tensor, Tensor]]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the epoch, batch and term."""


@dataclass(frozen=True)
class Plan:
    """Which tensors the objective needs, and whether the clean batch is encoded for them."""

    latent: bool
    recon: bool
    views: bool
    clean_pass: bool = True

    @classmethod
    def of(cls, objective: Any, clean_pass: bool = True) -> Plan:
        """The tensors ``objective`` needs (its ``requires``); ``clean_pass`` as
        :class:`~stratify.training.TrainConfig`'s.
        """
        req = frozenset(objective.requires)
        recon = "recon" in req
        return cls(
            latent=recon or bool({"mu", "logvar"} & req),
            recon=recon,
            views=bool({"z1", "z2"} & req),
            clean_pass=clean_pass,
        )

    @property
    def view_stands_in(self) -> bool:
        """The first view is encoded in the clean batch's place (no clean pass)."""
        return self.latent and self.views and not self.clean_pass


def step_loss(
    model: Autoencoder,
    objective: Callable,
    batch: dict[str, Any],
    plan: Plan,
    augment: Augment | None,
    generator: torch.Generator,
    stats: LatentStats | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Compute the objective on one batch (clean batch, and two views when needed).

    The clean batch ``x`` of shape ``(N, C, *spatial)`` and the two views, each of that
    shape, are encoded in one pass. With ``plan.view_stands_in`` the clean batch is not
    encoded: the first view takes its place in the latent terms (``mu``, ``logvar``, and
    ``x`` as the reconstruction target). ``stats``, when given, accumulates the posterior of
    the batch the latent terms see (VAE only).
    """
    x = batch["x"]
    n = x.shape[0]
    inputs: dict[str, Any] = dict(batch)
    parts = [x] if plan.latent and not plan.view_stands_in else []
    if plan.views:
        if augment is None:
            raise ValueError("Expected an augmentation for the two-view terms, got None.")
        parts += list(augment(x, generator))
    if plan.view_stands_in:
        inputs["x"] = parts[0]
    mu_all, logvar_all = model.encode(torch.cat(parts) if len(parts) > 1 else parts[0])
    if plan.latent:
        mu = mu_all[:n]
        logvar = None if logvar_all is None else logvar_all[:n]
        inputs["mu"], inputs["logvar"] = mu, logvar
        if stats is not None and logvar is not None:
            stats.add(mu, logvar)
        if plan.recon:
            inputs["recon"] = model.decode_draw(mu, logvar, generator)
    if plan.views:
        inputs["z1"] = model.project(mu_all[-2 * n : -n])
        inputs["z2"] = model.project(mu_all[-n:])
    return objective(inputs)


class Step(nn.Module):
    """The model and the objective as one module whose forward is a training step's loss.

    DistributedDataParallel wraps this module (so the objective's own parameters, e.g.
    self-training centroids, are averaged too, and its hooks see the whole step).
    """

    def __init__(
        self, model: Autoencoder, objective: Callable, plan: Plan, augment: Augment | None
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.plan, self.augment = plan, augment

    def forward(
        self, batch: dict[str, Any], generator: torch.Generator, stats: LatentStats | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The total loss and each term's value on ``batch`` (see :func:`step_loss`)."""
        return step_loss(
            self.model, self.objective, batch, self.plan, self.augment, generator, stats
        )


#: Burda et al. (2016): a latent dimension is active when Cov_x(E[z_j | x]) exceeds this.
ACTIVE_UNIT_THRESHOLD = 0.01


class LatentStats:
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
        """Accumulate one batch of posterior means and log-variances (B, D)."""
        mu, logvar = mu.detach().double(), logvar.detach().double()
        kl = kl_per_dimension(mu, logvar) * mu.shape[0]
        parts = (kl, mu.sum(dim=0), mu.pow(2).sum(dim=0))
        if self.kl is None or self.mu_sum is None or self.mu_sq is None:
            self.kl, self.mu_sum, self.mu_sq = parts
        else:
            self.kl = self.kl + parts[0]
            self.mu_sum = self.mu_sum + parts[1]
            self.mu_sq = self.mu_sq + parts[2]
        self.n += mu.shape[0]

    def reduce(self, world: World | None) -> None:
        """Sum the statistics of every rank (each rank saw its share of the batches)."""
        if world is None or self.kl is None or self.mu_sum is None or self.mu_sq is None:
            return
        packed = torch.cat([self.kl, self.mu_sum, self.mu_sq, self.kl.new_tensor([float(self.n)])])
        packed = distributed.all_reduce_sum(packed, world)
        d = self.kl.shape[0]
        self.kl, self.mu_sum, self.mu_sq = packed[:d], packed[d : 2 * d], packed[2 * d : 3 * d]
        self.n = int(packed[-1])

    def row(self) -> dict[str, float]:
        """The epoch's ``active_units`` and ``kl_dim_<j>`` history columns ({} before any batch)."""
        if self.kl is None or self.mu_sum is None or self.mu_sq is None:
            return {}
        mean = self.mu_sum / self.n
        variance = self.mu_sq / self.n - mean.pow(2)
        row = {"active_units": float((variance > ACTIVE_UNIT_THRESHOLD).sum())}
        row.update({f"kl_dim_{j}": v for j, v in enumerate((self.kl / self.n).tolist())})
        return row


def check_finite(
    total: Tensor,
    terms: dict[str, Tensor],
    epoch: int,
    batch: int,
    n: int,
    world: World | None = None,
) -> None:
    """Raise :class:`NonFiniteLossError` naming the first non-finite term (all ranks agree)."""
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


def lr_at(step: int, total_steps: int, warmup_steps: int, config: TrainConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine, multistep or constant."""
    if config.scheduler == "none":
        return config.lr
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    if config.scheduler == "multistep":
        epoch = step * config.epochs // max(1, total_steps)
        drops = sum(epoch >= round(m * config.epochs) for m in config.milestones)
        return config.lr * config.gamma**drops
    span = max(1, total_steps - warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(step - warmup_steps, span) / span))


def make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names (Adam, AdamW or SGD) over ``params``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)
