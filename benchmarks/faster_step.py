"""Spending the faster training step, against the incumbent (selection data, never test).

Holding the convolution weights channels-last on the CPU (``benchmarks/layout.py``) made
the default network's training step about 1.5x cheaper, so the default fit of 2,000 28-px
images no longer uses its cost bar of 120 s. Two earlier findings say where the rest could
go: training longer raised the seed agreement of the strata (the budget round: PneumoniaMNIST
0.556 -> 0.753 from 25,600 to 51,200 samples), and the seed dependence that is left is the
network's, not the cut's (the cut-space round), which several networks average out. This
round spends the same compute both ways, every other setting the default's:

* the incumbent: one network on 51,200 samples of 28 x 28 values (the 0.2 default);
* ``b76.8k``: one network on 76,800 samples (1.5x the budget);
* ``m2-b38.4k``: two independently seeded networks on 38,400 samples each
  (``train_config={"networks": 2}``), cut by the default consensus across them
  (``blocks=2``: each Gaussian mixture on one network's latents).

Every candidate's networks are fitted here at this code (the incumbent's are refitted: the
layout changes float rounding), on the sets, data and seeds of the earlier rounds, and
clustered by the default consensus exactly as the estimator clusters them.

The rule, :data:`RULE`, is declared before any network of this round is fitted: the
budget round's (an incumbent, margins on ACC and agreement, the cost bar).

Usage::

    python benchmarks/faster_step.py --embed --seeds 0 1 2
    python benchmarks/faster_step.py --seeds 0 1 2 --out benchmarks/results/faster_step.md
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from budget import MARGINS, round_report
from consensus_cut import CANDIDATES, Builder, _cache_file, embed, score
from recipe import (
    COST_IMAGES,
    COST_SECONDS,
    MIN_AGREEMENT,
    round_main,
    spread,
)
from sklearn.metrics import adjusted_rand_score

from stratify.cluster import StrataClusterer
from stratify.cluster.consensus import ConsensusStrata

#: The selection sets of this round (see :data:`RULE` for AdrenalMNIST3D).
DATASETS = ["pneumoniamnist", "breastmnist", "cohort", "digits"]
#: The incumbent's budget (the 0.2 default's when this round ran; pinned).
BUDGET = 51_200


def candidate(networks: int, budget: int) -> str:
    """A candidate's name, e.g. ``m2-b38.4k`` (``b51.2k`` for one network)."""
    return (f"m{networks}-" if networks > 1 else "") + f"b{budget / 1000:g}k"


