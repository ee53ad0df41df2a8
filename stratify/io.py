"""The model file format: written and read without executing code from the file.

:func:`save_stratifier` and :func:`load_stratifier` (behind :meth:`Stratifier.save` and
:meth:`Stratifier.load`) turn the estimator into the three parts below and back;
:func:`write` and :func:`read` write and read them, and :func:`migrate` brings a file of an
older format version to the current one.

The file is written by ``torch.save`` and read by ``torch.load(..., weights_only=True)``, which
only rebuilds tensors and plain containers (dicts, lists, strings, numbers): no pickle of
arbitrary objects. It holds

* ``format``, ``format_version`` and the writing ``stratify_version``;
* ``versions``: the versions of the libraries the fit depends on (torch, scikit-learn,
  hdbscan, umap-learn, numpy, stratify); loading under another major.minor version warns,
  naming both;
* ``checksum``: a BLAKE2b digest of everything below (parameters, every tensor's name,
  dtype, shape and bytes, the fitted state), checked on load, so a file with a flipped byte
  is refused and never predicts;
* the estimator's parameters (JSON-like values only);
* the network's ``state_dict``;
* the fitted arrays (training latents, shapes, data range, history) and the clusterer's
  own state (:meth:`~stratify.cluster.StrataClusterer.state`: its parameters with the seed,
  the labels, the manifold coordinates and choice).

The clustering is not stored as an object: it is refitted on the stored latents with the
stored seed (every backend is deterministic given both) and checked against the stored
labels, so a loaded estimator predicts exactly what the saved one did.

Format versions: 1 kept the clustering's labels, seed and manifold arrays beside the other
fitted arrays (and, before the ``whiten`` parameter, no ``whiten``); 2 keeps them in
``fitted["clusterer"]``; 3 adds ``versions`` and ``checksum``. Estimators with a custom
encoder, clusterer instance, loss-term objects or augmentation callable cannot be written in
this format (their code would have to be pickled); use ``joblib.dump`` for those.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stratify._atomic import atomic_write
from stratify._version import __version__

__all__ = [
    "FORMAT_VERSION",
    "check_plain",
    "load_stratifier",
    "migrate",
    "read",
    "save_stratifier",
    "write",
]

FORMAT = "stratify.Stratifier"
FORMAT_VERSION = 3
#: The libraries whose versions a model file records (distribution names).
RECORDED = ("stratify", "torch", "scikit-learn", "hdbscan", "umap-learn", "numpy")
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


def versions() -> dict[str, str]:
    """The installed versions of :data:`RECORDED` (``"not installed"`` for a missing one)."""
    found = {}
    for name in RECORDED:
        try:
            found[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _minor(version: str) -> str:
    """``1.9.1`` -> ``1.9``; local tags (``+cu130``) ignored."""
    return ".".join(version.split("+")[0].split(".")[:2])


def version_changes(recorded: dict[str, str]) -> list[str]:
    """``name saved with A, installed B`` for each library whose major.minor differs."""
    installed = versions()
    return [
        f"{name} saved with {recorded[name]}, installed {installed.get(name, 'not installed')}"
        for name in sorted(recorded)
        if _minor(recorded[name]) != _minor(installed.get(name, "not installed"))
    ]


def _update(digest: Any, value: Any) -> None:
    """Feed ``value`` to ``digest``: tensors by dtype, shape and bytes, the rest by JSON."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(
            tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        )
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=str):
            digest.update(json.dumps(str(key)).encode())
            _update(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _update(digest, item)
        digest.update(b"]")
    else:
        digest.update(json.dumps(value, sort_keys=True, default=repr).encode())


def checksum(payload: dict[str, Any]) -> str:
    """BLAKE2b (16 bytes, hex) of the payload's parameters, network state and fitted state."""
    digest = hashlib.blake2b(digest_size=16)
    for part in ("params", "model_state", "fitted"):
        digest.update(part.encode())
        _update(digest, payload[part])
    return digest.hexdigest()


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
        "versions": versions(),
        "params": params,
        "model_state": {k: v.detach().cpu() for k, v in model_state.items()},
        "fitted": fitted,
    }
    payload["checksum"] = checksum(payload)
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
    if version >= 3 and payload.get("checksum") != checksum(payload):
        raise ValueError(
            f"{path} is corrupted: its content does not match the checksum written with it "
            "(a changed, flipped or lost byte); it was not loaded. Restore it from a copy."
        )
    return payload


def read(path: str | os.PathLike, *, with_versions: bool = False) -> Any:
    """Read a model file written by :func:`write`, without running code from it.

    Returns
    -------
    params, model_state, fitted : dict
        As given to :func:`write`; with ``with_versions`` also the recorded library versions
        (empty for files before format version 3).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated, corrupted, not a stratify file, or from a newer format.
    """
    payload = migrate(_read(Path(path)))
    parts = (dict(payload["params"]), payload["model_state"], payload["fitted"])
    return (*parts, dict(payload.get("versions") or {})) if with_versions else parts


