"""The manifold step: UMAP's fuzzy weights and the placement rule against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from stratify.cluster.manifold import ManifoldEmbedding, fuzzy_weights


def _naive_sigma(row, target):
    """Bisection for one row, written out: sum exp(-(d - rho) / sigma) = target."""
    rho = row[0]
    low, high = 0.0, 1e6
    for _ in range(200):
        mid = (low + high) / 2
        total = sum(math.exp(-max(0.0, d - rho) / mid) for d in row)
        if total > target:
            high = mid
        else:
            low = mid
    return (low + high) / 2


def test_fuzzy_weights_match_a_per_row_bisection():
    rng = np.random.default_rng(0)
    distances = np.sort(rng.uniform(0.1, 3.0, size=(6, 8)), axis=1)
    weights = fuzzy_weights(distances)
    for row, got in zip(distances, weights, strict=True):
        sigma = _naive_sigma(row, math.log2(8))
        expected = [math.exp(-max(0.0, d - row[0]) / sigma) for d in row]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
        assert got[0] == 1.0  # the nearest neighbour has full membership
        assert got.sum() == pytest.approx(math.log2(8), rel=1e-6)


def test_fuzzy_weights_single_neighbour_and_ties():
    np.testing.assert_array_equal(fuzzy_weights(np.array([[0.5], [2.0]])), [[1.0], [1.0]])
    # all neighbours at the same distance: every weight is 1 (the sum cannot reach log2 K)
    np.testing.assert_allclose(fuzzy_weights(np.full((1, 4), 2.0)), np.ones((1, 4)))


@pytest.fixture(scope="module")
def manifold():
    X, y = make_blobs(150, centers=3, n_features=6, cluster_std=0.5, random_state=0)
    return ManifoldEmbedding(n_components=2, n_neighbors=10, random_state=0).fit(X), X, y


def test_new_samples_are_placed_by_the_weighted_neighbour_rule(manifold):
    fitted, X, _ = manifold
    new = X[:5] + np.random.default_rng(1).normal(scale=0.2, size=(5, 6))
    expected = []
    for x in new:
        d = np.sqrt(((X - x) ** 2).sum(axis=1))
        nearest = np.argsort(d, kind="stable")[:10]
        w = fuzzy_weights(d[nearest][None])[0]
        expected.append((w[:, None] * fitted.embedding_[nearest]).sum(axis=0) / w.sum())
    np.testing.assert_allclose(fitted.transform(new), expected, rtol=1e-9)
    # a training latent keeps its own coordinates
    np.testing.assert_array_equal(fitted.transform(X[:9]), fitted.embedding_[:9])


def test_umap_separates_blobs_and_is_reproducible(manifold):
    fitted, X, y = manifold
    assert fitted.embedding_.shape == (150, 2)
    centres = np.stack([fitted.embedding_[y == c].mean(axis=0) for c in range(3)])
    spread = max(
        np.linalg.norm(fitted.embedding_[y == c] - centres[c], axis=1).max() for c in range(3)
    )
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3)]
    assert min(gaps) > spread  # every blob is its own clump
    again = ManifoldEmbedding(n_components=2, n_neighbors=10, random_state=0).fit(X)
    np.testing.assert_array_equal(again.embedding_, fitted.embedding_)


def test_precomputed_embedding_is_used_as_given(manifold):
    fitted, X, _ = manifold
    stored = ManifoldEmbedding(n_components=2, n_neighbors=10).fit(X, embedding=fitted.embedding_)
    np.testing.assert_array_equal(stored.embedding_, fitted.embedding_)
    np.testing.assert_array_equal(stored.transform(X[:7]), fitted.transform(X[:7]))
    with pytest.raises(
        ValueError, match=r"precomputed embedding of shape \(150, 2\), got \(3, 2\)"
    ):
        ManifoldEmbedding(n_components=2).fit(X, embedding=np.zeros((3, 2)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, r"'n_components' parameter of ManifoldEmbedding .*Got 0 instead"),
        ({"n_neighbors": 1}, r"'n_neighbors' parameter of ManifoldEmbedding .*Got 1 instead"),
        ({"min_dist": -1.0}, r"'min_dist' parameter of ManifoldEmbedding .*Got -1.0 instead"),
        ({"fit_samples": 2}, r"'fit_samples' parameter of ManifoldEmbedding .*Got 2 instead"),
    ],
)
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ManifoldEmbedding(**params).fit(np.zeros((10, 3)))


def test_large_n_path_fits_umap_on_a_subsample_and_places_the_rest():
    X, y = make_blobs(150, centers=3, n_features=6, cluster_std=0.5, random_state=0)
    fitted = ManifoldEmbedding(n_components=2, n_neighbors=10, fit_samples=60, random_state=0).fit(
        X
    )
    rows = fitted.fit_rows_
    assert len(rows) == 60 and len(np.unique(rows)) == 60
    rest = np.setdiff1d(np.arange(150), rows)
    # the others are placed exactly as new samples are: against the fitted subsample only
    np.testing.assert_allclose(fitted.embedding_[rest], fitted.transform(X[rest]), rtol=1e-12)
    reference = fitted.embedding_[rows]
    for i, x in zip(rest[:5], X[rest[:5]], strict=True):
        d = np.sqrt(((X[rows] - x) ** 2).sum(axis=1))
        nearest = np.argsort(d, kind="stable")[:10]
        w = fuzzy_weights(d[nearest][None])[0]
        expected = (w[:, None] * reference[nearest]).sum(axis=0) / w.sum()
        np.testing.assert_allclose(fitted.embedding_[i], expected, rtol=1e-9)
    centres = np.stack([fitted.embedding_[y == c].mean(axis=0) for c in range(3)])
    assert min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a)) > 1
    # a stored embedding with the same seed restores the same placement rule
    stored = ManifoldEmbedding(n_components=2, n_neighbors=10, fit_samples=60, random_state=0).fit(
        X, embedding=fitted.embedding_
    )
    new = X[:4] + 0.3
    np.testing.assert_array_equal(stored.transform(new), fitted.transform(new))
