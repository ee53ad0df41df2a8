"""The floor any learned representation must beat: k-means on pixel principal components."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from stratify._validation import check_array_images, check_in_range

__all__ = ["pixel_pca_kmeans"]


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / (
        255.0 if images.dtype == np.uint8 else 1.0
    )


def pixel_pca_kmeans(
    train_images: Any,
    n_clusters: int,
    test_images: Any = None,
    *,
    n_components: int = 50,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """k-means on the principal components of the raw pixels.

    Parameters
    ----------
    train_images : array of shape (N, C, H, W) or (N, C, D, H, W)
        uint8 (scaled by 1/255) or floats.
    n_clusters : int
        k.
    test_images : array of shape (M, ...), optional
        Assigned to the nearest training centroid after the training PCA projection.
    n_components : int, default=50
        Capped at ``min(N, pixels)``.
    random_state : int, optional

    Returns
    -------
    train_labels : numpy.ndarray of int, shape (N,)
    test_labels : numpy.ndarray of int, shape (M,) or None
    train_embedding : numpy.ndarray of float32, shape (N, n_components)
    test_embedding : numpy.ndarray of float32, shape (M, n_components) or None
    """
    train = check_array_images(train_images, name="train_images")
    n_clusters = check_in_range(n_clusters, "n_clusters", "pixel_pca_kmeans", kind=int, low=1)
    if n_clusters > len(train):
        raise ValueError(
            f"Expected n_clusters <= the number of training images ({len(train)}), got "
            f"{n_clusters}."
        )
    flat = _flat(train)
    components = min(int(n_components), *flat.shape)
    pca = PCA(components, random_state=random_state).fit(flat)
    train_z = pca.transform(flat).astype(np.float32)
    kmeans = KMeans(n_clusters, n_init=10, random_state=random_state).fit(train_z)
    if test_images is None:
        return kmeans.labels_.astype(np.int64), None, train_z, None
    test = check_array_images(test_images, name="test_images")
    if test.shape[1:] != train.shape[1:]:
        raise ValueError(
            f"Expected test_images of the training image shape {train.shape[1:]}, got "
            f"{test.shape[1:]}."
        )
    test_z = pca.transform(_flat(test)).astype(np.float32)
    return kmeans.labels_.astype(np.int64), kmeans.predict(test_z).astype(np.int64), train_z, test_z
