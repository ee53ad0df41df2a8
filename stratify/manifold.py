"""The manifold step between latents and clusterer (N2D: McConville et al. 2020).

:class:`ManifoldEmbedding` maps latents (N, D) to a few dimensions with UMAP (McInnes et al.
2018) at ``min_dist=0``, which packs each dense region of the latent space into a tight clump
that a Gaussian mixture or k-means then separates. UMAP is imported only when a manifold is
fitted (``umap-learn`` compiles with numba on first use).

New samples are placed without the fitted UMAP object, by a rule that needs only two arrays
(the training latents and their manifold coordinates), so a saved model stores arrays, never a
pickled object:

    y_new = sum_j w_j y_j / sum_j w_j,   w_j = exp(-max(0, d_j - rho) / sigma)

over the ``n_neighbors`` nearest training latents ``j`` of the new latent (Euclidean distance
``d_j``), with ``rho`` the distance to the nearest one and ``sigma`` chosen by bisection so that
``sum_j w_j = log2(n_neighbors)``: UMAP's own fuzzy membership of a point to its neighbours
(McInnes et al. 2018, section 3.1), and the position from which UMAP's ``transform`` starts its
optimisation. A new latent that equals a training latent (up to float32 round-off) gets that
sample's own coordinates, so ``predict`` on the training images gives ``labels_``. In a
first measurement (one seed, PneumoniaMNIST and BreastMNIST test splits) the rule assigned
test strata as well as UMAP's ``transform`` did (ACC within 0.021 either way; an ad-hoc
script, not a committed benchmark).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted, validate_data

from stratify._validation import check_in_range

__all__ = ["ManifoldEmbedding", "fuzzy_weights"]

#: Relative distance under which a new latent is taken to be a training latent (float32
#: round-off of the same image embedded in another batch).
_SAME = 1e-5


def fuzzy_weights(distances: np.ndarray, n_iter: int = 64) -> np.ndarray:
    """UMAP's fuzzy membership of each point to its nearest neighbours.

    Parameters
    ----------
    distances : numpy.ndarray of shape (M, K)
        Distances of each of M points to its K nearest neighbours, ascending per row.
    n_iter : int, default=64
        Bisection steps for ``sigma``.

    Returns
    -------
    numpy.ndarray of float64, shape (M, K)
        ``exp(-max(0, d - rho) / sigma)`` with ``rho`` the row's smallest distance and
        ``sigma`` such that each row sums to ``log2(K)`` (for K = 1 the single weight is 1).
    """
    d = np.asarray(distances, dtype=np.float64)
    excess = np.maximum(d - d[:, :1], 0.0)
    if d.shape[1] == 1:
        return np.ones_like(d)
    target = np.log2(d.shape[1])
    low = np.zeros(len(d))
    high = np.full(len(d), np.inf)
    sigma = np.ones(len(d))
    for _ in range(n_iter):
        total = np.exp(-excess / sigma[:, None]).sum(axis=1)
        too_big = total > target  # sigma too large: weights too flat
        high = np.where(too_big, sigma, high)
        low = np.where(too_big, low, sigma)
        sigma = np.where(np.isinf(high), sigma * 2.0, (low + high) / 2.0)
    return np.exp(-excess / sigma[:, None])


class ManifoldEmbedding(TransformerMixin, BaseEstimator):
    """UMAP to a few dimensions, with an array-only rule for new samples.

    Parameters
    ----------
    n_components : int, default=10
        Dimension of the manifold (capped at the latent dimension).
    n_neighbors : int, default=15
        UMAP's neighbourhood size, also used by the rule that places new samples (capped at
        N - 1).
    min_dist : float, default=0.0
        UMAP's ``min_dist``; 0 packs clusters tightly (N2D).
    random_state : int or None, default=None
        UMAP's seed (with a seed UMAP runs single-threaded and is reproducible).

    Attributes
    ----------
    latents_ : numpy.ndarray of float64, shape (N, D)
        The training latents (the placement rule's reference points).
    embedding_ : numpy.ndarray of float64, shape (N, n_components_)
        Their manifold coordinates.
    n_components_, n_neighbors_ : int
        The values used after capping.
    n_features_in_ : int
    """

    def __init__(self, n_components: int = 10, n_neighbors: int = 15, min_dist: float = 0.0,
                 random_state: int | None = None) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state

    def _validate_params(self) -> None:
        owner = type(self).__name__
        check_in_range(self.n_components, "n_components", owner, kind=int, low=1)
        check_in_range(self.n_neighbors, "n_neighbors", owner, kind=int, low=2)
        check_in_range(self.min_dist, "min_dist", owner, low=0.0)

    def fit(self, X: Any, y: Any = None, *, embedding: np.ndarray | None = None
            ) -> ManifoldEmbedding:
        """Fit UMAP on the latents ``X`` (N, D); ``y`` is ignored.

        Parameters
        ----------
        X : array-like of shape (N, D)
        y : ignored
        embedding : numpy.ndarray of shape (N, n_components_), optional
            Manifold coordinates of ``X`` computed before (a loaded model): UMAP is not run
            again.

        Returns
        -------
        self : ManifoldEmbedding
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=3)
        self.latents_ = X
        self.n_components_ = min(self.n_components, X.shape[1])
        self.n_neighbors_ = min(self.n_neighbors, len(X) - 1)
        if embedding is not None:
            embedding = np.asarray(embedding, dtype=np.float64)
            if embedding.shape != (len(X), self.n_components_):
                raise ValueError(
                    f"Expected a precomputed embedding of shape {(len(X), self.n_components_)},"
                    f" got {embedding.shape}."
                )
            self.embedding_ = embedding
        else:
            self.embedding_ = self._umap(X)
        self._neighbors = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(X)
        return self

    def _umap(self, X: np.ndarray) -> np.ndarray:
        import warnings

        import umap  # imported lazily: slow to import (numba)

        reducer = umap.UMAP(
            n_components=self.n_components_, n_neighbors=self.n_neighbors_,
            min_dist=self.min_dist, random_state=self.random_state,
            init="spectral" if len(X) > self.n_components_ + 1 else "random",
        )
        with warnings.catch_warnings():  # "n_jobs overridden by random_state", tiny-N notes
            warnings.filterwarnings("ignore", category=UserWarning, module="umap")
            return np.asarray(reducer.fit_transform(X), dtype=np.float64)

    def transform(self, X: Any) -> np.ndarray:
        """Place new latents (M, D) on the manifold by the membership-weighted neighbour rule.

        Returns
        -------
        numpy.ndarray of float64, shape (M, n_components_)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        distances, index = self._neighbors.kneighbors(X)
        weights = fuzzy_weights(distances)
        weights /= weights.sum(axis=1, keepdims=True)
        placed = np.einsum("mk,mkc->mc", weights, self.embedding_[index])
        # a training latent (up to float32 round-off) keeps its own coordinates
        same = distances[:, 0] <= _SAME * (1.0 + np.linalg.norm(X, axis=1))
        placed[same] = self.embedding_[index[same, 0]]
        return placed

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the training coordinates ``embedding_`` (not the placement rule)."""
        return self.fit(X, y, **fit_params).embedding_
