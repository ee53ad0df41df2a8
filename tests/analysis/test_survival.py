"""Outcomes per stratum against lifelines' bundled data and a Kaplan-Meier worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from stratify.analysis.survival import check_outcome, survival_by_stratum

lifelines = pytest.importorskip("lifelines")


def test_kaplan_meier_by_hand():
    # times 1, 2, 2+, 3, 4+ in stratum 0: S = 4/5, then 0.8 * 3/4, then 0.6 * 1/2
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    time = np.array([1, 2, 2, 3, 4, 1, 5, 6], dtype=float)
    event = np.array([1, 1, 0, 1, 0, 0, 1, 1])
    curve = survival_by_stratum(labels, time, event).curves.query("stratum == 0")
    at = dict(zip(curve["time"], curve["survival"], strict=True))
    assert at[0.0] == 1.0 and at[1.0] == pytest.approx(0.8)
    assert at[2.0] == pytest.approx(0.6) and at[3.0] == pytest.approx(0.3)
    assert at[4.0] == pytest.approx(0.3)


def test_logrank_and_hazard_ratio_on_lifelines_waltons():
    from lifelines.datasets import load_waltons
    from lifelines.statistics import logrank_test

    df = load_waltons()
    labels = (df["group"] == "miR-137").to_numpy().astype(int)
    result = survival_by_stratum(labels, df["T"], df["E"])
    two = logrank_test(
        df["T"][labels == 0], df["T"][labels == 1], df["E"][labels == 0], df["E"][labels == 1]
    )
    assert result.logrank["statistic"] == pytest.approx(two.test_statistic)
    assert result.logrank["statistic"] == pytest.approx(122.25, abs=0.01)  # lifelines' docs
    assert result.reference == 0  # the larger group (129 of 163)
    ratio = result.hazard_ratios.iloc[0]
    assert ratio["stratum"] == 1 and ratio["lower"] < ratio["hazard_ratio"] < ratio["upper"]
    assert ratio["hazard_ratio"] > 1  # miR-137 dies sooner
    assert result.summary.loc[1, "n"] == 34 and result.summary.loc[0, "events"] == 122


def test_noise_is_left_out_and_one_stratum_refused():
    labels = np.array([0, 0, -1, 1, 1])
    result = survival_by_stratum(labels, [1, 2, 3, 4, 5], [1, 1, 1, 1, 0])
    assert result.summary["n"].sum() == 4
    with pytest.raises(ValueError, match=r"at least 2 strata.*got 1"):
        survival_by_stratum([0, 0, -1], [1, 2, 3], [1, 1, 1])


@pytest.mark.parametrize(
    ("time", "event", "match"),
    [
        (["1", "x", "3"], [1, 0, 1], r"numeric, finite survival times, got 'x' in row 1"),
        ([1, -2, 3], [1, 0, 1], r"non-negative survival times, got -2 in row 1"),
        ([1, 2, 3], [1, 2, 0], r"events 0 \(censored\) or 1 \(event\), got 2 in row 1"),
        ([1, 2], [1, 0], r"one time per patient \(3\), got 2"),
    ],
)
def test_bad_outcomes(time, event, match):
    with pytest.raises(ValueError, match=match):
        check_outcome(time, event, 3)
