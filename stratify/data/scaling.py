"""Image intensities to the network's [0, 1], fitted once and applied to every new image.

:class:`IntensityScaler` is the images' ``MinMaxScaler``: ``fit`` records the intensity
range (0-255 for uint8 input, else the training minimum and maximum), ``transform`` maps new
images onto it and refuses those that cannot be on the training scale, and
``inverse_transform`` maps decoded images back to the input's dtype and range.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

__all__ = ["IntensityScaler"]

_UINT8 = (0.0, 255.0)


class IntensityScaler(TransformerMixin, BaseEstimator):
    """Map image intensities to [0, 1]: uint8 by 255, other dtypes by the training range.

    Attributes
    ----------
    data_range_ : tuple of float
        ``(low, high)`` mapped to [0, 1]: (0, 255) for uint8 input, else the training
        minimum and maximum (``high = low + 1`` for constant images).
    """

    def fit(self, X: np.ndarray, y: Any = None) -> IntensityScaler:
        """Record the intensity range of training images ``X`` (N, C, *S)."""
        if X.dtype == np.uint8:
            self.data_range_ = _UINT8
        else:
            low, high = float(X.min()), float(X.max())
            self.data_range_ = (low, high if high > low else low + 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Images (M, C, *S) as the network takes them: uint8 kept, others float32 in [0, 1].

        Raises
        ------
        ValueError
            If the images cannot be on the training scale (see :meth:`check`).
        """
        check_is_fitted(self)
        self.check(X)
        if X.dtype == np.uint8:
            return X
        low, high = self.data_range_
        return np.clip((X.astype(np.float32) - low) / (high - low), 0.0, 1.0)

    def inverse_transform(self, images: np.ndarray) -> np.ndarray:
        """Images in [0, 1] -> the training dtype and range (uint8 0-255 or float32)."""
        check_is_fitted(self)
        low, high = self.data_range_
        if (low, high) == _UINT8:
            return np.rint(images * 255).astype(np.uint8)
        return (low + images * (high - low)).astype(np.float32)

    def check(self, X: np.ndarray) -> None:
        """Refuse new images that cannot be on the training intensity scale.

        Two mistakes would otherwise give wrong strata without a word: images rescaled to
        [0, 1] handed to a model fitted on a larger scale (uint8 0-255, 12-bit, ...), and
        images on a larger scale (12-bit in uint16) handed to a model fitted on a smaller
        one. Values a little outside the training range (a brighter scan) are clipped with a
        warning that gives the numbers.
        """
        if (X.dtype == np.uint8 and self.data_range_ == _UINT8) or X.size == 0:
            return
        low, high = self.data_range_
        span = high - low
        new_low, new_high = float(X.min()), float(X.max())
        trained = f"[{low:g}, {high:g}]" + (" (uint8)" if (low, high) == _UINT8 else "")
        got = f"{X.dtype} values in [{new_low:g}, {new_high:g}]"
        if high >= 2.0 and 0.0 < new_high <= 1.0 and new_low >= 0.0:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got {got}, which looks "
                f"like images rescaled to [0, 1]. Pass them on the training scale (e.g. "
                f"multiplied by {high:g}, or the original uint8 / integer images)."
            )
        if X.dtype == np.uint8 and high > 1.5 * 255:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got uint8 images, whose "
                "0-255 scale cannot be the training scale. Pass images with the training "
                "bit depth."
            )
        if new_high > high + span or new_low < low - span:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got {got}, which cannot "
                "be on the same scale (more than one training range outside it). Map them as "
                "the training images were mapped (same dtype and bit depth)."
            )
        if new_high > high + 0.05 * span or new_low < low - 0.05 * span:
            warnings.warn(
                f"New images have {got}, outside the training intensities {trained}; values "
                "outside are clipped to it. Check that they were mapped as the training "
                "images were.",
                UserWarning,
                stacklevel=4,
            )
