"""The learning-rate round (benchmarks/learning_rate.py): what it fits, in which order,
under which settings, and where the incumbent's rows come from."""

from __future__ import annotations

import inspect

import learning_rate
import numpy as np
import pandas as pd

from stratify import Stratifier
from stratify.training.config import TrainConfig


def test_the_incumbent_is_refitted_just_before_the_challengers_on_the_cost_set(monkeypatch):
    calls = []
    monkeypatch.setattr(learning_rate, "embed", lambda *args: calls.append(args))
    learning_rate.embed_all("pneumoniamnist", 3)
    learning_rate.embed_all("cohort", 1)
    assert [(c[0], c[1], c[2], c[3]) for c in calls] == [
        ("pneumoniamnist", 3, 51_200, "cleanpass"),
        ("pneumoniamnist", 3, 51_200, "lr0.002"),
        ("pneumoniamnist", 3, 51_200, "lr0.004"),
        ("cohort", 1, 51_200, "lr0.002"),
        ("cohort", 1, 51_200, "lr0.004"),
    ]
    assert [c[4] for c in calls[1:3]] == [{"lr": 0.002}, {"lr": 0.004}]


def test_the_challengers_change_the_rate_alone_by_two_and_four_times_the_default():
    default = inspect.signature(Stratifier).parameters["lr"].default
    assert default == learning_rate.DEFAULT_RATE == TrainConfig().lr
    for settings in learning_rate.CHALLENGERS.values():
        assert set(settings) == {"lr"}
    rates = [s["lr"] / default for s in learning_rate.CHALLENGERS.values()]
    np.testing.assert_allclose(rates, [2, 4])
    assert "lr=0.002" in learning_rate.RULE and "lr=0.004" in learning_rate.RULE


def _round9(tmp_path, rows):
    report = tmp_path / "two_networks.md"
    pd.DataFrame(rows).to_csv(report.with_suffix(".csv"), index=False)
    return report


def test_off_the_cost_set_a_set_is_ready_with_both_challengers_and_round_9s_incumbent(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(
        learning_rate, "_cache_file", lambda d, s, b, v: tmp_path / f"{d}-{s}-{b}-{v}"
    )
    row = {"dataset": "cohort", "seed": 0, "candidate": "b51.2k", "val_acc": 0.7}
    monkeypatch.setattr(learning_rate, "ROUND9", _round9(tmp_path, [row]))
    strata = tmp_path / "two_networks-strata" / "cohort" / "b51.2k"
    strata.mkdir(parents=True)
    np.save(strata / "seed0.npy", np.zeros(4, dtype=np.int16))
    (tmp_path / "cohort-0-51200-lr0.002").touch()
    assert not learning_rate.ready("cohort", 0)  # the second challenger is missing
    (tmp_path / "cohort-0-51200-lr0.004").touch()
    assert learning_rate.ready("cohort", 0)
    for name in ("lr0.002", "lr0.004"):
        (tmp_path / f"pneumoniamnist-0-51200-{name}").touch()
    assert not learning_rate.ready("pneumoniamnist", 0)  # the refit is needed there
    (tmp_path / "pneumoniamnist-0-51200-cleanpass").touch()
    assert learning_rate.ready("pneumoniamnist", 0)


def test_off_the_cost_set_the_incumbent_is_round_9s_row_beside_each_challenger(
    monkeypatch, tmp_path
):
    rows = [
        {"dataset": "digits", "seed": 2, "candidate": "b51.2k", "val_acc": 0.8},
        {"dataset": "digits", "seed": 2, "candidate": "m2-onepass-b38.4k", "val_acc": 0.9},
    ]
    monkeypatch.setattr(learning_rate, "ROUND9", _round9(tmp_path, rows))
    old = tmp_path / "two_networks-strata" / "digits" / "b51.2k"
    old.mkdir(parents=True)
    np.save(old / "seed2.npy", np.array([2, 1, 0], dtype=np.int16))
    scored = []

    def score(dataset, seed, out, budget, candidates, variant):
        scored.append((budget, list(candidates), variant))
        return pd.DataFrame([{"dataset": dataset, "seed": seed, "candidate": variant}])

    monkeypatch.setattr(learning_rate, "score", score)
    out = tmp_path / "round10" / "learning_rate.md"
    result = learning_rate.score_all("digits", 2, out)
    assert result["candidate"].tolist() == ["b51.2k", "lr0.002", "lr0.004"]
    assert result["val_acc"].iloc[0] == 0.8
    kept = out.parent / "learning_rate-strata" / "digits" / "b51.2k" / "seed2.npy"
    np.testing.assert_array_equal(np.load(kept), [2, 1, 0])
    assert scored == [
        (51_200, ["lr0.002"], "lr0.002"),
        (51_200, ["lr0.004"], "lr0.004"),
    ]
