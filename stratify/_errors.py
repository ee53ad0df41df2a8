"""User errors of the command-line programs (``stratify``)."""

from __future__ import annotations

__all__ = ["CommandError", "error_line"]


class CommandError(Exception):
    """A user error: printed as one line, exit code 2."""


def error_line(error: BaseException) -> str:
    """The error's message on one line (its type's name when it has none)."""
    return " ".join(line.strip() for line in str(error).splitlines()) or type(error).__name__
