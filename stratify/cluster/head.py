"""The ``"head"`` backend: SCAN-style clustering heads on the latents (Van Gansbeke et al. 2020).

The contrastive pretraining already makes a patient's nearest neighbours in the latent space
share its class far more often than a Gaussian mixture's boundary does (a linear probe of the
hard cohort reaches 1.000 where the mixture's strata reach 0.67-0.78). The head turns that
into strata: each latent's ``n_neighbors`` nearest neighbours are mined once over the whole
set (cosine similarity), and ``n_heads`` cosine-prototype heads (:class:`~stratify.losses.
ClusterHeads`), started from ``n_heads`` seeded k-means runs, learn with SCAN's loss that a
patient and its neighbours belong together, that the strata's expected sizes stay near a
prior, and that the confident patients' strata carry over to their neighbours
(self-labelling). The head with the lowest consistency + size loss on the whole set is kept
(no labels). ``predict`` is its argmax and ``predict_proba`` its softmax: new patients need
no neighbour search.

The heads are trained by the one training loop (:func:`stratify.training.train`) on the
frozen latents: :class:`LatentRows` plays the network, each "image" is an anchor followed by
its neighbours (:func:`neighbour_rows`). Frozen latents keep the stage to seconds on a CPU
and make it a backend like the others (refitted from the stored latents on load); SCAN
also fine-tunes the backbone, which is not done here.

Imbalance: ``prior="uniform"`` is SCAN's entropy term (equal expected sizes); ``"gmm"``
takes the expected sizes from a Gaussian mixture fitted to the same latents (its weights),
so a 74/26 cohort is not pushed towards 50/50.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "HEAD_SETTINGS",
    "HeadClusterer",
    "LatentRows",
    "fit_head",
    "head_epochs",
    "neighbour_rows",
]

#: The backend's settings (SCAN's, except the neighbours: 10 rather than 20, for cohorts of
#: a few hundred patients, and the steps, a CPU budget).
HEAD_SETTINGS: dict[str, Any] = {
    "n_heads": 5,
    "n_neighbors": 10,
    "temperature": 0.1,
    "entropy_weight": 5.0,
    "self_label_weight": 1.0,
    "threshold": 0.99,
    "prior": "uniform",
    "steps": 500,
    "batch_size": 256,
    "lr": 1e-2,
}


class LatentRows(nn.Module):
    """The training loop's "network" for the heads: encodes a row to its anchor latent.

    A row is (1 + M, D, 1): the anchor, then its M neighbours; ``encode`` returns the anchor
    (N, D). It has no parameters (the heads are the objective's).
    """

    has_decoder = False

    def encode(self, x: Tensor) -> tuple[Tensor, None]:
        """The anchors (N, D) of rows (N, 1 + M, D, 1); no log-variance."""
        return x[:, 0, :, 0], None

    def project(self, mu: Tensor) -> Tensor:
        """Identity (no projection head)."""
        return mu


def _normalised(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def neighbour_rows(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Each latent followed by its nearest neighbours by cosine similarity.

    Parameters
    ----------
    X : numpy.ndarray, shape (N, D)
    n_neighbors : int
        M; at most N - 1 are used.

    Returns
    -------
    numpy.ndarray of float32, shape (N, 1 + M, D, 1)
        L2-normalised; row ``i`` is ``X[i]`` then its M nearest other latents, nearest
        first.
    """
    from sklearn.neighbors import NearestNeighbors

    unit = _normalised(np.asarray(X, dtype=np.float64))
    m = min(int(n_neighbors), len(unit) - 1)
    index = NearestNeighbors(n_neighbors=m + 1).fit(unit)
    _, found = index.kneighbors(unit)
    own = np.arange(len(unit))
    others = np.stack([row[row != i][:m] for i, row in zip(own, found, strict=True)])
    rows = np.concatenate([own[:, None], others], axis=1)
    return unit[rows][..., None].astype(np.float32)


def head_epochs(n_samples: int, steps: int, batch_size: int) -> int:
    """Epochs that give about ``steps`` updates of ``batch_size`` on ``n_samples`` rows."""
    return max(1, math.ceil(steps * batch_size / max(n_samples, 1)))


@dataclass
class HeadClusterer:
    """The kept head: cosine prototypes and their temperature.

    Attributes
    ----------
    prototypes : numpy.ndarray, shape (K, D)
        Unit vectors.
    temperature : float
    prior : numpy.ndarray, shape (K,)
        The expected sizes it was trained towards.
    head_losses : numpy.ndarray, shape (H,)
        Every head's consistency + size loss on the training latents.
    selected : int
        The kept head (the lowest loss).
    """

    prototypes: np.ndarray
    temperature: float
    prior: np.ndarray
    head_losses: np.ndarray
    selected: int

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of cosine similarities (M, K) of latents ``X`` (M, D)."""
        logits = _normalised(np.asarray(X, dtype=np.float64)) @ self.prototypes.T
        logits = logits / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Argmax (M,) of :meth:`predict_proba`."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)


def _initial_heads(
    unit: np.ndarray, k: int, n_heads: int, seed: int, rule: str
) -> tuple[np.ndarray, np.ndarray]:
    """Prototypes (H, K, D) and size priors (H, K) of the heads' starts.

    ``"uniform"``: the centres of ``n_heads`` k-means runs with different seeds, equal
    sizes. ``"gmm"``: the strata of ``n_heads`` Gaussian mixtures with different seeds, each
    head's prototypes their mean directions and its prior the mixture's weights (so sizes
    and prototypes match by construction).
    """
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    prototypes, priors = [], []
    for h in range(n_heads):
        if rule == "uniform":
            centres = KMeans(k, n_init=1, random_state=seed + h).fit(unit).cluster_centers_
            prototypes.append(_normalised(centres))
            priors.append(np.full(k, 1.0 / k))
            continue
        mixture = GaussianMixture(k, random_state=seed + h).fit(unit)
        labels = mixture.predict(unit)
        centres = np.stack(
            [
                unit[labels == c].mean(axis=0) if (labels == c).any() else mixture.means_[c]
                for c in range(k)
            ]
        )
        prototypes.append(_normalised(centres))
        weights = np.maximum(mixture.weights_, 1e-3)
        priors.append(weights / weights.sum())
    return np.stack(prototypes), np.stack(priors)


def fit_head(
    X: np.ndarray, k: int, seed: int, settings: dict[str, Any] | None = None
) -> tuple[HeadClusterer, np.ndarray]:
    """Train the heads on latents ``X`` (N, D) and keep the best; its strata of ``X``.

    Parameters
    ----------
    X : numpy.ndarray, shape (N, D)
    k : int
        Strata, at least 2 and at most N.
    seed : int
    settings : dict, optional
        Overrides of :data:`HEAD_SETTINGS`.

    Returns
    -------
    head : HeadClusterer
    labels : numpy.ndarray of int, shape (N,)
    """
    from stratify.losses import ClusterHeads, Objective
    from stratify.training import TrainConfig, train

    options = {**HEAD_SETTINGS, **(settings or {})}
    if not 2 <= k <= len(X):
        raise ValueError(
            f"Expected the head's number of strata in [2, {len(X)}] (the samples), got {k}."
        )
    rows = neighbour_rows(X, options["n_neighbors"])
    unit = rows[:, 0, :, 0].astype(np.float64)
    if np.ptp(unit, axis=0).max() <= 1e-9:
        raise ValueError(
            "Expected latents that differ, got identical latents for every sample: the head "
            "has no neighbours to learn from (are the images all identical?)."
        )
    if options["prior"] not in ("uniform", "gmm"):
        raise ValueError(f"Expected the head's prior 'uniform' or 'gmm', got {options['prior']!r}.")
    prototypes, prior = _initial_heads(unit, k, options["n_heads"], seed, options["prior"])
    term = ClusterHeads(
        prototypes,
        prior,
        temperature=options["temperature"],
        entropy_weight=options["entropy_weight"],
        self_label_weight=options["self_label_weight"],
        threshold=options["threshold"],
    )
    batch = min(int(options["batch_size"]), len(X))
    config = TrainConfig(
        epochs=head_epochs(len(X), options["steps"], batch),
        batch_size=batch,
        lr=options["lr"],
        device="cpu",
        num_threads=1,  # tiny tensors: more threads only add overhead
        progress=False,
        distributed=False,  # every rank trains the same head, as one process would
    )
    network: Any = LatentRows()  # duck-types the Autoencoder interface the loop reads
    train(network, Objective({"cluster_heads": term}), rows, config=config, random_state=seed)
    losses = term.head_losses(torch.from_numpy(rows)).numpy()
    best = int(np.argmin(losses))
    head = HeadClusterer(
        prototypes=_normalised(term.prototypes[best].detach().double().numpy()),
        temperature=float(options["temperature"]),
        prior=prior[best],
        head_losses=losses.astype(np.float64),
        selected=best,
    )
    return head, head.predict(unit)
