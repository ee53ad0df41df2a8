"""Two one-pass networks, against the incumbent (selection data, never test).

The strata's seed dependence is the training trajectory's (rounds 6-8): cuts, consensus,
noise, snapshots and a longer run along one trajectory leave it where it is, and only
independently trained networks average it out. Round 6's two networks of 38,400 samples each
had the highest val ACC of its candidates (0.770 against the incumbent's 0.704 on the four 2D
sets) but cost 124 s and gave up seed agreement on BreastMNIST and the cohort, which its rule
did not allow. Since then round 7's rule lets agreement go on a set where val ACC gains 0.02
there, and round 8's step without the clean pass (``train_config={"clean_pass": False}``)
trains a sample in 0.79 of the default's time, so two such networks of 38,400 samples each
cost about one default network of 51,200:

* the incumbent: one network on 51,200 samples of 28 x 28 values (the 0.2 default);
* ``m2-onepass-b38.4k``: two independently seeded networks on 38,400 samples each without
  the clean pass (``train_config={"networks": 2, "clean_pass": False}``), cut by the
  default consensus across them (one block of latents per network).

The incumbent's rows and strata are round 8's (its ``b51.2k`` candidate: round 7's ``final``
fits, refitted on PneumoniaMNIST by round 8; the default's code path has not changed since).
On PneumoniaMNIST, where the cost is read, it is refitted here, each seed just before the
challenger's, so that both fits' seconds come from one session; the report compares the
refit's strata with round 8's. The rule, :data:`RULE`, is declared before any network of
this round is fitted: round 7's.

Usage::

    python benchmarks/two_networks.py --embed --seeds 0 1 2 3 4 \\
        --datasets pneumoniamnist breastmnist cohort digits
    python benchmarks/two_networks.py --embed --seeds 0 1 2 --datasets adrenalmnist3d
    python benchmarks/two_networks.py --seeds 0 1 2 3 4 --out benchmarks/results/two_networks.md
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from consensus_cut import _cache_file, embed, score
from faster_step import across
from one_pass import BUDGET, COLUMNS, COST_SET, DATASETS, INCUMBENT, REFIT
from recipe import _strata_file, round_main
from sklearn.metrics import adjusted_rand_score
from snapshots import RULE as ROUND7_RULE
from snapshots import write_round

#: The challenger: its networks and each one's samples of 28 x 28 values.
NETWORKS, PER_NETWORK = 2, 38_400
CHALLENGER = f"m{NETWORKS}-onepass-b{PER_NETWORK / 1000:g}k"
TWO_ONE_PASS = (
    f"networks{NETWORKS}-onepass",
    {"train_config": {"networks": NETWORKS, "clean_pass": False}},
)
#: Round 8's report: the incumbent's rows (its CSV) and strata (beside it).
ROUND8 = Path(__file__).parent / "results" / "one_pass.md"

RULE = (
    "Declared before any network of this round was fitted. Candidates, every other setting "
    "the default's and clustered by the default consensus: the incumbent (one network on "
    f"{BUDGET:,} samples of 28 x 28 values, the 0.2 default; its rows and strata round 8's "
    f"`{INCUMBENT}`, refitted here on PneumoniaMNIST) and `{CHALLENGER}` ({NETWORKS} "
    f"independently seeded networks on {PER_NETWORK:,} samples each with "
    "`train_config={'networks': 2, 'clean_pass': False}`, cut by the default consensus "
    "across their blocks of latents, as the estimator clusters an ensemble). The sets, "
    "seeds, margins, clauses and tie-break are round 7's, and so is the cost clause (the "
    "ratio to the incumbent in this round times the committed slowest fit), read on "
    "PneumoniaMNIST, where each seed's incumbent refit runs just before the challenger's. "
    "Round 7's rule, for reference: " + ROUND7_RULE
)


def earlier_strata(report: Path, dataset: str, seed: int) -> Path:
    """Where an earlier round's ``report`` kept the incumbent's scored strata of one (set,
    seed)."""
    return report.parent / f"{report.stem}-strata" / dataset / INCUMBENT / f"seed{seed}.npy"


def earlier_row(report: Path, dataset: str, seed: int) -> pd.DataFrame:
    """An earlier round's row of the incumbent on one (set, seed) (none: no row)."""
    rows = pd.read_csv(report.with_suffix(".csv"))
    return rows[
        (rows["dataset"] == dataset) & (rows["seed"] == seed) & (rows["candidate"] == INCUMBENT)
    ]


