"""The training loop: the public :func:`train` and :func:`embed`.

The loop is split by job: :mod:`~stratify.training.environment` (threads, device, seed),
:mod:`~stratify.training.batches` (data and batching), :mod:`~stratify.training.step` (one
step's loss, the schedule, the optimizer), :mod:`~stratify.training.trainer` (a fit's state,
epochs, early stopping, checkpoints; the one place that calls ``zero_grad``, ``backward``
and ``step``). :func:`train` feeds an Objective exactly what its terms require (see
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

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from stratify import distributed
from stratify._random import seed_from
from stratify.data.augment import TwoViewAugment
from stratify.models.conv import use_layout
from stratify.training import memory, parallel
from stratify.training.batches import (
    Data,
    as_image_tensor,
    encode_batches,
    make_data,
    split_validation,
)
from stratify.training.checkpoint import check_resumable, load_checkpoint
from stratify.training.config import TrainConfig
from stratify.training.convergence import NeighbourProbe
from stratify.training.environment import (
    physical_cores,
    resolve_device,
    torch_threads,
)
from stratify.training.step import (
    ACTIVE_UNIT_THRESHOLD,
    Augment,
    NonFiniteLossError,
    Plan,
)
from stratify.training.trainer import Callback, Trainer, run

if TYPE_CHECKING:
    from stratify.losses import Objective
    from stratify.models.autoencoder import Autoencoder
    from stratify.models.ensemble import Ensemble

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "NonFiniteLossError",
    "TrainResult",
    "embed",
    "physical_cores",
    "train",
]


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
    resumed_epochs : int
        Epochs restored from ``resume_from`` (trained by an earlier call, whose history rows
        and ``seconds`` come with the checkpoint); 0 for a fresh fit.
    """

    history: pd.DataFrame
    best_epoch: int | None
    stopped_early: bool
    checkpoint_path: Path | None
    device: str
    num_threads: int
    world_size: int = 1
    batch_size: int = 0
    resumed_epochs: int = 0


def train(
    model: Autoencoder,
    objective: Objective,
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
    val_score: Callable[[nn.Module], float] | None = None,
) -> TrainResult:
    """Train ``model`` in place on ``images`` to minimise ``objective``.

    Parameters
    ----------
    model : Autoencoder
        Any module with ``encode(x) -> (mu, logvar_or_None)``, ``decode(z)``,
        ``project(mu)``, ``decode_draw(mu, logvar, generator)`` and ``has_decoder`` (see
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
    val_score : callable, optional
        ``val_score(model) -> float``, higher is better (e.g. the validation AUC of a
        classifier), called after every epoch with the model in eval mode under
        ``no_grad``; the history gets a ``val_score`` column, and early stopping /
        ``restore_best`` select on it instead of the validation loss.

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
    world, rank_device = parallel.join(config.device) if config.distributed else (None, None)
    checkpoint = parallel.on_main(
        lambda: load_checkpoint(resume_from) if resume_from is not None else None, world
    )
    parallel.on_main(lambda: check_resumable(config, checkpoint, fingerprint), world)
    if checkpoint is not None:
        seed = checkpoint["seed"]
    else:  # every rank must shuffle with the same seed: rank 0's
        seed = parallel.on_main(lambda: seed_from(random_state), world)
    device = rank_device or resolve_device(config.device)
    if config.mixed_precision and device.type != "cuda":
        warnings.warn("mixed_precision is used on CUDA only; training in float32.", stacklevel=2)
    plan = Plan.of(objective, config.clean_pass)
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
    data = make_data(images, metadata, labels, columns, "images")
    val_data: Data | None
    if val_images is not None:
        train_data = data
        val_data = make_data(val_images, val_metadata, val_labels, columns, "val_images")
    else:
        train_data, val_data = split_validation(data, config.val_fraction, seed)
    selects = config.patience is not None or config.restore_best
    if selects and val_data is None and val_score is None:
        raise ValueError(
            "Expected validation data (or a val_score) for model selection (patience or "
            "restore_best is set), got none. Set val_fraction > 0 in TrainConfig or pass "
            "val_images."
        )
    if world is not None and len(train_data) < world.size:
        raise ValueError(
            f"Expected at least one training sample per process, got {len(train_data)} "
            f"samples for {world.size} processes."
        )
    _fit_objective(objective, train_data)
    model.to(device)
    use_layout(model, device)
    if isinstance(objective, nn.Module):
        objective.to(device)
    if checkpoint is not None and config.batch_size == "auto":  # the interrupted fit's batch
        config = dataclasses.replace(config, batch_size=checkpoint["config"]["batch_size"])
    image_shape = tuple(train_data.images.shape[1:])
    requested: TrainConfig = config
    batch_size = parallel.on_main(
        lambda: memory.fit_batch_size(
            model, objective, plan, augment, requested, device, image_shape
        ),
        world,
    )
    config = dataclasses.replace(config, batch_size=batch_size)
    threads = config.num_threads or max(1, physical_cores() // parallel.local_world_size())
    with torch_threads(threads), parallel.sync_batchnorm(model, world, device):
        trainer = Trainer(model, objective, config, augment, device, seed, world)
        trainer.fingerprint, trainer.val_score = fingerprint, val_score
        if config.stop_agreement is not None:
            trainer.probe = NeighbourProbe(train_data.images, train_data.rows, seed)
        if checkpoint is not None:
            trainer.load_state_dict(checkpoint)
        resumed_epochs = trainer.state.epoch
        path = run(trainer, train_data, val_data, callbacks or ())
        state = trainer.state
    if selects and state.best_weights is not None:
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
        resumed_epochs=resumed_epochs,
    )


def _fit_objective(objective: Any, data: Data) -> None:
    fit = getattr(objective, "fit", None)
    if not callable(fit):
        return
    values = {c: v[data.rows].numpy() for c, v in data.metadata.items()}
    if data.labels is not None:
        values["labels"] = data.labels[data.rows].numpy()
    fit(values)


@torch.no_grad()
def embed(
    model: Autoencoder | Ensemble,
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
    tensor = as_image_tensor(images, "images")
    world = parallel.process_world() if shard else None
    if world is not None:
        rows = parallel.shard(torch.arange(tensor.shape[0]), world)
        part = embed(
            model,
            tensor[rows[0] : rows[-1] + 1] if rows.numel() else tensor[:0],
            batch_size,
            device,
            logvar=True,
        )
        parts = distributed.gather_objects(part, world)
        mu_all = np.concatenate([p[0] for p in parts])
        if not logvar:
            return mu_all
        return mu_all, (None if parts[0][1] is None else np.concatenate([p[1] for p in parts]))
    if device is None:
        param = next(model.parameters(), None)
        target = param.device if param is not None else torch.device("cpu")
    else:
        target = resolve_device(device)
        model.to(target)
    use_layout(model, target)
    means, logvars = encode_batches(model, tensor, batch_size, target)
    mu_all = means.numpy()
    if not logvar:
        return mu_all
    return mu_all, (None if logvars is None else logvars.numpy())
