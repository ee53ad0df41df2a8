"""Clustering backends behind one interface, with new-sample assignment for every backend.

:class:`StrataClusterer` fits k-means, a Gaussian mixture, HDBSCAN, agglomerative or spectral
clustering (or any scikit-learn clusterer instance) on latents, chooses the number of clusters
when asked (``n_clusters="auto"``), and assigns new samples:

========================  ===================================================================
backend                   ``predict`` on new samples
========================  ===================================================================
``"kmeans"``, ``"gmm"``   the backend's own ``predict`` (nearest centre / highest posterior)
``"hdbscan"``             ``hdbscan.approximate_predict``; ``-1`` marks noise (a sample that
                          falls in no stratum)
``"agglomerative"``,      nearest centroid of the fitted strata (Euclidean); these methods
``"spectral"``            have no out-of-sample rule of their own
an instance               its ``predict`` if it has one, else the nearest-centroid rule
========================  ===================================================================
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from stratify._validation import check_in_range, check_option

__all__ = ["METHODS", "StrataClusterer"]

METHODS = ("kmeans", "gmm", "hdbscan", "agglomerative", "spectral")


def _seed(random_state: Any) -> int:
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


class StrataClusterer(ClusterMixin, BaseEstimator):
    """Cluster latents into strata with a chosen backend, and assign new samples.

    Parameters
    ----------
    method : {"kmeans", "gmm", "hdbscan", "agglomerative", "spectral"} or estimator, \
