"""The recipe selection rule of benchmarks/recipe.py, on tables worked by hand."""

from __future__ import annotations

import pandas as pd
import pytest
import recipe


def _results(rows):
    return pd.DataFrame(
        rows, columns=["dataset", "seed", "candidate", "val_acc", "fit_seconds_2000"]
    )


def _agreement(rows):
    return pd.DataFrame(rows, columns=["dataset", "candidate", "ari", "ari_min"])


def test_the_rule_keeps_candidates_within_cost_that_agree_then_takes_the_best_mean_acc():
    results = _results(
        [
            ("pneumoniamnist", 0, "a", 0.90, 100.0),
            ("digits", 0, "a", 0.80, 10.0),
            ("pneumoniamnist", 0, "b", 0.95, 130.0),  # best ACC, over the cost bar
            ("digits", 0, "b", 0.95, 10.0),
            ("pneumoniamnist", 0, "c", 0.88, 90.0),
            ("digits", 0, "c", 0.83, 10.0),
        ]
    )
    agree = _agreement(
        [
            ("pneumoniamnist", "a", 0.85, 0.8),
            ("digits", "a", 0.90, 0.9),
            ("pneumoniamnist", "b", 0.95, 0.9),
            ("digits", "b", 0.95, 0.9),
            ("pneumoniamnist", "c", 0.95, 0.9),
            ("digits", "c", 0.90, 0.9),
        ]
    )
    table, chosen = recipe.choose(results, agree)
    # a: mean (0.90 + 0.80) / 2 = 0.850; c: (0.88 + 0.83) / 2 = 0.855 -> c
    assert chosen == "c"
    assert not table.loc["b", "within_cost"] and table.loc["a", "agrees"]
    assert table.loc["a", "mean_acc"] == pytest.approx(0.85) and table.loc["a", "worst_acc"] == 0.80


def test_ties_within_half_a_point_go_to_the_better_worst_set():
    results = _results(
        [
            ("pneumoniamnist", 0, "a", 0.90, 100.0),
            ("digits", 0, "a", 0.70, 10.0),  # mean 0.800, worst 0.70
            ("pneumoniamnist", 0, "b", 0.81, 100.0),
            ("digits", 0, "b", 0.786, 10.0),  # mean 0.798, worst 0.786
        ]
    )
    agree = _agreement([(d, c, 0.9, 0.9) for d in ("pneumoniamnist", "digits") for c in "ab"])
    assert recipe.choose(results, agree)[1] == "b"


def test_without_an_agreeing_candidate_the_most_stable_within_cost_wins():
    results = _results(
        [
            ("pneumoniamnist", 0, "a", 0.90, 100.0),
            ("pneumoniamnist", 0, "b", 0.80, 110.0),
            ("pneumoniamnist", 0, "c", 0.70, 200.0),  # the most stable, over the cost bar
        ]
    )
    agree = _agreement(
        [
            ("pneumoniamnist", "a", 0.5, 0.4),
            ("pneumoniamnist", "b", 0.7, 0.6),
            ("pneumoniamnist", "c", 0.79, 0.7),
        ]
    )
    table, chosen = recipe.choose(results, agree)
    assert chosen == "b" and not table["agrees"].any()


def test_one_seed_has_no_pairs_and_still_reports(tmp_path):
    assert recipe.agreement(tmp_path / "r.md", _results([])).empty
