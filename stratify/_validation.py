"""Input and parameter validation shared by the whole package.

Every error follows one of two templates so users always see what was expected and what was
got:

* parameters: ``The 'n_samples' parameter of make_cohort must be an int in the range
  [1, inf). Got 0 instead.`` (scikit-learn's wording);
* arrays: ``Expected X with 4 or 5 dimensions (N, C, H, W) or (N, C, D, H, W), got an array
  of shape (3, 28).``
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

from stratify._constraints import format_bound

__all__ = [
    "check_array_images",
    "check_in_range",
    "check_metadata",
    "check_option",
    "require_columns",
]


def check_in_range(
    value: Any,
    name: str,
    owner: str,
    *,
    kind: type = float,
    low: float = -np.inf,
    high: float = np.inf,
    closed: str = "both",
) -> Any:
    """Check that a scalar parameter has the right type and lies in an interval.

    Parameters
    ----------
    value : object
        The value given by the user.
    name : str
        The parameter's name, quoted in the message.
    owner : str
        The function or class the parameter belongs to.
    kind : {int, float}, default=float
        ``int`` accepts integral numbers only (not bools); ``float`` accepts any real number.
    low, high : float, default=-inf, inf
        Bounds of the interval.
    closed : {"both", "left", "right", "neither"}, default="both"
        Which bounds belong to the interval.

    Returns
    -------
    value : int or float
        The value converted to ``kind``.

    Raises
    ------
    TypeError
        If the value is not a number of the expected kind.
    ValueError
        If the value lies outside the interval (NaN always does).
    """
    left_closed = closed in ("both", "left")
    right_closed = closed in ("both", "right")
    article = "an" if kind is int else "a"
    interval = f"{format_bound(low, left_closed, True)}, {format_bound(high, right_closed, False)}"
    message = (
        f"The {name!r} parameter of {owner} must be {article} {kind.__name__} in the range "
        f"{interval}. Got {value!r} instead."
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(message)
    if kind is int and not isinstance(value, numbers.Integral):
        raise TypeError(message)
    number = float(value)
    too_low = number < low if left_closed else number <= low
    too_high = number > high if right_closed else number >= high
    if math.isnan(number) or too_low or too_high:
        raise ValueError(message)
    return kind(value)


def check_option(value: Any, name: str, owner: str, options: Collection[Any]) -> Any:
    """Check that a parameter is one of a fixed set of options.

    Raises
    ------
    ValueError
        ``The 'split' parameter of load_medmnist must be a str among {'all', 'test'}.
        Got 'tst' instead.``
    """
    if value not in options:
        kinds = sorted({type(o).__name__ for o in options})
        listed = ", ".join(repr(o) for o in sorted(options, key=str))
        raise ValueError(
            f"The {name!r} parameter of {owner} must be a {' or '.join(kinds)} among "
            f"{{{listed}}}. Got {value!r} instead."
        )
    return value


def check_array_images(
    X: Any,
    *,
    name: str = "X",
    ndims: Sequence[int] = (4, 5),
    layout: str = "(N, C, H, W) or (N, C, D, H, W)",
) -> np.ndarray:
    """Validate an array of images without copying it.

    Parameters
    ----------
    X : array-like
        Images, uint8 or floating point.
    name : str, default="X"
        Name used in error messages.
    ndims : sequence of int, default=(4, 5)
        Accepted numbers of dimensions.
    layout : str
        Human description of the accepted layouts, quoted in error messages.

    Returns
    -------
    X : numpy.ndarray
        The same data as a NumPy array (no copy when ``X`` already is one).

    Raises
    ------
    TypeError
        If ``X`` is not an array of numbers (bool, object or string dtypes).
    ValueError
        If ``X`` has the wrong number of dimensions, is empty, or holds NaN or inf.
    """
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # a torch tensor
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        if isinstance(X, (list, tuple)):
            X = np.asarray(X)
        else:
            raise TypeError(
                f"Expected {name} to be a numpy array or torch tensor, got {type(X).__name__}."
            )
    if X.dtype == bool or not (
        np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)
    ):
        raise TypeError(
            f"Expected {name} to hold uint8 or floating-point pixels, got dtype {X.dtype}."
        )
    if X.ndim not in ndims:
        dims = ", ".join(str(d) for d in ndims[:-1])
        dims = f"{dims} or {ndims[-1]}" if dims else str(ndims[-1])
        raise ValueError(
            f"Expected {name} with {dims} dimensions {layout}, got an array of shape {X.shape}."
        )
    if X.size == 0:
        raise ValueError(f"Expected a non-empty {name}, got an array of shape {X.shape}.")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        n_bad = int(X.size - np.isfinite(X).sum())
        raise ValueError(f"Expected finite values in {name}, got {n_bad} NaN or inf values.")
    return X


def check_metadata(metadata: Any, n_samples: int, *, name: str = "metadata") -> pd.DataFrame:
    """Validate a per-sample metadata table.

    Parameters
    ----------
    metadata : pandas.DataFrame
        One row per sample.
    n_samples : int
        The number of images the rows must match.

    Returns
    -------
    metadata : pandas.DataFrame
        The same frame (not copied).

    Raises
    ------
    TypeError
        If ``metadata`` is not a DataFrame.
    ValueError
        If its number of rows differs from ``n_samples``.
    """
    if not isinstance(metadata, pd.DataFrame):
        raise TypeError(
            f"Expected {name} to be a pandas DataFrame with one row per sample, got "
            f"{type(metadata).__name__}."
        )
    if len(metadata) != n_samples:
        raise ValueError(
            f"Expected {name} with one row per sample ({n_samples} rows), got {len(metadata)} rows."
        )
    return metadata


def check_count_or_auto(value: Any, name: str, owner: str) -> int | str:
    """``"auto"`` or an int >= 1 (a batch size, a number of epochs), with the scikit-learn
    error template.
    """
    if value == "auto" and isinstance(value, str):
        return value
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < 1:
        raise (ValueError if is_int else TypeError)(
            f"The '{name}' parameter of {owner} must be an int in the range [1, inf) or "
            f"'auto'. Got {value!r} instead."
        )
    return int(value)


def check_batch_size(value: Any, owner: str) -> int | str:
    """``"auto"`` or an int >= 1: :func:`check_count_or_auto` for ``batch_size``."""
    return check_count_or_auto(value, "batch_size", owner)


def require_columns(
    needed: Sequence[str],
    available: Collection[str],
    *,
    name: str,
    reader: str,
    error: type[Exception] = ValueError,
) -> None:
    """Check that ``available`` (metadata columns or keys) holds every column in ``needed``.

    The one missing-column check of the package (the estimator's DataFrame, the training
    loop's mapping, a kernel's batch): ``Expected metadata to hold the column(s) ['age'] read
    by the regularizers, got columns ['sex'].``

    Raises
    ------
    ``error`` (ValueError unless given)
        Naming the missing columns, their reader and the columns there are.
    """
    missing = [c for c in needed if c not in available]
    if missing:
        raise error(
            f"Expected {name} to hold the column(s) {missing} read by {reader}, got columns "
            f"{sorted(map(str, available))}."
        )


def check_strata_fit(images: Any, n_clusters: int | str, chunk: int = 1024) -> None:
    """Refuse, before any training, data that cannot give ``n_clusters`` strata.

    Parameters
    ----------
    images : array of shape (N, ...)
    n_clusters : int or "auto"
    chunk : int
        Images compared with the first one at a time (memory stays at ``chunk`` images).

    Raises
    ------
    ValueError
        When ``n_clusters`` exceeds N, or when every image equals the first (nothing to
        stratify).
    """
    n = len(images)
    if isinstance(n_clusters, int) and not isinstance(n_clusters, bool) and n_clusters > n:
        raise ValueError(
            f"Expected n_clusters at most the number of images ({n}), got n_clusters={n_clusters}."
        )
    first = np.asarray(images[:1])
    for start in range(1, n, chunk):
        if not np.array_equal(
            np.asarray(images[start : start + chunk]),
            np.broadcast_to(first, (min(chunk, n - start), *first.shape[1:])),
        ):
            return
    raise ValueError(
        f"Expected images that differ, got {n} identical images: there is nothing to stratify."
    )