default="kmeans"
        The backend, or a scikit-learn clusterer instance (cloned in ``fit``; its own
        settings are used as given, ``n_clusters`` is ignored for it).
    n_clusters : int or "auto", default=3
        Number of strata. ``"auto"`` picks it from ``k_range`` by the silhouette score
        (k-means, agglomerative, spectral) or the BIC (GMM). HDBSCAN always picks its own
        number; an int is then ignored with a warning.
    k_range : tuple of int, default=(2, 10)
        Inclusive range of candidate k for ``"auto"``.
    min_cluster_size : int or None, default=None
        HDBSCAN's smallest stratum; None uses ``max(5, N // 50)``.
    random_state : int, RandomState instance or None, default=None
        Seed of the randomised backends (k-means, GMM, spectral) and of the silhouette
        subsample.

    Attributes
    ----------
    estimator_ : estimator
        The fitted backend.
    labels_ : numpy.ndarray of int, shape (N,)
        Stratum of each training sample; ``-1`` is HDBSCAN noise.
    n_clusters_ : int
        Number of strata found (noise excluded).
    cluster_centers_ : numpy.ndarray, shape (n_clusters_, D)
        Mean latent of each stratum (the nearest-centroid rule uses it).
    probabilities_ : numpy.ndarray, shape (N,)
        Membership strength of each training sample (GMM: the highest posterior; HDBSCAN:
        its ``probabilities_``); absent for the other backends.
    outlier_scores_ : numpy.ndarray, shape (N,)
        HDBSCAN's GLOSH outlier scores; HDBSCAN only.
    cluster_selection_ : pandas.DataFrame
        With ``n_clusters="auto"``: one row per candidate k (``k``, ``criterion``, ``score``,
        ``selected``).
    n_features_in_ : int
        Latent dimension seen in ``fit``.
    """

    def __init__(
        self,
        method: str | BaseEstimator = "kmeans",
        n_clusters: int | str = 3,
        *,
        k_range: tuple[int, int] = (2, 10),
        min_cluster_size: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.min_cluster_size = min_cluster_size
        self.random_state = random_state

    # ------------------------------------------------------------------------------ fit
    def _validate_params(self) -> None:
        owner = type(self).__name__
        if isinstance(self.method, str):
            check_option(self.method, "method", owner, set(METHODS))
        elif not hasattr(self.method, "fit"):
            raise TypeError(
                f"The 'method' parameter of {owner} must be one of {METHODS} or a clusterer "
                f"with a fit method. Got {self.method!r} instead."
            )
        if self.n_clusters != "auto":
            check_in_range(self.n_clusters, "n_clusters", owner, kind=int, low=1)
        low, high = self.k_range
        check_in_range(low, "k_range[0]", owner, kind=int, low=2)
        check_in_range(high, "k_range[1]", owner, kind=int, low=low)
        if self.min_cluster_size is not None:
            check_in_range(self.min_cluster_size, "min_cluster_size", owner, kind=int, low=2)

    def _backend(self, k: int, n_samples: int, seed: int) -> BaseEstimator:
        if not isinstance(self.method, str):
            return clone(self.method)
        if self.method == "kmeans":
            return KMeans(k, n_init=10, random_state=seed)
        if self.method == "gmm":
            return GaussianMixture(k, n_init=2, random_state=seed)
        if self.method == "agglomerative":
            return AgglomerativeClustering(k, linkage="ward")
        if self.method == "spectral":
            return SpectralClustering(
                k, affinity="nearest_neighbors", n_neighbors=max(2, min(10, n_samples - 1)),
                assign_labels="cluster_qr", random_state=seed,
            )
        import hdbscan  # imported lazily: it is slow to import

        size = self.min_cluster_size or max(5, n_samples // 50)
        return hdbscan.HDBSCAN(min_cluster_size=size, prediction_data=True)

    def _select_k(self, X: np.ndarray, seed: int) -> tuple[int, pd.DataFrame]:
        low, high = self.k_range
        high = min(high, len(X) - 1)
        if high < low:
            raise ValueError(
                f"Expected more samples than the smallest candidate k ({low}) to choose "
                f"n_clusters automatically, got {len(X)} samples."
            )
        rows = []
        for k in range(low, high + 1):
            backend = self._backend(k, len(X), seed)
            if self.method == "gmm":
                criterion, score = "bic", float(backend.fit(X).bic(X))
            else:
                labels = backend.fit_predict(X)
                criterion = "silhouette"
                score = (
                    float(silhouette_score(X, labels, sample_size=min(len(X), 5000),
                                           random_state=seed))
                    if len(np.unique(labels)) > 1 else float("-inf")
                )
            rows.append({"k": k, "criterion": criterion, "score": score})
        table = pd.DataFrame(rows)
        best = table["score"].idxmin() if self.method == "gmm" else table["score"].idxmax()
        table["selected"] = table.index == best
        return int(table.loc[best, "k"]), table

    def fit(self, X: Any, y: Any = None) -> StrataClusterer:
        """Cluster the latents ``X`` of shape (N, D). ``y`` is ignored."""
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        seed = _seed(self.random_state)
        for attribute in ("probabilities_", "outlier_scores_", "cluster_selection_"):
            self.__dict__.pop(attribute, None)  # refitting forgets the previous fit

        k = self.n_clusters
        if self.method == "hdbscan" and k != "auto":
            warnings.warn(
                f"HDBSCAN chooses the number of strata itself; n_clusters={k} is ignored. "
                "Pass n_clusters='auto' to silence this warning.",
                UserWarning, stacklevel=2,
            )
        elif k == "auto" and isinstance(self.method, str) and self.method != "hdbscan":
            k, self.cluster_selection_ = self._select_k(X, seed)
        elif k != "auto" and k > len(X):
            raise ValueError(
                f"Expected at least n_clusters={k} samples, got {len(X)} samples."
            )

        self.estimator_ = self._backend(k if isinstance(k, int) else 2, len(X), seed)
        self.labels_ = np.asarray(self.estimator_.fit_predict(X), dtype=np.int64)
        clusters = np.unique(self.labels_[self.labels_ != -1])
        self.n_clusters_ = len(clusters)
        self.cluster_centers_ = np.stack(
            [X[self.labels_ == c].mean(axis=0) for c in clusters]
        ) if len(clusters) else np.empty((0, X.shape[1]))
        self._cluster_ids = clusters
        if self.method == "gmm":
            self.probabilities_ = self.estimator_.predict_proba(X).max(axis=1)
        elif self.method == "hdbscan":
            self.probabilities_ = np.asarray(self.estimator_.probabilities_)
            self.outlier_scores_ = np.asarray(self.estimator_.outlier_scores_)
        return self

    # -------------------------------------------------------------------------- predict
    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=[np.float64, np.float32], reset=False)

    def _nearest_centroid(self, X: np.ndarray) -> np.ndarray:
        if self.n_clusters_ == 0:
            return np.full(len(X), -1, dtype=np.int64)
        distances = ((X[:, None, :] - self.cluster_centers_[None]) ** 2).sum(axis=-1)
        return self._cluster_ids[distances.argmin(axis=1)].astype(np.int64)

    def predict(self, X: Any) -> np.ndarray:
        """Assign new latents (M, D) to the fitted strata; see the module's table for the rule.

        Returns
        -------
        numpy.ndarray of int, shape (M,)
            Stratum of each sample; ``-1`` (HDBSCAN only) marks noise.
        """
        X = self._check_X(X)
        if self.method == "hdbscan":
            import hdbscan

            labels, _ = hdbscan.approximate_predict(self.estimator_, X)
            return np.asarray(labels, dtype=np.int64)
        if self.method in ("kmeans", "gmm") or (
            not isinstance(self.method, str) and hasattr(self.estimator_, "predict")
        ):
            return np.asarray(self.estimator_.predict(X), dtype=np.int64)
        return self._nearest_centroid(X)

    def _has_proba(self) -> bool:
        return self.method in ("gmm", "hdbscan") or (
            not isinstance(self.method, str) and hasattr(self.method, "predict_proba")
        )

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_): GMM posteriors, HDBSCAN membership vectors.

        HDBSCAN's rows need not sum to one: a likely-noise sample has small memberships
        everywhere. Only the GMM, HDBSCAN and instance backends that have ``predict_proba``
        provide it.
        """
        X = self._check_X(X)
        if self.method == "hdbscan":
            import hdbscan

            if self.n_clusters_ == 0:
                return np.zeros((len(X), 0))
            return np.atleast_2d(hdbscan.membership_vector(self.estimator_, X))
        return self.estimator_.predict_proba(X)
