"""What the strata mean: per-stratum metadata profiles with tests, and their stability.

* :func:`describe_strata`: per stratum, its size, the mean and standard deviation of each
  continuous column and the frequencies of each categorical column; per column, a test of
  difference across strata (Kruskal–Wallis for continuous, chi-square of independence for
  categorical) with its p-value and the Benjamini–Hochberg adjusted p-value.
* :func:`strata_stability` (and its per-resample table, :func:`stability`): how
  reproducible the strata are, from refits on random subsamples: the adjusted Rand index
  against the full fit, each stratum's Jaccard index with its best match, each patient's
  agreement.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.validation import check_is_fitted, check_random_state

from stratify._validation import check_in_range, check_metadata

__all__ = [
    "StrataProfile",
    "StrataReportMixin",
    "StrataStability",
    "benjamini_hochberg",
    "describe_strata",
    "matched_labels",
    "stability",
    "strata_stability",
]


class StrataProfile(NamedTuple):
    """``profile, tests = describe_strata(labels, metadata)``.

    Attributes
    ----------
    profile : pandas.DataFrame
        One row per stratum (index ``stratum``): ``n``, then ``<col>_mean``, ``<col>_std``
        and ``<col>_missing`` for continuous columns and ``<col>=<level>`` (share of the
        stratum's non-missing values) for categorical ones.
    tests : pandas.DataFrame
        One row per column: ``kind``, ``test``, ``statistic``, ``p_value``, ``p_adjusted``
        (Benjamini–Hochberg over the tested columns), ``n`` (samples used), ``effect_size``
        in [0, 1] (how strongly the strata explain the column: Cramér's V, or epsilon
        squared of the Kruskal-Wallis H) and ``effect_measure``.
    """

    profile: pd.DataFrame
    tests: pd.DataFrame


def benjamini_hochberg(p_values: Any) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (false discovery rate), NaN kept as NaN.

    ``p_adj(i) = min_{j >= i} min(1, m p_(j) / j)`` over the ``m`` sorted finite p-values.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if len(finite) == 0:
        return adjusted
    order = finite[np.argsort(p[finite])]
    m = len(order)
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return adjusted


def _is_categorical(series: pd.Series) -> bool:
    """Non-numeric, boolean, pandas categorical, or numeric with two values at most (0/1)."""
    return (
        not pd.api.types.is_numeric_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(series)
        or series.nunique(dropna=True) <= 2
    )


def _is_identifier(series: pd.Series) -> bool:
    """A non-numeric column with a distinct value per row (a patient id): nothing to test."""
    return not pd.api.types.is_numeric_dtype(series) and series.nunique() == len(series) > 2


def _test_continuous(values: pd.Series, labels: np.ndarray) -> tuple[float, float, int]:
    observed = values.notna().to_numpy()
    groups = [values[observed & (labels == k)].to_numpy(float) for k in np.unique(labels)]
    groups = [g for g in groups if len(g)]
    n = int(sum(len(g) for g in groups))
    if len(groups) < 2 or np.ptp(np.concatenate(groups)) == 0:
        return float("nan"), float("nan"), n
    statistic, p_value = stats.kruskal(*groups)
    return float(statistic), float(p_value), n


def _effect_size(
    statistic: float, n: int, values: pd.Series, labels: np.ndarray, categorical: bool
) -> float:
    """How strongly the strata explain a column, in [0, 1], beside the test's p-value.

    Categorical: Cramér's V = sqrt(chi2 / (n (min(r, c) - 1))) for an r x c table (chi2
    without Yates' correction).
    Continuous: epsilon squared of the Kruskal-Wallis H, H / (n - 1) (Tomczak & Tomczak 2014),
    the share of the rank variance explained by the strata.
    """
    if np.isnan(statistic) or n < 2:
        return float("nan")
    if not categorical:
        return float(statistic / (n - 1))
    observed = values.notna().to_numpy()
    table = pd.crosstab(values[observed].to_numpy(), labels[observed]).to_numpy()
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    return float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))


def _test_categorical(values: pd.Series, labels: np.ndarray) -> tuple[float, float, int]:
    observed = values.notna().to_numpy()
    table = pd.crosstab(values[observed].to_numpy(), labels[observed])
    n = int(observed.sum())
    if min(table.shape) < 2:
        return float("nan"), float("nan"), n
    statistic, p_value, _, _ = stats.chi2_contingency(table.to_numpy())
    return float(statistic), float(p_value), n


def describe_strata(
    labels: Any,
    metadata: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    categorical: list[str] | None = None,
) -> StrataProfile:
    """Profile each stratum on the metadata and test each column's difference across strata.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Stratum of each sample (``-1``, HDBSCAN noise, is profiled as its own row and
        left out of the tests).
    metadata : pandas.DataFrame
        One row per sample.
    columns : list of str, optional
        Columns to describe; by default all but identifier columns (non-numeric, one
        distinct value per row, such as a patient id).
    categorical : list of str, optional
        Columns to treat as categorical although numeric (e.g. a grade 1-5). Non-numeric,
        boolean, pandas categorical and numeric columns with at most two distinct values
        (0/1 labels) are always categorical.

    Returns
    -------
    StrataProfile
        The per-stratum ``profile`` and the per-column ``tests``.

    Raises
    ------
    ValueError
        If ``labels`` and ``metadata`` differ in length, or a named column does not exist
        (the message lists the available ones).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"Expected labels of shape (N,), got shape {labels.shape}.")
    check_metadata(metadata, len(labels))
    if columns is None:
        columns = [c for c in metadata.columns if not _is_identifier(metadata[c])]
    columns = list(columns)
    categorical_columns = set(categorical or [])
    missing = [c for c in [*columns, *categorical_columns] if c not in metadata.columns]
    if missing:
        raise ValueError(
            f"Expected columns of metadata, got unknown {missing}; available columns: "
            f"{list(metadata.columns)}."
        )

    strata = np.unique(labels)
    rows: dict[Any, dict[str, float]] = {k: {"n": int((labels == k).sum())} for k in strata}
    tests = []
    clustered = labels != -1
    for column in columns:
        values = metadata[column].reset_index(drop=True)
        is_categorical = column in categorical_columns or _is_categorical(values)
        for k in strata:
            part = values[labels == k]
            if is_categorical:
                shares = part.value_counts(normalize=True, dropna=True)
                for level in values.dropna().unique():
                    rows[k][f"{column}={level}"] = float(shares.get(level, 0.0))
            else:
                rows[k][f"{column}_mean"] = float(part.mean())
                rows[k][f"{column}_std"] = float(part.std())
                rows[k][f"{column}_missing"] = int(part.isna().sum())
        test = _test_categorical if is_categorical else _test_continuous
        statistic, p_value, n = test(values[clustered], labels[clustered])
        tests.append(
            {
                "column": column,
                "kind": "categorical" if is_categorical else "continuous",
                "test": "chi-square" if is_categorical else "Kruskal-Wallis",
                "statistic": statistic,
                "p_value": p_value,
                "n": n,
                "effect_size": _effect_size(
                    statistic, n, values[clustered], labels[clustered], is_categorical
                ),
                "effect_measure": "Cramér's V" if is_categorical else "epsilon squared",
            }
        )
    profile = pd.DataFrame.from_dict(rows, orient="index")
    profile.index.name = "stratum"
    test_table = pd.DataFrame(tests).set_index("column")
    test_table.insert(
        test_table.columns.get_loc("p_value") + 1,
        "p_adjusted",
        benjamini_hochberg(test_table["p_value"]),
    )
    return StrataProfile(profile, test_table)


