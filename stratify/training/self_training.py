"""The clustering-aware stage: IDEC self-training from the first strata (Guo et al. 2017).

The centroids start at the mean latent of each first stratum; the objective's terms stay on
(IDEC keeps the reconstruction), plus :class:`~stratify.losses.SelfTraining`; the one
training loop runs for the stage's epochs at a tenth of the learning rate, constant, with no
validation split, early stopping or checkpoint.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from stratify.losses import Objective, SelfTraining
from stratify.training.config import TrainConfig
from stratify.training.loop import TrainResult, train

if TYPE_CHECKING:
    from stratify.models.autoencoder import Autoencoder

__all__ = ["self_train"]


def self_train(
    model: Autoencoder,
    objective: Objective,
    images: np.ndarray,
    embedding: np.ndarray,
    strata: np.ndarray,
    *,
    epochs: int,
    weight: float,
    config: TrainConfig,
    random_state: int,
    **train_kwargs: Any,
) -> TrainResult:
    """Train ``model`` further with the self-training term added to ``objective``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained autoencoder (trained in place).
    objective : Objective
        The representation stage's terms and weights.
    images : numpy.ndarray, shape (N, C, *S)
    embedding : numpy.ndarray, shape (N, latent_dim)
        Latent means of ``images`` with the representation stage's weights.
    strata : numpy.ndarray of int, shape (N,)
        The first strata (``-1`` = noise, left out of the centroids).
    epochs : int
        Epochs of the stage.
    weight : float
        Weight of the self-training term.
    config : TrainConfig
        The representation stage's settings; the stage's are derived from them.
    random_state : int
        Seed of the stage's batches and augmentations.
    **train_kwargs
        ``metadata``, ``labels`` and ``augment`` for :func:`stratify.training.train`.

    Returns
    -------
    TrainResult
        The stage's history and batch size.

    Raises
    ------
    ValueError
        With fewer than two first strata.
    """
    kept = np.unique(strata[strata >= 0])
    if len(kept) < 2:
        raise ValueError(
            f"Expected at least 2 first strata to start self-training from, got "
            f"{len(kept)}. Set self_training_epochs=0 or choose another clusterer."
        )
    centroids = np.stack([embedding[strata == c].mean(axis=0) for c in kept])
    terms: dict[str, Any] = {
        name: (term, objective.weights[name]) for name, term in objective.terms.items()
    }
    terms["self_training"] = (SelfTraining(centroids, normalize=False), weight)
    stage = dataclasses.replace(
        config,
        epochs=epochs,
        lr=config.lr / 10,
        scheduler="none",
        warmup_epochs=0.0,
        checkpoint_dir=None,
        patience=None,
        val_fraction=0.0,
    )
    return train(
        model, Objective(terms), images, config=stage, random_state=random_state, **train_kwargs
    )