def earlier_scored(report: Path, dataset: str, seed: int) -> bool:
    """Whether an earlier round scored the incumbent on one (set, seed) and kept its strata."""
    return (
        len(earlier_row(report, dataset, seed)) == 1
        and earlier_strata(report, dataset, seed).is_file()
    )


def kept_incumbent(report: Path, dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """The incumbent's row of one (set, seed) from an earlier round, its strata copied beside
    this round's ``out``."""
    shutil.copyfile(
        earlier_strata(report, dataset, seed), _strata_file(out, dataset, INCUMBENT, seed)
    )
    return earlier_row(report, dataset, seed).reset_index(drop=True)


def refit_lines(out: Path, seeds: list[int], report: Path, name: str) -> list[str]:
    """The incumbent refitted on :data:`COST_SET` against the earlier round ``name``'s
    (``report``'s) fit of the same seed: the adjusted Rand index of their scored strata."""
    rows = []
    for seed in seeds:
        here = _strata_file(out, COST_SET, INCUMBENT, seed)
        there = earlier_strata(report, COST_SET, seed)
        if here.is_file() and there.is_file():
            rows.append(f"| {seed} | {adjusted_rand_score(np.load(there), np.load(here)):.3f} |")
    return [
        "",
        f"The incumbent refitted on {COST_SET} against {name}'s fit of the same seed (same "
        "data, budget and clustering): the adjusted Rand index of their scored strata (1: the "
        "same partition).",
        "",
        "| seed | strata ARI |",
        "|---:|---:|",
        *rows,
    ]


def embed_all(dataset: str, seed: int) -> None:
    """Fit and cache the challenger on one (set, seed); on :data:`COST_SET` the incumbent
    first."""
    if dataset == COST_SET:
        embed(dataset, seed, BUDGET, *REFIT)
    embed(dataset, seed, PER_NETWORK, *TWO_ONE_PASS)


def ready(dataset: str, seed: int) -> bool:
    """Whether the challenger's fit is cached and the incumbent's is (on :data:`COST_SET`)
    or round 8 scored it (elsewhere)."""
    if not _cache_file(dataset, seed, PER_NETWORK, TWO_ONE_PASS[0]).is_file():
        return False
    if dataset == COST_SET:
        return _cache_file(dataset, seed, BUDGET, REFIT[0]).is_file()
    return earlier_scored(ROUND8, dataset, seed)


def score_all(dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """Both candidates on one (set, seed): the challenger clustered across its networks, the
    incumbent refitted (on :data:`COST_SET`) or round 8's row with its strata kept here."""
    if dataset == COST_SET:
        incumbent = score(dataset, seed, out, BUDGET, {INCUMBENT: across(1)}, REFIT[0])
    else:
        incumbent = kept_incumbent(ROUND8, dataset, seed, out)
    challenger = score(
        dataset, seed, out, PER_NETWORK, {CHALLENGER: across(NETWORKS)}, TWO_ONE_PASS[0]
    )
    return pd.concat([incumbent, challenger], ignore_index=True)


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    write_round(
        out,
        results,
        seeds,
        title="Two one-pass networks, against the incumbent (selection data, never test)",
        script="benchmarks/two_networks.py",
        cached_by="`python benchmarks/two_networks.py --embed` (and rounds 7-8's "
        "`snapshots.py --embed` and `one_pass.py --embed`)",
        rule=RULE,
        incumbent=INCUMBENT,
        columns=COLUMNS,
        tail=refit_lines(out, seeds, ROUND8, "round 8"),
    )


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/two_networks.md",
        DATASETS,
        score_all,
        report,
        embed_all,
        ready,
    )


if __name__ == "__main__":
    raise SystemExit(main())
