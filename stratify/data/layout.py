"""The layouts images arrive in, and the one the networks take: (N, C, *S).

Accepted: (N, H, W), (N, C, H, W), (N, C, D, H, W), flattened (N, F) with an ``image_shape``,
feature vectors (N, F) without one (they become (N, F, 1, 1) and get an MLP), a torch
Dataset yielding images or ``(image, ...)`` tuples, and array-likes scikit-learn reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_array

from stratify._validation import check_array_images

__all__ = ["from_channel_first", "to_channel_first"]

_LAYOUTS = "(N, F), (N, H, W), (N, C, H, W) or (N, C, D, H, W)"


def _as_array(X: Any, *, vectors: bool, min_samples: int) -> Any:
    """A Dataset, list or array-like -> an array or tensor with at least two dimensions."""
    if isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor):
        items = [X[i] for i in range(len(X))]  # type: ignore[arg-type]
        items = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
        X = torch.stack([torch.as_tensor(np.asarray(item)) for item in items])
    elif not isinstance(X, (np.ndarray, torch.Tensor)):
        # lists, sparse matrices, array-likes: scikit-learn's checks and messages
        X = check_array(X, allow_nd=True, dtype=None, ensure_all_finite=False)
    if getattr(X, "ndim", None) == 2 and vectors:
        X = check_array(
            np.asarray(X) if isinstance(X, torch.Tensor) else X,
            dtype=[np.float64, np.float32, np.uint8],
            ensure_min_samples=min_samples,
        )
    if getattr(X, "ndim", None) == 1:
        raise ValueError(
            f"Expected a 2D or higher array, got a 1D array of shape {X.shape}. Reshape your "
            "data with X.reshape(1, -1) for one sample of features."
        )
    return X


def to_channel_first(
    X: Any,
    image_shape: tuple[int, ...] | None,
    *,
    vectors: bool,
    n_features: int | None = None,
    min_samples: int = 1,
) -> tuple[np.ndarray, int]:
    """Any accepted input -> images (N, C, *S) and the number of dimensions it came with.

    Parameters
    ----------
    X : array-like, tensor or Dataset
    image_shape : tuple of int or None
        ``(C, H, W)`` or ``(C, D, H, W)`` of a flattened sample; None reads (N, F) as
        feature vectors, (N, F, 1, 1).
    vectors : bool
        Whether flattened input is feature vectors (checked as scikit-learn checks them).
    n_features : int, optional
        Values per sample a fitted model expects (checked for flattened input).
    min_samples : int, default=1
        Fewest samples accepted for feature vectors (scikit-learn's message).

    Returns
    -------
    images : numpy.ndarray of shape (N, C, *S)
    input_ndim : int
        2, 3, 4 or 5: the layout to give results back in (:func:`from_channel_first`).
    """
    X = _as_array(X, vectors=vectors, min_samples=min_samples)
    X = check_array_images(X, ndims=(2, 3, 4, 5), layout=_LAYOUTS)
    input_ndim = X.ndim
    if X.ndim == 2 and n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"X has {X.shape[1]} features, but Stratifier is expecting {n_features} features "
            "as input."
        )
    if X.ndim == 2:
        shape = (X.shape[1], 1, 1) if image_shape is None else tuple(int(s) for s in image_shape)
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(
                f"Expected {int(np.prod(shape))} values per sample for image_shape="
                f"{shape}, got {X.shape[1]}."
            )
        X = X.reshape(len(X), *shape)
    elif X.ndim == 3:
        X = X[:, None]
    return X, input_ndim


def from_channel_first(images: np.ndarray, input_ndim: int) -> np.ndarray:
    """Images (M, C, *S) -> the layout the inputs had: (M, F), (M, H, W) or unchanged."""
    if input_ndim == 2:
        return images.reshape(len(images), -1)
    if input_ndim == 3:
        return images[:, 0]
    return images
