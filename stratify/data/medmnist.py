"""MedMNIST loader: official ``.npz`` files, checked by MD5, returned channel-first as uint8."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stratify._optional import require
from stratify._validation import check_option
from stratify.data._files import ImageSet, locate, verify_md5

__all__ = ["load_medmnist", "medmnist_flags", "medmnist_info"]

SPLITS = ("train", "val", "test")
ENV_VAR = "STRATIFY_DATA"


def _info_table() -> dict[str, dict[str, Any]]:
    # Imported lazily: medmnist pulls in torch and creates ~/.medmnist on import.
    return require("medmnist.info", "medmnist", "the MedMNIST catalogue and downloads").INFO


def medmnist_flags() -> list[str]:
    """All dataset flags known to the installed ``medmnist`` package."""
    return list(_info_table())


def medmnist_info(flag: str) -> dict[str, Any]:
    """The ``medmnist.INFO`` entry of a flag (task, class names, channels, MD5, sizes).

    Raises
    ------
    ValueError
        If the flag is unknown; the message lists the known flags.
    """
    table = _info_table()
    check_option(flag, "flag", "load_medmnist", set(table))
    return table[flag]


def _is_3d(flag: str) -> bool:
    return flag.endswith("3d")


def _available_sizes(info: dict[str, Any]) -> list[int]:
    return [28, *sorted(int(key[4:]) for key in info if re.fullmatch(r"url_\d+", key))]


def _default_root() -> Path:
    # The same folder as medmnist's DEFAULT_ROOT, without importing medmnist for it.
    return Path(os.path.expanduser("~")) / ".medmnist"


def _search_roots(root: str | os.PathLike | None) -> list[Path]:
    """Folders to look in, by precedence: the argument, $STRATIFY_DATA, medmnist's default."""
    roots = []
    if root is not None:
        roots.append(Path(root))
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    roots.append(_default_root())
    unique: list[Path] = []
    for candidate in roots:
        if candidate not in unique:
            unique.append(candidate)
    return unique


def _locate(
    flag: str, size: int, info: dict[str, Any], root: str | os.PathLike | None, download: bool
) -> Path:
    names = [f"{flag}.npz", f"{flag}_28.npz"] if size == 28 else [f"{flag}_{size}.npz"]
    looked = [folder / name for folder in _search_roots(root) for name in names]
    suffix = "" if size == 28 else f"_{size}"
    return locate(
        f"MedMNIST file {names[0]}",
        looked,
        info[f"url{suffix}"],
        info[f"MD5{suffix}"],
        ENV_VAR,
        download=download,
    )


def _channel_first(images: np.ndarray, three_d: bool) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); (N, H, W, 3) -> (N, 3, H, W); volumes likewise."""
    spatial = 3 if three_d else 2
    if images.ndim == spatial + 1:
        return images[:, None]
    return np.ascontiguousarray(np.moveaxis(images, -1, 1))


def _label_columns(labels: np.ndarray, info: dict[str, Any]) -> dict[str, np.ndarray]:
    names = [info["label"][str(i)] for i in range(len(info["label"]))]
    if info["task"].startswith("multi-label"):
        safe = [re.sub(r"\W+", "_", name) for name in names]
        return {f"label_{name}": labels[:, i] for i, name in enumerate(safe)}
    return {"label": labels, "label_name": np.asarray(names, dtype=object)[labels]}


def load_medmnist(
    flag: str,
    split: str = "train",
    size: int = 28,
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> ImageSet:
    """Load one split of a MedMNIST dataset from its official ``.npz`` file.

    Parameters
    ----------
    flag : str
        Dataset flag from ``medmnist.INFO``, e.g. ``"pneumoniamnist"``, ``"adrenalmnist3d"``.
    split : {"train", "val", "test", "all"}, default="train"
        Which split; ``"all"`` concatenates train, val and test in that order.
    size : int, default=28
        Image side; 28, 64, 128 or 224 for 2D flags, 28 or 64 for 3D flags.
    root : path-like, optional
        Folder holding ``<flag>.npz`` (or ``<flag>_<size>.npz``). Folders are searched in
        this order: ``root``, the ``STRATIFY_DATA`` environment variable, medmnist's default
        folder (``~/.medmnist``).
    download : bool, default=True
        When the file is in none of those folders, download it from MedMNIST's Zenodo
        record into the first of them.

    Returns
    -------
    ImageSet
        ``images``: uint8 array (N, C, H, W), or (N, C, D, H, W) for 3D flags;
        ``labels``: int64 array (N,), or (N, L) 0/1 indicators for multi-label tasks;
        ``metadata``: DataFrame with columns ``split``, ``index`` (position in the official
        split) and the labels (``label`` and ``label_name``, or one ``label_<class>`` column
        per class for multi-label tasks). ``metadata.attrs`` holds ``flag``, ``task``,
        ``classes`` (index -> name), ``n_channels`` and ``size``.

    Raises
    ------
    ValueError
        For an unknown flag, split or size, or when the file's MD5 differs from the official
        one (the message names the file and both hashes).
    DataNotFoundError
        When the file is missing and cannot be downloaded; the message lists every place
        searched and how to provide the file.
    """
    info = medmnist_info(flag)
    check_option(split, "split", "load_medmnist", {*SPLITS, "all"})
    check_option(size, "size", "load_medmnist", set(_available_sizes(info)))

    path = _locate(flag, size, info, root, download)
    verify_md5(path, info["MD5" if size == 28 else f"MD5_{size}"])

    splits = SPLITS if split == "all" else (split,)
    with np.load(path) as archive:
        parts = [(name, archive[f"{name}_images"], archive[f"{name}_labels"]) for name in splits]

    three_d = _is_3d(flag)
    images = np.concatenate([_channel_first(imgs, three_d) for _, imgs, _ in parts])
    labels = np.concatenate([lab for _, _, lab in parts]).astype(np.int64)
    if not info["task"].startswith("multi-label"):
        labels = labels.reshape(-1)

    metadata = pd.DataFrame(
        {
            "split": np.concatenate([[name] * len(imgs) for name, imgs, _ in parts]),
            "index": np.concatenate([np.arange(len(imgs)) for _, imgs, _ in parts]),
            **_label_columns(labels, info),
        }
    )
    metadata["split"] = metadata["split"].astype("category")
    metadata.attrs.update(
        flag=flag,
        task=info["task"],
        classes={int(k): v for k, v in info["label"].items()},
        n_channels=info["n_channels"],
        size=size,
    )
    return ImageSet(images, labels, metadata)
