"""Provenance and measurement helpers shared by the benchmark runner and the scripts in
``benchmarks/``: the commit a result came from, the header of a results file, peak memory.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PeakMemory", "git_commit", "header", "mean_sd", "run_seeded", "seeded_parser"]


class PeakMemory:
    """Peak resident memory (MB) of this process during a ``with`` block.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``) when allowed, otherwise
    samples ``VmRSS`` every 50 ms in a thread.
    """

    def __enter__(self) -> PeakMemory:
        self.peak = 0.0
        self._reset = False
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
            self._reset = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _status(field: str) -> float:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return float(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._status("VmRSS"))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        if self._reset:
            self.peak = max(self.peak, self._status("VmHWM"))


def git_commit() -> str:
    """HEAD's short hash, ``+dirty`` when tracked code differs from it (the results being
    written and markdown files do not count: they cannot change a measurement).
    """
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        dirty = subprocess.run(
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":/",
                ":(exclude,top)benchmarks/results",
                ":(exclude,top,glob)**/*.md",
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(
    title: str, script: str, results: pd.DataFrame, seeds: Sequence[int] | None, hardware: str
) -> list[str]:
    """The first lines of a results file: title, exact command, versions, commits, seeds.

    Parameters
    ----------
    title : str
    script : str
        The script's path from the repository root (the command is it plus ``sys.argv``).
    results : pandas.DataFrame
        With a ``git_commit`` column (one value per run).
    seeds : sequence of int or None
    hardware : str
        E.g. ``"2 CPU cores, no GPU"``.
    """
    import sklearn
    import torch

    import stratify

    commits = ", ".join(sorted(set(results["git_commit"].astype(str))))
    seeds_text = f" Seeds {list(seeds)}." if seeds is not None else ""
    return [
        f"# {title}",
        "",
        f"Command: `python {script} {' '.join(sys.argv[1:])}`",
        "",
        f"stratify {stratify.__version__} (runs at commit(s) {commits}), torch "
        f"{torch.__version__}, scikit-learn {sklearn.__version__}, Python "
        f"{platform.python_version()}, {platform.machine()}, {hardware}.{seeds_text} "
        f"Written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]


def mean_sd(values: pd.Series, digits: int) -> str:
    """``"0.812 ± 0.011"`` (sample sd), or the value alone for a single run."""
    if len(values) < 2:
        return f"{values.mean():.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def run_seeded(
    run: Callable[[list[int], Path], pd.DataFrame],
    report: Callable[[pd.DataFrame, list[int], Path], None],
    args: argparse.Namespace,
) -> int:
    """The end of a seeded benchmark script: run (resumable, into ``--out`` with ``.csv``),
    write the report of the requested seeds, say where.
    """
    results = run(args.seeds, args.out.with_suffix(".csv"))
    report(results[results["seed"].isin(args.seeds)], args.seeds, args.out)
    print(f"wrote {args.out}")
    return 0


def seeded_parser(description: str, out: str) -> argparse.ArgumentParser:
    """``--seeds`` (default 0 1 2) and ``--out`` (a results markdown file)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser
