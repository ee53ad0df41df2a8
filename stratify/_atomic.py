"""Atomic file writes: write a temporary file beside the target, then rename it over.

A crash or an error while writing leaves the previous file (or none) in place, never a
half-written one; the temporary file is removed. The file gets the mode a plain ``open``
would give it (0o666 minus the umask, or the mode of the file it replaces), not the private
0o600 of temporary files, so colleagues can read a shared report.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "check_writable", "write_csv", "write_text"]


def check_writable(path: str | os.PathLike, what: str = "output") -> Path:
    """Raise a one-line error now if a file cannot be written at ``path`` later.

    Checks that ``path`` is not a directory and that its nearest existing ancestor is a
    directory that can hold a file (one is created and removed there; missing folders are
    created at write time). Returns the path.

    Raises
    ------
    IsADirectoryError
        If ``path`` names an existing directory.
    PermissionError
        If the folder it would go in cannot be written.
    NotADirectoryError
        If a parent of ``path`` is a file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"the {what} {str(path)!r} is an existing directory; give a file path such as "
            f"{str(path / 'model.pt')!r}"
        )
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"the {what} {str(path)!r} lies under {str(folder)!r}, a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"cannot write the {what} {str(path)!r}: {str(folder)!r} is not writable"
        )
    try:  # a folder can pass the permission test and still hold no files (/proc, full disks)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".stratify-probe-")
        os.close(fd)
        os.remove(probe)
    except OSError as error:
        raise PermissionError(
            f"cannot write the {what} {str(path)!r}: creating a file in {str(folder)!r} "
            f"failed ({error.strerror or error})"
        ) from None
    return path


def _mode_for(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temporary path in ``path``'s folder, then rename it to ``path``.

    The one atomic write of the package (outputs, model files, checkpoints, downloads): the
    temporary file is flushed to disk before the rename and removed on any error.

    The folder is created when missing; :func:`check_writable` runs first. The temporary
    name keeps ``path``'s suffix (some writers pick the format from it). Returns ``path`` as
    a :class:`~pathlib.Path`.
    """
    path = check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as handle:  # on disk before the rename: a crash never leaves
            os.fsync(handle.fileno())  # the new name on an empty or partial file
        os.chmod(tmp, _mode_for(path))
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
