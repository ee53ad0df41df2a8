"""File plumbing shared by the dataset loaders: the returned tuple, checksums, downloads."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from stratify._atomic import atomic_write

__all__ = ["DataNotFoundError", "ImageSet", "fetch", "locate", "md5sum", "verify_md5"]


class ImageSet(NamedTuple):
    """Images with their labels and one metadata row per image.

    Unpacks as ``images, labels, metadata = load_medmnist(...)``.

    Attributes
    ----------
    images : numpy.ndarray of uint8, shape (N, C, H, W) or (N, C, D, H, W)
        Channel-first images or volumes, kept as uint8 (convert per batch).
    labels : numpy.ndarray of int64, shape (N,) or (N, L)
        Class indices; (N, L) 0/1 indicators for multi-label tasks.
    metadata : pandas.DataFrame
        One row per image. ``metadata.attrs`` holds the dataset's description (flag, task,
        class names, ...).
    """

    images: np.ndarray
    labels: np.ndarray
    metadata: pd.DataFrame


class DataNotFoundError(FileNotFoundError):
    """A dataset file is neither on disk nor downloadable; the message says how to provide it."""


_MD5_CACHE: dict[tuple[str, int, int], str] = {}


def md5sum(path: str | os.PathLike) -> str:
    """MD5 of a file, cached per (path, size, modification time) for the process' lifetime."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5_CACHE:
        digest = hashlib.md5(usedforsecurity=False)
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _MD5_CACHE[key] = digest.hexdigest()
    return _MD5_CACHE[key]


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Raise a ValueError naming the file and both hashes when the checksum differs."""
    actual = md5sum(path)
    if actual != expected:
        raise ValueError(
            f"MD5 mismatch for {path}: expected {expected}, got {actual}. The file is "
            "corrupted or is not the official release; delete it and download it again."
        )


def fetch(url: str, destination: Path, md5: str, *, timeout: float = 60.0) -> None:
    """Download ``url`` to ``destination`` atomically, checking its MD5 before the rename.

    A partial or corrupted download never appears under the final name.

    Raises
    ------
    OSError
        Any network or file-system failure (``urllib.error.URLError`` is an OSError); the
        callers turn it into a message that says how to provide the file by hand.
    """

    def download(tmp: Path) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        actual = md5sum(tmp)
        if actual != md5:
            raise OSError(f"downloaded file has MD5 {actual}, expected {md5}")

    atomic_write(destination, download)


def _download_failure(error: BaseException) -> str:
    """One line describing a failed download, without a traceback."""
    if isinstance(error, urllib.error.URLError):
        return f"download failed: {error.reason}"
    return f"download failed: {error}"


def locate(
    what: str, candidates: list[Path], url: str, md5: str, env_var: str, *, download: bool
) -> Path:
    """The first existing candidate file, else a download into the first candidate.

    Raises
    ------
    DataNotFoundError
        Naming ``what``, every candidate searched, why the download did not happen or failed,
        and how to provide the file (the URL, its MD5, ``root=`` or ``env_var``). It is raised
        outside any ``except`` block, so no urllib traceback is chained to it.
    """
    for path in candidates:
        if path.is_file():
            return path
    reason = "download not attempted (download=False)"
    if download:
        try:
            fetch(url, candidates[0], md5)
            return candidates[0]
        except OSError as error:
            reason = _download_failure(error)
    places = "\n".join(f"  - {path}" for path in candidates)
    raise DataNotFoundError(
        f"{what} not found. Looked in:\n{places}\n({reason}). To provide it, download {url} "
        f"(MD5 {md5}) into one of those folders, pass root=FOLDER (on the command line: "
        f"--root FOLDER), or set {env_var}=FOLDER."
    )
