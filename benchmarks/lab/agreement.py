"""How much the strata depend on the seed: the scored strata of every run are kept, and every
pair of seeds of one (dataset, method) is compared by the adjusted Rand index.

``<out>/strata/<dataset>/<method>/seed<seed>.npy`` holds the strata of the scored samples
(the test split, or the training samples where the set is scored transductively) in the
order of the data set; :func:`seed_agreement` reads them back, and
:func:`write_seed_agreement` writes ``<out>/seed_agreement.csv`` (``dataset``, ``method``,
``seed_a``, ``seed_b``, ``ari``, ``n``) for every (dataset, method) with two seeds or more.
An ARI of 1 means two seeds gave the same partition (whatever the stratum numbers), 0 what
chance gives.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from stratify._atomic import atomic_write, write_csv

__all__ = [
    "COLUMNS",
    "DRAWN_PER_SEED",
    "save_strata",
    "seed_agreement",
    "strata_path",
    "write_seed_agreement",
]

#: Columns of seed_agreement.csv.
COLUMNS = ["dataset", "method", "seed_a", "seed_b", "ari", "n"]


def strata_path(out: Path, dataset: str, method: str, seed: int) -> Path:
    """Where the scored strata of one run are kept."""
    return Path(out) / "strata" / dataset / method / f"seed{int(seed)}.npy"


#: Marks a dataset folder whose patients are drawn per seed (no seed pairs to compare).
DRAWN_PER_SEED = "DRAWN_PER_SEED"


def save_strata(
    out: Path, dataset: str, method: str, seed: int, labels: np.ndarray, comparable: bool = True
) -> Path:
    """Keep the scored strata of one run (int16, atomically); returns the file. With
    ``comparable=False`` (a synthetic cohort drawn per seed, a seeded subset) the dataset's
    folder is marked, and :func:`write_seed_agreement` compares none of its seeds.
    """
    path = strata_path(out, dataset, method, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not comparable:
        (path.parent.parent / DRAWN_PER_SEED).touch()
    values = np.asarray(labels, dtype=np.int16)
    atomic_write(path, lambda tmp: np.save(tmp, values))
    return path


def seed_agreement(out: Path, dataset: str, method: str) -> pd.DataFrame:
    """Adjusted Rand index of every pair of seeds of one (dataset, method).

    Raises
    ------
    ValueError
        If two seeds' strata are of different lengths (different scored samples).
    """
    folder = Path(out) / "strata" / dataset / method
    files = sorted(folder.glob("seed*.npy"), key=lambda p: int(p.stem[4:]))
    strata = {int(p.stem[4:]): np.load(p) for p in files}
    rows = []
    for a, b in itertools.combinations(sorted(strata), 2):
        if len(strata[a]) != len(strata[b]):
            raise ValueError(
                f"Expected the strata of every seed of {dataset} / {method} on the same samples, "
                f"got {len(strata[a])} for seed {a} and {len(strata[b])} for seed {b}."
            )
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "seed_a": a,
                "seed_b": b,
                "ari": float(adjusted_rand_score(strata[a], strata[b])),
                "n": len(strata[a]),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def write_seed_agreement(out: Path) -> pd.DataFrame:
    """``<out>/seed_agreement.csv`` from every kept strata file; returns the table."""
    root = Path(out) / "strata"
    pairs = sorted(
        (p.parent.parent.name, p.parent.name)
        for p in root.glob("*/*/seed*.npy")
        if not (p.parent.parent / DRAWN_PER_SEED).is_file()
    )
    pairs = sorted(set(pairs))
    frames = [seed_agreement(out, dataset, method) for dataset, method in pairs]
    frames = [frame for frame in frames if len(frame)]  # a single seed has no pair
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    if len(table):
        write_csv(table, Path(out) / "seed_agreement.csv", index=False)
    return table
