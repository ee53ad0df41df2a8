"""How reproducible the strata are: one function, :func:`stability`.

The clustering (or the whole fit) is repeated on random subsamples and each repeat's strata
are compared with the full fit's on the same samples: the adjusted Rand index (1 = the same
strata, 0 = chance), each stratum's Jaccard index with the repeat's cluster it overlaps best
(Hennig's cluster-wise stability) and each patient's agreement once the repeat's strata are
matched one to one to the full fit's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.validation import check_random_state

from stratify._validation import check_in_range

__all__ = ["StrataStability", "matched_labels", "stability"]


class StrataStability(NamedTuple):
    """``resamples, strata, patients, labels = stability(model)``.

    Attributes
    ----------
    resamples : pandas.DataFrame
        One row per resample: ``resample``, ``n_samples``, ``ari`` (against the full fit on
        the same samples), ``agreement`` (share of them kept in their stratum after the
        resample's strata are matched to the full fit's).
    strata : pandas.DataFrame
        One row per stratum of the full fit (index ``stratum``; HDBSCAN noise left out):
        ``n``, ``jaccard_mean``, ``jaccard_min`` (over resamples, of the best-matching
        resample cluster, Hennig 2007: above 0.75 stable, below 0.5 dissolved) and
        ``agreement`` (mean patient agreement of its members).
    patients : numpy.ndarray of float, shape (N,)
        Per patient, the share of the resamples that held it in which it stayed in its
        stratum (NaN: never drawn).
    labels : numpy.ndarray of int, shape (N,)
        The full fit's strata.
    """

    resamples: pd.DataFrame
    strata: pd.DataFrame
    patients: np.ndarray
    labels: np.ndarray


def matched_labels(reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` renamed to the ``reference`` strata they overlap most, one to one
    (Hungarian matching of the contingency table; -1 stays -1, an unmatched cluster is -2).
    """
    ref_ids = np.unique(reference[reference >= 0])
    new_ids = np.unique(labels[labels >= 0])
    overlap = np.array(
        [[np.sum((reference == r) & (labels == c)) for c in new_ids] for r in ref_ids]
    )
    mapping = {c: -2 for c in new_ids}
    if overlap.size:
        rows, cols = linear_sum_assignment(-overlap.reshape(len(ref_ids), len(new_ids)))
        mapping.update({new_ids[c]: ref_ids[r] for r, c in zip(rows, cols, strict=True)})
    return np.array([mapping.get(v, -1) if v >= 0 else -1 for v in labels], dtype=np.int64)


