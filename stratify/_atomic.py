"""Atomic file writes: write a temporary file beside the target, then rename it over.

A crash or an error while writing leaves the previous file (or none) in place, never a
half-written one; the temporary file is removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "write_csv", "write_text"]


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path in ``path``'s folder, then rename it to ``path``.

    The folder is created when missing. The temporary name keeps ``path``'s suffix (some
    writers pick the format from it). Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_csv(frame: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """``frame.to_csv(path, **kwargs)``, atomically."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, **kwargs))


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 ``text`` to ``path``, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
