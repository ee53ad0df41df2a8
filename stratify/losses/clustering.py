"""Clustering-aware training: IDEC-style self-training on Student-t soft assignments, and
SCAN-style clustering heads on frozen latents and their nearest neighbours.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from stratify.losses import functional as LF
from stratify.losses._base import LossTerm
from stratify.losses._checks import check_float

__all__ = ["ClusterHeads", "SelfTraining"]


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


class ClusterHeads(LossTerm):
    """Several clustering heads trained at once with SCAN's loss (Van Gansbeke et al. 2020).

    Head ``h`` assigns a latent ``v`` by cosine similarity to its K prototypes,
    ``p_h(v) = softmax_k(<v / |v|, w_hk / |w_hk|> / temperature)``. Each head minimises

    ``neighbour_consistency(p(anchor), p(neighbours))
    + entropy_weight * KL(mean p(anchor) || prior)
    + self_label_weight * confident_cross_entropy(p(anchor), logits(neighbours))``

    (:mod:`stratify.losses.functional`): an anchor and its nearest neighbours in the latent
    space get the same stratum, the strata's expected sizes stay near ``prior`` (uniform:
    SCAN's entropy term; the data's own proportions for imbalanced classes), and the
    confident anchors' strata are taught to their neighbours. The heads are independent; the
    term is their mean, and :meth:`head_losses` scores each on a whole set.

    Parameters
    ----------
    prototypes : array-like of shape (H, K, D)
        Initial prototypes of the H heads (different inits: different heads).
    prior : array-like of shape (K,) or (H, K)
        Expected stratum sizes (positive; normalised to sum to 1), shared or per head.
    temperature : float, default=0.1
    entropy_weight : float, default=5.0
    self_label_weight : float, default=1.0
    threshold : float, default=0.99
        Confidence from which an anchor's argmax becomes its neighbours' pseudo label.

    Notes
    -----
    Inputs: ``mu`` (N, D), the anchors; ``x`` (N, 1 + M, D, 1), the anchors followed by
    their M neighbours (rows built by :func:`stratify.cluster.head.neighbour_rows`).
    Returns a 0-dim tensor.
    """

    requires = frozenset({"x", "mu"})

    def __init__(
        self,
        prototypes: Any,
        prior: Any,
        temperature: float = 0.1,
        entropy_weight: float = 5.0,
        self_label_weight: float = 1.0,
        threshold: float = 0.99,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        prototypes = torch.as_tensor(prototypes, dtype=torch.float32)
        if prototypes.ndim != 3 or prototypes.shape[1] < 2:
            raise ValueError(
                f"The 'prototypes' parameter of {owner} must be an array of shape (H, K, D) "
                f"with K >= 2. Got shape {tuple(prototypes.shape)} instead."
            )
        prior = torch.as_tensor(prior, dtype=torch.float32)
        heads, k = prototypes.shape[:2]
        if prior.ndim == 1:
            prior = prior.expand(heads, -1)
        if prior.shape != (heads, k) or not bool((prior > 0).all()):
            raise ValueError(
                f"The 'prior' parameter of {owner} must hold {k} positive sizes (or H x {k}). "
                f"Got {prior.tolist()} instead."
            )
        self.prototypes = nn.Parameter(prototypes.clone())
        self.register_buffer("prior", prior / prior.sum(dim=1, keepdim=True))
        self.temperature = check_float(temperature, "temperature", owner)
        self.entropy_weight = check_float(entropy_weight, "entropy_weight", owner, closed=True)
        self.self_label_weight = check_float(
            self_label_weight, "self_label_weight", owner, closed=True
        )
        self.threshold = check_float(threshold, "threshold", owner)
        if self.threshold > 1:
            raise ValueError(
                f"The 'threshold' parameter of {owner} must be a float in the range (0, 1]. "
                f"Got {threshold!r} instead."
            )

    def _prior(self) -> Tensor:
        prior = self.prior
        assert isinstance(prior, Tensor)  # a registered buffer
        return prior

    def logits(self, v: Tensor) -> Tensor:
        """Logits (H, *batch, K) of latents ``v`` (*batch, D) under every head."""
        directions = nn.functional.normalize(v, dim=-1, eps=LF.NORMALIZE_EPS)
        weights = nn.functional.normalize(self.prototypes, dim=-1, eps=LF.NORMALIZE_EPS)
        flat = directions.reshape(-1, directions.shape[-1])
        out = torch.einsum("nd,hkd->hnk", flat, weights) / self.temperature
        return out.reshape(weights.shape[0], *directions.shape[:-1], weights.shape[1])

    def _per_head(self, mu: Tensor, neighbours: Tensor, self_label: bool) -> Tensor:
        anchor, others = self.logits(mu).softmax(dim=-1), self.logits(neighbours)
        loss = LF.neighbour_consistency(anchor, others.softmax(dim=-1))
        loss = loss + self.entropy_weight * LF.size_divergence(anchor, self._prior())
        if self_label and self.self_label_weight > 0:
            loss = loss + self.self_label_weight * LF.confident_cross_entropy(
                anchor, others, self.threshold
            )
        return loss

    def forward(self, x: Tensor, mu: Tensor) -> Tensor:
        """The heads' mean loss on a batch of rows ``x`` (N, 1 + M, D, 1), anchors ``mu``."""
        return self._per_head(mu, x[:, 1:, :, 0], self_label=True).mean()

    @torch.no_grad()
    def head_losses(self, rows: Tensor) -> Tensor:
        """Each head's consistency and size terms (H,) on a whole set of neighbour rows
        (N, 1 + M, D, 1): the label-free score by which the best head is kept.
        """
        return self._per_head(rows[:, 0, :, 0], rows[:, 1:, :, 0], self_label=False)
