"""Save and load a fitted Stratifier without executing code from the file.

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

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from stratify._atomic import atomic_write
from stratify._version import __version__

__all__ = ["FORMAT_VERSION", "load", "save"]

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


def _params(estimator: Any) -> dict[str, Any]:
    params = estimator.get_params(deep=False)
    if dataclasses.is_dataclass(params.get("augmentation")):
        params["augmentation"] = {"AugmentParams": dataclasses.asdict(params["augmentation"])}
    bad = sorted(name for name, value in params.items() if not _plain(value))
    if bad:
        raise TypeError(
            f"Cannot save parameters {bad} in the safe format: they hold Python objects "
            "(modules, estimators, loss terms or callables) whose code would have to be "
            "pickled. Use joblib.dump(estimator, path) for such an estimator."
        )
    return params


def save(estimator: Any, path: str | os.PathLike) -> Path:
    """Write a fitted Stratifier to ``path`` atomically (a crash leaves no partial file).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    check_is_fitted(estimator)
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "stratify_version": __version__,
        "params": _params(estimator),
        "model_state": {k: v.detach().cpu() for k, v in estimator.model_.state_dict().items()},
        "fitted": {
            "image_shape_": list(estimator.image_shape_),
            "input_ndim": int(estimator._input_ndim),
            "data_range_": [float(v) for v in estimator.data_range_],
            "embedding_": torch.from_numpy(np.ascontiguousarray(estimator.embedding_)),
            "labels_": torch.from_numpy(np.asarray(estimator.labels_, dtype=np.int64)),
            "cluster_seed": int(estimator._cluster_seed),
            "manifold_embedding_": None if estimator.manifold_embedding_ is None else
            torch.from_numpy(np.ascontiguousarray(estimator.manifold_embedding_)),
            "model_seed": int(estimator._model_seed),
            "kl_per_dim_": torch.from_numpy(estimator.kl_per_dim_)
            if hasattr(estimator, "kl_per_dim_") else None,
            "embedding_std_": torch.from_numpy(np.ascontiguousarray(estimator.embedding_std_))
            if hasattr(estimator, "embedding_std_") else None,
            "history_": {c: estimator.history_[c].tolist() for c in estimator.history_.columns},
            "batch_size_": int(getattr(estimator, "batch_size_", 0)),
        },
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


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


def load(path: str | os.PathLike) -> Any:
    """Read a Stratifier written by :func:`save`; it predicts exactly what the saved one did.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is truncated, corrupted, not a stratify file, from a newer format, or
        its clustering cannot be restored exactly.
    """
    from stratify.data.augment import AugmentParams
    from stratify.estimator import Stratifier

    path = Path(path)
    payload = _read(path)
    params = dict(payload["params"])
    spec = params.get("augmentation")
    if isinstance(spec, dict) and "AugmentParams" in spec:
        fields = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in spec["AugmentParams"].items()}
        params["augmentation"] = AugmentParams(**fields)
    estimator = Stratifier(**params)
    fitted = payload["fitted"]

    estimator.image_shape_ = tuple(fitted["image_shape_"])
    estimator.n_features_in_ = int(np.prod(estimator.image_shape_))
    estimator._input_ndim = fitted["input_ndim"]
    estimator.data_range_ = tuple(fitted["data_range_"])
    estimator.objective_ = estimator._build_objective()
    estimator._model_seed = fitted["model_seed"]
    model = estimator._build_network(estimator._model_seed)
    model.load_state_dict(payload["model_state"])
    estimator.model_ = model.eval()
    estimator.embedding_ = fitted["embedding_"].numpy()
    estimator.history_ = pd.DataFrame(fitted["history_"])
    estimator._cluster_seed = fitted["cluster_seed"]
    if fitted.get("batch_size_"):
        estimator.batch_size_ = int(fitted["batch_size_"])
    if fitted.get("kl_per_dim_") is not None:
        estimator.embedding_std_ = fitted["embedding_std_"].numpy()
        estimator._set_posterior_summary(fitted["kl_per_dim_"].numpy())

    labels = fitted["labels_"].numpy()
    manifold = fitted.get("manifold_embedding_")
    estimator._fit_clusterer(None if manifold is None else manifold.numpy())
    if not np.array_equal(estimator.clusterer_.labels_, labels):
        raise ValueError(
            f"Could not restore the clustering of {path} exactly: refitting on the stored "
            "latents gave other labels (different scikit-learn or hdbscan version?)."
        )
    return estimator
