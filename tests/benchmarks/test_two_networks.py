"""The two-network round (benchmarks/two_networks.py): what it fits, in which order, under
which settings, and where the incumbent's rows come from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import two_networks

from stratify.training.config import config_from


def test_the_incumbent_is_refitted_just_before_the_challenger_on_the_cost_set(monkeypatch):
    calls = []
    monkeypatch.setattr(two_networks, "embed", lambda *args: calls.append(args))
    two_networks.embed_all("pneumoniamnist", 3)
    two_networks.embed_all("cohort", 3)
    assert [(c[0], c[2], c[3]) for c in calls] == [
        ("pneumoniamnist", 51_200, "cleanpass"),
        ("pneumoniamnist", 38_400, "networks2-onepass"),
        ("cohort", 38_400, "networks2-onepass"),
    ]
    assert all(c[1] == 3 for c in calls)


def test_the_challenger_trains_two_networks_without_the_clean_pass_and_nothing_else():
    _, settings = two_networks.TWO_ONE_PASS
    assert set(settings) == {"train_config"}
    assert set(settings["train_config"]) == {"networks", "clean_pass"}
    config = config_from({}, settings["train_config"], "Stratifier")
    assert (config.networks, config.clean_pass) == (2, False)
    # two networks of 38,400 samples: 1.5 times the incumbent's 51,200 samples in all
    assert two_networks.NETWORKS * two_networks.PER_NETWORK == 3 * two_networks.BUDGET // 2
    assert two_networks.CHALLENGER == "m2-onepass-b38.4k"


def _round8(tmp_path, rows):
    report = tmp_path / "one_pass.md"
    pd.DataFrame(rows).to_csv(report.with_suffix(".csv"), index=False)
    return report


def _incumbent_row(dataset, seed, acc):
    return {"dataset": dataset, "seed": seed, "candidate": "b51.2k", "val_acc": acc}


def test_a_set_is_ready_when_the_challenger_is_cached_and_the_incumbent_was_scored(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(two_networks, "_cache_file", lambda d, s, b, v: tmp_path / f"{d}-{b}")
    monkeypatch.setattr(two_networks, "ROUND8", _round8(tmp_path, [_incumbent_row("cohort", 0, 1)]))
    (tmp_path / "cohort-38400").touch()
    assert not two_networks.ready("cohort", 0)  # round 8's strata missing
    strata = tmp_path / "one_pass-strata" / "cohort" / "b51.2k"
    strata.mkdir(parents=True)
    np.save(strata / "seed0.npy", np.zeros(4, dtype=np.int16))
    assert two_networks.ready("cohort", 0)
    assert not two_networks.ready("cohort", 1)  # no challenger fit, no round 8 row
    # on the cost set the incumbent's refit is needed, not round 8's row
    (tmp_path / "pneumoniamnist-38400").touch()
    assert not two_networks.ready("pneumoniamnist", 0)
    (tmp_path / "pneumoniamnist-51200").touch()
    assert two_networks.ready("pneumoniamnist", 0)


def test_off_the_cost_set_the_incumbent_is_round_8s_row_and_strata(monkeypatch, tmp_path):
    rows = [_incumbent_row("cohort", 1, 0.7), _incumbent_row("cohort", 2, 0.9)]
    rows.append({**_incumbent_row("cohort", 2, 0.5), "candidate": "onepass-b76.8k"})
    monkeypatch.setattr(two_networks, "ROUND8", _round8(tmp_path, rows))
    old = tmp_path / "one_pass-strata" / "cohort" / "b51.2k"
    old.mkdir(parents=True)
    np.save(old / "seed2.npy", np.array([0, 1, 1, 2], dtype=np.int16))
    scored = []

    def score(dataset, seed, out, budget, candidates, variant):
        scored.append((dataset, seed, budget, list(candidates), variant))
        return pd.DataFrame([{"dataset": dataset, "seed": seed, "candidate": "x", "val_acc": 0}])

    monkeypatch.setattr(two_networks, "score", score)
    out = tmp_path / "round9" / "two_networks.md"
    rows = two_networks.score_all("cohort", 2, out)
    assert list(rows["candidate"]) == ["b51.2k", "x"]
    assert rows["val_acc"].tolist() == [0.9, 0]
    kept = out.parent / "two_networks-strata" / "cohort" / "b51.2k" / "seed2.npy"
    np.testing.assert_array_equal(np.load(kept), [0, 1, 1, 2])
    assert scored == [("cohort", 2, 38_400, ["m2-onepass-b38.4k"], "networks2-onepass")]


@pytest.mark.parametrize("seed", [0, 3])
def test_the_refit_is_compared_with_round_8s_strata(monkeypatch, tmp_path, seed):
    monkeypatch.setattr(two_networks, "ROUND8", tmp_path / "one_pass.md")
    old = tmp_path / "one_pass-strata" / "pneumoniamnist" / "b51.2k"
    old.mkdir(parents=True)
    np.save(old / f"seed{seed}.npy", np.array([0, 0, 1, 1]))
    out = tmp_path / "two_networks.md"
    new = out.parent / "two_networks-strata" / "pneumoniamnist" / "b51.2k"
    new.mkdir(parents=True)
    np.save(new / f"seed{seed}.npy", np.array([1, 1, 0, 0]))  # the same partition, relabelled
    lines = two_networks.refit_lines(out, [seed, 9], two_networks.ROUND8, "round 8")
    assert lines[-1] == f"| {seed} | 1.000 |"
    assert sum(line.startswith("| ") for line in lines) == 2  # header + one seed
