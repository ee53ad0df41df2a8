"""Outcomes per stratum: Kaplan-Meier curves, the multi-group log-rank test and Cox hazard
ratios of each stratum against the largest (lifelines; the ``survival`` extra).

Times must be finite and non-negative, events 0 (censored) or 1 (event); noise (``-1``) is
left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stratify._optional import require

__all__ = ["SurvivalResult", "check_outcome", "survival_by_stratum"]


@dataclass(frozen=True)
class SurvivalResult:
    """Survival per stratum.

    Attributes
    ----------
    curves : pandas.DataFrame
        Kaplan-Meier estimates: ``stratum``, ``time``, ``survival``, ``lower``, ``upper``
        (95 % confidence interval), ``at_risk``.
    logrank : dict
        ``statistic``, ``p_value``, ``dof`` of the multi-group log-rank test.
    hazard_ratios : pandas.DataFrame
        One row per stratum other than the reference (the largest): ``hazard_ratio``,
        ``lower``, ``upper`` (95 %), ``p_value`` of a Cox model with stratum indicators.
    reference : int
        The reference stratum.
    summary : pandas.DataFrame
        Per stratum: ``n``, ``events``, ``median_survival``.
    """

    curves: pd.DataFrame
    logrank: dict[str, float]
    hazard_ratios: pd.DataFrame
    reference: int
    summary: pd.DataFrame


def _value(values: Any, row: int) -> Any:
    """The value as given in ``row`` (a Python scalar, for the message)."""
    return np.asarray(pd.Series(values).to_numpy(), dtype=object)[row]


def check_outcome(time: Any, event: Any, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Times (float, >= 0, finite) and events (0/1) of ``n_samples`` patients.

    Raises
    ------
    ValueError
        Naming the first offending row: a non-numeric or negative time, an event other than
        0 or 1, or a length other than ``n_samples``.
    """
    times = pd.to_numeric(pd.Series(time).reset_index(drop=True), errors="coerce")
    events = pd.to_numeric(pd.Series(event).reset_index(drop=True), errors="coerce")
    for name, values in (("time", times), ("event", events)):
        if len(values) != n_samples:
            raise ValueError(
                f"Expected one {name} per patient ({n_samples}), got {len(values)} values."
            )
    bad = np.flatnonzero(~np.isfinite(times.to_numpy(dtype=float)))
    if len(bad):
        raise ValueError(
            f"Expected numeric, finite survival times, got {_value(time, bad[0])!r} "
            f"in row {bad[0]}."
        )
    if (times < 0).any():
        row = int(np.flatnonzero(times.to_numpy() < 0)[0])
        raise ValueError(
            f"Expected non-negative survival times, got {_value(time, row)!r} in row {row}."
        )
    flags = events.to_numpy(dtype=float)
    wrong = np.flatnonzero(~np.isin(flags, (0.0, 1.0)))
    if len(wrong):
        raise ValueError(
            f"Expected events 0 (censored) or 1 (event), got "
            f"{_value(event, wrong[0])!r} in row {wrong[0]}."
        )
    return times.to_numpy(dtype=float), flags.astype(np.int64)


def survival_by_stratum(labels: Any, time: Any, event: Any) -> SurvivalResult:
    """Kaplan-Meier, log-rank and Cox hazard ratios of the strata ``labels``.

    Parameters
    ----------
    labels : array-like of int, shape (N,)
        Stratum of each patient (``-1`` = noise, left out).
    time : array-like of float, shape (N,)
    event : array-like of {0, 1}, shape (N,)

    Returns
    -------
    SurvivalResult

    Raises
    ------
    ValueError
        For a bad outcome (:func:`check_outcome`) or fewer than two strata.
    """
    require("lifelines", "survival", "outcomes per stratum")
    from lifelines import CoxPHFitter, KaplanMeierFitter
    from lifelines.statistics import multivariate_logrank_test

    labels = np.asarray(labels)
    times, events = check_outcome(time, event, len(labels))
    kept = labels >= 0
    labels, times, events = labels[kept], times[kept], events[kept]
    strata = np.unique(labels)
    if len(strata) < 2:
        raise ValueError(f"Expected at least 2 strata to compare outcomes, got {len(strata)}.")

    curves, summary = [], []
    for k in strata:
        rows = labels == k
        fitter = KaplanMeierFitter().fit(times[rows], events[rows])
        table = fitter.survival_function_.join(fitter.confidence_interval_survival_function_)
        table.columns = ["survival", "lower", "upper"]
        at_risk = fitter.event_table["at_risk"].reindex(table.index).to_numpy()
        curves.append(
            table.rename_axis("time").reset_index().assign(stratum=int(k), at_risk=at_risk)
        )
        summary.append(
            {
                "stratum": int(k),
                "n": int(rows.sum()),
                "events": int(events[rows].sum()),
                "median_survival": float(fitter.median_survival_time_),
            }
        )
    test = multivariate_logrank_test(times, labels, events)
    reference = int(strata[np.argmax([np.sum(labels == k) for k in strata])])
    others = [k for k in strata if k != reference]
    design = pd.DataFrame({f"stratum_{k}": (labels == k).astype(float) for k in others})
    design["time"], design["event"] = times, events
    cox = CoxPHFitter().fit(design, duration_col="time", event_col="event")
    frame = cox.summary
    ratios = pd.DataFrame(
        {
            "stratum": [int(k) for k in others],
            "hazard_ratio": frame["exp(coef)"].to_numpy(),
            "lower": frame["exp(coef) lower 95%"].to_numpy(),
            "upper": frame["exp(coef) upper 95%"].to_numpy(),
            "p_value": frame["p"].to_numpy(),
        }
    )
    columns = ["stratum", "time", "survival", "lower", "upper", "at_risk"]
    return SurvivalResult(
        curves=pd.concat(curves, ignore_index=True)[columns],
        logrank={
            "statistic": float(test.test_statistic),
            "p_value": float(test.p_value),
            "dof": float(test.degrees_of_freedom),
        },
        hazard_ratios=ratios,
        reference=reference,
        summary=pd.DataFrame(summary).set_index("stratum"),
    )
