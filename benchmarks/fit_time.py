"""The default fit's wall time on the sets of the cost bars, beside the strata it gives.

Each set is named with its size (the ``dataset`` column of ``fit_time.csv``):

* ``pneumoniamnist-2000``: a class-stratified, seeded subset of 2,000 PneumoniaMNIST
  training images (28 px); bar: the slowest seed at most 120 s;
* ``cohort-300``: the lab's synthetic cohort of 300 patients (28 px), one per seed; bar:
  minutes, not hours (at most 600 s);
* ``adrenalmnist3d_64-1188``: AdrenalMNIST3D's 1,188 training volumes upsampled to 64^3
  (trilinear); bar: at most 7,200 s.

One default ``Stratifier(k, random_state=seed).fit`` per seed, timed end to end (from the
uint8 array to the strata; data loading excluded); the strata of the test split (the cohort:
its own patients) are scored for the record, and ``epochs_`` says how much of the budget ran.
Run it alone on the machine (a second job on the 2 cores doubles the times).

Usage::

    python benchmarks/fit_time.py --sets pneumoniamnist-2000 cohort-300 --seeds 0 1 2
    python benchmarks/fit_time.py --report-only --out benchmarks/results/fit_time.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import normalized_mutual_info_score

from lab.datasets import Split, load_dataset, upsampled
from lab.provenance import git_commit, header, mean_sd
from lab.store import accumulate
from stratify import Stratifier
from stratify._atomic import write_text
from stratify.analysis.metrics import cluster_accuracy

#: The sets and the most seconds a default fit of each may take.
BARS = {"pneumoniamnist-2000": 120.0, "cohort-300": 600.0, "adrenalmnist3d_64-1188": 7200.0}


def _data(name: str, seed: int) -> tuple[Split, Split, int]:
    """(train, scored, k) of one set of :data:`BARS`."""
    if name == "adrenalmnist3d_64-1188":
        data = load_dataset("adrenalmnist3d", seed=seed)
        train = Split(upsampled(data.train.images, 64), data.train.labels, data.train.metadata)
        test = Split(upsampled(data.test.images, 64), data.test.labels, data.test.metadata)
        return train, test, data.n_classes
    dataset, size = name.rsplit("-", 1)
    data = load_dataset(dataset, seed=seed, n_samples=int(size))
    return data.train, data.test, data.n_classes


def run_one(name: str, seed: int) -> pd.DataFrame:
    """One timed default fit of set ``name`` drawn with ``seed``."""
    train, test, k = _data(name, seed)
    model = Stratifier(k, random_state=seed)
    start = time.perf_counter()
    model.fit(train.images)
    seconds = time.perf_counter() - start
    strata = model.predict(test.images)
    networks = model.history_["network"].nunique() if "network" in model.history_ else 1
    return pd.DataFrame(
        [
            {
                "dataset": name,
                "seed": seed,
                "n_train": len(train),
                "networks": networks,
                "epochs_run": model.epochs_,
                "batch_size": model.batch_size_,
                "fit_seconds": seconds,
                "test_acc": cluster_accuracy(test.labels, strata),
                "test_nmi": normalized_mutual_info_score(test.labels, strata),
                "git_commit": git_commit(),
            }
        ]
    )


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    lines = [
        *header(
            "Default fit time on the cost bars' sets",
            "benchmarks/fit_time.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        "A default `Stratifier(k, random_state=seed).fit`, timed end to end; the strata of the "
        "test split (the cohort: its own patients) scored for the record.",
        "",
        "| set | bar s | slowest s | bar | seeds | networks | epochs | batch | fit s "
        "| test ACC | test NMI |",
        "|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, bar in BARS.items():
        rows = results[results["dataset"] == name]
        if not len(rows):
            lines.append(f"| {name} | {bar:.0f} | not run | | | | | | | | |")
            continue
        worst = rows["fit_seconds"].max()
        verdict = "met" if worst <= bar else "missed"
        lines.append(
            f"| {name} | {bar:.0f} | {worst:.0f} | {verdict} | {len(rows)} "
            f"| {int(rows['networks'].iloc[0])} | {int(rows['epochs_run'].iloc[0])} "
            f"| {int(rows['batch_size'].iloc[0])} | {mean_sd(rows['fit_seconds'], 0)} "
            f"| {mean_sd(rows['test_acc'], 3)} | {mean_sd(rows['test_nmi'], 3)} |"
        )
    write_text("\n".join(lines) + "\n", out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(BARS)[:2], choices=list(BARS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_time.md"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = accumulate(
        args.out.with_suffix(".csv"),
        [] if args.report_only else [(d, s) for d in args.sets for s in args.seeds],
        run_one,
        lambda d, s, rows: f"{d} seed {s}: {rows['fit_seconds'].iloc[0]:.0f} s",
    )
    report(results[results["seed"].isin(args.seeds)], args.seeds, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
