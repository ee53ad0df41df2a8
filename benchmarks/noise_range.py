"""Choosing the augmentation's noise range against the incumbent (selection data, never test).

The cut-space round (``benchmarks/cut_space.py``) found why the default merges two of the
held-out cohort's three strata: on every seed it cuts them by scanner site, site A apart from
sites B and C, while the latents' neighbour graph is 99 % class-pure. The cohort's sites differ
by intensity gain and offset, which the two-view augmentation's contrast and brightness
cover, and by noise (standard deviation 0.02, 0.06, 0.10 of the intensity range), which its
noise (up to 0.02) does not: the network is free to keep the noise level as a feature.
Scanners and protocols differ in noise in real cohorts too. This round trains the default
network with Gaussian noise of standard deviation up to 0.1 in the views
(``augmentation=AugmentParams(noise_std=0.1)``, every other setting the default's) and
scores it, clustered by the default, against the incumbent's networks (the cut-space round's,
the same sets, data and seeds).

The rule, :data:`RULE`, is declared before any challenger network is fitted: the budget
round's (an incumbent, margins on ACC and agreement, the cost bar).

Usage::

    python benchmarks/noise_range.py --embed --seeds 0 1 2
    python benchmarks/noise_range.py --seeds 0 1 2 --out benchmarks/results/noise_range.md
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from budget import MARGINS, round_report
from consensus_cut import CANDIDATES, _cache_file, consensus, embed, score
from recipe import (
    COST_IMAGES,
    COST_SECONDS,
    MIN_AGREEMENT,
    round_main,
    spread,
)

from stratify.data.augment import AugmentParams

#: The selection sets of this round (see :data:`RULE` for AdrenalMNIST3D).
DATASETS = ["pneumoniamnist", "breastmnist", "cohort", "digits"]
#: The networks' budget (the 0.2 default's when this round ran; pinned).
BUDGET = 51_200
#: The upper end of the views' noise standard deviation: the incumbent's (the default of
#: :class:`~stratify.data.augment.AugmentParams` when this round ran) and the challenger's.
INCUMBENT_NOISE, NOISE = 0.02, 0.1
INCUMBENT = f"noise{INCUMBENT_NOISE:g}"
CHALLENGER = f"noise{NOISE:g}"
#: The challenger's networks: cached under its name, with these Stratifier settings.
SETTINGS = {"augmentation": AugmentParams(noise_std=NOISE)}
#: Each candidate's cache variant ("": the default's networks).
VARIANTS = {INCUMBENT: "", CHALLENGER: CHALLENGER}
RULE = (
    "Declared before any challenger network was fitted. Candidates: the default network "
    f"({BUDGET:,} samples) trained with Gaussian noise of standard deviation uniform in "
    f"[0, {INCUMBENT_NOISE}] in its views (the incumbent, the 0.2 default; its networks are "
    f"the cut-space round's) or in [0, {NOISE}] (the challenger, every other setting the "
    "default's), both clustered by the default (`consensus-spectral` on the normalised "
    "latents). Sets: PneumoniaMNIST and BreastMNIST val (fit on train), the held-out cohort "
    "and the digits (transductive), seeds 0-2; AdrenalMNIST3D's val split is left out, as in "
    "the budget round. A caveat declared with the rule: the challenger's range was read from "
    "the held-out cohort's generator (its noisiest site), after the cut-space round traced "
    "the cohort's merged strata to its sites. A candidate is out when its estimated fit of "
    f"{COST_IMAGES:,} 28-px images exceeds {COST_SECONDS:.0f} s. The challenger is chosen "
    "when " + MARGINS + "; otherwise the "
    f"incumbent stays. The seed agreement bar ({MIN_AGREEMENT} on every set) is reported, met "
    "or missed."
)


def score_noise(dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """Both candidates' networks on one (set, seed), clustered by the default's consensus."""
    make = consensus(CANDIDATES["gmm20-spectral"])
    return pd.concat(
        [
            score(dataset, seed, out, BUDGET, {name: make}, variant)
            for name, variant in VARIANTS.items()
        ],
        ignore_index=True,
    )


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    round_report(
        out,
        results,
        seeds,
        title="Choosing the augmentation's noise range against the incumbent (selection data, "
        "never test)",
        script="benchmarks/noise_range.py",
        cached="Networks cached by `python benchmarks/noise_range.py --embed` (the "
        "challenger's) and `python benchmarks/budget.py --embed` (the incumbent's) at "
        + ", ".join(sorted(results["network_commit"].unique()))
        + ".",
        rule=RULE,
        incumbent=INCUMBENT,
        more={"train s": spread("train_seconds", 0)},
    )


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/noise_range.md",
        DATASETS,
        score_noise,
        report,
        lambda d, s: embed(d, s, BUDGET, CHALLENGER, SETTINGS),
        lambda d, s: all(_cache_file(d, s, BUDGET, v).is_file() for v in VARIANTS.values()),
    )


if __name__ == "__main__":
    raise SystemExit(main())