def migrate(payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload of an older format version to :data:`FORMAT_VERSION` (in place).

    Version 1 -> 2: the clustering's ``labels_``, ``cluster_seed``, ``manifold_embedding_``
    and ``manifold_selection_`` move into ``fitted["clusterer"]`` (its ``params`` are then
    None: the estimator's parameters give them); a file from before the ``whiten``
    parameter clustered the latents unwhitened.
    """
    if payload["format_version"] < 2:
        payload["params"].setdefault("whiten", False)
        fitted = payload["fitted"]
        fitted["clusterer"] = {
            "params": None,
            "seed": fitted.pop("cluster_seed"),
            "labels": fitted.pop("labels_"),
            "manifold_embedding": fitted.pop("manifold_embedding_", None),
            "manifold_selection": fitted.pop("manifold_selection_", None),
        }
    # version 2 -> 3: no versions or checksum were recorded; nothing to move
    payload["format_version"] = FORMAT_VERSION
    return payload


# --------------------------------------------------------------------- the Stratifier
def _tensors(value: Any) -> Any:
    """Numpy arrays (also inside dicts) -> tensors, the only arrays the safe loader reads."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: _tensors(v) for k, v in value.items()}
    return value


def _arrays(value: Any) -> Any:
    """The inverse of :func:`_tensors`."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _arrays(v) for k, v in value.items()}
    return value


def save_stratifier(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted :class:`~stratify.Stratifier` atomically (see the module docstring)."""
    params = estimator.get_params(deep=False)
    if dataclasses.is_dataclass(params.get("augmentation")):
        params["augmentation"] = {"AugmentParams": dataclasses.asdict(params["augmentation"])}
    check_plain(params)
    optional = {name: getattr(estimator, name, None) for name in ("kl_per_dim_", "embedding_std_")}
    fitted = {
        "image_shape_": list(estimator.image_shape_),
        "input_ndim": int(estimator._input_ndim),
        "data_range_": [float(v) for v in estimator.data_range_],
        "embedding_": estimator.embedding_,
        "model_seed": int(estimator._model_seed),
        **optional,
        "history_": {c: estimator.history_[c].tolist() for c in estimator.history_.columns},
        "batch_size_": int(getattr(estimator, "batch_size_", 0)),
        "epochs_": int(getattr(estimator, "epochs_", 0)),
        "fit_seconds_": float(getattr(estimator, "fit_seconds_", float("nan"))),
        "ids_": None if getattr(estimator, "ids_", None) is None else estimator.ids_.tolist(),
        "label_column_": getattr(estimator, "label_column_", None),
        "clusterer": estimator.clusterer_.state(),
    }
    return write(path, params, estimator.model_.state_dict(), _tensors(fitted))


def load_stratifier(cls: type, path: str | os.PathLike) -> Any:
    """Read an estimator of class ``cls`` written by :func:`save_stratifier`.

    The network is rebuilt from the parameters and the stored seed and given the stored
    weights; the clustering is refitted on the stored latents from the clusterer's state
    and must give the stored labels.
    """
    from stratify._params import migrate_params
    from stratify.cluster import StrataClusterer
    from stratify.data.augment import AugmentParams
    from stratify.data.scaling import IntensityScaler

    params, model_state, fitted, recorded = read(path, with_versions=True)
    changes = version_changes(recorded)
    if changes:
        warnings.warn(
            f"{path} was saved under other library versions ({'; '.join(changes)}); its "
            "clustering is refitted and checked against the stored labels.",
            UserWarning,
            stacklevel=3,
        )
    fitted = _arrays(fitted)
    spec = params.get("augmentation")
    if isinstance(spec, dict) and "AugmentParams" in spec:
        fields: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in spec["AugmentParams"].items()
        }
        params["augmentation"] = AugmentParams(**fields)
    estimator = cls(**migrate_params(params))
    estimator.image_shape_ = tuple(fitted["image_shape_"])
    estimator.n_features_in_ = int(np.prod(estimator.image_shape_))
    estimator._input_ndim = fitted["input_ndim"]
    estimator.scaler_ = IntensityScaler()
    estimator.scaler_.data_range_ = tuple(fitted["data_range_"])
    anchors = fitted["clusterer"].get("anchors")
    estimator.known_labels_ = None if anchors is None else np.asarray(anchors, dtype=np.int64)
    estimator.objective_ = estimator._build_objective(labelled=anchors is not None)
    estimator._model_seed = fitted["model_seed"]
    model = estimator._build_network(estimator._model_seed)
    model.load_state_dict(model_state)
    estimator.model_ = model.eval()
    estimator.embedding_ = fitted["embedding_"]
    estimator.history_ = pd.DataFrame(fitted["history_"])
    for name in ("batch_size_", "epochs_"):
        if fitted.get(name):
            setattr(estimator, name, int(fitted[name]))
    if fitted.get("fit_seconds_") is not None:
        estimator.fit_seconds_ = float(fitted["fit_seconds_"])
    if fitted.get("ids_") is not None:
        estimator.ids_ = np.asarray(fitted["ids_"], dtype=str)
    estimator.label_column_ = fitted.get("label_column_")
    if fitted.get("kl_per_dim_") is not None:
        estimator.embedding_std_ = fitted["embedding_std_"]
        estimator._set_posterior_summary(fitted["kl_per_dim_"])
    state = fitted["clusterer"]
    if state["params"] is None:  # a version-1 file: the estimator's parameters give them
        state["params"] = estimator._new_clusterer(state.pop("seed")).get_params(deep=False)
    try:
        estimator.clusterer_ = StrataClusterer.from_state(estimator.embedding_, state)
    except ValueError as error:
        versions_note = f" Versions differ: {'; '.join(changes)}." if changes else ""
        raise ValueError(
            f"Could not restore the clustering of {path} exactly: {error}{versions_note}"
        ) from None
    estimator._cluster_seed = estimator.clusterer_.random_state
    estimator._set_cluster_attributes()
    return estimator
