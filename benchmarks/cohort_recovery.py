"""Does the default Stratifier recover the synthetic cohort's true strata?

For each seed: generate a training cohort and a held-out cohort (another seed), fit the
default ``Stratifier()`` on the training images (no labels, no metadata), and score the
adjusted Rand index (ARI) of its strata against the truth, on the training patients
(``labels_``) and on the held-out patients (``predict``). Pixel PCA(20) + k-means is the
baseline; its ARI to the scanner site shows what a naive method finds instead.

Usage::

    python benchmarks/cohort_recovery.py --seeds 0 1 2 --out benchmarks/results/cohort_recovery.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from sklearn.metrics import adjusted_rand_score

import stratify
from lab.provenance import git_commit
from stratify import Stratifier, make_cohort
from stratify.analysis.baseline import pixel_pca_kmeans


def _defaults() -> str:
    """The default Stratifier's recipe, read from its parameters (so it never goes stale)."""
    p = Stratifier().get_params()
    return (
        f"{p['model'].upper()}, {p['contrastive']} + {p['reconstruction']}, {p['epochs']} "
        f"epochs, {p['clusterer']} (manifold {p['manifold']}), k={p['n_clusters']}"
    )


def run(seed: int, n_samples: int, n_test: int) -> dict[str, float]:
    images, strata, metadata = make_cohort(n_samples, random_state=seed)
    test_images, test_strata, _ = make_cohort(n_test, random_state=seed + 1000)

    start = time.perf_counter()
    model = Stratifier(random_state=seed).fit(images)
    seconds = time.perf_counter() - start

    baseline = pixel_pca_kmeans(images, 3, n_components=20, random_state=seed)[0]
    site = metadata["site"].cat.codes.to_numpy()
    return {
        "seed": seed,
        "ari_train": adjusted_rand_score(strata, model.labels_),
        "ari_held_out": adjusted_rand_score(test_strata, model.predict(test_images)),
        "ari_site": adjusted_rand_score(site, model.labels_),
        "pca_ari_train": adjusted_rand_score(strata, baseline),
        "pca_ari_site": adjusted_rand_score(site, baseline),
        "fit_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args(argv)

    rows = [run(seed, args.n_samples, args.n_test) for seed in args.seeds]
    keys = [k for k in rows[0] if k != "seed"]
    lines = [
        "# Synthetic cohort: recovery of the true strata by the default Stratifier",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} "
        f"{' '.join(sys.argv[1:]) if argv is None else ' '.join(argv)}`",
        "",
        f"stratify {stratify.__version__} (commit {git_commit()}), torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"{torch.get_num_threads()} torch threads, {platform.machine()}.",
        f"Training cohort: make_cohort({args.n_samples}, random_state=seed); held-out: "
        f"make_cohort({args.n_test}, random_state=seed + 1000). Model: `Stratifier"
        f"(random_state=seed)` with every default ({_defaults()}).",
        "",
        "| seed | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for row in rows:
        lines.append(f"| {row['seed']} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    means = {k: np.mean([r[k] for r in rows]) for k in keys}
    stds = {k: np.std([r[k] for r in rows], ddof=1) if len(rows) > 1 else 0.0 for k in keys}
    lines.append(
        "| mean ± sd | " + " | ".join(f"{means[k]:.3f} ± {stds[k]:.3f}" for k in keys) + " |"
    )
    lines += [
        "",
        "ari_* columns: adjusted Rand index to the true strata (train = fitted labels_, "
        "held_out = predict on new patients) or to the scanner site (a nuisance: lower is "
        "better). pca_*: pixel PCA(20) + k-means baseline.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