#: The candidates, declared before the run: (networks, samples per network); every one
#: trains 51,200 or 76,800 samples in all.
CONFIGS = [(1, BUDGET), (1, 3 * BUDGET // 2), (2, 3 * BUDGET // 4)]
INCUMBENT = candidate(*CONFIGS[0])


def variant(networks: int) -> tuple[str, dict | None]:
    """The cache variant and the Stratifier settings of an ensemble of ``networks``."""
    if networks == 1:
        return "", None
    return f"networks{networks}", {"train_config": {"networks": networks}}


def across(networks: int) -> Builder:
    """The default consensus (``consensus-spectral``) over ``networks`` blocks of latents,
    as the estimator clusters an ensemble."""
    settings = CANDIDATES["gmm20-spectral"]
    return lambda k, seed: StrataClusterer(
        ConsensusStrata(k, random_state=seed, blocks=networks, **settings),
        k,
        normalize=True,
        blocks=networks,
    )


RULE = (
    "Declared before any network of this round was fitted. Candidates, every setting but "
    "these the default's and clustered by the default consensus (`consensus-spectral` on the "
    f"normalised latents, across the networks' blocks for an ensemble): one network on "
    f"{BUDGET:,} samples of 28 x 28 values (the incumbent, the 0.2 default), one network on "
    f"{3 * BUDGET // 2:,} samples, or two independently seeded networks on {3 * BUDGET // 4:,} "
    "samples each. Every candidate's networks are fitted by this round at the channels-last "
    "layout (the incumbent's refitted). Sets: PneumoniaMNIST and BreastMNIST val (fit on "
    "train), the held-out cohort and the digits (transductive), seeds 0-2; AdrenalMNIST3D's "
    "val split is left out, as in the budget round (every network and consensus of the "
    "earlier rounds gave it one partition). A candidate is out when its estimated fit of "
    f"{COST_IMAGES:,} 28-px images exceeds {COST_SECONDS:.0f} s (its networks' training "
    "seconds on PneumoniaMNIST plus its embedding and clustering seconds scaled to "
    f"{COST_IMAGES:,} images). A challenger is eligible when " + MARGINS + ". Of the "
    "eligible, the highest mean val ACC wins (within 0.005 of it, the higher worst-set mean "
    "ACC); when none is eligible the incumbent stays. The seed agreement bar "
    f"({MIN_AGREEMENT} on every set) is reported, met or missed."
)


def _cached(dataset: str, seed: int, networks: int, budget: int) -> Path:
    return _cache_file(dataset, seed, budget, variant(networks)[0])


def embed_all(dataset: str, seed: int) -> None:
    """Fit and cache every candidate's networks on one (set, seed)."""
    for networks, budget in CONFIGS:
        name, settings = variant(networks)
        embed(dataset, seed, budget, name, settings)


def score_all(dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """Every candidate on one (set, seed), clustered by the default consensus."""
    return pd.concat(
        [
            score(
                dataset,
                seed,
                out,
                budget,
                {candidate(networks, budget): across(networks)},
                variant(networks)[0],
            )
            for networks, budget in CONFIGS
        ],
        ignore_index=True,
    )


#: The cut-space round's report: its incumbent is this round's, fitted before the
#: channels-last layout (same sets, data, seeds, budget and clustering).
BEFORE_LAYOUT = Path(__file__).parent / "results" / "cut_space.md"


def layout_lines(out: Path, seeds: list[int]) -> list[str]:
    """The incumbent's scored strata at this round against the cut-space round's (the same
    network seed and data before the layout change): adjusted Rand index per set and seed."""
    before = BEFORE_LAYOUT.parent / f"{BEFORE_LAYOUT.stem}-strata"
    after = out.parent / f"{out.stem}-strata"
    rows = []
    for dataset in DATASETS:
        pairs = []
        for seed in seeds:
            old = before / dataset / "latents-gmm20-spectral" / f"seed{seed}.npy"
            new = after / dataset / INCUMBENT / f"seed{seed}.npy"
            if old.is_file() and new.is_file():
                pairs.append(f"{adjusted_rand_score(np.load(old), np.load(new)):.3f}")
        rows.append(f"| {dataset} | {' / '.join(pairs)} |")
    return [
        "",
        "The incumbent before and after the channels-last layout: the same set, data, seed and "
        f"clustering, networks fitted by the cut-space round ([{BEFORE_LAYOUT.name}]"
        f"({BEFORE_LAYOUT.name})) and by this one; adjusted Rand index of the scored strata "
        "per seed (1: the same partition).",
        "",
        "| set | ARI, seeds " + ", ".join(map(str, seeds)) + " |",
        "|---|---|",
        *rows,
    ]


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    round_report(
        out,
        results,
        seeds,
        title="Spending the faster training step, against the incumbent (selection data, "
        "never test)",
        script="benchmarks/faster_step.py",
        cached="Networks cached by `python benchmarks/faster_step.py --embed` at "
        + ", ".join(sorted(results["network_commit"].unique()))
        + ".",
        rule=RULE,
        incumbent=INCUMBENT,
        more={"train s": spread("train_seconds", 0)},
        after=layout_lines(out, seeds),
    )


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/faster_step.md",
        DATASETS,
        score_all,
        report,
        embed_all,
        lambda d, s: all(_cached(d, s, m, b).is_file() for m, b in CONFIGS),
    )


if __name__ == "__main__":
    raise SystemExit(main())
