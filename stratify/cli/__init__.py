"""The ``stratify`` command: demo, fit, views, predict, describe, report and sample.

Every subcommand takes ``--seed``, ``--device``, ``--quiet`` and ``--debug``. Bad input gives
one line on stderr and exit code 2 (a traceback only with ``--debug``); files are written to a
temporary name and renamed, so a failure never leaves a half-written output.

:mod:`~stratify.cli.inputs` reads the inputs, :mod:`~stratify.cli.commands` runs the
commands, :mod:`~stratify.cli.parser` declares them.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from stratify._errors import CommandError, error_line
from stratify._optional import MissingDependency
from stratify.cli.inputs import _checkpoints, _read_config
from stratify.cli.parser import _parser

__all__ = ["main"]


def _interrupted(args: argparse.Namespace, argv: list[str]) -> str:
    """What an interrupted command left behind, and how to continue it."""
    folder = getattr(args, "checkpoint_dir", None)
    if args.command == "fit" and folder is None:
        config = _read_config(args.config) if args.config else {}
        folder = (config.get("train_config") or {}).get("checkpoint_dir")
    found = _checkpoints(folder)
    if not found:
        return "no partial output was written"
    checkpoint = found[-1]  # the network training when interrupted
    from stratify.training.checkpoint import load_checkpoint

    epoch = load_checkpoint(checkpoint)["epoch"]
    command = " ".join(["stratify", *argv, *([] if "--resume" in argv else ["--resume"])])
    return f"progress saved in {checkpoint} (epoch {epoch}); continue with: {command}"


#: Options whose value may start with a minus sign (``--window -1000,400``, HU values).
_NEGATIVE_VALUE_OPTIONS = ("--window",)


def _joined_negative_values(argv: list[str]) -> list[str]:
    """``--window -1000,400`` -> ``--window=-1000,400``: argparse would read a value that
    starts with ``-`` and is not a plain number as another option.
    """
    out: list[str] = []
    pending = False
    for arg in argv:
        if pending and arg.startswith("-") and arg[1:2].isdigit():
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
        pending = arg in _NEGATIVE_VALUE_OPTIONS
    return out


def _one_line_warning(command: str) -> Any:
    """Warnings as one line on stderr (no source line, no file path), as errors are."""

    def show(message: Any, category: Any, filename: Any, lineno: Any, *rest: Any) -> None:
        text = " ".join(str(message).split())
        print(f"stratify {command}: warning: {text}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stratify`` console script; returns the exit code."""
    argv = _joined_negative_values(list(sys.argv[1:] if argv is None else argv))
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning(args.command)
            return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"stratify {args.command}: interrupted; {_interrupted(args, argv)}", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError, KeyError, MissingDependency) as error:
        if args.debug:
            raise
        print(f"stratify {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
