"""The out-of-distribution score against a naive loop, its threshold, and its flags."""

import numpy as np
import pytest

from stratify.cluster import StrataClusterer
from stratify.cluster.novelty import NoveltyScore


def _naive(reference, points, k, leave_out_self=False):
    scores = []
    for i, p in enumerate(points):
        d = [np.linalg.norm(p - r) for j, r in enumerate(reference)]
        if leave_out_self:
            d = [x for j, x in enumerate(d) if j != i]
        scores.append(np.mean(sorted(d)[:k]))
    return np.array(scores)


def test_scores_and_threshold_match_a_naive_loop():
    rng = np.random.default_rng(0)
    train, new = rng.normal(size=(60, 3)), rng.normal(size=(7, 3))
    novelty = NoveltyScore(n_neighbors=4, quantile=0.9).fit(train)
    np.testing.assert_allclose(novelty.score(new), _naive(train, new, 4))
    loo = _naive(train, train, 4, leave_out_self=True)
    np.testing.assert_allclose(novelty.training_scores_, loo)
    assert novelty.threshold_ == pytest.approx(np.quantile(loo, 0.9))
    np.testing.assert_array_equal(novelty.flag(new), _naive(train, new, 4) > novelty.threshold_)


def test_far_patients_are_flagged_and_typical_ones_rarely():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(2000, 8))
    novelty = NoveltyScore().fit(train)
    typical = novelty.flag(rng.normal(size=(2000, 8))).mean()
    assert 0.0 < typical < 0.03  # the declared 1 % false-alarm rate, up to sampling
    assert novelty.flag(rng.normal(size=(50, 8)) + 6.0).all()


def test_neighbours_capped_reference_subsampled_and_too_few_refused():
    rng = np.random.default_rng(2)
    assert NoveltyScore(n_neighbors=10).fit(rng.normal(size=(4, 2))).n_neighbors_ == 3
    big = NoveltyScore(max_reference=100).fit(rng.normal(size=(500, 2)), seed=3)
    assert big.reference_.shape == (100, 2)
    with pytest.raises(ValueError, match="at least 2 training latents, got 1"):
        NoveltyScore().fit(np.zeros((1, 2)))


def test_the_clusterer_scores_in_its_normalised_latent_space():
    rng = np.random.default_rng(4)
    latents = rng.normal(size=(200, 5))
    clusterer = StrataClusterer("kmeans", n_clusters=3, normalize=True, random_state=0)
    clusterer.fit(latents)
    unit = latents / np.linalg.norm(latents, axis=1, keepdims=True)
    new = rng.normal(size=(9, 5)) * 50.0  # far in raw units, typical once normalised
    expected = _naive(unit, new / np.linalg.norm(new, axis=1, keepdims=True), 10)
    np.testing.assert_allclose(clusterer.novelty_score(new), expected)
    assert clusterer.is_novel(new).dtype == bool
