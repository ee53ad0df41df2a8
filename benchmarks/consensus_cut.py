"""Choosing the consensus of the default strata on cached latents (selection data, never test).

The 0.2 recipe's strata depend on the seed (``recipe.md``: seed-pair ARI 0.56 on
PneumoniaMNIST's val split), and on one network most of that dependence is the clustering's:
the consensus's Gaussian-mixture runs land in two different cuts under different clustering
seeds. This lab separates the two sources and chooses how the consensus is built, without
retraining a network per candidate:

1. ``--embed`` fits the default estimator (as it was when this round ran: :data:`BUDGET`) once per
   (set, seed) and caches its latents: the training set's and the scored split's
   (``benchmarks/.cut-latents/``, not committed; the networks are the same for every
   candidate).
2. Each candidate of :data:`CANDIDATES` (a :class:`~stratify.cluster.consensus.ConsensusStrata`
   setting, clustered by the public :class:`~stratify.cluster.StrataClusterer` on the
   normalised latents, exactly as the estimator clusters) is fitted on every cached network
   under the network's own clustering seed and under one more clustering seed. The
   candidates' strata are scored by val ACC and NMI, their agreement across seeds (the
   seed-pair ARI of the strata, networks and clustering seeds both changing, as a user's
   ``random_state`` does) and their agreement across clustering seeds on one network (the
   part the consensus alone owns), and their cost.

The rule, :data:`RULE`, is declared before any candidate is scored: the recipe's rule
(:data:`recipe.RULE`) with the clustering seconds of each candidate in place of the default's.

Usage::

    python benchmarks/consensus_cut.py --embed --seeds 0 1 2
    python benchmarks/consensus_cut.py --seeds 0 1 2 --out benchmarks/results/consensus_cut.md
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from recipe import (
    COST_IMAGES,
    COST_SECONDS,
    DATASETS,
    SEED_PAIR_ARI,
    _strata_file,
    agreement,
    choose,
    per_set_rows,
    round_main,
    spread,
)
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from lab.datasets import load_dataset
from lab.provenance import git_commit, header
from stratify import Stratifier
from stratify._atomic import write_text
from stratify.analysis.metrics import cluster_accuracy
from stratify.cluster import StrataClusterer
from stratify.cluster.consensus import ConsensusStrata
from stratify.training.config import auto_epochs

#: Where the networks' latents are cached (ignored by git; rebuilt by ``--embed``).
CACHE = Path(__file__).parent / ".cut-latents"
#: The networks' budget: samples of 28 x 28 values per network, the default's when this
#: round ran (``epochs="auto"`` then), kept so that ``--embed`` refits the same networks.
BUDGET = 25_600
#: The consensus settings scored, declared before the run. The default's (20 Gaussian
#: mixtures, spectral cut); more mixtures (the co-association's sampling error falls as
#: 1 / sqrt(runs)); Fred & Jain's k-means runs, ten times cheaper each, so that 200 of
#: them cost about what 20 mixtures do, under both cuts.
CANDIDATES: dict[str, dict[str, Any]] = {
    "gmm20-spectral": {"n_runs": 20, "base": "gmm", "linkage": "spectral"},
    "gmm60-spectral": {"n_runs": 60, "base": "gmm", "linkage": "spectral"},
    "kmeans200-spectral": {"n_runs": 200, "base": "kmeans", "linkage": "spectral"},
    "kmeans200-average": {"n_runs": 200, "base": "kmeans", "linkage": "average"},
}
#: The second clustering seed of each network: its own plus this offset.
EXTRA_SEED = 7919
RULE = (
    "Declared before the run. The networks are the 0.2 default's (one network, 25,600 samples) "
    "and the same for every candidate. A candidate is out when (1) the default fit with its "
    f"consensus would exceed {COST_SECONDS:.0f} s on {COST_IMAGES:,} 28-px images (the "
    "networks' training seconds plus the candidate's clustering seconds on PneumoniaMNIST's "
    f"4,708 training images times {COST_IMAGES:,} / 4,708), or (2) on any set its mean "
    "seed-pair ARI of the scored strata (network and clustering seed both changing) is "
    "below 0.8. Of the rest, the highest mean over sets of the per-set mean val ACC wins; "
    "within 0.005 of it, the higher worst-set mean ACC. When every candidate is out by (2), "
    "the one with the highest worst-set mean seed-pair ARI among those within the cost wins "
    "and the agreement bar is reported as missed."
)


def _cache_file(dataset: str, seed: int, budget: int = BUDGET, variant: str = "") -> Path:
    folder = f"budget{budget}" + (f"-{variant}" if variant else "")
    return CACHE / folder / dataset / f"seed{seed}.npz"


def embed(
    dataset: str,
    seed: int,
    budget: int = BUDGET,
    variant: str = "",
    settings: dict[str, Any] | None = None,
) -> None:
    """Fit the default estimator on one (set, seed) and cache its latents.

    ``budget``: samples of 28 x 28 values per network (``epochs="auto"``'s rule,
    :func:`~stratify.training.config.auto_epochs`); :data:`BUDGET`, the default's when this
    round ran, unless given. ``settings``: Stratifier parameters that differ from the
    default's, cached under the name ``variant`` (both empty: the default).
    """
    if bool(variant) != bool(settings):
        raise ValueError(f"Expected a variant name with settings, got {variant!r}, {settings!r}.")
    path = _cache_file(dataset, seed, budget, variant)
    if path.is_file():
        return
    data = load_dataset(dataset, seed=0, split="val")  # the same data for every seed
    images = data.train.images
    epochs = auto_epochs(len(images), int(np.prod(images.shape[1:])), budget)
    model = Stratifier(data.n_classes, epochs=epochs, random_state=seed, **(settings or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(images)
    start = time.perf_counter()
    scored = model.embedding_ if data.transductive else model.transform(data.test.images)
    embed_seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial,
        train=model.embedding_.astype(np.float32),
        scored=np.asarray(scored, dtype=np.float32),
        labels=np.asarray(data.test.labels),
        transductive=data.transductive,
        n_classes=data.n_classes,
        cluster_seed=model._cluster_seed,
        train_seconds=float(model.history_["seconds"].sum()),
        embed_seconds=embed_seconds,
        default_strata=model.labels_ if data.transductive else model.predict(data.test.images),
        commit=git_commit(),
    )
    partial.replace(path)
    print(f"{dataset} seed {seed}: cached ({path.stat().st_size // 1024} KiB)", flush=True)


#: A candidate: ``make(k, seed)`` -> the unfitted clusterer of the normalised latents.
Builder = Callable[[int, int], StrataClusterer]


def consensus(settings: dict[str, Any]) -> Builder:
    """The builder of a :class:`ConsensusStrata` setting, clustered as the estimator does."""
    return lambda k, seed: StrataClusterer(
        ConsensusStrata(k, random_state=seed, **settings), k, normalize=True
    )


def _strata(cached: Any, make: Builder, seed: int) -> tuple[np.ndarray, float]:
    k = int(cached["n_classes"])
    start = time.perf_counter()
    clusterer = make(k, seed).fit(cached["train"])
    strata = (
        clusterer.labels_ if bool(cached["transductive"]) else clusterer.predict(cached["scored"])
    )
    return np.asarray(strata), time.perf_counter() - start


def score(
    dataset: str,
    seed: int,
    out: Path,
    budget: int = BUDGET,
    candidates: dict[str, Builder] | None = None,
    variant: str = "",
) -> pd.DataFrame:
    """Every candidate (None: :data:`CANDIDATES`' consensus settings) on one cached (set,
    seed, budget, variant): two clustering seeds each."""
    if candidates is None:
        candidates = {name: consensus(settings) for name, settings in CANDIDATES.items()}
    return score_latents(
        np.load(_cache_file(dataset, seed, budget, variant)), dataset, seed, out, candidates
    )


def score_latents(
    cached: Any, dataset: str, seed: int, out: Path, candidates: dict[str, Builder]
) -> pd.DataFrame:
    """Every candidate on one network's cached latents (an :func:`embed` file's fields):
    clustered under the network's own clustering seed and one more, its strata kept beside
    ``out`` and scored."""
    labels = cached["labels"]
    n_train = len(cached["train"])
    share = min(1.0, COST_IMAGES / n_train)
    rows = []
    for name, make in candidates.items():
        own = int(cached["cluster_seed"])
        strata, seconds = _strata(cached, make, own)
        again, _ = _strata(cached, make, own + EXTRA_SEED)
        np.save(_strata_file(out, dataset, name, seed), strata.astype(np.int16))
        train_seconds = float(cached["train_seconds"])
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "candidate": name,
                "n_train": n_train,
                "val_acc": cluster_accuracy(labels, strata),
                "val_nmi": normalized_mutual_info_score(labels, strata),
                "val_acc_again": cluster_accuracy(labels, again),
                "cut_ari": adjusted_rand_score(strata, again),
                "train_seconds": train_seconds,
                "cluster_seconds": seconds,
                "fit_seconds_2000": train_seconds
                + (float(cached["embed_seconds"]) + seconds) * share,
                "network_commit": str(cached["commit"]),
                "git_commit": git_commit(),
            }
        )
    return pd.DataFrame(rows)


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    agree = agreement(out, results)
    table, chosen = choose(results, agree)
    lines = [
        *header(
            "Choosing the consensus of the default strata (selection data, never test)",
            "benchmarks/consensus_cut.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        "Networks cached by `python benchmarks/consensus_cut.py --embed` at "
        + ", ".join(sorted(results["network_commit"].unique()))
        + ".",
        "",
        RULE,
        "",
        f"**Chosen: {chosen}**.",
        "",
        "| candidate | mean val ACC | worst set | worst seed-pair ARI | est. s (2,000 images) "
        "| within cost | agrees |",
        "|---|---:|---:|---:|---:|:---:|:---:|",
    ]
    for name, row in table.sort_values("mean_acc", ascending=False).iterrows():
        lines.append(
            f"| {name} | {row['mean_acc']:.3f} | {row['worst_acc']:.3f} | {row['worst_ari']:.3f} "
            f"| {row['seconds_2000']:.0f} | {'yes' if row['within_cost'] else 'no'} "
            f"| {'yes' if row['agrees'] else 'no'} |"
        )
    lines += [
        "",
        "Per set (mean ± sd over seeds). Seed-pair ARI: the scored strata of two seeds "
        "(network and clustering seed both changing). Cut ARI: one network, its own "
        "clustering seed against another (the consensus's own share of the seed dependence); "
        "ACC again: the val ACC under that other clustering seed.",
        "",
        *per_set_rows(
            results,
            agree,
            {
                "val ACC": spread("val_acc", 3),
                "ACC again": spread("val_acc_again", 3),
                "val NMI": spread("val_nmi", 3),
                "seed-pair ARI": SEED_PAIR_ARI,
                "cut ARI": spread("cut_ari", 3),
                "cluster s": spread("cluster_seconds", 0),
            },
        ),
    ]
    write_text("\n".join(lines) + "\n", out)


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/consensus_cut.md",
        DATASETS,
        score,
        report,
        embed,
        lambda d, s: _cache_file(d, s).is_file(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
