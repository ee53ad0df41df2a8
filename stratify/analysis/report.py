"""What the strata mean: per-stratum metadata profiles with tests, and their stability.

* :func:`describe_strata`: per stratum, its size, the mean and standard deviation of each
  continuous column and the frequencies of each categorical column; per column, a test of
  difference across strata (Kruskal–Wallis for continuous, chi-square of independence for
  categorical) with its p-value and the Benjamini–Hochberg adjusted p-value.

How reproducible the strata are is :mod:`stratify.analysis.resampling`'s question.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from stratify._validation import check_metadata

__all__ = [
    "StrataProfile",
    "StrataReportMixin",
    "benjamini_hochberg",
    "describe_strata",
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


class StrataReportMixin:
    """The reporting methods of a fitted :class:`~stratify.Stratifier`."""

    def describe(
        self,
        metadata: pd.DataFrame,
        *,
        outcome: tuple[str, str] | None = None,
        columns: list[str] | None = None,
        categorical: list[str] | None = None,
    ) -> StrataProfile:
        """Per-stratum profile of the training metadata with tests across strata, the
        columns that entered training marked.

        Parameters
        ----------
        metadata : pandas.DataFrame
            One row per training image, in training order.
        outcome : (str, str), optional
            The survival columns (time, event): analysed per stratum by
            :func:`stratify.analysis.survival.survival_by_stratum`, so left out here (a
            Kruskal-Wallis test of censored times would be wrong).
        columns, categorical : list of str, optional
            As :func:`stratify.analysis.report.describe_strata`.

        Returns
        -------
        StrataProfile
            Its ``tests`` also hold ``training_role`` (``"prior"``, ``"labels"`` or
            ``"none"``, from :meth:`~stratify.Stratifier.columns_in_training`) and
            ``used_in_training``: a column the strata were trained to follow differs across
            them by construction, which is not a finding.
        """
        check_is_fitted(self)
        dropped = [c for c in (outcome or ()) if c in metadata.columns]
        profile, tests = describe_strata(
            self.labels_,  # type: ignore[attr-defined]
            metadata.drop(columns=dropped),
            columns=columns,
            categorical=categorical,
        )
        roles = self.columns_in_training()  # type: ignore[attr-defined]
        tests["training_role"] = [roles.get(c, "none") for c in tests.index]
        tests["used_in_training"] = tests["training_role"] != "none"
        return StrataProfile(profile, tests)
