"""Strata profiles, their tests and their stability, against hand computations and scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from stratify.analysis.report import benjamini_hochberg, describe_strata
from stratify.analysis.resampling import matched_labels, stability
from stratify.cluster import StrataClusterer


def test_benjamini_hochberg_hand_worked_and_against_scipy():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted 0.01, 0.03, 0.04, 0.20 -> x4/1, x4/2, x4/3, x4/4 = .04, .06, .0533, .20
    # then a running minimum from the right: .04, .0533, .0533, .20; back in input order:
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.16 / 3, 0.16 / 3, 0.20], rtol=1e-12)
    rng = np.random.default_rng(0)
    random_p = rng.uniform(size=30) ** 3
    np.testing.assert_allclose(
        benjamini_hochberg(random_p), stats.false_discovery_control(random_p), rtol=1e-12
    )
    with_nan = benjamini_hochberg([0.5, np.nan, 0.01])
    assert np.isnan(with_nan[1]) and with_nan[2] == pytest.approx(0.02)


@pytest.fixture
def table():
    labels = np.array([0, 0, 0, 1, 1, 1])
    metadata = pd.DataFrame(
        {
            "age": [20.0, 22.0, np.nan, 60.0, 62.0, 64.0],
            "site": pd.Categorical(["A", "B", "A", "B", "B", "B"]),
            "weak": [0, 0, 1, 1, 1, 1],
        }
    )
    return labels, metadata


def test_profile_hand_worked(table):
    labels, metadata = table
    profile, _ = describe_strata(labels, metadata, categorical=["weak"])
    assert profile.loc[0, "n"] == 3 and profile.loc[1, "n"] == 3
    assert profile.loc[0, "age_mean"] == pytest.approx(21.0)
    assert profile.loc[0, "age_std"] == pytest.approx(np.std([20, 22], ddof=1))
    assert profile.loc[0, "age_missing"] == 1
    assert profile.loc[1, "age_mean"] == pytest.approx(62.0)
    assert profile.loc[0, "site=A"] == pytest.approx(2 / 3)
    assert profile.loc[1, "site=B"] == pytest.approx(1.0)
    assert profile.loc[0, "weak=1"] == pytest.approx(1 / 3)


def test_tests_match_scipy(table):
    labels, metadata = table
    _, tests = describe_strata(labels, metadata, categorical=["weak"])
    kw = stats.kruskal([20.0, 22.0], [60.0, 62.0, 64.0])
    assert tests.loc["age", "test"] == "Kruskal-Wallis"
    assert tests.loc["age", "p_value"] == pytest.approx(kw.pvalue)
    assert tests.loc["age", "n"] == 5
    chi = stats.chi2_contingency([[2, 0], [1, 3]])
    assert tests.loc["site", "test"] == "chi-square"
    assert tests.loc["site", "statistic"] == pytest.approx(chi.statistic)
    np.testing.assert_allclose(tests["p_adjusted"], benjamini_hochberg(tests["p_value"]))


def test_constant_column_and_noise_label():
    labels = np.array([0, 0, 1, 1, -1])
    metadata = pd.DataFrame({"same": [1.0] * 5})
    profile, tests = describe_strata(labels, metadata)
    assert -1 in profile.index
    assert np.isnan(tests.loc["same", "p_value"]) and tests.loc["same", "n"] == 4


def test_unknown_column_lists_available(table):
    labels, metadata = table
    with pytest.raises(ValueError, match=r"unknown \['bmi'\]; available columns: \['age'"):
        describe_strata(labels, metadata, columns=["bmi"])
    with pytest.raises(ValueError, match=r"\(6 rows\), got 2 rows"):
        describe_strata(labels, metadata.iloc[:2])


def test_stability_separates_stable_from_unstable():
    X, _ = make_blobs(200, centers=3, cluster_std=0.5, random_state=0)
    stable = stability(StrataClusterer("kmeans", 3), X, n_resamples=5, random_state=0).resamples
    assert len(stable) == 5 and (stable["n_samples"] == 160).all()
    assert stable["ari"].min() > 0.99
    noise = np.random.default_rng(0).uniform(size=(200, 8))
    unstable = stability(KMeans(8, n_init=1), noise, n_resamples=5, random_state=0).resamples
    assert unstable["ari"].mean() < 0.9


def test_stability_subsamples_per_sample_fit_params():
    seen = []

    class Recorder(KMeans):
        def fit(self, X, y=None, sample_weight=None):
            seen.append((len(X), None if sample_weight is None else len(sample_weight)))
            return super().fit(X, sample_weight=sample_weight)

    X, _ = make_blobs(50, centers=2, random_state=0)
    stability(
        Recorder(2, n_init=1),
        X,
        n_resamples=2,
        fraction=0.5,
        random_state=0,
        sample_weight=np.ones(50),
    )
    assert seen == [(50, 50), (25, 25), (25, 25)]


def test_stability_arguments():
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"'fraction' parameter of stability .*\(0, 1\)"):
        stability(KMeans(2), X, fraction=1.0)
    with pytest.raises(ValueError, match=r"'n_resamples' .*Got 0"):
        stability(KMeans(2), X, n_resamples=0)


def test_identifiers_are_skipped_and_binary_columns_are_categorical():
    labels = np.array([0, 0, 1, 1])
    metadata = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"], "flag": [0.0, 1, 1, 1]})
    profile, tests = describe_strata(labels, metadata)
    assert list(tests.index) == ["flag"]
    assert tests.loc["flag", "test"] == "chi-square"
    assert profile.loc[0, "flag=1.0"] == pytest.approx(0.5)


def test_effect_sizes_by_hand(table):
    labels, metadata = table
    _, tests = describe_strata(labels, metadata, categorical=["weak"])
    # site: strata 0 = A, B, A; 1 = B, B, B -> table [[2, 0], [1, 3]], n = 6, 2 x 2.
    # Uncorrected chi2 by hand: expected counts [[1, 1], [2, 2]] -> sum (o - e)^2 / e = 3.
    assert tests.loc["site", "effect_size"] == pytest.approx(np.sqrt(3.0 / (6 * 1)))
    assert tests.loc["site", "effect_measure"] == "Cramér's V"
    # age: ranks 1, 2 | 3, 4, 5 -> H = 12 / (5 * 6) * (3^2 / 2 + 12^2 / 3) - 3 * 6 = 3
    h = 12 / (5 * 6) * (3.0**2 / 2 + 12.0**2 / 3) - 3 * 6
    assert tests.loc["age", "statistic"] == pytest.approx(h)
    assert tests.loc["age", "effect_size"] == pytest.approx(h / (5 - 1))
    assert tests.loc["age", "effect_measure"] == "epsilon squared"
    assert tests["effect_size"].between(0, 1).all()


def test_matched_labels_renames_by_overlap_one_to_one():
    reference = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    labels = np.array([5, 5, 7, 9, 9, 7, 7, 5])
    # 5 overlaps 0 twice, 7 overlaps 2 twice, 9 overlaps 1 twice; noise stays noise
    np.testing.assert_array_equal(matched_labels(reference, labels), [0, 0, 2, 1, 1, 2, 2, 0])
    # more resample clusters than strata: the unmatched one is -2, noise in labels stays -1
    np.testing.assert_array_equal(
        matched_labels(np.array([0, 0, 1, 1]), np.array([3, 4, 5, -1])), [3 - 3, -2, 1, -1]
    )


class _Scripted(KMeans):
    """Full fit: the reference strata; each subsample: the reference with one fixed
    patient moved to another stratum (when drawn), so every table can be worked by hand.
    """

    def __init__(self, reference=None, moved=0):
        self.reference = reference
        self.moved = moved

    def fit(self, X, y=None):
        rows = X[:, 0].astype(int)
        labels = self.reference[rows].copy()
        if len(rows) < len(self.reference):
            labels = labels + 10  # new names: the matching must undo them
            labels[rows == self.moved] = 10 + (self.reference[self.moved] + 1) % 2
        self.labels_ = labels
        return self


def test_strata_stability_tables_against_a_hand_count():
    reference = np.array([0] * 6 + [1] * 4)
    X = np.arange(10, dtype=float)[:, None]
    result = stability(
        _Scripted(reference, moved=0), X, n_resamples=4, fraction=0.5, random_state=1
    )
    np.testing.assert_array_equal(result.labels, reference)
    drawn = np.zeros(10)
    jaccard = {0: [], 1: []}
    rng = np.random.RandomState(1)
    rng.randint(np.iinfo(np.int32).max)  # the seed draw comes first
    for r in range(4):
        idx = np.sort(rng.choice(10, size=5, replace=False))
        drawn[idx] += 1
        moved = 0 in idx
        assert result.resamples.iloc[r]["agreement"] == pytest.approx(1 - moved / 5)
        after = reference[idx] + 10
        after[idx == 0] = 11
        for stratum in (0, 1):
            members = set(idx[reference[idx] == stratum])
            if members:
                jaccard[stratum].append(
                    max(
                        len(members & set(idx[after == c])) / len(members | set(idx[after == c]))
                        for c in set(after)
                    )
                )
    for stratum in (0, 1):
        assert result.strata.loc[stratum, "jaccard_mean"] == pytest.approx(
            np.mean(jaccard[stratum])
        )
        assert result.strata.loc[stratum, "jaccard_min"] == pytest.approx(min(jaccard[stratum]))
    expected = np.where(drawn > 0, 1.0, np.nan)
    expected[0] = 0.0 if drawn[0] else np.nan
    np.testing.assert_array_equal(result.patients, expected)
    assert 0 < drawn[0] < 4 and min(jaccard[0]) < 1  # the moved patient drawn, not always
    assert list(result.strata["n"]) == [6, 4]


def test_stability_without_x_needs_a_fitted_stratifier():
    with pytest.raises(
        ValueError, match=r"Expected a fitted Stratifier when X is not given.*KMeans"
    ):
        stability(KMeans(2))
