"""Clustering backends behind one interface, with new-sample assignment for every backend.

:class:`StrataClusterer` clusters latents, optionally after a manifold step (UMAP to a few
dimensions, :class:`~stratify.manifold.ManifoldEmbedding`), chooses the number of clusters
when asked (``n_clusters="auto"``) and assigns new samples. Each named backend is one entry
of :data:`BACKENDS`, a :class:`Backend` spec that says how to build and fit it, how to score
a candidate k, how new samples are assigned and whether it gives probabilities:

===================  ===============  =============================  ===========
backend              ``"auto"`` k by  ``predict`` on new samples     fitted on
===================  ===============  =============================  ===========
``"kmeans"``         silhouette       nearest centre (its predict)   all samples
``"gmm"``            BIC (lowest)     highest posterior (its own)    <= 20,000
``"hdbscan"``        DBCV (highest)   ``approximate_predict``; -1    <= 20,000
                                      marks noise
``"agglomerative"``  silhouette       nearest centroid of the strata <= 10,000
``"spectral"``       silhouette       nearest centroid of the strata <= 5,000
an instance          silhouette       its ``predict`` if any, else   all samples
                                      nearest centroid
===================  ===============  =============================  ===========

"fitted on" is the large-N path (``fit_samples``): beyond that many samples the backend is
fitted on a seeded subsample and the other samples are assigned by the ``predict`` rule, so
clustering 100,000 latents costs the fit on the subsample plus a linear assignment.

With ``manifold="umap"`` every rule above works on the manifold coordinates: new latents are
first placed on the manifold (see :mod:`stratify.manifold`), the silhouette is computed
there, and ``cluster_centers_`` live there. HDBSCAN with an int ``n_clusters`` uses hdbscan's
flat-clustering API (the cluster tree cut to give that many strata; samples may still be
noise).

With ``whiten=True`` the latents are PCA-whitened (:class:`Whitening`, fitted on the
samples the backend is fitted on) before a backend clusters them, and new latents are whitened
the same way; the manifold coordinates are never whitened. For the full-covariance GMM this
changes only the starting point (its k-means initialisation runs on whitened coordinates,
where no latent direction dominates the distances); the mixture family itself is invariant
to the affine map.

Adding a backend is one :class:`Backend` entry in :data:`BACKENDS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.cluster import AgglomerativeClustering, KMeans, SpectralClustering
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from stratify._random import draw_seeds
from stratify._validation import check_in_range, check_option
from stratify.manifold import ManifoldEmbedding

__all__ = [
    "BACKENDS",
    "MANIFOLDS",
    "METHODS",
    "Backend",
    "StrataClusterer",
    "UnreachableK",
    "Whitening",
]

MANIFOLDS = ("umap", "auto")


# ----------------------------------------------------------------------------- whitening
#: Eigenvalues of the latent covariance below this share of the largest are directions the
#: latents do not vary along (e.g. the radial one of L2-normalised latents); they are dropped
#: rather than divided by (almost) zero.
WHITENING_RTOL = 1e-9
#: Seeded runs per candidate space of ``manifold="auto"`` (stability = their mean pairwise ARI).
STABILITY_RUNS = 3
#: ``whiten="auto"`` whitens when every stratum can have at least this many samples per latent
#: dimension (N / k >= 10 D; k: the largest candidate with ``n_clusters="auto"``). Whitening
#: gives every direction unit variance, the directions the latents barely vary along too;
#: with few samples per stratum the k-means start of the mixture then follows chance
#: structure in those directions. Measured (README, "The default recipe"): on a 300-patient
#: cohort (3.1 samples per dimension per stratum; benchmarks/results/small_cohort.md) the
#: strata fell from ARI 0.896 to 0.241 when whitened; on the default networks of the shared
#: sets whitening helped the hard cohort (10.4; ACC 0.730 -> 0.781) and BreastMNIST (8.5;
#: 0.571 -> 0.603), left PneumoniaMNIST (74) unchanged and lost on the MNIST test set (31;
#: 0.905 -> 0.868): a GMM's start decides its local optimum either way. The threshold was
#: set from these measurements.
WHITEN_SAMPLES_PER_DIMENSION = 10


@dataclass
class Whitening:
    """PCA whitening: ``W = (X - mean) @ components.T / sqrt(variances)``.

    Attributes (after :meth:`fit`)
    ------------------------------
    mean : numpy.ndarray, shape (D,)
    components : numpy.ndarray, shape (R, D)
        Orthonormal eigenvectors of the covariance (rows), R = its numerical rank.
    variances : numpy.ndarray, shape (R,)
        Their eigenvalues (the variance of ``X`` along each component), descending.
    """

    mean: np.ndarray | None = None
    components: np.ndarray | None = None
    variances: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Whitening:
        """Fit on ``X`` of shape (N, D), N >= 2."""
        self.mean = X.mean(axis=0)
        values, vectors = np.linalg.eigh(
            np.cov(X - self.mean, rowvar=False).reshape(X.shape[1], X.shape[1])
        )
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        kept = values > WHITENING_RTOL * max(float(values[0]), np.finfo(float).tiny)
        self.components, self.variances = vectors[:, kept].T, values[kept]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Whitened coordinates (M, R) of ``X`` (M, D)."""
        return (X - self.mean) @ self.components.T / np.sqrt(self.variances)

    def inverse_gaussian(
        self, mean: np.ndarray, covariance: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian N(mean (R,), covariance (R, R)) in whitened coordinates, mapped back to
        the latents: mean (D,) and covariance (D, D) of ``w @ A + self.mean`` with
        ``A = diag(sqrt(variances)) @ components``."""
        A = np.sqrt(self.variances)[:, None] * self.components
        return mean @ A + self.mean, A.T @ covariance @ A


# ------------------------------------------------------------------------------ backends
@dataclass(frozen=True)
class Backend:
    """How one named clustering backend is fitted, scored and used for new samples.

    Attributes
    ----------
    fit : callable
        ``fit(X, k, seed, options) -> (estimator, labels)`` with ``X`` (N, D) float64, ``k``
        an int or None (the backend picks), ``options`` the clusterer's settings
        (``min_cluster_size``); ``labels`` (N,) int with ``-1`` for noise.
    criterion : {"silhouette", "bic", "dbcv"}
        How candidates of ``n_clusters="auto"`` are compared (see :func:`_criterion`).
    predict : callable or None
        ``predict(estimator, X) -> labels`` for new samples; None uses the nearest centroid of
        the fitted strata.
    predict_proba : callable or None
        ``predict_proba(estimator, X) -> (M, n_clusters_)``; None: no probabilities.
    probabilities : callable or None
        ``probabilities(estimator, X) -> (N,)`` membership strength of the training samples.
    strength : callable or None
        ``strength(estimator, X) -> (M,)`` membership strength of samples assigned by
        ``predict`` (the large-N path); None: ``probabilities`` is used for them too.
    fit_samples : int or None
        Above this many samples the backend is fitted on a seeded subsample of this size and
        the other samples are assigned by ``predict`` (the large-N path; see
        :class:`StrataClusterer`'s ``fit_samples``); None: always on every sample.
    """

    fit: Callable[[np.ndarray, int | None, int, dict[str, Any]], tuple[Any, np.ndarray]]
    criterion: str = "silhouette"
    predict: Callable[[Any, np.ndarray], np.ndarray] | None = None
    predict_proba: Callable[[Any, np.ndarray], np.ndarray] | None = None
    probabilities: Callable[[Any, np.ndarray], np.ndarray] | None = None
    strength: Callable[[Any, np.ndarray], np.ndarray] | None = None
    fit_samples: int | None = None


def _fit_predict(estimator: Any, X: np.ndarray) -> tuple[Any, np.ndarray]:
    return estimator, np.asarray(estimator.fit_predict(X), dtype=np.int64)


def _own_predict(estimator: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.predict(X), dtype=np.int64)


def _hdbscan_size(n_samples: int, options: dict[str, Any]) -> int:
    return options.get("min_cluster_size") or max(5, n_samples // 100)


def _fit_hdbscan(
    X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]
) -> tuple[Any, np.ndarray]:
    import hdbscan  # imported lazily: slow to import

    size = min(_hdbscan_size(len(X), options), max(2, len(X) // 2))
    # min_samples defaults to min_cluster_size in hdbscan, which on latents declares most
    # samples noise (83 % of the MNIST test latents at min_cluster_size=100; 65 % with 10)
    settings = {
        "min_cluster_size": size,
        "min_samples": min(size, HDBSCAN_MIN_SAMPLES),
        "prediction_data": True,
        "gen_min_span_tree": True,
    }
    model = hdbscan.HDBSCAN(**settings).fit(X)
    if k is not None and (model.labels_ >= 0).any():
        from hdbscan.flat import HDBSCAN_flat

        with warnings.catch_warnings():  # "cannot reach n_clusters": n_clusters_ tells
            warnings.simplefilter("ignore", UserWarning)
            try:
                model = HDBSCAN_flat(X, n_clusters=k, clusterer=model, **settings)
            except RuntimeError as error:  # hdbscan: "Could not find epsilon"
                raise UnreachableK(
                    f"Expected a number of strata that HDBSCAN's cluster tree can be cut "
                    f"into, got n_clusters={k}: hdbscan found no cut ({error}). Choose "
                    "another n_clusters, n_clusters='auto', or another clusterer."
                ) from None
    return model, np.asarray(model.labels_, dtype=np.int64)


class UnreachableK(ValueError):
    """A backend cannot give the requested number of clusters on these data."""


def _hdbscan_predict(estimator: Any, X: np.ndarray) -> np.ndarray:
    from hdbscan.flat import approximate_predict_flat

    labels, _ = approximate_predict_flat(estimator, X)
    return np.asarray(labels, dtype=np.int64)


def _hdbscan_strength(estimator: Any, X: np.ndarray) -> np.ndarray:
    from hdbscan.flat import approximate_predict_flat

    _, strength = approximate_predict_flat(estimator, X)
    return np.asarray(strength, dtype=np.float64)


def _hdbscan_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    from hdbscan.flat import membership_vector_flat

    if len(np.unique(estimator.labels_[estimator.labels_ >= 0])) == 0:
        return np.zeros((len(X), 0))
    return np.atleast_2d(membership_vector_flat(estimator, X))


#: Large-N path: samples each backend is fitted on at most (the rest are assigned by its
#: out-of-sample rule). Chosen by measurement on 32-d latents on 2 cores
#: (``benchmarks/scale.py``): fitting this many takes well under a minute. Ward
#: agglomerative keeps a condensed distance matrix (quadratic memory: 3.4 GB of peak RSS at
#: 20,000 samples), hence 10,000.
GMM_FIT_SAMPLES = 20_000
#: HDBSCAN's ``min_samples`` (the density estimate's neighbourhood), at most min_cluster_size.
HDBSCAN_MIN_SAMPLES = 10
#: Share of noise above which HDBSCAN on raw latents warns (and advises the manifold step).
HDBSCAN_NOISE_WARNING = 0.5
HDBSCAN_FIT_SAMPLES = 20_000
AGGLOMERATIVE_FIT_SAMPLES = 10_000
SPECTRAL_FIT_SAMPLES = 5_000

#: The named backends. A new one is one entry here.
BACKENDS: dict[str, Backend] = {
    "kmeans": Backend(
        fit=lambda X, k, seed, o: _fit_predict(KMeans(k, n_init=10, random_state=seed), X),
        predict=_own_predict,
    ),
    "gmm": Backend(
        fit=lambda X, k, seed, o: _fit_predict(GaussianMixture(k, n_init=2, random_state=seed), X),
        criterion="bic",
        predict=_own_predict,
        predict_proba=lambda estimator, X: estimator.predict_proba(X),
        probabilities=lambda estimator, X: estimator.predict_proba(X).max(axis=1),
        fit_samples=GMM_FIT_SAMPLES,
    ),
    "hdbscan": Backend(
        fit=_fit_hdbscan,
        criterion="dbcv",
        predict=_hdbscan_predict,
        predict_proba=_hdbscan_proba,
        probabilities=lambda estimator, X: np.asarray(estimator.probabilities_),
        strength=_hdbscan_strength,
        fit_samples=HDBSCAN_FIT_SAMPLES,
    ),
    "agglomerative": Backend(
        fit=lambda X, k, seed, o: _fit_predict(AgglomerativeClustering(k, linkage="ward"), X),
        fit_samples=AGGLOMERATIVE_FIT_SAMPLES,
    ),
    "spectral": Backend(
        fit=lambda X, k, seed, o: _fit_predict(
            SpectralClustering(
                k,
                affinity="nearest_neighbors",
                n_neighbors=max(2, min(10, len(X) - 1)),
                assign_labels="cluster_qr",
                random_state=seed,
            ),
            X,
        ),
        fit_samples=SPECTRAL_FIT_SAMPLES,
    ),
}
METHODS = tuple(BACKENDS)


def _instance_backend(instance: BaseEstimator) -> Backend:
    """The spec of a scikit-learn clusterer instance (cloned, used with its own settings)."""
    has_predict = hasattr(instance, "predict")
    return Backend(
        fit=lambda X, k, seed, o: _fit_predict(clone(instance), X),
        predict=_own_predict if has_predict else None,
        predict_proba=(lambda estimator, X: estimator.predict_proba(X))
        if hasattr(instance, "predict_proba")
        else None,
    )


def _criterion(name: str, X: np.ndarray, labels: np.ndarray, estimator: Any, seed: int) -> float:
    """Score of one candidate: silhouette (higher), BIC (lower), DBCV (higher)."""
    if name == "bic":
        return float(estimator.bic(X))
    kept = labels >= 0
    if len(np.unique(labels[kept])) < 2:
        return float("-inf")
    if name == "dbcv":
        return float(estimator.relative_validity_)
    return float(
        silhouette_score(
            X[kept], labels[kept], sample_size=min(int(kept.sum()), 5000), random_state=seed
        )
    )


def _nearest(X: np.ndarray, centers: np.ndarray, ids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Id of the nearest centre of each row of ``X`` (M, D); -1 without centres.

    Computed in chunks of rows, so memory stays at ``chunk x K`` distances for any M.
    """
    if len(centers) == 0:
        return np.full(len(X), -1, dtype=np.int64)
    out = np.empty(len(X), dtype=np.int64)
    squared = (centers**2).sum(axis=1)
    for start in range(0, len(X), chunk):
        part = X[start : start + chunk]
        distances = squared[None, :] - 2.0 * part @ centers.T  # + |x|^2, same for every centre
        out[start : start + chunk] = ids[distances.argmin(axis=1)]
    return out


# ----------------------------------------------------------------------------- estimator
class StrataClusterer(ClusterMixin, BaseEstimator):
    """Cluster latents into strata with a chosen backend, and assign new samples.

    Parameters
    ----------
    method : str or estimator, default="kmeans"
        A key of :data:`BACKENDS` ("kmeans", "gmm", "hdbscan", "agglomerative",
        "spectral"), or a scikit-learn clusterer instance (cloned in ``fit``; its own
        settings are used as given, ``n_clusters`` is ignored for it).
    n_clusters : int or "auto", default=3
        Number of strata. ``"auto"`` picks it from ``k_range`` by the backend's
        criterion (silhouette, BIC or DBCV); HDBSCAN's candidates are its flat clusterings
        with k strata. With a manifold step, k is chosen on the latents and then used on
        every space (the criteria computed on UMAP coordinates chose badly).
    k_range : tuple of int, default=(2, 10)
        Inclusive range of candidate k for ``"auto"``.
    min_cluster_size : int or None, default=None
        HDBSCAN's smallest stratum; None uses ``max(5, N // 100)`` (N: the samples it is
        fitted on). Its ``min_samples`` is ``min(min_cluster_size, 10)``. HDBSCAN is
        density-based: on raw contrastive latents it marks much as noise (a warning says so
        above 50 %); on the manifold step (``manifold="umap"``) it is the N2D recipe.
    manifold : {"umap", "auto"} or None, default=None
        "umap" clusters the manifold coordinates of the latents (N2D) instead of the latents.
        "auto" clusters each space (the latents, the manifold) ``STABILITY_RUNS`` (3) times
        with different seeds, the manifold recomputed each time, and keeps the space whose
        partitions agree best (mean pairwise ARI; the latents on a tie), with its medoid run;
        recorded in ``manifold_selection_``. The manifold step separates thin, curved
        clusters (digits) but can split a cluster along a nuisance (scanner site) and merge
        the pieces differently from run to run; a mixture on raw latents whose clusters are
        not ellipsoids lands in a different local optimum from run to run. Stability tells
        the two failures apart without labels (it replaced the silhouette on the latents,
        which chose the manifold on PneumoniaMNIST where it lost; README, "The default
        recipe").
    manifold_dim : int, default=10
        Dimension of the manifold (capped at the latent dimension).
    n_neighbors : int, default=15
        UMAP's neighbourhood size (and that of the placement rule for new samples).
    fit_samples : int, "auto" or None, default="auto"
        The large-N path. With more samples than this, the backend is fitted on a seeded
        random subsample of this size (``n_clusters="auto"`` is chosen there too) and the
        other samples are assigned by its out-of-sample rule (the ``predict`` of the table
        above), so the cost stops growing with N beyond the assignment. ``"auto"``: the
        backend's own size (k-means: every sample, it is linear; GMM and HDBSCAN: 20,000;
        agglomerative: 10,000; spectral: 5,000 - see the README's table of costs); None:
        every sample whatever N. Assigned samples get HDBSCAN's approximate-prediction
        strength as ``probabilities_`` and NaN as ``outlier_scores_``;
        ``fit_rows_`` lists the fitted ones.
    whiten : bool or "auto", default=False
        PCA-whiten the latents before the backend clusters them (:class:`Whitening`, fitted
        on the samples the backend is fitted on; new latents are whitened the same way).
        Not applied to the manifold coordinates. ``"auto"``: whiten when the backend is
        fitted on at least ``WHITEN_SAMPLES_PER_DIMENSION`` (10) x D samples per stratum.
    random_state : int, RandomState instance or None, default=None
        Seed of the randomised backends (k-means, GMM, spectral), of UMAP, of the
        subsample of ``fit_samples`` and of the silhouette subsample.

    Attributes
    ----------
    estimator_ : estimator
        The fitted backend.
    whitening_ : Whitening or None
        The whitening of the latents the strata were found in (None: not whitened, or the
        strata were found on the manifold).
    manifold_ : ManifoldEmbedding
        With ``manifold``: the fitted manifold step.
    uses_manifold_ : bool
        Whether the strata were found on the manifold (new samples are then placed on it).
    manifold_selection_ : pandas.DataFrame
        With ``manifold="auto"``: one row per candidate space (``manifold``, ``stability``,
        the ``seed`` of its medoid run, ``selected``).
    labels_ : numpy.ndarray of int, shape (N,)
        Stratum of each training sample; ``-1`` is HDBSCAN noise.
    n_clusters_ : int
        Number of strata found (noise excluded).
    cluster_centers_ : numpy.ndarray, shape (n_clusters_, D')
        Mean of each stratum in the clustered space (the manifold's when there is one, the
        whitened latents' with ``whiten``).
    probabilities_ : numpy.ndarray, shape (N,)
        Membership strength of each training sample (GMM: the highest posterior; HDBSCAN:
        its ``probabilities_``); absent for the other backends.
    outlier_scores_ : numpy.ndarray, shape (N,)
        HDBSCAN's GLOSH outlier scores; HDBSCAN only.
    cluster_selection_ : pandas.DataFrame
        With ``n_clusters="auto"``: one row per candidate k (``k``, ``criterion``, ``score``,
        ``selected``).
    fit_rows_ : numpy.ndarray of int or None
        Indices of the samples the backend was fitted on (None: every sample).
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
        manifold: str | None = None,
        manifold_dim: int = 10,
        n_neighbors: int = 15,
        fit_samples: int | str | None = "auto",
        whiten: bool | str = False,
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.min_cluster_size = min_cluster_size
        self.manifold = manifold
        self.manifold_dim = manifold_dim
        self.n_neighbors = n_neighbors
        self.fit_samples = fit_samples
        self.whiten = whiten
        self.random_state = random_state

    # ------------------------------------------------------------------------------ fit
    def _validate_params(self) -> None:
        owner = type(self).__name__
        if isinstance(self.method, str):
            check_option(self.method, "method", owner, set(BACKENDS))
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
        check_option(self.manifold, "manifold", owner, {*MANIFOLDS, None})
        check_in_range(self.manifold_dim, "manifold_dim", owner, kind=int, low=1)
        check_in_range(self.n_neighbors, "n_neighbors", owner, kind=int, low=2)
        check_option(self.whiten, "whiten", owner, {True, False, "auto"})
        if self.fit_samples not in ("auto", None):
            check_in_range(self.fit_samples, "fit_samples", owner, kind=int, low=2)

    @property
    def _spec(self) -> Backend:
        if isinstance(self.method, str):
            return BACKENDS[self.method]
        return _instance_backend(self.method)

    def _options(self) -> dict[str, Any]:
        return {"min_cluster_size": self.min_cluster_size}

    def _select_k(self, X: np.ndarray, seed: int) -> tuple[int, pd.DataFrame]:
        low, high = self.k_range
        high = min(high, len(X) - 1)
        if high < low:
            raise ValueError(
                f"Expected more samples than the smallest candidate k ({low}) to choose "
                f"n_clusters automatically, got {len(X)} samples."
            )
        spec, rows = self._spec, []
        for k in range(low, high + 1):
            try:
                estimator, labels = spec.fit(X, k, seed, self._options())
            except UnreachableK:  # not a candidate (e.g. no cut of HDBSCAN's tree gives k)
                rows.append({"k": k, "criterion": spec.criterion, "score": np.nan})
                continue
            score = _criterion(spec.criterion, X, labels, estimator, seed)
            rows.append({"k": k, "criterion": spec.criterion, "score": score})
        table = pd.DataFrame(rows)
        scores = table["score"]
        if scores.isna().all():
            raise ValueError(
                f"Expected at least one candidate k in {self.k_range} that the "
                f"{spec.criterion} criterion can score, got none: no candidate could be "
                "fitted (see the backend's message for a single k)."
            )
        best = scores.idxmin() if spec.criterion == "bic" else scores.idxmax()
        table["selected"] = table.index == best
        return int(table.loc[best, "k"]), table

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        manifold_embedding: np.ndarray | None = None,
        manifold_selection: pd.DataFrame | None = None,
    ) -> StrataClusterer:
        """Cluster the latents ``X`` of shape (N, D). ``y`` is ignored.

        Parameters
        ----------
        X : array-like of shape (N, D)
        y : ignored
        manifold_embedding : numpy.ndarray of shape (N, manifold_dim), optional
            The manifold coordinates of ``X`` from an earlier fit (a loaded model), so that
            UMAP is not run again: with ``manifold="umap"``, or with "auto" and
            ``manifold_selection``.
        manifold_selection : pandas.DataFrame, optional
            With ``manifold="auto"``: the ``manifold_selection_`` of an earlier fit of these
            latents (a loaded model). Only its selected run is fitted again, with its seed
            (and ``manifold_embedding`` when it chose the manifold), so the strata do not
            depend on recomputing every candidate (UMAP's neighbour search can differ with
            the number of threads).

        Returns
        -------
        self : StrataClusterer
        """
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        seed = draw_seeds(self.random_state)
        for attribute in (
            "probabilities_",
            "outlier_scores_",
            "cluster_selection_",
            "manifold_",
            "manifold_selection_",
            "whitening_",
        ):
            self.__dict__.pop(attribute, None)  # refitting forgets the previous fit
        if self.n_clusters != "auto" and self.n_clusters > len(X):
            raise ValueError(
                f"Expected at least n_clusters={self.n_clusters} samples, got {len(X)} samples."
            )

        k, selection = self._k_on_latents(X, seed)
        if self.manifold == "auto" and manifold_selection is not None:
            chosen = self._selected_run(X, manifold_selection, manifold_embedding, k)
            self.manifold_selection_ = manifold_selection.reset_index(drop=True)
        elif self.manifold == "auto":
            chosen, self.manifold_selection_ = self._most_stable(X, seed, k)
        elif self.manifold == "umap":
            chosen = self._fit_on_manifold(X, seed, k, manifold_embedding)
        else:
            chosen = self._fit_space(X, seed, False)
        self.__dict__.update(chosen)
        if selection is not None:
            self.cluster_selection_ = selection
        return self

    def _k_on_latents(self, X: np.ndarray, seed: int) -> tuple[int | None, pd.DataFrame | None]:
        """With a manifold step and ``n_clusters="auto"``: k chosen on the latents (as the
        backend is fitted there, whitened by the same rule), used for every space; None
        otherwise; with the candidates' table. The criteria computed on UMAP coordinates chose
        badly where they were measured (``benchmarks/choose_k.py``: BIC there always wanted
        the largest k)."""
        if self.n_clusters != "auto" or self.manifold is None or not isinstance(self.method, str):
            return None, None
        rows = self._fit_rows(len(X), seed)
        sample = X if rows is None else X[rows]
        if self._whitens(len(sample), X.shape[1]):
            sample = Whitening().fit(sample).transform(sample)
        return self._select_k(sample, seed)

    def _selected_run(
        self, X: np.ndarray, table: pd.DataFrame, embedding: np.ndarray | None, k: int | None
    ) -> dict[str, Any]:
        """The run a ``manifold_selection_`` table selected, fitted again."""
        selected = table[table["selected"].astype(bool)]
        if len(selected) != 1 or (embedding is None and selected["manifold"].iloc[0] == "umap"):
            raise ValueError(
                "Expected a manifold_selection table with one selected row (and the "
                "manifold_embedding when it selected 'umap'), got "
                f"{len(selected)} selected row(s) and "
                f"{'no' if embedding is None else 'an'} embedding."
            )
        run_seed = int(selected["seed"].iloc[0])
        if selected["manifold"].iloc[0] == "none":
            return self._fit_space(X, run_seed, False, k)
        return self._fit_on_manifold(X, run_seed, k, embedding)

    def _fit_on_manifold(
        self, X: np.ndarray, seed: int, k: int | None, embedding: np.ndarray | None = None
    ) -> dict[str, Any]:
        """UMAP of ``X`` seeded with ``seed`` (or its given ``embedding``), then the backend
        on it; the fitted attributes, ``manifold_`` included."""
        manifold = ManifoldEmbedding(self.manifold_dim, self.n_neighbors, random_state=seed).fit(
            X, embedding=embedding
        )
        return {**self._fit_space(manifold.embedding_, seed, True, k), "manifold_": manifold}

    def _most_stable(
        self, X: np.ndarray, seed: int, k: int | None
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """``manifold="auto"``: the strata of the more stable space, and the table.

        Each space (the latents; the manifold) is clustered ``STABILITY_RUNS`` times with
        different seeds (the manifold is recomputed with each); its stability is the mean
        adjusted Rand index between the runs' partitions. The more stable space wins (the
        latents on a tie) and its medoid run (the highest summed ARI to the others) is kept.
        """
        seeds = draw_seeds(seed, STABILITY_RUNS)
        rows, runs = [], {}
        for on in (False, True):
            fits = []
            for run_seed in seeds:
                fits.append(
                    self._fit_on_manifold(X, run_seed, k)
                    if on
                    else self._fit_space(X, run_seed, False, k)
                )
            agreement = np.array(
                [[adjusted_rand_score(a["labels_"], b["labels_"]) for b in fits] for a in fits]
            )
            medoid = int(np.argmax(agreement.sum(axis=1)))
            n = len(fits)
            rows.append(
                {
                    "manifold": "umap" if on else "none",
                    "stability": float((agreement.sum() - n) / (n * (n - 1))),
                    "seed": int(seeds[medoid]),
                }
            )
            runs[on] = fits[medoid]
        table = pd.DataFrame(rows)
        on = bool(table.loc[1, "stability"] > table.loc[0, "stability"])
        table["selected"] = [not on, on]
        return runs[on], table

    def _fit_rows(self, n: int, seed: int) -> np.ndarray | None:
        """The seeded subsample the backend is fitted on (None: every sample)."""
        cap = self._spec.fit_samples if self.fit_samples == "auto" else self.fit_samples
        if cap is None or n <= cap:
            return None
        return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False))

    def _whitens(self, n_samples: int, n_dims: int) -> bool:
        """Whether latents of dimension ``n_dims`` fitted on ``n_samples`` are whitened."""
        if self.whiten != "auto":
            return bool(self.whiten)
        k = self.k_range[1] if self.n_clusters == "auto" else self.n_clusters
        return n_samples >= WHITEN_SAMPLES_PER_DIMENSION * n_dims * k

    def _fit_space(
        self, space: np.ndarray, seed: int, on_manifold: bool, k: int | None = None
    ) -> dict[str, Any]:
        """Fit the backend on ``space`` (latents or manifold) with ``k`` strata (None: the
        ``n_clusters`` parameter); the fitted attributes."""
        spec = self._spec
        rows = self._fit_rows(len(space), seed)
        whitening = None
        if (
            self._whitens(len(space) if rows is None else len(rows), space.shape[1])
            and not on_manifold
        ):
            whitening = Whitening().fit(space if rows is None else space[rows])
            space = whitening.transform(space)
        sample = space if rows is None else space[rows]
        fitted: dict[str, Any] = {
            "uses_manifold_": on_manifold,
            "fit_rows_": rows,
            "whitening_": whitening,
        }
        k = self.n_clusters if k is None else k
        if k == "auto" and isinstance(self.method, str):
            k, fitted["cluster_selection_"] = self._select_k(sample, seed)
        elif k == "auto":
            k = None
        estimator, sample_labels = spec.fit(sample, k, seed, self._options())
        clusters = np.unique(sample_labels[sample_labels != -1])
        centers = (
            np.stack([sample[sample_labels == c].mean(axis=0) for c in clusters])
            if len(clusters)
            else np.empty((0, space.shape[1]))
        )
        labels, rest = sample_labels, None
        if rows is not None:  # the large-N path: assign the others as new samples
            rest = np.ones(len(space), dtype=bool)
            rest[rows] = False
            labels = np.empty(len(space), dtype=np.int64)
            labels[rows] = sample_labels
            labels[rest] = (
                spec.predict(estimator, space[rest])
                if spec.predict is not None
                else _nearest(space[rest], centers, clusters)
            )
        fitted.update(
            estimator_=estimator,
            labels_=labels,
            n_clusters_=len(clusters),
            _cluster_ids=clusters,
            cluster_centers_=centers,
        )
        if spec.probabilities is not None:
            strength = spec.probabilities(estimator, sample)
            if rest is not None:
                full = np.empty(len(space))
                full[rows] = strength
                full[rest] = (spec.strength or spec.probabilities)(estimator, space[rest])
                strength = full
            fitted["probabilities_"] = strength
        if self.method == "hdbscan":
            noise = float((labels < 0).mean())
            if noise > HDBSCAN_NOISE_WARNING and not on_manifold:
                warnings.warn(
                    f"HDBSCAN marked {noise:.0%} of the latents as noise: density-based "
                    "clustering finds little density structure in raw contrastive latents. "
                    "Cluster them on a manifold (manifold='umap', N2D), where it found 0.1 % "
                    "noise on the MNIST test latents, or use another clusterer.",
                    UserWarning,
                    stacklevel=3,
                )
            scores = np.asarray(estimator.outlier_scores_, dtype=np.float64)
            if rest is not None:
                full = np.full(len(space), np.nan)
                full[rows] = scores
                scores = full
            fitted["outlier_scores_"] = scores
        return fitted

    # -------------------------------------------------------------------------- predict
    def _space(self, X: Any) -> np.ndarray:
        """New latents (M, D) -> the clustered space (the manifold's when there is one)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        if self.uses_manifold_:
            return self.manifold_.transform(X)
        return X if self.whitening_ is None else self.whitening_.transform(X)

    def _nearest_centroid(self, X: np.ndarray) -> np.ndarray:
        return _nearest(X, self.cluster_centers_, self._cluster_ids)

    def transform_space(self, X: Any) -> np.ndarray:
        """The coordinates in which new latents (M, D) are clustered.

        Returns
        -------
        numpy.ndarray, shape (M, D), (M, R) or (M, manifold_dim)
            ``X`` itself without a manifold step (whitened, R <= D components, with
            ``whiten``), else its placement on the manifold.
        """
        return self._space(X)

    def predict(self, X: Any) -> np.ndarray:
        """Assign new latents (M, D) to the fitted strata; see the module's table for the rule.

        Returns
        -------
        numpy.ndarray of int, shape (M,)
            Stratum of each sample; ``-1`` (HDBSCAN only) marks noise.
        """
        space = self._space(X)
        predict = self._spec.predict
        if predict is None:
            return self._nearest_centroid(space)
        return predict(self.estimator_, space)

    def _has_proba(self) -> bool:
        return self._spec.predict_proba is not None

    @available_if(_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_): GMM posteriors, HDBSCAN membership vectors.

        HDBSCAN's rows need not sum to one: a likely-noise sample has small memberships
        everywhere. Only the GMM, HDBSCAN and instance backends that have ``predict_proba``
        provide it.
        """
        return self._spec.predict_proba(self.estimator_, self._space(X))
