"""Patients by id: a metadata table joined to the images by an id column, never by row order.

Every image carries an id (a file name without its extensions, a manifest's ``id`` column,
DICOM's PatientID). :func:`align_metadata` returns the table's rows in image order, one per
image (several images of one patient share its row), and refuses, before any training, an
image without a row, a row without an image, or a duplicate id in the table.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["align_metadata", "check_ids", "patient_strata"]

#: Ids named in an error message at most.
SHOWN_IDS = 5


def _some(ids: Sequence[Any]) -> str:
    """Up to :data:`SHOWN_IDS` ids, and how many more."""
    shown = ", ".join(repr(str(i)) for i in list(ids)[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def check_ids(ids: Any, n_samples: int) -> np.ndarray:
    """Image ids as an array of str (N,), one per image, none empty.

    Raises
    ------
    ValueError
        If there are not ``n_samples`` ids, or an id is empty or missing.
    """
    values = np.asarray(ids, dtype=object).ravel()
    if len(values) != n_samples:
        raise ValueError(f"Expected one id per image ({n_samples} ids), got {len(values)} ids.")
    empty = [k for k, v in enumerate(values) if v is None or pd.isna(v) or str(v).strip() == ""]
    if empty:
        shown = ", ".join(str(k) for k in empty[:SHOWN_IDS])
        raise ValueError(f"Expected an id for every image, got none for images at {shown}.")
    return np.asarray([str(v).strip() for v in values], dtype=str)


def align_metadata(
    ids: Any,
    table: pd.DataFrame,
    *,
    id_column: str | None = None,
    allow_missing: bool = False,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of ``table`` in image order, matched by id.

    Parameters
    ----------
    ids : array-like of str, shape (N,)
        The id of each image (repeated for several images of one patient).
    table : pandas.DataFrame
        One row per patient.
    id_column : str, optional
        The column holding the ids; None: the table's index.
    allow_missing : bool, default=False
        Drop images without a row and rows without an image (with a warning) instead of
        refusing them.

    Returns
    -------
    metadata : pandas.DataFrame
        One row per kept image, in image order, the id column first, index 0..M-1.
    kept : numpy.ndarray of bool, shape (N,)
        Which images have a row (all True without ``allow_missing``).

    Raises
    ------
    ValueError
        For a missing id column, a duplicate id in the table, or (without ``allow_missing``)
        an image without a row or a row without an image; the message names up to five ids.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"Expected the metadata as a pandas DataFrame, got {type(table).__name__}.")
    image_ids = check_ids(ids, len(np.asarray(ids, dtype=object).ravel()))
    if id_column is None:
        name = table.index.name or "id"
        keys = table.index.astype(str).str.strip()
        rows = table.reset_index(drop=True)
    else:
        if id_column not in table.columns:
            raise ValueError(
                f"Expected an id column {id_column!r} in the metadata, got the columns "
                f"{list(table.columns)}."
            )
        name = id_column
        keys = pd.Index(table[id_column].astype(str).str.strip())
        rows = table.drop(columns=[id_column]).reset_index(drop=True)
    duplicated = keys[keys.duplicated()].unique()
    if len(duplicated):
        raise ValueError(
            f"Expected one metadata row per {name}, got {len(duplicated)} duplicate ids: "
            f"{_some(duplicated)}."
        )
    known = set(keys)
    no_row = sorted({i for i in image_ids if i not in known})
    no_image = sorted(known - set(image_ids))
    problems = []
    if no_row:
        problems.append(f"{len(no_row)} image ids without a metadata row: {_some(no_row)}")
    if no_image:
        problems.append(f"{len(no_image)} metadata ids without an image: {_some(no_image)}")
    problems += _near_misses(no_row, no_image)
    if problems and not allow_missing:
        raise ValueError(
            f"Expected every image and every metadata row to match by {name}, got "
            + "; ".join(problems)
            + " (allow_missing drops them)."
        )
    kept = np.isin(image_ids, list(known))
    if problems and not kept.any():
        raise ValueError(
            f"Expected some images to match a metadata row by {name}, got none: "
            + "; ".join(problems)
            + "."
        )
    if problems:
        warnings.warn("Dropped " + "; ".join(problems) + ".", UserWarning, stacklevel=2)
    position = pd.Series(np.arange(len(keys)), index=keys)
    aligned = rows.iloc[position.loc[image_ids[kept]].to_numpy()].reset_index(drop=True)
    aligned.insert(0, name, image_ids[kept])
    return aligned, kept


def _near_misses(no_row: list[str], no_image: list[str]) -> list[str]:
    """Why unmatched ids may be the same patients: another case, or numbers that lost their
    leading zeros (a table read with numeric ids).
    """
    notes = []
    no_row, no_image = [str(i) for i in no_row], [str(i) for i in no_image]
    lower = {i.lower(): i for i in no_image}
    case = [(i, lower[i.lower()]) for i in no_row if i.lower() in lower]
    if case:
        image, row = case[0]
        notes.append(
            f"{len(case)} of them differ from a metadata id only in case (image {image!r}, "
            f"row {row!r}): ids are matched exactly"
        )
    stripped = {i.lstrip("0") or "0": i for i in no_row if i.isdigit()}
    zeros = [i for i in no_image if i.isdigit() and i in stripped and stripped[i] != i]
    if zeros:
        notes.append(
            f"{len(zeros)} metadata ids look like image ids without their leading zeros "
            f"(row {zeros[0]!r}, image {stripped[zeros[0]]!r}): read the id column as text "
            "(pandas: dtype={column: str})"
        )
    return notes


def patient_strata(ids: Any, labels: np.ndarray, proba: np.ndarray | None = None) -> np.ndarray:
    """One stratum per patient for images that share an id, broadcast back to the images.

    The rule: the argmax of the mean of the per-image membership probabilities when there
    are probabilities, else the most frequent stratum of the patient's images (ties: the
    smallest stratum number; noise ``-1`` counts only if all images are noise).

    Parameters
    ----------
    ids : array-like of str, shape (N,)
    labels : numpy.ndarray of int, shape (N,)
    proba : numpy.ndarray, shape (N, K), optional

    Returns
    -------
    numpy.ndarray of int, shape (N,)
        The patient's stratum on each of its images.
    """
    ids = np.asarray(ids, dtype=str)
    labels = np.asarray(labels)
    codes, inverse = np.unique(ids, return_inverse=True)
    patient = np.empty(len(codes), dtype=np.int64)
    for p in range(len(codes)):
        rows = inverse == p
        if proba is not None:
            patient[p] = int(np.argmax(proba[rows].mean(axis=0)))
            continue
        member = labels[rows]
        clustered = member[member >= 0]
        patient[p] = -1 if len(clustered) == 0 else int(np.bincount(clustered).argmax())
    return patient[inverse]
