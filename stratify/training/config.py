"""``TrainConfig``: the frozen, validated configuration of the training loop."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratify._validation import check_batch_size, check_in_range, check_option

__all__ = [
    "AUTO_EPOCH_SAMPLES",
    "DEFAULT_NETWORKS",
    "REFERENCE_SIZE",
    "TrainConfig",
    "auto_epochs",
    "config_from",
]

_OWNER = "TrainConfig"

#: The ``epochs="auto"`` rule of :class:`~stratify.Stratifier`: each network sees about this
#: many samples of :data:`REFERENCE_SIZE` values (200 steps of 256), whatever the dataset
#: size; chosen on validation data (``benchmarks/recipe.py`` and ``benchmarks/budget.py``,
#: the documentation's benchmark pages).
AUTO_EPOCH_SAMPLES = 51_200
#: Values per sample (a 28 x 28 image) at which the ``"auto"`` budget is
#: :data:`AUTO_EPOCH_SAMPLES`; a sample of ``s`` values counts ``sqrt(s / REFERENCE_SIZE)``
#: samples of the budget (:func:`auto_epochs`).
REFERENCE_SIZE = 28 * 28
#: The networks :class:`~stratify.Stratifier` trains by default (``train_config``'s
#: ``networks``), chosen on validation data with the budget above.
DEFAULT_NETWORKS = 1


def auto_epochs(n_samples: int, sample_size: int | None = None, budget: int | None = None) -> int:
    """Epochs of the ``"auto"`` rule for ``n_samples`` training samples of ``sample_size``
    values each (pixels or voxels times channels; None: feature vectors, counted as
    :data:`REFERENCE_SIZE`), with ``budget`` samples of the reference size per network
    (None: :data:`AUTO_EPOCH_SAMPLES`).

    The budget is in compute: a network sees :data:`AUTO_EPOCH_SAMPLES` samples scaled by
    ``sqrt(REFERENCE_SIZE / sample_size)`` when the samples are larger than the reference
    (a 64^3 volume, 334 times the values of a 28 x 28 image, counts as 18 of them: its
    network sees 18 times fewer samples, each costing about 334 times as much), so the
    epochs are ``ceil(budget / n_samples)``, at least 1.
    """
    check_in_range(n_samples, "n_samples", "auto_epochs", kind=int, low=1)
    if sample_size is not None:
        check_in_range(sample_size, "sample_size", "auto_epochs", kind=int, low=1)
    budget = AUTO_EPOCH_SAMPLES if budget is None else budget
    check_in_range(budget, "budget", "auto_epochs", kind=int, low=1)
    scale = 1.0 if sample_size is None else min(1.0, (REFERENCE_SIZE / sample_size) ** 0.5)
    return max(1, math.ceil(budget * scale / int(n_samples)))


def _check_optional(value, name: str, **bounds):
    return None if value is None else check_in_range(value, name, _OWNER, **bounds)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimisation, schedule, early stopping, device, checkpoints, threads.

    Every field is validated on construction with scikit-learn's error template, e.g.
    ``The 'lr' parameter of TrainConfig must be a float in the range (0, inf). Got 0
    instead.``

    Parameters
    ----------
    epochs : int, default=20
        Number of passes over the training data.
    batch_size : int or "auto", default=256
        Samples per optimisation step (per process under torchrun). ``"auto"``: as many as
        the memory budget holds, at most 256 (see :mod:`stratify.training.memory`). An int
        is checked before the first batch: a batch whose measured activations exceed the
        available memory is refused with the size that fits.
    memory_budget : int, optional
        Bytes the activations of one batch may take, for ``batch_size="auto"`` (and the
        embedding batch of the estimator); None: half the free GPU memory, or on the CPU a
        quarter of the available memory, at most 2 GiB.
    lr : float, default=1e-3
        Peak learning rate.
    weight_decay : float, default=0.0
        Weight decay (decoupled for ``"adamw"``).
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    momentum : float, default=0.9
        Momentum of ``"sgd"`` (ignored otherwise).
    scheduler : {"cosine", "multistep", "none"}, default="cosine"
        ``"cosine"``: linear warm-up over ``warmup_epochs`` then cosine decay to 0 at the
        last step, updated every batch. ``"multistep"``: ``lr`` multiplied by ``gamma`` at
        each of the ``milestones`` (after the warm-up, if any), updated at epoch boundaries
        (the MedMNIST v2 protocol: 0.1 at 50 % and 75 % of the epochs). ``"none"``: constant
        ``lr``.
    milestones : tuple of float, default=(0.5, 0.75)
        ``"multistep"`` only: the epochs at which the rate drops, as fractions of ``epochs``
        (epoch ``round(m * epochs)`` is the first at the lower rate, counting from 0).
    gamma : float, default=0.1
        ``"multistep"`` only: the factor of each drop.
    warmup_epochs : float, default=0.0
        Length of the linear warm-up, in epochs (fractions allowed).
    grad_clip : float, optional
        Maximum global gradient norm; ``None`` disables clipping.
    patience : int, optional
        Early stopping: stop after ``patience`` epochs without the validation loss improving
        by more than ``min_delta``, and restore the best weights. Needs validation data
        (``val_fraction > 0`` or ``val_images`` passed to :func:`train`).
    min_delta : float, default=0.0
        Minimum decrease of the validation loss that counts as an improvement.
    stop_agreement : float, optional
        The label-free stopping rule (:mod:`stratify.training.convergence`): stop at the
        first check whose k-NN agreement of a fixed probe with the previous check reaches
        this, in (0, 1]; the history's ``knn_agreement`` column holds every check's value.
        ``None`` trains every epoch. Needs no validation data.
    check_every : float, default=0.05
        With ``stop_agreement``: the fraction of the epoch budget between two checks.
    restore_best : bool, default=False
        Model selection without early stopping: train every epoch, keep the weights of the
        best validation epoch (lowest validation loss, or highest ``val_score`` when
        :func:`train` is given one) and restore them at the end. Needs validation data.
        ``patience`` implies it.
    val_fraction : float, default=0.0
        Fraction of the training data held out (at random, from ``random_state``) for the
        validation loss when no explicit validation data is given.
    drop_last : bool, default=False
        Drop the last incomplete batch of each epoch.
    device : {"auto", "cpu", "cuda"} or str, default="auto"
        ``"auto"``: CUDA when available, else CPU. Any ``torch.device`` string is accepted.
    mixed_precision : bool or "bfloat16", default=False
        True: float16 autocast with gradient scaling; ``"bfloat16"``: bfloat16 autocast (no
        scaling needed). Used on CUDA only (ignored with a warning on
        CPU).
    num_workers : int, default=0
        Data-loading worker processes (0: batches are gathered in the main process, usually
        the fastest for uint8 arrays held in memory).
    checkpoint_dir : str or path, optional
        Folder for checkpoints (``last.pt``, overwritten atomically); ``None`` disables them.
    checkpoint_every : int, default=1
        Write a checkpoint every this many epochs (and at the end of the fit).
    resume : bool, default=False
        The estimator continues the interrupted fit whose checkpoint is in
        ``checkpoint_dir`` (from scratch when there is none); needs ``checkpoint_dir``.
    num_threads : int, optional
        Torch CPU threads during the fit (restored afterwards); ``None`` = physical cores.
    progress : bool, default=True
        Show a tqdm progress bar (epoch, loss, each term).
    distributed : bool, default=True
        Under ``torchrun``, split the fit across the processes; False trains the whole fit
        in this process alone (what every rank does for a small fit on data all ranks hold,
        e.g. a clustering head on frozen latents, so that it is the same as in one process).
    clean_pass : bool, default=True
        With two-view terms in the objective (the default's NT-Xent): True encodes the clean
        batch beside the two augmented views for the latent terms (reconstruction, KL,
        metadata kernels); False lets the first view stand in for it, as its own
        reconstruction target: one encoder pass over two batches instead of three (0.79 of
        the default's training time per sample on PneumoniaMNIST, 2 CPU cores; the
        benchmarks' "How the default was chosen", round 8). Without two-view terms the clean
        batch is encoded either way.
    networks : int, default=1
        Read by :class:`~stratify.Stratifier` (whose default is
        :data:`DEFAULT_NETWORKS`): independently initialised networks trained one after
        another on the same images, ``epochs`` each, their latents concatenated
        (:class:`~stratify.models.ensemble.Ensemble`) and their strata found by a consensus
        across them. :func:`~stratify.training.train` trains the one model it is given.
    """

    epochs: int = 20
    batch_size: int | str = 256
    memory_budget: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    momentum: float = 0.9
    scheduler: str = "cosine"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    patience: int | None = None
    min_delta: float = 0.0
    stop_agreement: float | None = None
    check_every: float = 0.05
    restore_best: bool = False
    val_fraction: float = 0.0
    drop_last: bool = False
    device: str = "auto"
    mixed_precision: bool | str = False
    num_workers: int = 0
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int = 1
    resume: bool = False
    num_threads: int | None = None
    progress: bool = True
    distributed: bool = True
    clean_pass: bool = True
    networks: int = 1

    def __post_init__(self) -> None:
        check_in_range(self.epochs, "epochs", _OWNER, kind=int, low=1)
        check_batch_size(self.batch_size, _OWNER)
        _check_optional(self.memory_budget, "memory_budget", kind=int, low=1)
        check_in_range(self.lr, "lr", _OWNER, low=0, closed="neither")
        check_in_range(self.weight_decay, "weight_decay", _OWNER, low=0)
        check_option(self.optimizer, "optimizer", _OWNER, {"adam", "adamw", "sgd"})
        check_in_range(self.momentum, "momentum", _OWNER, low=0, high=1)
        check_option(self.scheduler, "scheduler", _OWNER, {"cosine", "multistep", "none"})
        if (
            not isinstance(self.milestones, (tuple, list))
            or not all(
                isinstance(m, (int, float)) and not isinstance(m, bool) and 0 < m < 1
                for m in self.milestones
            )
            or list(self.milestones) != sorted(self.milestones)
        ):
            raise ValueError(
                f"The 'milestones' parameter of {_OWNER} must be an increasing sequence of "
                f"fractions of the epochs in (0, 1). Got {self.milestones!r} instead."
            )
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        check_in_range(self.gamma, "gamma", _OWNER, low=0, high=1, closed="right")
        check_in_range(self.warmup_epochs, "warmup_epochs", _OWNER, low=0)
        _check_optional(self.grad_clip, "grad_clip", low=0, closed="neither")
        _check_optional(self.patience, "patience", kind=int, low=1)
        check_in_range(self.min_delta, "min_delta", _OWNER, low=0)
        _check_optional(self.stop_agreement, "stop_agreement", low=0, high=1, closed="right")
        check_in_range(self.check_every, "check_every", _OWNER, low=0, high=1, closed="right")
        check_in_range(self.val_fraction, "val_fraction", _OWNER, low=0, high=1, closed="left")
        check_in_range(self.num_workers, "num_workers", _OWNER, kind=int, low=0)
        check_in_range(self.checkpoint_every, "checkpoint_every", _OWNER, kind=int, low=1)
        _check_optional(self.num_threads, "num_threads", kind=int, low=1)
        check_in_range(self.networks, "networks", _OWNER, kind=int, low=1)
        for name in (
            "drop_last",
            "progress",
            "restore_best",
            "distributed",
            "resume",
            "clean_pass",
        ):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"The '{name}' parameter of {_OWNER} must be an instance of 'bool'. "
                    f"Got {getattr(self, name)!r} instead."
                )
        if self.mixed_precision not in (True, False, "bfloat16") or not isinstance(
            self.mixed_precision, (bool, str)
        ):
            raise ValueError(
                f"The 'mixed_precision' parameter of {_OWNER} must be a bool or 'bfloat16'. Got "
                f"{self.mixed_precision!r} instead."
            )
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu") or self.device.startswith(("cuda", "mps"))
        ):
            raise ValueError(
                f"The 'device' parameter of {_OWNER} must be a str among {{'auto', 'cpu', "
                f"'cuda', 'cuda:<index>'}}. Got {self.device!r} instead."
            )
        if self.checkpoint_dir is not None and not isinstance(self.checkpoint_dir, (str, Path)):
            raise TypeError(
                f"The 'checkpoint_dir' parameter of {_OWNER} must be a str or path or None. "
                f"Got {self.checkpoint_dir!r} instead."
            )
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                f"Expected a checkpoint_dir naming the checkpoint folder with resume=True in "
                f"{_OWNER}, got no checkpoint_dir."
            )


