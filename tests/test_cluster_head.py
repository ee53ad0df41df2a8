"""The "head" clustering backend: neighbour mining, the kept head, imbalance, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from lab.backends import register
from stratify.cluster import StrataClusterer
from stratify.cluster.head import fit_head, head_epochs, neighbour_rows

# the lab's research backends (agglomerative, spectral, head-sized, consensus,
# consensus-kmeans), registered into BACKENDS as a user registers their own
register()


def test_neighbour_rows_match_a_naive_search():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(25, 3))
    rows = neighbour_rows(X, 4)
    assert rows.shape == (25, 5, 3, 1)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    for i in range(25):
        distances = [np.sum((unit[i] - unit[j]) ** 2) if j != i else np.inf for j in range(25)]
        expected = np.argsort(distances, kind="stable")[:4]
        np.testing.assert_allclose(rows[i, 0, :, 0], unit[i], rtol=1e-6)
        np.testing.assert_allclose(rows[i, 1:, :, 0], unit[expected], rtol=1e-6)


def test_head_epochs_give_the_step_budget():
    assert head_epochs(1000, 500, 250) == 125  # 4 steps an epoch
    assert head_epochs(60, 500, 60) == 500  # one full batch an epoch
    assert head_epochs(10**6, 500, 256) == 1


def test_head_separates_blobs_and_keeps_the_lowest_loss_head():
    X, y = make_blobs(300, centers=3, n_features=6, cluster_std=1.0, random_state=1)
    head, labels = fit_head(X, 3, seed=0)
    assert adjusted_rand_score(y, labels) > 0.95
    assert head.head_losses.shape == (5,)
    assert head.selected == int(np.argmin(head.head_losses))
    proba = head.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), labels)
    np.testing.assert_allclose(np.linalg.norm(head.prototypes, axis=1), 1.0)


def test_sized_prior_keeps_an_imbalanced_split():
    # 80/20 blobs on a circle's two arcs: a uniform size prior pulls the split towards 50/50
    rng = np.random.default_rng(3)
    big = rng.normal([4.0, 0.0, 0.0], 0.7, size=(320, 3))
    small = rng.normal([0.0, 4.0, 0.0], 0.7, size=(80, 3))
    X, y = np.vstack([big, small]), np.repeat([0, 1], [320, 80])
    sized = StrataClusterer("head-sized", 2, random_state=0).fit(X)
    assert adjusted_rand_score(y, sized.labels_) > 0.9
    np.testing.assert_allclose(np.sort(sized.estimator_.prior), [0.2, 0.8], atol=0.05)
    uniform = StrataClusterer("head", 2, random_state=0).fit(X)
    np.testing.assert_allclose(uniform.estimator_.prior, [0.5, 0.5])


def test_state_round_trip_refits_the_same_head():
    X, _ = make_blobs(200, centers=3, n_features=4, random_state=2)
    fitted = StrataClusterer("head", 3, normalize=True, random_state=5).fit(X)
    again = StrataClusterer.from_state(X, fitted.state())
    np.testing.assert_array_equal(again.labels_, fitted.labels_)
    new = np.random.default_rng(0).normal(scale=5, size=(40, 4))
    np.testing.assert_array_equal(again.predict(new), fitted.predict(new))
    np.testing.assert_allclose(again.predict_proba(new), fitted.predict_proba(new))


def test_head_refuses_identical_latents_and_too_many_strata():
    with pytest.raises(ValueError, match="identical latents for every sample"):
        fit_head(np.ones((20, 4)), 2, seed=0)
    with pytest.raises(ValueError, match=r"number of strata in \[2, 5\].*got 6"):
        fit_head(np.random.default_rng(0).normal(size=(5, 4)), 6, seed=0)
