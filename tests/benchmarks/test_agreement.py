"""Seed agreement: the adjusted Rand index of every pair of seeds, from the kept strata."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
import pandas as pd
import pytest

from lab.agreement import save_strata, seed_agreement, strata_path, write_seed_agreement
from lab.report import _seed_agreement_lines


def _ari_by_hand(a, b):
    """Hubert & Arabie's adjusted Rand index from pair counts, by loops."""
    n = len(a)
    same_both = sum(a[i] == a[j] and b[i] == b[j] for i, j in itertools.combinations(range(n), 2))
    same_a = sum(a[i] == a[j] for i, j in itertools.combinations(range(n), 2))
    same_b = sum(b[i] == b[j] for i, j in itertools.combinations(range(n), 2))
    expected = same_a * same_b / comb(n, 2)
    return (same_both - expected) / ((same_a + same_b) / 2 - expected)


STRATA = {
    0: np.array([0, 0, 1, 1, 2, 2, 2, 0]),
    1: np.array([1, 1, 0, 0, 2, 2, 2, 1]),  # seed 0 relabelled: the same partition
    2: np.array([0, 1, 0, 1, 2, 0, 1, 2]),
}


def test_every_pair_of_seeds_against_a_pair_count_by_hand(tmp_path):
    for seed, labels in STRATA.items():
        save_strata(tmp_path, "cohort", "default", seed, labels)
    table = seed_agreement(tmp_path, "cohort", "default")
    assert list(zip(table["seed_a"], table["seed_b"], strict=True)) == [(0, 1), (0, 2), (1, 2)]
    for row in table.itertuples():
        assert row.ari == pytest.approx(_ari_by_hand(STRATA[row.seed_a], STRATA[row.seed_b]))
    assert table.loc[0, "ari"] == pytest.approx(1.0) and (table["n"] == 8).all()


def test_strata_of_other_samples_are_refused(tmp_path):
    save_strata(tmp_path, "cohort", "default", 0, np.zeros(5))
    save_strata(tmp_path, "cohort", "default", 1, np.zeros(6))
    with pytest.raises(ValueError, match=r"same samples, got 5 for seed 0 and 6 for seed 1"):
        seed_agreement(tmp_path, "cohort", "default")


def test_the_csv_and_the_report_section(tmp_path):
    assert write_seed_agreement(tmp_path).empty and not (tmp_path / "seed_agreement.csv").exists()
    assert _seed_agreement_lines(tmp_path) == []
    for seed, labels in STRATA.items():
        save_strata(tmp_path, "cohort", "default", seed, labels)
    save_strata(tmp_path, "mnist", "default", 0, STRATA[0])  # one seed: no pair
    written = write_seed_agreement(tmp_path)
    stored = pd.read_csv(tmp_path / "seed_agreement.csv")
    assert list(stored.columns) == ["dataset", "method", "seed_a", "seed_b", "ari", "n"]
    pd.testing.assert_frame_equal(stored, written, check_dtype=False)
    assert set(stored["dataset"]) == {"cohort"} and len(stored) == 3
    lines = "\n".join(_seed_agreement_lines(tmp_path))
    mean, sd = stored["ari"].mean(), stored["ari"].std(ddof=1)
    assert f"| cohort | default | 3 | {mean:.3f} ± {sd:.3f} | {stored['ari'].min():.3f} |" in lines
    assert strata_path(tmp_path, "cohort", "default", 2).is_file()


def test_sets_drawn_per_seed_keep_their_strata_but_are_not_compared(tmp_path):
    for seed, labels in STRATA.items():
        save_strata(tmp_path, "cohort", "default", seed, labels, comparable=False)
        save_strata(tmp_path, "pneumoniamnist", "default", seed, labels)
    assert strata_path(tmp_path, "cohort", "default", 2).is_file()
    table = write_seed_agreement(tmp_path)
    assert set(table["dataset"]) == {"pneumoniamnist"} and len(table) == 3
