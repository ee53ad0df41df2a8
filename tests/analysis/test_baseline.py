"""Tests of the pixel floor: k-means on pixel principal components."""

from __future__ import annotations

import numpy as np
import pytest

from stratify.analysis.baseline import pixel_pca_kmeans


def test_pixel_pca_kmeans_separates_and_assigns_test_images(two_groups):
    train, y = two_groups(30, (1, 8, 8))
    test, y_test = two_groups(10, (1, 8, 8), seed=1)
    train_labels, test_labels, train_z, test_z = pixel_pca_kmeans(
        train, 2, test, n_components=5, random_state=0
    )
    assert train_labels.shape == (60,) and test_labels.shape == (20,)
    assert train_z.shape == (60, 5) and test_z.shape == (20, 5)
    # one cluster per group, and test images land in their group's cluster
    mapping = {int(y[i]): int(train_labels[i]) for i in range(60)}
    assert len(set(mapping.values())) == 2
    assert all(mapping[int(t)] == int(c) for t, c in zip(y_test, test_labels, strict=True))


def test_pixel_pca_kmeans_projection_matches_centred_svd(two_groups):
    """The embedding is the projection on the top principal axes (up to sign)."""
    train, _ = two_groups(20, (1, 6, 6))
    _, _, train_z, _ = pixel_pca_kmeans(train, 2, n_components=3, random_state=0)
    flat = train.reshape(40, -1).astype(np.float64) / 255.0
    centred = flat - flat.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    reference = u[:, :3] * s[:3]
    np.testing.assert_allclose(np.abs(train_z), np.abs(reference), atol=1e-4)


def test_pixel_pca_kmeans_caps_components_and_checks_input(two_groups):
    train, _ = two_groups(3, (1, 4, 4))
    _, test_labels, train_z, test_z = pixel_pca_kmeans(train, 2, n_components=50)
    assert train_z.shape == (6, 6) and test_labels is None and test_z is None
    with pytest.raises(ValueError, match=r"n_clusters <= the number of training images \(6\)"):
        pixel_pca_kmeans(train, 7)
    with pytest.raises(ValueError, match=r"training image shape \(1, 4, 4\), got \(1, 5, 5\)"):
        pixel_pca_kmeans(train, 2, np.zeros((2, 1, 5, 5), np.uint8))