class StrataStability(NamedTuple):
    """``resamples, strata, patients = strata_stability(estimator, X)``.

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


def strata_stability(
    estimator: Any,
    X: Any,
    *,
    n_resamples: int = 10,
    fraction: float = 0.8,
    random_state: Any = None,
    **fit_params: Any,
) -> StrataStability:
    """Subsampling stability of a clustering, overall, per stratum and per patient.

    The estimator is cloned and fitted on all of ``X``, then on ``n_resamples`` random
    subsamples (``fraction`` of the samples, without replacement). Each subsample's strata
    are compared with the full fit's on the same samples: the adjusted Rand index (1 = the
    same strata, 0 = chance), each full-fit stratum's Jaccard index with the resample
    cluster it overlaps best (Hennig's cluster-wise stability), and each patient's
    agreement once the resample's strata are matched one to one to the full fit's.

    Parameters
    ----------
    estimator : estimator with ``fit`` and ``labels_``
        A clusterer (a :class:`~stratify.cluster.StrataClusterer`, a scikit-learn
        clusterer, or the Stratifier); cloned, never modified.
    X : array-like of shape (N, ...)
        The data it is fitted on.
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
    """
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
    X: Any,
    *,
    n_resamples: int = 10,
    fraction: float = 0.8,
    random_state: Any = None,
    **fit_params: Any,
) -> pd.DataFrame:
    """Subsampling stability of a clustering, one row per resample: ``resample``,
    ``n_samples``, ``ari``, ``agreement``; its mean is ``frame["ari"].mean()``.

    The per-resample table of :func:`strata_stability` (which see, with the per-stratum
    Jaccard and per-patient tables).
    """
    return strata_stability(
        estimator,
        X,
        n_resamples=n_resamples,
        fraction=fraction,
        random_state=random_state,
        **fit_params,
    ).resamples


class StrataReportMixin:
    """The reporting methods of a fitted :class:`~stratify.Stratifier`."""

    def describe(self, metadata: pd.DataFrame, **kwargs: Any) -> StrataProfile:
        """Per-stratum profile of the training metadata with tests across strata.

        See :func:`stratify.report.describe_strata`.
        """
        check_is_fitted(self)
        return describe_strata(self.labels_, metadata, **kwargs)  # type: ignore[attr-defined]

    def stability(
        self,
        X: Any,
        n_resamples: int = 10,
        fraction: float = 0.8,
        random_state: Any = None,
        **fit_params: Any,
    ) -> pd.DataFrame:
        """Refit on subsamples and compare the strata (adjusted Rand index per resample).

        See :func:`stratify.report.stability`.
        """
        return stability(
            self,
            X,
            n_resamples=n_resamples,
            fraction=fraction,
            random_state=random_state,
            **fit_params,
        )

    def clustering_stability(
        self, n_resamples: int = 10, fraction: float = 0.8, random_state: Any = None
    ) -> StrataStability:
        """Stability of the clustering step alone: the fitted clusterer refitted on
        subsamples of the training latents ``embedding_`` (the network frozen), overall, per
        stratum (Jaccard) and per patient. With ``manifold="auto"`` the space the fit chose
        is refitted (the choice is not made again). Seconds to a minute where
        :meth:`stability` retrains the network; it says whether the strata are a property of
        the space or of one clustering run.

        See :func:`stratify.report.strata_stability`.
        """
        check_is_fitted(self)
        clusterer = clone(self.clusterer_)  # type: ignore[attr-defined]
        if clusterer.manifold == "auto":  # the space the fit chose, not the choice again
            chosen = self.clusterer_.uses_manifold_  # type: ignore[attr-defined]
            clusterer.set_params(manifold="umap" if chosen else None)
        return strata_stability(
            clusterer,
            self.embedding_,  # type: ignore[attr-defined]
            n_resamples=n_resamples,
            fraction=fraction,
            random_state=random_state,
        )
