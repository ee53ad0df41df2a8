"""The consensus selection lab (benchmarks/consensus_cut.py) on a cached network made by hand."""

from __future__ import annotations

import consensus_cut
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score


@pytest.fixture
def cached(tmp_path, monkeypatch):
    monkeypatch.setattr(consensus_cut, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(
        consensus_cut,
        "CANDIDATES",
        {"kmeans30-average": {"n_runs": 30, "base": "kmeans", "linkage": "average"}},
    )
    for seed in (0, 1):
        X, labels = make_blobs([40, 25], n_features=3, cluster_std=0.4, random_state=seed)
        path = consensus_cut._cache_file("blobs", seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            train=X.astype(np.float32),
            scored=X.astype(np.float32),
            labels=labels,
            transductive=True,
            n_classes=2,
            cluster_seed=10 + seed,
            train_seconds=30.0,
            embed_seconds=1.0,
            default_strata=labels,
            commit="abc1234",
        )
    return tmp_path


def test_each_candidate_is_scored_on_the_cached_latents_and_its_cost_estimated(cached):
    out = cached / "cut.md"
    rows = consensus_cut.score("blobs", 0, out)
    (row,) = rows.itertuples()
    assert row.candidate == "kmeans30-average" and row.n_train == 65
    assert row.val_acc == 1.0 and row.val_acc_again == 1.0 and row.cut_ari == 1.0
    # 65 training patients < 2,000: the whole embedding and clustering count
    assert row.fit_seconds_2000 == pytest.approx(30.0 + 1.0 + row.cluster_seconds)
    assert row.network_commit == "abc1234"
    kept = np.load(consensus_cut._strata_file(out, "blobs", "kmeans30-average", 0))
    assert kept.shape == (65,)


def test_the_seed_pair_agreement_compares_the_kept_strata_of_two_seeds(cached):
    out = cached / "cut.md"
    results = pd.concat([consensus_cut.score("blobs", s, out) for s in (0, 1)])
    agree = consensus_cut.agreement(out, results)
    (row,) = agree.itertuples()
    a = np.load(consensus_cut._strata_file(out, "blobs", "kmeans30-average", 0))
    b = np.load(consensus_cut._strata_file(out, "blobs", "kmeans30-average", 1))
    assert row.ari == pytest.approx(adjusted_rand_score(a, b))


def test_each_budget_has_its_own_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(consensus_cut, "CACHE", tmp_path)
    assert consensus_cut._cache_file("digits", 2) == tmp_path / "budget25600/digits/seed2.npz"
    assert (
        consensus_cut._cache_file("digits", 2, 51_200)
        == tmp_path / "budget51200" / "digits" / "seed2.npz"
    )


def test_a_variant_of_the_default_has_its_own_cache_and_needs_its_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(consensus_cut, "CACHE", tmp_path)
    assert (
        consensus_cut._cache_file("digits", 2, 51_200, "noise0.1")
        == tmp_path / "budget51200-noise0.1" / "digits" / "seed2.npz"
    )
    with pytest.raises(ValueError, match="Expected a variant name with settings, got 'x', None"):
        consensus_cut.embed("digits", 0, 51_200, "x")
