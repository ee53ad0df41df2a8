"""Metadata columns and labels as the loss terms read them: float64 codes per image."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stratify._validation import check_metadata, require_columns

__all__ = ["encode_column", "training_columns"]


def encode_column(series: pd.Series) -> np.ndarray:
    """Metadata column -> float64 (N,): numbers as they are, categories as codes, NaN missing."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, _ = pd.factorize(series, sort=True)
    return np.where(codes < 0, np.nan, codes).astype(np.float64)


def training_columns(
    metadata: Any,
    y: Any,
    n: int,
    *,
    needed: Sequence[str],
    distance: Collection[str],
    uses_labels: bool,
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Check ``y`` and ``metadata`` against N images and encode what the objective reads.

    Both are checked whenever given, even when no term reads them.

    Parameters
    ----------
    metadata : pandas.DataFrame or None
        One row per image.
    y : array-like of shape (N,) or (N, 1), or None
    n : int
        Number of images.
    needed : sequence of str
        Metadata columns the regularizers read.
    distance : collection of str
        Those of them a distance kernel reads (must be numeric).
    uses_labels : bool
        Whether a term reads ``y``.

    Returns
    -------
    columns : dict of str to numpy.ndarray of float64, shape (N,)
    labels : numpy.ndarray of float64, shape (N,), or None
    """
    labels = None
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:  # MedMNIST's (N, 1) label column
            y = y[:, 0]
        if y.shape != (n,):
            raise ValueError(
                f"Expected y of shape ({n},), one label per image, got shape {y.shape}."
            )
    if metadata is not None:
        check_metadata(metadata, n)
    if uses_labels:
        if y is None:
            raise ValueError(
                "Expected y: the objective has a term on 'labels' (supcon), got y=None."
            )
        labels = encode_column(pd.Series(y))
    if not needed:
        return {}, labels
    if metadata is None:
        raise ValueError(
            f"Expected metadata with the columns {list(needed)} that the regularizers use, got "
            "metadata=None."
        )
    require_columns(needed, metadata.columns, name="metadata", reader="the regularizers")
    for column in sorted(distance):
        series = metadata[column]
        if not pd.api.types.is_numeric_dtype(series) or isinstance(
            series.dtype, pd.CategoricalDtype
        ):
            raise TypeError(
                f"Expected a numeric metadata column {column!r} for a distance kernel "
                f"(y-Aware, WSP position), got dtype {series.dtype}. Use kind 'supcon' or "
                "'clinical' (equality of values) for a categorical column."
            )
    columns = {c: encode_column(metadata[c].reset_index(drop=True)) for c in needed}
    for column, values in columns.items():
        if not np.isfinite(values).any():  # the prior would train with no effect at all
            raise ValueError(
                f"Expected some finite values in the metadata column {column!r} that a "
                f"regularizer reads, got none (all {n} missing or infinite)."
            )
    return columns, labels
