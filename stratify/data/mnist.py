"""MNIST test set (10,000 digits) from the original idx files: deep clustering's usual benchmark."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd

from stratify.data._files import ImageSet, locate, verify_md5

__all__ = ["load_mnist_test"]

ENV_VAR = "STRATIFY_MNIST"
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Checksums of the original distribution files, as listed in torchvision's MNIST.resources.
FILES = {
    "images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}


def _search_roots(root: str | os.PathLike | None) -> list[Path]:
    roots = [Path(root)] if root is not None else []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    roots.append(Path(os.path.expanduser("~")) / ".stratify" / "mnist")
    return list(dict.fromkeys(roots))


def _locate(kind: str, root: str | os.PathLike | None, download: bool) -> Path:
    name, md5 = FILES[kind]
    looked = [folder / name for folder in _search_roots(root)]
    return locate(f"MNIST file {name}", looked, MIRROR + name, md5, ENV_VAR, download=download)


def _read_idx(path: Path, kind: str) -> np.ndarray:
    """Parse a gzipped idx file (big-endian header: magic, then one int32 per dimension)."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_MAGIC[kind]:
        raise ValueError(
            f"Expected an idx {kind} file with magic {IDX_MAGIC[kind]:#010x} in {path}, got "
            f"{magic:#010x}."
        )
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(
            f"Expected {int(np.prod(shape))} values in {path} (header shape {shape}), got "
            f"{data.size}: the file is truncated."
        )
    return data.reshape(shape)


def load_mnist_test(root: str | os.PathLike | None = None, *, download: bool = True) -> ImageSet:
    """Load the MNIST test set (10,000 handwritten digits) from its original idx files.

    Parameters
    ----------
    root : path-like, optional
        Folder holding ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``.
        Searched in this order: ``root``, the ``STRATIFY_MNIST`` environment variable,
        ``~/.stratify/mnist``.
    download : bool, default=True
        Download missing files from torchvision's MNIST mirror into the first folder.

    Returns
    -------
    ImageSet
        ``images`` uint8 (10000, 1, 28, 28), ``labels`` int64 (10000,), ``metadata`` with
        ``split`` ("test"), ``index`` and ``label``; ``metadata.attrs["classes"]`` maps
        0-9 to the digit names.

    Raises
    ------
    ValueError
        When a file's MD5 differs from the original release or its idx header is wrong.
    DataNotFoundError
        When a file is missing and cannot be downloaded.
    """
    arrays = {}
    for kind in FILES:
        path = _locate(kind, root, download)
        verify_md5(path, FILES[kind][1])
        arrays[kind] = _read_idx(path, kind)
    images = arrays["images"][:, None].copy()
    labels = arrays["labels"].astype(np.int64)
    metadata = pd.DataFrame({"split": "test", "index": np.arange(len(labels)), "label": labels})
    metadata.attrs.update(
        flag="mnist",
        task="multi-class",
        classes={i: str(i) for i in range(10)},
        n_channels=1,
        size=28,
    )
    return ImageSet(images, labels, metadata)
