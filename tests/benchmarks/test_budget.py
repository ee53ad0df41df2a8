"""The budget round's rule (benchmarks/budget.py): an incumbent, margins on ACC and agreement."""

from __future__ import annotations

import budget
import pandas as pd
import pytest

SETS = ("pneumoniamnist", "breastmnist", "cohort", "digits")
CHALLENGER = budget.candidate(budget.BUDGET, "kmeans200-average")


def _tables(acc: dict[str, list[float]], ari: dict[str, list[float]], seconds=None):
    """Rows of two seeds per (candidate, set) whose mean is the given val ACC."""
    rows, agree = [], []
    for name, values in acc.items():
        for dataset, value, pair in zip(SETS, values, ari[name], strict=True):
            for seed, shift in ((0, -0.01), (1, 0.01)):
                rows.append(
                    {
                        "candidate": name,
                        "dataset": dataset,
                        "seed": seed,
                        "val_acc": value + shift,
                        "fit_seconds_2000": (seconds or {}).get(name, 60.0),
                    }
                )
            agree.append({"candidate": name, "dataset": dataset, "ari": pair})
    return pd.DataFrame(rows), pd.DataFrame(agree)


INCUMBENT_ACC = [0.70, 0.55, 0.66, 0.82]  # mean 0.6825
INCUMBENT_ARI = [0.77, 0.49, 0.96, 0.81]  # floors: 0.72, 0.44, 0.75, 0.75


def _choose(challenger_acc, challenger_ari, seconds=None):
    results, agree = _tables(
        {budget.INCUMBENT: INCUMBENT_ACC, CHALLENGER: challenger_acc},
        {budget.INCUMBENT: INCUMBENT_ARI, CHALLENGER: challenger_ari},
        seconds,
    )
    return budget.choose(results, agree)


def test_names_spell_the_budget_in_thousands():
    assert budget.candidate(25_600, "eac") == "b25.6k-eac"
    assert budget.candidate(51_200, "x") == "b51.2k-x"
    assert budget.INCUMBENT == "b25.6k-kmeans200-average"


def test_a_challenger_that_beats_the_margin_and_keeps_agreement_wins():
    # mean 0.6925 = incumbent + 0.01; ARI at each floor (min(0.8, incumbent) - 0.05)
    table, chosen = _choose([0.74, 0.53, 0.68, 0.82], [0.72, 0.44, 0.75, 0.75])
    assert chosen == CHALLENGER
    assert table.loc[CHALLENGER, "mean_acc"] == pytest.approx(0.6925)
    assert not table.loc[CHALLENGER, "agrees"]  # 0.44 < 0.8: the bar is reported missed


def test_a_gain_inside_the_margin_keeps_the_incumbent():
    _, chosen = _choose([0.73, 0.55, 0.66, 0.82], [0.9, 0.9, 0.9, 0.9])  # +0.0075
    assert chosen == budget.INCUMBENT


def test_losing_more_than_the_margin_of_agreement_on_one_set_keeps_the_incumbent():
    table, chosen = _choose([0.85, 0.60, 0.70, 0.90], [0.71, 0.9, 0.9, 0.9])  # 0.71 < 0.72
    assert chosen == budget.INCUMBENT
    assert table.loc[CHALLENGER, "beats_acc"] and not table.loc[CHALLENGER, "keeps_agreement"]


def test_the_agreement_floor_is_capped_at_the_bar_minus_the_margin():
    # incumbent 0.96 on the cohort: the challenger needs 0.75 there, not 0.91
    _, chosen = _choose([0.80, 0.60, 0.70, 0.85], [0.8, 0.5, 0.751, 0.8])
    assert chosen == CHALLENGER


def test_a_challenger_over_the_cost_is_out():
    _, chosen = _choose([0.80, 0.60, 0.70, 0.85], [0.9, 0.9, 0.9, 0.9], seconds={CHALLENGER: 121.0})
    assert chosen == budget.INCUMBENT


def test_the_incumbent_is_a_parameter_of_the_rule():
    """The cut-space round reuses the rule with its own incumbent: the margin is counted
    from that incumbent, whatever the names."""
    results, agree = _tables(
        {"mine": INCUMBENT_ACC, "other": [0.74, 0.53, 0.68, 0.82]},
        {"mine": INCUMBENT_ARI, "other": [0.72, 0.44, 0.75, 0.75]},
    )
    _, chosen = budget.choose(results, agree, incumbent="mine")
    assert chosen == "other"
    results, agree = _tables(
        {"mine": [0.74, 0.53, 0.68, 0.82], "other": INCUMBENT_ACC},
        {"mine": [0.72, 0.44, 0.75, 0.75], "other": INCUMBENT_ARI},
    )
    assert budget.choose(results, agree, incumbent="mine")[1] == "mine"
