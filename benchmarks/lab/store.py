"""The results file of the benchmark: one row per run, appended atomically, resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stratify._atomic import write_csv

__all__ = ["COLUMNS", "accumulate", "completed", "read_results", "record"]

#: Columns of results.csv, in order.
COLUMNS = [
    "dataset",
    "method",
    "seed",
    "profile",
    "status",
    "kind",
    "scoring",
    "acc",
    "bacc",
    "nmi",
    "ari",
    "knn_acc",
    "linear_probe_acc",
    "probe_level",
    "auc",
    "fidelity",
    "reconstruction_fidelity",
    "diversity_ratio",
    "majority_rate",
    "min_share",
    "n_classes",
    "k",
    "n_train",
    "n_test",
    "epochs",
    "weights",
    "fit_seconds",
    "peak_rss_mb",
    "error",
    "torch_version",
    "stratify_version",
    "git_commit",
    "device",
    "finished",
]


def read_results(path: Path) -> pd.DataFrame:
    """The results CSV, or an empty frame with :data:`COLUMNS`."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, keep_default_na=True)
    return frame.reindex(columns=[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)])


def record(row: Mapping[str, Any], path: Path) -> None:
    """Append ``row`` to the CSV at ``path`` atomically, replacing an earlier row of the same
    (dataset, method, seed, profile) (a failed run tried again).
    """
    frame = read_results(path).reindex(columns=COLUMNS)
    key = ["dataset", "method", "seed", "profile"]
    if len(frame):
        same = np.ones(len(frame), dtype=bool)
        for column in key:
            same &= frame[column].astype(str).to_numpy() == str(row[column])
        frame = frame[~same]
    new = pd.DataFrame([{c: row.get(c, np.nan) for c in COLUMNS}])
    frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
    write_csv(frame[COLUMNS], path, index=False)


def completed(path: Path, profile: str) -> set[tuple[str, str, int]]:
    """The (dataset, method, seed) rows of ``profile`` already recorded in ``path``."""
    frame = read_results(path)
    done = frame[(frame["status"] == "ok") & (frame["profile"] == profile)]
    return {
        (d, m, int(s))
        for d, m, s in zip(done["dataset"], done["method"], done["seed"], strict=True)
    }


def accumulate(
    path: Path,
    runs: Iterable[tuple[str, int]],
    compute: Callable[[str, int], pd.DataFrame],
    announce: Callable[[str, int, pd.DataFrame], str] | None = None,
) -> pd.DataFrame:
    """The rows of every (dataset, seed) of ``runs``, computed only where the CSV at ``path``
    holds none yet and written after each one (a stopped script resumes where it stopped).

    Parameters
    ----------
    path : pathlib.Path
        CSV of the rows (``dataset`` and ``seed`` columns among them).
    runs : iterable of (str, int)
    compute : callable
        ``compute(dataset, seed)`` -> the run's rows.
    announce : callable, optional
        ``announce(dataset, seed, rows)`` -> a line printed after each computed run.

    Returns
    -------
    pandas.DataFrame
        Every row in the CSV (earlier runs and other seeds included).
    """
    results = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    for dataset, seed in runs:
        if len(results) and ((results["dataset"] == dataset) & (results["seed"] == seed)).any():
            continue
        rows = compute(dataset, seed)
        results = pd.concat([results, rows], ignore_index=True)
        write_csv(results, path, index=False)
        if announce is not None:
            print(announce(dataset, seed, rows), flush=True)
    return results
