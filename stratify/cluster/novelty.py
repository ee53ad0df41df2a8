"""Out-of-distribution scores for new patients: how far a latent is from the training latents.

A new patient's score is its mean Euclidean distance to its ``n_neighbors`` nearest training
latents (the latents the strata were found from, L2-normalised with the clusterer's
``normalize``). The threshold is the ``quantile`` of the same score over the training
latents, each left out of its own neighbours, so by construction about ``1 - quantile`` of
patients drawn like the training set are flagged (1 % with the default 0.99): a declared
false-alarm rate, not a setting tuned on any dataset.

The latents, not the clustered space, are scored: the manifold step places every new latent
among its training neighbours (:mod:`~stratify.cluster.manifold`), so a far-away patient
would look typical on the manifold, and whitening stretches the low-variance directions a
distance should not weigh up. With many training latents the reference set is a seeded
subsample of ``max_reference`` of them, so the cost of a score stays bounded.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

__all__ = ["NOVELTY_NEIGHBOURS", "NOVELTY_QUANTILE", "NoveltyScore"]

#: Training neighbours a score averages over.
NOVELTY_NEIGHBOURS = 10
#: Training quantile of the score above which a patient is flagged (1 % false alarms).
NOVELTY_QUANTILE = 0.99
#: Training latents kept as the reference set (a seeded subsample beyond this).
NOVELTY_REFERENCE = 20_000


class NoveltyScore:
    """k-NN distance to the training latents, with a threshold at a training quantile.

    Parameters
    ----------
    n_neighbors : int, default=NOVELTY_NEIGHBOURS
        Neighbours averaged (capped at N - 1 training latents).
    quantile : float, default=NOVELTY_QUANTILE
        Training quantile of the leave-one-out score used as the threshold.
    max_reference : int, default=NOVELTY_REFERENCE
        Largest reference set; beyond it a seeded subsample.

    Attributes
    ----------
    reference_ : numpy.ndarray, shape (R, D)
        The training latents scores are measured against.
    training_scores_ : numpy.ndarray, shape (R,)
        Leave-one-out score of each reference latent.
    threshold_ : float
        ``quantile`` of ``training_scores_``.
    """

    def __init__(
        self,
        n_neighbors: int = NOVELTY_NEIGHBOURS,
        quantile: float = NOVELTY_QUANTILE,
        max_reference: int = NOVELTY_REFERENCE,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.quantile = quantile
        self.max_reference = max_reference

    def fit(self, latents: np.ndarray, seed: int = 0) -> NoveltyScore:
        """Keep the reference latents (N, D), N >= 2, and set the threshold."""
        latents = np.asarray(latents, dtype=np.float64)
        if len(latents) < 2:
            raise ValueError(f"Expected at least 2 training latents, got {len(latents)}.")
        if len(latents) > self.max_reference:
            rows = np.random.default_rng(seed).choice(len(latents), self.max_reference, False)
            latents = latents[np.sort(rows)]
        self.reference_ = latents
        self.n_neighbors_ = min(self.n_neighbors, len(latents) - 1)
        self._index = NearestNeighbors(n_neighbors=self.n_neighbors_ + 1).fit(latents)
        distances, _ = self._index.kneighbors(latents)
        # each latent is its own nearest neighbour (distance 0): leave it out; with exact
        # duplicates the zero dropped may be another copy's, which gives the same score
        self.training_scores_ = distances[:, 1:].mean(axis=1)
        self.threshold_ = float(np.quantile(self.training_scores_, self.quantile))
        return self

    def score(self, latents: np.ndarray) -> np.ndarray:
        """Mean distance (M,) of new latents (M, D) to their nearest reference latents."""
        distances, _ = self._index.kneighbors(
            np.asarray(latents, dtype=np.float64), n_neighbors=self.n_neighbors_
        )
        return distances.mean(axis=1)

    def flag(self, latents: np.ndarray) -> np.ndarray:
        """Whether each new latent (M, D) scores above the threshold: bool (M,)."""
        return self.score(latents) > self.threshold_
