"""How stable are the default recipe's strata: across subsamples, per stratum, across seeds?

For each dataset and seed, the ``default`` method of the full profile is fitted (its network
read from ``--model-cache`` when the full profile's run left it there) and two things are
measured without labels:

* **subsamples** (:func:`stratify.stability` of the fitted model, the network frozen):
  the clustering refitted on ``--resamples`` random 80 % subsamples of the training latents;
  mean adjusted Rand index with the full fit, each stratum's Jaccard index with its best
  match (Hennig 2007: above 0.75 stable, below 0.5 dissolved; the table gives the lowest
  stratum's mean), and the share of training patients kept in their stratum in fewer than
  80 % of the resamples that drew them;
* **seeds** (the whole fit, network included): the adjusted Rand index between the
  scored-split strata of every pair of seeds.

Usage::

    python benchmarks/stability.py --model-cache DIR --datasets pneumoniamnist breastmnist \
        cohort --seeds 0 1 2 --out benchmarks/results/stability
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.metrics import adjusted_rand_score

import stratify
from lab.datasets import load_dataset
from lab.methods import METHODS
from lab.profiles import PROFILES, per_dataset
from lab.provenance import git_commit
from lab.runner import settings_for
from stratify._atomic import write_csv, write_text
from stratify.analysis.html_report import UNSTABLE_PATIENT


def measure(dataset: str, seed: int, resamples: int, model_cache: str | None) -> dict:
    """One row: the subsample stability of one seed's default fit, and its test strata."""
    profile = PROFILES["full"]
    data = load_dataset(
        dataset,
        seed=seed,
        n_samples=per_dataset(profile.get("n_samples", {}), dataset),
        split="test",
    )
    settings = settings_for(profile, dataset, "auto", False, None, model_cache=model_cache)
    result = METHODS["default"].run(data, seed, settings)
    start = time.perf_counter()
    measured = stratify.stability(result.model, n_resamples=resamples, random_state=seed)
    drawn = measured.patients[~np.isnan(measured.patients)]
    return {
        "dataset": dataset,
        "seed": seed,
        "n_strata": int(result.n_clusters),
        "subsample_ari": float(measured.resamples["ari"].mean()),
        "jaccard_mean": float(measured.strata["jaccard_mean"].mean()),
        "jaccard_worst_stratum": float(measured.strata["jaccard_mean"].min()),
        "unstable_patients": float((drawn < UNSTABLE_PATIENT).mean()),
        "seconds": time.perf_counter() - start,
        "test_labels": np.asarray(result.test_labels),
        "test_images": hashlib.md5(np.ascontiguousarray(data.test.images).tobytes()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["pneumoniamnist", "breastmnist"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--resamples", type=int, default=10)
    parser.add_argument("--model-cache", default=None)
    parser.add_argument("--out", type=Path, required=True, help="folder for stability.csv/md")
    parser.add_argument("--allow-dirty", action="store_true", help="trial runs only")
    args = parser.parse_args(argv)
    commit = git_commit()
    if commit.endswith("+dirty") and not args.allow_dirty:
        parser.error(f"commit your changes first: the tree is dirty ({commit})")

    rows, seeds = [], []
    for dataset in args.datasets:
        runs = [measure(dataset, s, args.resamples, args.model_cache) for s in args.seeds]
        for a, b in itertools.combinations(runs, 2):
            if a["test_images"] != b["test_images"]:  # a cohort drawn anew per seed
                continue
            seeds.append(
                {
                    "dataset": dataset,
                    "seeds": f"{a['seed']}-{b['seed']}",
                    "ari": adjusted_rand_score(a["test_labels"], b["test_labels"]),
                }
            )
        rows += [{k: v for k, v in r.items() if not k.startswith("test_")} for r in runs]
    frame, pairs = pd.DataFrame(rows), pd.DataFrame(seeds, columns=["dataset", "seeds", "ari"])
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(frame.assign(git_commit=commit), args.out / "stability.csv", index=False)

    columns = ["subsample_ari", "jaccard_mean", "jaccard_worst_stratum", "unstable_patients"]
    summary = frame.groupby("dataset", sort=False)[columns].agg(["mean", "std"])
    across = pairs.groupby("dataset", sort=False)["ari"].agg(["mean", "std"])
    lines = [
        "# Stability of the default recipe's strata",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} "
        f"{' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"stratify {stratify.__version__} (commit {commit}), torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"seeds {args.seeds}, {args.resamples} subsamples of 80 % each.",
        "",
        "Subsamples (the network frozen, the clustering refitted), mean ± sd over seeds; "
        f"unstable patients: kept in their stratum in < {UNSTABLE_PATIENT:.0%} of the "
        "resamples that drew them.",
        "",
        "| dataset | " + " | ".join(columns) + " | seed-pair ARI (test strata) |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for dataset in summary.index:
        cells = [
            f"{summary.loc[dataset, (c, 'mean')]:.3f} ± {summary.loc[dataset, (c, 'std')]:.3f}"
            for c in columns
        ]
        pair = (
            f"{across.loc[dataset, 'mean']:.3f} ± {across.loc[dataset, 'std']:.3f}"
            if dataset in across.index
            else "– (other patients per seed)"
        )
        lines.append(f"| {dataset} | " + " | ".join(cells) + f" | {pair} |")
    write_text("\n".join(lines) + "\n", args.out / "stability.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
