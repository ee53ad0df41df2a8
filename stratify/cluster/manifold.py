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

from stratify._random import draw_seeds
from stratify._validation import check_in_range

__all__ = ["MANIFOLD_FIT_SAMPLES", "ManifoldEmbedding", "fuzzy_weights"]

#: Relative distance under which a new latent is taken to be a training latent (float32
#: round-off of the same image embedded in another batch).
_SAME = 1e-5
#: Rows placed per nearest-neighbour query.
_CHUNK = 8192
#: Latents UMAP is fitted on at most (the large-N path; see ``fit_samples``).
MANIFOLD_FIT_SAMPLES = 20_000


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
    fit_samples : int or None, default=20000
        The large-N path: with more latents than this, UMAP is fitted on a seeded random
        subsample of this size and the other latents are placed by the rule above, exactly
        as new samples are (UMAP's cost grows faster than linearly; the placement is a
        nearest-neighbour query). None: UMAP on every latent.
    random_state : int or None, default=None
        UMAP's seed (with a seed UMAP runs single-threaded and is reproducible), and the
        subsample's.

    Attributes
    ----------
    latents_ : numpy.ndarray of float64, shape (N, D)
        The training latents.
    embedding_ : numpy.ndarray of float64, shape (N, n_components_)
        Their manifold coordinates.
    fit_rows_ : numpy.ndarray of int or None
        The latents UMAP was fitted on, which are the placement rule's reference points
        (None: all of them).
    n_components_, n_neighbors_ : int
        The values used after capping.
    n_features_in_ : int
    """

    def __init__(
        self,
        n_components: int = 10,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        fit_samples: int | None = MANIFOLD_FIT_SAMPLES,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.fit_samples = fit_samples
        self.random_state = random_state

    def _validate_params(self) -> None:
        owner = type(self).__name__
        check_in_range(self.n_components, "n_components", owner, kind=int, low=1)
        check_in_range(self.n_neighbors, "n_neighbors", owner, kind=int, low=2)
        check_in_range(self.min_dist, "min_dist", owner, low=0.0)
        if self.fit_samples is not None:
            check_in_range(self.fit_samples, "fit_samples", owner, kind=int, low=3)

    def fit(
        self, X: Any, y: Any = None, *, embedding: np.ndarray | None = None
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
        rows = None
        if self.fit_samples is not None and len(X) > self.fit_samples:
            rng = np.random.default_rng(draw_seeds(self.random_state))
            rows = np.sort(rng.choice(len(X), size=self.fit_samples, replace=False))
        self.fit_rows_ = rows
        reference = X if rows is None else X[rows]
        self.n_neighbors_ = min(self.n_neighbors, len(reference) - 1)
        self._neighbors = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(reference)
        if embedding is not None:
            embedding = np.asarray(embedding, dtype=np.float64)
            if embedding.shape != (len(X), self.n_components_):
                raise ValueError(
                    f"Expected a precomputed embedding of shape {(len(X), self.n_components_)},"
                    f" got {embedding.shape}."
                )
            self._reference_embedding = embedding if rows is None else embedding[rows]
            self.embedding_ = embedding
            return self
        self._reference_embedding = self._umap(reference)
        if rows is None:
            self.embedding_ = self._reference_embedding
            return self
        self.embedding_ = np.empty((len(X), self.n_components_))
        self.embedding_[rows] = self._reference_embedding
        rest = np.setdiff1d(np.arange(len(X)), rows)
        self.embedding_[rest] = self._place(X[rest])
        return self

    def _umap(self, X: np.ndarray) -> np.ndarray:
        import warnings

        import umap  # imported lazily: slow to import (numba)

        reducer = umap.UMAP(
            n_components=self.n_components_,
            n_neighbors=self.n_neighbors_,
            min_dist=self.min_dist,
            random_state=self.random_state,
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
        return self._place(X)

    def _place(self, X: np.ndarray) -> np.ndarray:
        """The placement rule against the reference latents (in chunks: bounded memory)."""
        out = np.empty((len(X), self.n_components_))
        for start in range(0, len(X), _CHUNK):
            part = X[start : start + _CHUNK]
            distances, index = self._neighbors.kneighbors(part)
            weights = fuzzy_weights(distances)
            weights /= weights.sum(axis=1, keepdims=True)
            placed = np.einsum("mk,mkc->mc", weights, self._reference_embedding[index])
            # a reference latent (up to float32 round-off) keeps its own coordinates
            same = distances[:, 0] <= _SAME * (1.0 + np.linalg.norm(part, axis=1))
            placed[same] = self._reference_embedding[index[same, 0]]
            out[start : start + _CHUNK] = placed
        return out

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit and return the training coordinates ``embedding_`` (not the placement rule)."""
        return self.fit(X, y, **fit_params).embedding_