def config_from(
    options: Mapping[str, Any], overrides: Mapping[str, Any] | None, owner: str
) -> TrainConfig:
    """A :class:`TrainConfig` from an estimator's training parameters ``options`` and its
    ``train_config`` mapping, which sets the other fields: each setting one way only.

    Raises
    ------
    ValueError
        For a field ``TrainConfig`` does not have, a field the estimator sets itself (named
        with the estimator's parameter to use), or a value it refuses, named with the
        estimator ``owner``.
    TypeError
        For a value of the wrong type, likewise.
    """
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ValueError(
            f"The 'train_config' parameter of {owner} has unknown field(s) {unknown}; "
            f"TrainConfig fields are {sorted(fields)}."
        )
    owned = sorted(set(overrides or {}) & set(options))
    if owned:
        name = owned[0]
        parameter = "verbose" if name == "progress" else name
        raise ValueError(
            f"The 'train_config' parameter of {owner} sets {name!r}, which is {owner}'s own "
            f"parameter: expected {owner}({parameter}=...) instead, got "
            f"train_config={{{name!r}: {dict(overrides or {})[name]!r}}}."
        )
    try:
        return TrainConfig(**{**options, **dict(overrides or {})})
    except (TypeError, ValueError) as error:
        raise type(error)(
            f"Invalid training settings of {owner} (train_config, device, ...): {error}"
        ) from None
