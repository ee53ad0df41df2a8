"""Clustering-aware training: IDEC-style self-training on Student-t soft assignments."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stratify.losses import functional as LF
from stratify.losses._base import LossTerm
from stratify.losses._checks import check_float

__all__ = ["SelfTraining"]


class SelfTraining(LossTerm):
    """Self-training towards sharpened cluster assignments (DEC / IDEC).

    The term holds learnable centroids (K, D), initialised from a first clustering of the
    latents, and returns ``KL(P || Q)`` where ``Q`` are Student-t soft assignments of the
    batch's latents ``mu`` to the centroids and ``P`` their sharpened target
    (:func:`stratify.losses.functional.self_training_loss`). Trained together with the
    reconstruction and contrastive terms, as in IDEC (Guo et al. 2017), it pulls each latent
    towards its cluster while the other terms keep the representation. ``P`` is computed per
    batch (the cluster sizes ``f_j`` are batch estimates).

    Parameters
    ----------
    centroids : array-like of shape (K, D)
        Initial centroids, in the space of ``mu`` (L2-normalised when ``normalize``).
    alpha : float, default=1.0
        Degrees of freedom of the Student-t kernel.
    balance : float, default=1.0
        Exponent of the cluster-size normalisation of the target, in [0, 1]: 1 is DEC's
        target (favours balanced clusters), 0 keeps the current proportions (imbalanced
        classes).
    normalize : bool, default=True
        Compare the L2-normalised latents (the geometry the clusterer sees).

    Attributes
    ----------
    centroids : torch.nn.Parameter, shape (K, D)

    Notes
    -----
    Input ``mu``: (N, D). Returns a 0-dim tensor. The centroids are parameters of the term,
    so the training loop optimises them with the network.
    """

    requires = frozenset({"mu"})

    def __init__(
        self, centroids: Any, alpha: float = 1.0, balance: float = 1.0, normalize: bool = True
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        centroids = torch.as_tensor(centroids, dtype=torch.float32)
        if centroids.ndim != 2 or centroids.shape[0] < 2:
            raise ValueError(
                f"The 'centroids' parameter of {owner} must be an array of shape (K, D) with "
                f"K >= 2. Got shape {tuple(centroids.shape)} instead."
            )
        self.centroids = nn.Parameter(centroids.clone())
        self.alpha = check_float(alpha, "alpha", owner)
        self.balance = check_float(balance, "balance", owner, closed=True)
        if self.balance > 1:
            raise ValueError(
                f"The 'balance' parameter of {owner} must be a float in the range [0, 1]. "
                f"Got {balance!r} instead."
            )
        self.normalize = bool(normalize)

    def _space(self, mu: Tensor) -> Tensor:
        return nn.functional.normalize(mu, dim=1) if self.normalize else mu

    def forward(self, mu: Tensor) -> Tensor:
        """The self-training loss of latent means ``mu`` (N, D); a scalar."""
        if mu.ndim != 2 or mu.shape[1] != self.centroids.shape[1]:
            raise ValueError(
                f"Expected mu of shape (N, {self.centroids.shape[1]}), got {tuple(mu.shape)}."
            )
        centroids = self.centroids.to(mu.dtype)
        return LF.self_training_loss(self._space(mu), centroids, self.alpha, self.balance)

    @torch.no_grad()
    def assign(self, mu: Tensor) -> Tensor:
        """Cluster of each latent (N, D) -> (N,): the highest soft assignment."""
        q = LF.student_t_assignments(self._space(mu), self.centroids.to(mu.dtype), self.alpha)
        return q.argmax(dim=1)

    def extra_repr(self) -> str:
        """The settings shown in the module's repr."""
        return (
            f"k={self.centroids.shape[0]}, alpha={self.alpha}, balance={self.balance}, "
            f"normalize={self.normalize}"
        )
