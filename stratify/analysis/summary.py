"""What distinguishes each stratum, in plain words generated from the numbers.

:func:`stratum_paragraphs` writes one paragraph per stratum for a reader without the
tables: its size, its outcome (events, median survival, hazard ratio with its confidence
interval), its strongest differences from the other strata (by effect size, among the
columns whose adjusted p-value is below :data:`SIGNIFICANT`, the columns used in training
named as such, not as findings) and how stable it is. Every number comes from the tables the
report shows beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SIGNIFICANT", "stability_word", "stratum_paragraphs"]

#: Adjusted p-value under which a column's difference across strata is reported.
SIGNIFICANT = 0.05
#: Columns named per stratum at most.
STRONGEST = 3
#: Hennig's (2007) reading of a stratum's mean Jaccard index across resamples.
JACCARD_STABLE, JACCARD_DISSOLVED = 0.75, 0.5


def stability_word(jaccard: float) -> str:
    """Hennig's reading of a mean Jaccard index: stable, uncertain or dissolving."""
    if jaccard >= JACCARD_STABLE:
        return "stable"
    return "uncertain" if jaccard >= JACCARD_DISSOLVED else "dissolving"


def _difference(column: str, values: pd.Series, members: np.ndarray, kind: str) -> str:
    """``age: mean 61.2 here against 54.0 in the other strata``, or the level whose share
    differs most: ``site = A: 63 % here against 28 % in the other strata``.
    """
    inside, outside = values[members].dropna(), values[~members].dropna()
    if kind == "continuous":
        return (
            f"{column}: mean {inside.astype(float).mean():.3g} here against "
            f"{outside.astype(float).mean():.3g} in the other strata"
        )
    here = inside.astype(str).value_counts(normalize=True)
    there = outside.astype(str).value_counts(normalize=True)
    gaps = here.sub(there, fill_value=0.0)
    level = gaps.abs().idxmax()
    return (
        f"{column} = {level}: {here.get(level, 0.0):.0%} here against "
        f"{there.get(level, 0.0):.0%} in the other strata"
    )


def stratum_paragraphs(
    labels: Any,
    *,
    metadata: pd.DataFrame | None = None,
    tests: pd.DataFrame | None = None,
    survival: Any = None,
    time_unit: str = "time units",
    stability: pd.DataFrame | None = None,
    patients_per_stratum: dict[int, int] | None = None,
) -> dict[int, str]:
    """One plain-language paragraph per stratum.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        The training images' strata (``-1``: noise, not described).
    metadata : pandas.DataFrame, optional
        One row per training image, as given to ``describe``.
    tests : pandas.DataFrame, optional
        ``describe``'s tests (with ``p_adjusted``, ``effect_size``, ``kind``,
        ``training_role``).
    survival : SurvivalResult, optional
    time_unit : str, default="time units"
        What the outcome's times count.
    stability : pandas.DataFrame, optional
        :func:`stratify.stability`'s per-stratum table (``jaccard_mean``).
    patients_per_stratum : dict of int to int, optional
        Patients (not images) in each stratum, when images share patients.

    Returns
    -------
    dict of int to str
    """
    labels = np.asarray(labels)
    strata = [int(k) for k in np.unique(labels) if k >= 0]
    paragraphs = {}
    for k in strata:
        members = labels == k
        words = [f"{int(members.sum())} images ({members.mean():.0%} of the cohort)"]
        if patients_per_stratum:
            words[0] += f" of {patients_per_stratum[k]} patients"
        text = f"Stratum {k} holds {words[0]}."
        if survival is not None and k in survival.summary.index:
            row = survival.summary.loc[k]
            median = row["median_survival"]
            median_text = (
                f"median survival {median:.3g} {time_unit}"
                if np.isfinite(median)
                else "median survival not reached"
            )
            text += (
                f" {int(row['events'])} of its {int(row['n'])} patients had the event "
                f"({row['events'] / max(row['n'], 1):.0%}); {median_text}"
            )
            ratios = survival.hazard_ratios.set_index("stratum")
            if k in ratios.index:
                hr = ratios.loc[k]
                text += (
                    f"; hazard ratio {hr['hazard_ratio']:.2f} (95 % CI {hr['lower']:.2f} to "
                    f"{hr['upper']:.2f}, p = {hr['p_value']:.2g}) against stratum "
                    f"{survival.reference}"
                )
            else:
                text += "; it is the reference of the hazard ratios"
            text += "."
        if metadata is not None and tests is not None:
            found = tests[(tests["p_adjusted"] < SIGNIFICANT) & (tests["training_role"] == "none")]
            found = found.sort_values("effect_size", ascending=False).head(STRONGEST)
            if len(found):
                text += " Compared with the other strata: " + "; ".join(
                    _difference(c, metadata[c], members, found.loc[c, "kind"]) for c in found.index
                )
                text += "."
            elif not tests.empty:
                text += " No metadata column differs across the strata after adjustment."
            trained = tests[
                (tests["training_role"] != "none") & (tests["p_adjusted"] < SIGNIFICANT)
            ]
            if len(trained):
                text += " By construction (used in training, not a finding): " + "; ".join(
                    _difference(c, metadata[c], members, trained.loc[c, "kind"])
                    for c in trained.index
                )
                text += "."
        if stability is not None and k in stability.index:
            jaccard = float(stability.loc[k, "jaccard_mean"])
            text += (
                f" The stratum is {stability_word(jaccard)} when the clustering is repeated "
                f"on subsamples (Jaccard {jaccard:.2f})."
            )
        paragraphs[k] = text
    return paragraphs
