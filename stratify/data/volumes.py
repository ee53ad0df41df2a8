"""3D volumes to 2D slices with their position: the input of positional contrastive learning."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from stratify._validation import check_array_images, check_in_range, check_metadata

__all__ = ["Slices", "volumes_to_slices"]


class Slices(NamedTuple):
    """Slices of volumes: ``slices, metadata = volumes_to_slices(...)``.

    Attributes
    ----------
    slices : numpy.ndarray, shape (N * n_kept, C, H', W')
        The slices, in the input's dtype, volume by volume, in order of position.
    metadata : pandas.DataFrame
        One row per slice: ``volume_id``, ``slice_index``, ``position`` in [0, 1], ``label``
        (when labels were given) and the parent volume's metadata columns.
    """

    slices: np.ndarray
    metadata: pd.DataFrame


def volumes_to_slices(
    volumes: np.ndarray,
    *,
    axis: int = 0,
    labels: np.ndarray | None = None,
    metadata: pd.DataFrame | None = None,
    stride: int = 1,
    margin: float = 0.0,
) -> Slices:
    """Cut 3D volumes into 2D slices along one spatial axis, keeping where each came from.

    Parameters
    ----------
    volumes : numpy.ndarray, shape (N, C, D, H, W) or (N, D, H, W)
        The volumes (uint8 or float); a 4D array is read as single-channel volumes.
    axis : {0, 1, 2}, default=0
        Spatial axis to slice along: 0 = depth D, 1 = height H, 2 = width W.
    labels : numpy.ndarray, shape (N,), optional
        Volume-level labels (e.g. a weak label), copied to each slice as ``label``.
    metadata : pandas.DataFrame, optional
        One row per volume; its columns are copied to each of the volume's slices.
    stride : int, default=1
        Keep every ``stride``-th slice.
    margin : float, default=0.0
        Drop slices whose position is below ``margin`` or above ``1 - margin`` (the
        near-empty ends of a volume), in [0, 0.5).

    Returns
    -------
    Slices
        ``slices`` (N * n_kept, C, H', W') and a metadata frame with ``volume_id`` (the row
        of the parent volume), ``slice_index`` (along ``axis``), ``position`` =
        ``slice_index / (L - 1)`` in [0, 1] for a volume of ``L`` slices (0.5 when
        ``L == 1``), ``label`` and the parent's metadata columns.

    Raises
    ------
    ValueError
        For a wrong number of dimensions, an out-of-range axis, stride or margin, labels or
        metadata whose length differs from the number of volumes, or when no slice is left.
    """
    owner = "volumes_to_slices"
    volumes = check_array_images(
        volumes, name="volumes", ndims=(4, 5), layout="(N, C, D, H, W) or (N, D, H, W)"
    )
    if volumes.ndim == 4:
        volumes = volumes[:, None]
    check_in_range(axis, "axis", owner, kind=int, low=0, high=2)
    stride = check_in_range(stride, "stride", owner, kind=int, low=1)
    margin = check_in_range(margin, "margin", owner, low=0, high=0.5, closed="left")
    n_volumes, length = volumes.shape[0], volumes.shape[2 + axis]

    index = np.arange(0, length, stride)
    position = index / (length - 1) if length > 1 else np.full(len(index), 0.5)
    keep = (position >= margin - 1e-12) & (position <= 1 - margin + 1e-12)
    index, position = index[keep], position[keep]
    if len(index) == 0:
        raise ValueError(
            f"Expected at least one slice to remain, got none with stride={stride} and "
            f"margin={margin} on volumes of {length} slices."
        )

    # (N, C, D, H, W) -> (N, L, C, H', W') -> (N * L, C, H', W')
    moved = np.moveaxis(np.take(volumes, index, axis=2 + axis), 2 + axis, 1)
    slices = moved.reshape(n_volumes * len(index), *moved.shape[2:])

    volume_id = np.repeat(np.arange(n_volumes), len(index))
    frame = pd.DataFrame(
        {
            "volume_id": volume_id,
            "slice_index": np.tile(index, n_volumes),
            "position": np.tile(position, n_volumes),
        }
    )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) != n_volumes:
            raise ValueError(
                f"Expected labels of shape ({n_volumes},), one per volume, got shape "
                f"{labels.shape}."
            )
        frame["label"] = labels[volume_id]
    if metadata is not None:
        check_metadata(metadata, n_volumes)
        clash = sorted(set(metadata.columns) & set(frame.columns))
        if clash:
            raise ValueError(
                f"Expected metadata columns that do not clash with the slice columns, got "
                f"{clash}; rename them first."
            )
        parent = metadata.iloc[volume_id].reset_index(drop=True)
        frame = pd.concat([frame, parent], axis=1)
    return Slices(np.ascontiguousarray(slices), frame)
