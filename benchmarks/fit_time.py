"""The default fit's wall time on 2,000 28-px images, beside the strata it gives.

The clustering issue's bar: a default ``Stratifier().fit`` of 2,000 28-px images in at most
3 minutes on the 2-core development machine. The images: a class-stratified, seeded subset
of 2,000 PneumoniaMNIST training images (28 px; ``load_dataset(..., n_samples=2000)``). One
default fit per seed, timed end to end (``fit`` from the uint8 array to the strata; data
loading excluded); the strata of the test split are scored (cluster ACC, NMI) for the record,
and ``epochs_`` says how much of the epoch budget ran. Run it alone on the machine (a second
job on the 2 cores doubles the times).

Usage::

    python benchmarks/fit_time.py --seeds 0 1 2 --out benchmarks/results/fit_time.md
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

from lab.datasets import load_dataset
from lab.provenance import git_commit, header, mean_sd
from lab.store import accumulate
from stratify import Stratifier
from stratify._atomic import write_text
from stratify.analysis.metrics import cluster_accuracy
from stratify.training.config import auto_epochs

#: The bar: images, and the most seconds a default fit of them may take.
N_IMAGES, BAR_SECONDS = 2000, 180.0
DATASET = "pneumoniamnist"


def run_one(seed: int) -> pd.DataFrame:
    """One timed default fit of the 2,000 images drawn with ``seed``."""
    data = load_dataset(DATASET, seed=seed, n_samples=N_IMAGES)
    model = Stratifier(data.n_classes, random_state=seed)
    start = time.perf_counter()
    model.fit(data.train.images)
    seconds = time.perf_counter() - start
    strata = model.predict(data.test.images)
    return pd.DataFrame(
        [
            {
                "dataset": DATASET,
                "seed": seed,
                "n_train": len(data.train),
                "stop_agreement": (model.train_config or {}).get("stop_agreement"),
                "epochs_run": model.epochs_,
                "epoch_budget": auto_epochs(len(data.train)),
                "fit_seconds": seconds,
                "test_acc": cluster_accuracy(data.test.labels, strata),
                "test_nmi": normalized_mutual_info_score(data.test.labels, strata),
                "git_commit": git_commit(),
            }
        ]
    )


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    worst = results["fit_seconds"].max()
    lines = [
        *header(
            f"Default fit time on {N_IMAGES:,} 28-px images",
            "benchmarks/fit_time.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        f"A default `Stratifier().fit` of a class-stratified, seeded subset of {N_IMAGES:,} "
        f"{DATASET} training images (28 px), timed end to end; test strata scored for the "
        f"record. Bar: at most {BAR_SECONDS:.0f} s a fit.",
        "",
        f"**Mean {results['fit_seconds'].mean():.0f} s, slowest seed {worst:.0f} s: bar "
        f"{'met' if worst <= BAR_SECONDS else 'missed'}"
        f"{'' if len(results) >= 3 else f' (only {len(results)} seed(s))'}.**",
        "",
        "| seed | stop_agreement | epochs run (budget) | fit s | test ACC | test NMI |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in results.sort_values("seed").iterrows():
        lines.append(
            f"| {int(row['seed'])} | {row['stop_agreement']} | {int(row['epochs_run'])} "
            f"({int(row['epoch_budget'])}) | {row['fit_seconds']:.0f} | {row['test_acc']:.3f} "
            f"| {row['test_nmi']:.3f} |"
        )
    lines += [
        f"| mean ± sd | | | {mean_sd(results['fit_seconds'], 0)} | "
        f"{mean_sd(results['test_acc'], 3)} | {mean_sd(results['test_nmi'], 3)} |",
        "",
    ]
    write_text("\n".join(lines), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fit_time.md"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = accumulate(
        args.out.with_suffix(".csv"),
        [] if args.report_only else [(DATASET, seed) for seed in args.seeds],
        lambda d, s: run_one(s),
        lambda d, s, rows: f"seed {s}: {rows['fit_seconds'].iloc[0]:.0f} s",
    )
    report(results[results["seed"].isin(args.seeds)], args.seeds, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