def _resampled(
    estimator: Any,
    X: Any,
    *,
    n_resamples: int = 10,
    fraction: float = 0.8,
    random_state: Any = None,
    **fit_params: Any,
) -> StrataStability:
    """:func:`stability` on ``estimator`` refitted on ``X`` and its subsamples (cloned)."""
    owner = "stability"
    n_resamples = check_in_range(n_resamples, "n_resamples", owner, kind=int, low=1)
    fraction = check_in_range(fraction, "fraction", owner, low=0, high=1, closed="neither")
    rng = check_random_state(random_state)
    n = len(X)
    size = max(2, round(fraction * n))

    def fit_labels(indices: np.ndarray | None) -> np.ndarray:
        model = clone(estimator)
        if "random_state" in model.get_params() and model.get_params()["random_state"] is None:
            model.set_params(random_state=seed)
        if indices is None:
            return np.asarray(model.fit(X, **fit_params).labels_)
        params = {
            key: (value.iloc[indices] if hasattr(value, "iloc") else np.asarray(value)[indices])
            if hasattr(value, "__len__") and len(value) == n
            else value
            for key, value in fit_params.items()
        }
        return np.asarray(model.fit(X[indices], **params).labels_)

    seed = int(rng.randint(np.iinfo(np.int32).max))
    reference = fit_labels(None)
    strata = np.unique(reference[reference >= 0])
    kept, drawn = np.zeros(n), np.zeros(n)
    jaccard = np.full((n_resamples, len(strata)), np.nan)
    rows = []
    for resample in range(n_resamples):
        indices = np.sort(rng.choice(n, size=size, replace=False))
        labels, before = fit_labels(indices), reference[indices]
        same = matched_labels(before, labels) == before
        kept[indices] += same
        drawn[indices] += 1
        for j, stratum in enumerate(strata):
            members = before == stratum
            if members.any():
                jaccard[resample, j] = max(
                    (
                        np.sum(members & (labels == c)) / np.sum(members | (labels == c))
                        for c in np.unique(labels[labels >= 0])
                    ),
                    default=0.0,
                )
        rows.append(
            {
                "resample": resample,
                "n_samples": size,
                "ari": float(adjusted_rand_score(before, labels)),
                "agreement": float(same.mean()),
            }
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        patients = np.where(drawn > 0, kept / np.maximum(drawn, 1), np.nan)
    table = pd.DataFrame(
        {
            "n": [int(np.sum(reference == s)) for s in strata],
            "jaccard_mean": np.nanmean(jaccard, axis=0) if len(strata) else [],
            "jaccard_min": np.nanmin(jaccard, axis=0) if len(strata) else [],
            "agreement": [float(np.nanmean(patients[reference == s])) for s in strata],
        },
        index=pd.Index(strata, name="stratum"),
    )
    return StrataStability(pd.DataFrame(rows), table, patients, reference)


def stability(
    estimator: Any,
    X: Any = None,
    *,
    n_resamples: int = 10,
    fraction: float = 0.8,
    random_state: Any = None,
    **fit_params: Any,
) -> StrataStability:
    """Subsampling stability of strata, overall, per stratum and per patient.

    Two questions, one function:

    * ``stability(model)`` with a fitted :class:`~stratify.Stratifier` and no ``X``: is the
      clustering of the learned space stable? Its fitted clusterer is refitted on subsamples
      of the training latents ``embedding_`` (the network frozen; seconds to a minute).
    * ``stability(estimator, X)``: is the whole fit stable? The (unfitted or fitted)
      estimator is cloned and fitted on all of ``X``, then on each subsample (a Stratifier
      retrains its network each time).

    Parameters
    ----------
    estimator : estimator with ``fit`` and ``labels_``
        A fitted Stratifier (without ``X``), or any clusterer to refit on ``X``: a
        Stratifier, a :class:`~stratify.cluster.StrataClusterer` or a scikit-learn
        clusterer. Cloned, never modified.
    X : array-like of shape (N, ...), optional
        The data to refit on; None refits only the clustering of a fitted Stratifier.
    n_resamples : int, default=10
    fraction : float, default=0.8
        Share of samples in each subsample, in (0, 1).
    random_state : int, RandomState instance or None
        Seed of the subsampling; also given to estimators that have a ``random_state``
        parameter left at None, so that only the subsample differs between fits.
    **fit_params
        Per-sample arrays or frames (e.g. ``metadata``) are subsampled alongside ``X``.

    Returns
    -------
    StrataStability
        ``resamples.ari.mean()`` is the usual one-number summary.
    """
    if X is None:
        clusterer = getattr(estimator, "clusterer_", None)
        if clusterer is None:
            raise ValueError(
                "Expected a fitted Stratifier when X is not given (its clustering is "
                f"refitted on its training latents), got {type(estimator).__name__} without "
                "clusterer_. Pass X to refit the whole estimator, or fit it first."
            )
        clusterer = clone(clusterer)
        if clusterer.get_params().get("manifold") == "auto":  # the space chosen, not the choice
            chosen = estimator.clusterer_.uses_manifold_
            clusterer.set_params(manifold="umap" if chosen else None)
        return _resampled(
            clusterer,
            estimator.embedding_,
            n_resamples=n_resamples,
            fraction=fraction,
            random_state=random_state,
        )
    return _resampled(
        estimator,
        X,
        n_resamples=n_resamples,
        fraction=fraction,
        random_state=random_state,
        **fit_params,
    )
