"""Atomic checkpoint files holding only tensors and plain containers (``weights_only`` safe)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stratify._atomic import atomic_write

__all__ = [
    "CHECKPOINT_NAME",
    "check_resumable",
    "fingerprint",
    "load_checkpoint",
    "save_checkpoint",
]

CHECKPOINT_NAME = "last.pt"
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], folder: str | os.PathLike) -> Path:
    """Write ``state`` to ``folder/last.pt`` atomically.

    The file is first written to a temporary file in the same folder, flushed to disk, then
    moved over the old checkpoint with ``os.replace``; a crash at any point leaves either the
    previous complete checkpoint or the new one, never a partial file.

    Parameters
    ----------
    state : dict
        Tensors, numbers, strings, lists, tuples and dicts only (loadable with
        ``torch.load(weights_only=True)``).
    folder : path-like
        Created if missing.

    Returns
    -------
    path : pathlib.Path
        The checkpoint's path.
    """

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            torch.save({"format": FORMAT_VERSION, **state}, handle)

    return atomic_write(Path(folder) / CHECKPOINT_NAME, write)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (a file, or its folder).

    Loaded with ``torch.load(weights_only=True)`` on the CPU, so no code from the file runs.

    Raises
    ------
    FileNotFoundError
        If there is no checkpoint at ``path``.
    ValueError
        If the file is not a stratify checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"Expected a checkpoint file or a folder holding {CHECKPOINT_NAME}, got {path} "
            "(not found). Pass the checkpoint_dir of the interrupted fit."
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise ValueError(f"Expected a stratify checkpoint (format {FORMAT_VERSION}), got {path}.")
    return state


def check_resumable(
    config: Any, checkpoint: dict[str, Any] | None, fingerprint: str | None
) -> None:
    """Refuse to overwrite an earlier fit's checkpoint, or to resume another fit's.

    Parameters
    ----------
    config : TrainConfig
        Its ``checkpoint_dir`` is checked when not resuming.
    checkpoint : dict or None
        The checkpoint being resumed (None: a new fit).
    fingerprint : str or None
        This fit's digest of data and settings, compared with the checkpoint's.

    Raises
    ------
    FileExistsError
        A new fit whose ``checkpoint_dir`` already holds a checkpoint.
    ValueError
        A checkpoint written by a fit with another fingerprint.
    """
    if checkpoint is None:
        if config.checkpoint_dir is None:
            return
        existing = Path(config.checkpoint_dir) / CHECKPOINT_NAME
        if existing.is_file():
            earlier = load_checkpoint(existing)
            raise FileExistsError(
                f"{existing} holds the checkpoint of an earlier fit (epoch {earlier['epoch']} "
                f"of {earlier['config']['epochs']}); resume it (train_config={{'resume': "
                "True} on the estimator, stratify fit --resume) or choose another "
                "checkpoint_dir. It was not touched."
            )
        return
    stored = checkpoint.get("fingerprint")
    if fingerprint is not None and stored is not None and stored != fingerprint:
        raise ValueError(
            "The checkpoint to resume was written by a fit with other data or settings "
            f"(fingerprint {stored[:12]}, this fit {fingerprint[:12]}); resume with the same "
            "images, metadata and parameters, or start a new fit in another checkpoint_dir."
        )


#: ``train_config`` fields that a resumed fit may change (they do not change the result).
CONFIG_MAY_CHANGE = frozenset(
    {
        "checkpoint_dir",
        "checkpoint_every",
        "progress",
        "num_workers",
        "num_threads",
        "device",
        "resume",
    }
)


def fingerprinted(params: Mapping[str, Any], may_change: Iterable[str]) -> dict[str, Any]:
    """The settings a fingerprint covers: ``params`` less those named in ``may_change``, and
    a ``train_config`` mapping among them less :data:`CONFIG_MAY_CHANGE`.
    """
    excluded = set(may_change)
    kept = {k: v for k, v in params.items() if k not in excluded}
    if "train_config" in kept:
        kept["train_config"] = {
            k: v
            for k, v in sorted(dict(kept["train_config"] or {}).items())
            if k not in CONFIG_MAY_CHANGE
        }
    return kept


def fingerprint(
    params: Mapping[str, Any], images: np.ndarray, arrays: Iterable[tuple[str, np.ndarray]] = ()
) -> str:
    """The digest a checkpoint carries so that only the same fit resumes it.

    Parameters
    ----------
    params : mapping
        The fit's settings (those a resumed fit may change left out); hashed by ``repr`` in
        key order.
    images : numpy.ndarray
        The training images, hashed in chunks of 1,024 (bounded memory), with shape and dtype.
    arrays : iterable of (str, numpy.ndarray)
        Further named arrays (metadata columns, labels, validation data, weights), in order.

    Returns
    -------
    str
        32 hexadecimal digits (BLAKE2b, 16 bytes).
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(sorted(params.items(), key=lambda item: item[0])).encode())
    digest.update(f"{images.shape} {images.dtype}".encode())
    for start in range(0, len(images), 1024):
        digest.update(np.ascontiguousarray(images[start : start + 1024]).tobytes())
    for name, array in arrays:
        digest.update(name.encode() + np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()
