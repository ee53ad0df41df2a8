"""The trainer: one fit's state, its epochs, validation, early stopping and checkpoints."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from stratify import distributed
from stratify.distributed import World
from stratify.training import parallel
from stratify.training.batches import Data, global_batches, iterate, to_device
from stratify.training.checkpoint import CHECKPOINT_NAME, save_checkpoint
from stratify.training.convergence import NeighbourProbe, check_epochs
from stratify.training.step import (
    LatentStats,
    Plan,
    Step,
    check_finite,
    lr_at,
    make_optimizer,
)

__all__ = ["Callback", "State", "Trainer", "run", "write_checkpoint"]

Callback = Callable[[int, dict[str, float]], Any]


@dataclass
class State:
    """Everything that changes during a fit and goes into a checkpoint."""

    epoch: int = 0  # last completed epoch
    step: int = 0  # optimizer steps taken
    rows: list[dict[str, float]] = dataclasses.field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int | None = None
    best_weights: dict[str, Tensor] | None = None
    bad_epochs: int = 0
    stopped_early: bool = False


class Trainer:
    """One fit: holds the pieces so that helpers need few arguments."""

    def __init__(
        self, model, objective, config, augment, device, seed, world: World | None = None
    ) -> None:
        self.model, self.objective, self.config = model, objective, config
        self.augment, self.device, self.seed = augment, device, seed
        self.world = world
        self.plan = Plan.of(objective, config.clean_pass)
        # the epoch order comes from `generator`, identical on every rank; the random draws
        # of the steps (views, reparameterisation) from `draws`, one stream per rank (the
        # same object in a single process)
        self.generator = torch.Generator().manual_seed(seed)
        self.draws = self.generator
        if world is not None:
            rank_seed = np.random.SeedSequence([seed, world.rank]).generate_state(1)[0]
            self.draws = torch.Generator().manual_seed(int(rank_seed))
        self.step_module = Step(model, objective, self.plan, augment)
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
        params = [p for p in model.parameters() if p.requires_grad]
        if isinstance(objective, nn.Module):
            params += [p for p in objective.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(params, config)
        self.use_amp = bool(config.mixed_precision) and device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if config.mixed_precision == "bfloat16" else torch.float16
        # bfloat16 keeps float32's exponent range: no gradient scaling
        scaled = self.use_amp and self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if scaled else None
        self.state = State()
        self.fingerprint: str | None = None
        self.bar: Any = None  # the progress bar, advanced once per batch
        self.val_score: Callable[[nn.Module], float] | None = None
        self.probe: NeighbourProbe | None = None  # the stopping rule's, when it is on

    # -- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """All a checkpoint needs to resume exactly: weights, optimizer, generators, history."""
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
            "config": cfg,
            "fingerprint": self.fingerprint,
            "world_size": 1 if self.world is None else self.world.size,
            "probe": None if self.probe is None else self.probe.state_dict(),
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state_dict` (same world size)."""
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
        early = ckpt["early_stopping"]
        self.state = State(
            epoch=ckpt["epoch"],
            step=ckpt["step"],
            rows=list(ckpt["rows"]),
            best_loss=early["best_loss"],
            best_epoch=early["best_epoch"],
            best_weights=early["best_weights"],
            bad_epochs=early["bad_epochs"],
            stopped_early=early["stopped_early"],
        )
        if self.probe is not None and ckpt.get("probe"):
            self.probe.load_state_dict(ckpt["probe"])

    # -- epochs
    def _autocast(self):
        if self.use_amp:
            return torch.autocast("cuda", dtype=self.amp_dtype)
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
        """The rows of every global batch that this rank takes, and the factor of its loss share.

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

    def train_epoch(self, data: Data, epoch: int, total_steps: int) -> dict[str, float]:
        """One pass over ``data``; returns the sample-weighted mean of total and each term."""
        self.model.train()
        if isinstance(self.objective, nn.Module):
            self.objective.train()
        order = torch.randperm(len(data), generator=self.generator)
        chunks = global_batches(order, self.config.batch_size, self.config.drop_last, self.world)
        local = self._local(chunks)
        warmup = round(self.config.warmup_epochs * len(chunks))
        sums: Tensor | None = None
        names: list[str] = []
        seen, lr = 0, self.config.lr
        set_progress = getattr(self.objective, "set_progress", None)
        stats = LatentStats()
        batches = iterate(data, [rows for rows, _ in local], self.config)
        for b, cpu_batch in enumerate(batches, start=1):
            lr = lr_at(self.state.step, total_steps, warmup, self.config)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            if set_progress is not None:
                set_progress(epoch - 1 + b / len(chunks))
            batch = to_device(cpu_batch, self.device)
            share = local[b - 1][1]
            with self._autocast(), distributed.collective(self.world):
                total, terms = self.runner(batch, self.draws, stats)
                if self.world is not None:
                    total = total * share
                    terms = {name: value * share for name, value in terms.items()}
                check_finite(total, terms, epoch, b, len(chunks), self.world)
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
        if sums is None:
            raise RuntimeError("Expected at least one training batch in the epoch, got none.")
        # the only host sync of the epoch's losses
        means = (distributed.all_reduce_sum(sums.detach(), self.world) / seen).tolist()
        stats.reduce(self.world)
        row = {**dict(zip(names, means[1:], strict=True)), "total": means[0]}
        warm = getattr(self.objective, "warmup", {})
        if warm:
            weights = self.objective.current_weights()
            row.update({f"{name}_weight": weights[name] for name in warm})
        return {**row, **stats.row(), "lr": lr}

    @torch.no_grad()
    def evaluate(self, data: Data) -> float:
        """Mean validation loss (eval mode; fixed generator so epochs are comparable)."""
        was_training = self.model.training
        self.model.eval()
        rank = 0 if self.world is None else self.world.rank
        generator = torch.Generator().manual_seed(self.seed + 1 + 7919 * rank)
        total, seen = torch.zeros((), device=self.device), 0
        chunks = global_batches(torch.arange(len(data)), self.config.batch_size, False, self.world)
        size = 1 if self.world is None else self.world.size
        try:
            for chunk, (rows, share) in zip(chunks, self._local(chunks), strict=True):
                batch = to_device(data[rows], self.device)
                with self._autocast(), distributed.collective(self.world):
                    loss, _ = self.step_module(batch, generator)
                total += loss.float() * share * chunk.numel() / size
                seen += chunk.numel()
        finally:
            self.model.train(was_training)
        return float(distributed.all_reduce_sum(total, self.world)) / seen

    @torch.no_grad()
    def score(self) -> float:
        """The ``val_score`` of the current weights (eval mode; the mode is restored)."""
        if self.val_score is None:
            raise RuntimeError("Trainer.score needs a val_score; it has none.")
        was_training = self.model.training
        self.model.eval()
        try:
            return float(self.val_score(self.model))
        finally:
            self.model.train(was_training)

    def check_stable(self) -> float:
        """The probe's k-NN agreement with the last check (NaN at the first), computed on
        rank 0 and given to every rank, so that all stop together.
        """
        probe = self.probe
        if probe is None:
            raise RuntimeError("Trainer.check_stable needs a probe; it has none.")
        size = int(self.config.batch_size)
        return parallel.on_main(lambda: probe.agreement(self.model, size, self.device), self.world)

    def early_stop(self, val_loss: float, epoch: int) -> bool:
        """Track the best epoch by ``val_loss`` (lower is better; minus ``val_score`` when
        there is one); keep its weights when selecting; True when patience ran out.
        """
        s, patience = self.state, self.config.patience
        if val_loss < s.best_loss - self.config.min_delta:
            s.best_loss, s.best_epoch, s.bad_epochs = val_loss, epoch, 0
            if patience is not None or self.config.restore_best:
                s.best_weights = copy.deepcopy(self.model.state_dict())
            return False
        s.bad_epochs += 1
        return patience is not None and s.bad_epochs >= patience


def _progress_postfix(row: dict[str, float]) -> dict[str, str]:
    skip = {"epoch", "lr", "seconds"}
    return {k: f"{v:.4g}" for k, v in row.items() if k not in skip and not k.startswith("kl_dim_")}


def run(
    trainer: Trainer,
    train_data: Data,
    val_data: Data | None,
    callbacks: Sequence[Callback],
) -> Path | None:
    """Train the configured epochs (batches, callbacks, checkpoints); the last checkpoint."""
    config, state = trainer.config, trainer.state
    world = trainer.world
    steps_per_epoch = len(
        global_batches(torch.arange(len(train_data)), config.batch_size, config.drop_last, world)
    )
    total_steps = steps_per_epoch * config.epochs
    checks = set(check_epochs(config.epochs, config.check_every))
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
            if trainer.val_score is not None:
                row["val_score"] = trainer.score()
            monitored = -row["val_score"] if "val_score" in row else row.get("val_loss")
            if monitored is not None:
                state.stopped_early = trainer.early_stop(monitored, epoch)
            if trainer.probe is not None and epoch in checks:
                row["knn_agreement"] = trainer.check_stable()
                state.stopped_early |= row["knn_agreement"] >= config.stop_agreement
            row["lr"] = row.pop("lr")
            row["seconds"] = time.perf_counter() - start
            state.rows.append(row)
            state.epoch = epoch
            last = epoch == config.epochs or state.stopped_early
            if config.checkpoint_dir is not None and (epoch % config.checkpoint_every == 0 or last):
                checkpoint_path = write_checkpoint(trainer, config.checkpoint_dir)
            bar.set_postfix({"epoch": f"{epoch}/{config.epochs}", **_progress_postfix(row)})
            for callback in callbacks:
                callback(epoch, dict(row))
    finally:
        bar.close()
    return checkpoint_path


def write_checkpoint(trainer: Trainer, folder: str | os.PathLike) -> Path:
    """Every rank contributes its random state; rank 0 alone writes (atomically)."""
    state = trainer.state_dict()  # a collective under a world (the ranks' generator states)
    path = Path(folder) / CHECKPOINT_NAME
    if trainer.world is None or trainer.world.rank == 0:
        path = save_checkpoint(state, folder)
    if trainer.world is not None:
        torch.distributed.barrier(group=trainer.world.group)  # written before anyone goes on
    return path
