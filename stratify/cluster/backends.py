"""The named clustering backends: one :class:`Backend` entry each in :data:`BACKENDS`.

A backend says how it is fitted, how a candidate number of strata is scored and in which
direction (:class:`Criterion`), how new samples are assigned, and what else it gives
(probabilities, outlier scores, a Gaussian per stratum, a warning when it calls too much of
the data noise). :class:`~stratify.cluster.StrataClusterer` reads nothing else about a
backend, so adding one is one entry (the documentation's "Extending" page).

scikit-learn and hdbscan are imported when a backend is fitted, so that reading the table
(the command line's help) stays fast.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BACKENDS",
    "BIC",
    "DBCV",
    "METHODS",
    "REMOVED_BACKENDS",
    "SILHOUETTE",
    "Backend",
    "Criterion",
    "UnreachableK",
    "consensus_backend",
    "head_backend",
    "instance_backend",
    "nearest",
]


class UnreachableK(ValueError):
    """A backend cannot give the requested number of clusters on these data."""


# ----------------------------------------------------------------------------- criteria
@dataclass(frozen=True)
class Criterion:
    """How the candidates of ``n_clusters="auto"`` are scored and which score wins.

    Attributes
    ----------
    name : str
        Its name in ``cluster_selection_["criterion"]``.
    score : callable
        ``score(X, labels, estimator, seed) -> float`` for one candidate fitted on ``X``
        (N, D) with ``labels`` (N,) (-1: noise).
    higher_is_better : bool
        Whether the highest score wins (else the lowest).
    """

    name: str
    score: Callable[[np.ndarray, np.ndarray, Any, int], float]
    higher_is_better: bool = True

    def best(self, scores: pd.Series) -> Any:
        """Index of the winning score (NaN scores never win)."""
        return scores.idxmax() if self.higher_is_better else scores.idxmin()


def _two_strata(labels: np.ndarray) -> bool:
    kept = labels >= 0
    return len(np.unique(labels[kept])) >= 2


def _silhouette(X: np.ndarray, labels: np.ndarray, estimator: Any, seed: int) -> float:
    from sklearn.metrics import silhouette_score

    if not _two_strata(labels):
        return float("-inf")
    kept = labels >= 0
    sample_size = min(int(kept.sum()), 5000)
    return float(
        silhouette_score(X[kept], labels[kept], sample_size=sample_size, random_state=seed)
    )


def _dbcv(X: np.ndarray, labels: np.ndarray, estimator: Any, seed: int) -> float:
    return float(estimator.relative_validity_) if _two_strata(labels) else float("-inf")


#: Mean silhouette on a subsample of at most 5,000 (higher is better).
SILHOUETTE = Criterion("silhouette", _silhouette)
#: The mixture's Bayesian information criterion (lower is better).
BIC = Criterion("bic", lambda X, labels, estimator, seed: float(estimator.bic(X)), False)
#: HDBSCAN's density-based cluster validity (higher is better).
DBCV = Criterion("dbcv", _dbcv)


# ----------------------------------------------------------------------------- backends
@dataclass(frozen=True)
class Backend:
    """How one named clustering backend is fitted, scored and used for new samples.

    Attributes
    ----------
    fit : callable
        ``fit(X, k, seed, options) -> (estimator, labels)`` with ``X`` (N, D) float64, ``k``
        an int or None (the backend picks), ``options`` the clusterer's settings
        (``min_cluster_size``); ``labels`` (N,) int with ``-1`` for noise.
    criterion : Criterion
        How candidates of ``n_clusters="auto"`` are compared.
    predict : callable or None
        ``predict(estimator, X) -> labels`` for new samples; None uses the nearest centroid of
        the fitted strata.
    predict_proba : callable or None
        ``predict_proba(estimator, X) -> (M, n_clusters_)``; None: memberships by distance
        to the strata's centres (:func:`distance_memberships`).
    probabilities : callable or None
        ``probabilities(estimator, X) -> (N,)`` membership strength of the training samples.
    strength : callable or None
        ``strength(estimator, X) -> (M,)`` membership strength of samples assigned by
        ``predict`` (the large-N path); None: ``probabilities`` is used for them too.
    outlier_scores : callable or None
        ``outlier_scores(estimator) -> (n,)`` of the samples the backend was fitted on
        (``outlier_scores_``; NaN for the samples the large-N path assigned).
    gaussian : callable or None
        ``gaussian(estimator, cluster) -> (mean (D,), covariance (D, D))``: the stratum's
        Gaussian in the coordinates the backend was fitted on (a mixture's component).
    noise_warning : float or None
        Share of noise labels on the latents above which fitting warns that the backend
        finds little structure there and advises the manifold step.
    fit_samples : int or None
        Above this many samples the backend is fitted on a seeded subsample of this size and
        the other samples are assigned by ``predict`` (the large-N path; see
        :class:`~stratify.cluster.StrataClusterer`'s ``fit_samples``); None: always on every
        sample.
    """

    fit: Callable[[np.ndarray, int | None, int, dict[str, Any]], tuple[Any, np.ndarray]]
    criterion: Criterion = SILHOUETTE
    predict: Callable[[Any, np.ndarray], np.ndarray] | None = None
    predict_proba: Callable[[Any, np.ndarray], np.ndarray] | None = None
    probabilities: Callable[[Any, np.ndarray], np.ndarray] | None = None
    strength: Callable[[Any, np.ndarray], np.ndarray] | None = None
    outlier_scores: Callable[[Any], np.ndarray] | None = None
    gaussian: Callable[[Any, int], tuple[np.ndarray, np.ndarray]] | None = None
    noise_warning: float | None = None
    fit_samples: int | None = None


def _fit_predict(estimator: Any, X: np.ndarray) -> tuple[Any, np.ndarray]:
    return estimator, np.asarray(estimator.fit_predict(X), dtype=np.int64)


def _own_predict(estimator: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.predict(X), dtype=np.int64)


def _own_proba(estimator: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.predict_proba(X))


def _strongest(estimator: Any, X: np.ndarray) -> np.ndarray:
    return np.asarray(estimator.predict_proba(X)).max(axis=1)


def nearest(X: np.ndarray, centers: np.ndarray, ids: np.ndarray, chunk: int = 8192) -> np.ndarray:
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


def distance_memberships(X: np.ndarray, centers: np.ndarray, variance: float) -> np.ndarray:
    """Soft memberships (M, K) of ``X`` (M, D) by distance to the strata's centres (K, D).

    ``p_k(x) = softmax_k(-||x - c_k||^2 / (2 variance))``: the posterior of an equal-weight
    mixture of isotropic Gaussians at the centres with the strata's pooled per-dimension
    variance. Rows sum to one; the argmax is the nearest centre.
    """
    squared = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=-1)
    logits = -squared / (2.0 * variance)
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def pooled_variance(
    X: np.ndarray, labels: np.ndarray, centers: np.ndarray, ids: np.ndarray
) -> float:
    """Mean squared distance of the clustered samples to their stratum's centre, per dimension."""
    kept = labels >= 0
    if not kept.any():
        return 1.0
    position = {int(c): k for k, c in enumerate(ids)}
    own = centers[[position[int(c)] for c in labels[kept]]]
    variance = float(((X[kept] - own) ** 2).sum() / (kept.sum() * X.shape[1]))
    return max(variance, float(np.finfo(float).tiny))


#: The large-N path's sizes: samples each backend is fitted on at most (the rest are
#: assigned by its out-of-sample rule); each fit takes well under a minute on 32-d latents
#: on 2 cores (``benchmarks/scale.py``).
GMM_FIT_SAMPLES = 20_000
HDBSCAN_FIT_SAMPLES = 20_000
#: The head's neighbour rows hold (1 + M) x D floats per sample.
HEAD_FIT_SAMPLES = 50_000
#: The consensus keeps an N x N co-association matrix (100 MB at this size).
CONSENSUS_FIT_SAMPLES = 5_000
#: Share of noise above which HDBSCAN on raw latents warns (and advises the manifold step).
HDBSCAN_NOISE_WARNING = 0.5


# --------------------------------------------------------------------- k-means, mixtures
def _fit_kmeans(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
    from sklearn.cluster import KMeans

    return _fit_predict(KMeans(k, n_init=10, random_state=seed), X)


def _fit_gmm(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
    from sklearn.mixture import GaussianMixture

    return _fit_predict(GaussianMixture(k, n_init=2, random_state=seed), X)


def _gmm_gaussian(gmm: Any, cluster: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and full covariance of one component, whatever the covariance type."""
    cov, dim = gmm.covariances_, gmm.means_.shape[1]
    full = {
        "full": lambda: cov[cluster],
        "tied": lambda: cov,
        "diag": lambda: np.diag(cov[cluster]),
        "spherical": lambda: cov[cluster] * np.eye(dim),
    }[gmm.covariance_type]()
    return gmm.means_[cluster], full


# ------------------------------------------------------------------------------ hdbscan
#: HDBSCAN's ``min_samples`` (the density estimate's neighbourhood), at most
#: min_cluster_size. hdbscan's own default (``min_samples = min_cluster_size``) declares most
#: contrastive latents noise.
HDBSCAN_MIN_SAMPLES = 10


def _hdbscan_size(n_samples: int, options: dict[str, Any]) -> int:
    return options.get("min_cluster_size") or max(5, n_samples // 100)


def _fit_hdbscan(
    X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]
) -> tuple[Any, np.ndarray]:
    import hdbscan  # imported lazily: slow to import

    size = min(_hdbscan_size(len(X), options), max(2, len(X) // 2))
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


# ------------------------------------------------------------------ head and consensus
def head_backend(prior: str = "uniform") -> Backend:
    """The SCAN-style clustering heads (:mod:`stratify.cluster.head`) as a backend.

    Parameters
    ----------
    prior : {"uniform", "gmm"}, default="uniform"
        The stratum sizes the heads' entropy term expects: equal, or a Gaussian mixture's.

    Returns
    -------
    Backend
    """

    def fit(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
        from stratify.cluster.head import fit_head

        if k is None:
            raise UnreachableK("Expected a number of strata for the head backend, got None.")
        return fit_head(X, k, seed, {"prior": prior})

    return Backend(
        fit=fit,
        predict=_own_predict,
        predict_proba=_own_proba,
        probabilities=_strongest,
        fit_samples=HEAD_FIT_SAMPLES,
    )


def consensus_backend(linkage: str = "spectral", base: str = "gmm", n_runs: int = 20) -> Backend:
    """Evidence accumulation (:class:`~stratify.cluster.consensus.ConsensusStrata`) as a
    backend: the co-association of many ``base`` runs cut by ``linkage``.

    Parameters
    ----------
    linkage : {"spectral", "average"}, default="spectral"
    base : {"gmm", "kmeans"}, default="gmm"
    n_runs : int, default=20
        Partitions pooled.

    Returns
    -------
    Backend
    """

    def fit(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
        from stratify.cluster.consensus import ConsensusStrata

        if k is None:
            raise UnreachableK("Expected a number of strata for the consensus backend, got None.")
        model = ConsensusStrata(
            k,
            n_runs=n_runs,
            linkage=linkage,
            base=base,
            random_state=seed,
            blocks=options.get("blocks", 1),
        ).fit(X)
        return model, model.labels_

    return Backend(
        fit=fit,
        predict=_own_predict,
        predict_proba=_own_proba,
        # the training patients' own shares (predict_proba would count each as its own
        # neighbour); the large-N path's assigned patients: their neighbours'
        probabilities=lambda estimator, X: estimator.label_distributions_.max(axis=1),
        strength=_strongest,
        gaussian=_gmm_gaussian,
        fit_samples=CONSENSUS_FIT_SAMPLES,
    )


# -------------------------------------------------------------------------------- table

#: The named backends. A new one is one entry here.
BACKENDS: dict[str, Backend] = {
    "kmeans": Backend(fit=_fit_kmeans, predict=_own_predict),
    "gmm": Backend(
        fit=_fit_gmm,
        criterion=BIC,
        predict=_own_predict,
        predict_proba=_own_proba,
        probabilities=_strongest,
        gaussian=_gmm_gaussian,
        fit_samples=GMM_FIT_SAMPLES,
    ),
    "hdbscan": Backend(
        fit=_fit_hdbscan,
        criterion=DBCV,
        predict=_hdbscan_predict,
        predict_proba=_hdbscan_proba,
        probabilities=lambda estimator, X: np.asarray(estimator.probabilities_),
        strength=_hdbscan_strength,
        outlier_scores=lambda estimator: np.asarray(estimator.outlier_scores_, dtype=np.float64),
        noise_warning=HDBSCAN_NOISE_WARNING,
        fit_samples=HDBSCAN_FIT_SAMPLES,
    ),
    "head": head_backend("uniform"),
    "consensus-spectral": consensus_backend("spectral", "gmm"),
    "eac": consensus_backend("average", "kmeans", n_runs=200),
}
#: The names of the built-in backends.
METHODS = tuple(BACKENDS)
#: The estimator's default backend, chosen on the validation splits by a rule declared
#: before the run (the documentation's benchmark pages, "How the default was chosen").
DEFAULT_BACKEND = "consensus-spectral"

#: Backend names of earlier versions -> why they went and what to use instead.
REMOVED_BACKENDS: dict[str, str] = {
    name: f"was removed in stratify 0.2 ({why}); use {instead}, or register your own "
    "backend in stratify.cluster.BACKENDS (the documentation's 'Extending' page)"
    for name, why, instead in (
        ("agglomerative", "an ablation, never chosen on validation data", "'kmeans'"),
        ("spectral", "an ablation, never chosen on validation data", "'consensus-spectral'"),
        ("head-sized", "it lost the validation rule to the default", "'head'"),
        ("consensus", "it lost the validation rule to its spectral cut", "'consensus-spectral'"),
        ("consensus-kmeans", "it lost the validation rule", "'consensus-spectral'"),
    )
}


def instance_backend(instance: Any) -> Backend:
    """The spec of a scikit-learn clusterer instance (cloned, used with its own settings)."""
    from sklearn.base import clone

    def fit(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
        return _fit_predict(clone(instance), X)

    return Backend(
        fit=fit,
        predict=_own_predict if hasattr(instance, "predict") else None,
        predict_proba=_own_proba if hasattr(instance, "predict_proba") else None,
    )
