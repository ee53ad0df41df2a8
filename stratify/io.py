"""The model file format: written and read without executing code from the file.

Format only: :meth:`Stratifier.save` and :meth:`Stratifier.load` turn the estimator into the
three parts below and back; this module writes and reads them.

The file is written by ``torch.save`` and read by ``torch.load(..., weights_only=True)``, which
only rebuilds tensors and plain containers (dicts, lists, strings, numbers): no pickle of
arbitrary objects. It holds

* ``format``, ``format_version`` and the writing ``stratify_version``;
* the estimator's parameters (JSON-like values only);
* the network's ``state_dict``;
* the fitted arrays (training latents, labels, shapes, data range) and the clustering seed.

The clustering is not stored as an object: it is refitted on the stored latents with the
stored seed (every backend is deterministic given both) and checked against the stored
labels, so a loaded estimator predicts exactly what the saved one did. Estimators with a custom
encoder, clusterer instance, loss-term objects or augmentation callable cannot be written in
this format (their code would have to be pickled); use ``joblib.dump`` for those.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stratify._atomic import atomic_write
from stratify._version import __version__

__all__ = ["FORMAT_VERSION", "check_plain", "read", "write"]

FORMAT = "stratify.Stratifier"
FORMAT_VERSION = 1
_PLAIN = (type(None), bool, int, float, str)


def _plain(value: Any) -> bool:
    """JSON-like: numbers, strings, None, and lists / tuples / dicts of them."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def check_plain(params: dict[str, Any]) -> None:
    """Raise a TypeError naming the parameters that are not JSON-like (cannot be stored)."""
    bad = sorted(name for name, value in params.items() if not _plain(value))
    if bad:
        raise TypeError(
            f"Cannot save parameters {bad} in the safe format: they hold Python objects "
            "(modules, estimators, loss terms or callables) whose code would have to be "
            "pickled. Use joblib.dump(estimator, path) for such an estimator."
        )


def write(
    path: str | os.PathLike,
    params: dict[str, Any],
    model_state: dict[str, Any],
    fitted: dict[str, Any],
) -> Path:
    """Write a model file atomically (a crash leaves no partial file).

    Parameters
    ----------
    path : path-like
    params : dict
        The estimator's parameters, JSON-like values only (checked).
    model_state : dict of str to Tensor
        The network's ``state_dict`` (moved to the CPU here).
    fitted : dict
        Fitted state: tensors, numbers, strings and plain containers only.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    check_plain(params)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stratify_version": __version__,
        "params": params,
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "fitted": fitted,
    }
    return atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"No stratify model file at {path}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, wrong file type, disallowed object, ...
        if "weights_only" in str(error):  # torch's advice to unpickle anyway must not reach users
            raise ValueError(
                f"{path} is not a stratify model file: torch's safe loader rejected its content "
                "(a corrupted file, another format, or pickled objects that could run code on "
                "load, which stratify never loads). Do not open it with "
                "torch.load(weights_only=False) unless you wrote it yourself."
            ) from None
        detail = " ".join(str(error).split())[:300]
        raise ValueError(
            f"{path} is not a readable stratify model file (truncated, corrupted or not "
            f"written by stratify.save): {type(error).__name__}: {detail}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a stratify model file (no '{FORMAT}' header).")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by stratify {payload.get('stratify_version')} in format "
            f"version {version}; this stratify {__version__} reads format version "
            f"{FORMAT_VERSION} at most. Upgrade stratify to load it."
        )
    return payload


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Read a model file written by :func:`write`, without running code from it.

    Returns
    -------
    params, model_state, fitted : dict
        As given to :func:`write`.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated, corrupted, not a stratify file, or from a newer format.
    """
    payload = _read(Path(path))
    return dict(payload["params"]), payload["model_state"], payload["fitted"]
