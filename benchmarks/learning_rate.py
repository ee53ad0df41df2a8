"""The learning rate, against the incumbent (selection data, never test).

No round has chosen the default's learning rate: Adam's 1e-3 came with the 0.1 default,
which trained on 256,000 samples. The 0.2 budget is 51,200 samples (200 steps of 256 on 28
x 28 images), and round 6 showed that training longer still raises val ACC on every set but
one and seed agreement where it is lowest; rounds 7-9 found no cheaper way to the same gain.
A larger rate goes further along the same cosine schedule at no cost: each step costs what
it did. This round asks whether it goes to better, more reproducible strata:

* the incumbent: one network on 51,200 samples with ``lr=1e-3`` (the 0.2 default);
* ``lr0.002`` and ``lr0.004``: the same network, budget and schedule (cosine from ``lr`` to 0
  over the fit, no warm-up) with twice and four times the rate.

The incumbent's rows and strata are round 9's (its ``b51.2k`` rows: round 8's fits, and
round 9's refits on PneumoniaMNIST); on PneumoniaMNIST, where the cost is read, it is
refitted here, each seed just before the challengers, and the report compares the refit's
strata with round 9's. The rule, :data:`RULE`, is declared before any network of this round
is fitted: round 7's.

Usage::

    python benchmarks/learning_rate.py --embed --seeds 0 1 2 3 4 \\
        --datasets pneumoniamnist breastmnist cohort digits
    python benchmarks/learning_rate.py --embed --seeds 0 1 2 --datasets adrenalmnist3d
    python benchmarks/learning_rate.py --seeds 0 1 2 3 4 --out benchmarks/results/learning_rate.md
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from consensus_cut import _cache_file, embed, score
from faster_step import across
from one_pass import BUDGET, COLUMNS, COST_SET, DATASETS, INCUMBENT, REFIT
from recipe import round_main
from snapshots import RULE as ROUND7_RULE
from snapshots import write_round
from two_networks import earlier_scored, kept_incumbent, refit_lines

#: The incumbent's learning rate (the default's) and the challengers'.
DEFAULT_RATE = 1e-3
RATES = (2e-3, 4e-3)
#: Each challenger's name (also its cache variant) and settings.
CHALLENGERS = {f"lr{rate:g}": {"lr": rate} for rate in RATES}
#: Round 9's report: the incumbent's rows (its CSV) and strata (beside it).
ROUND9 = Path(__file__).parent / "results" / "two_networks.md"

RULE = (
    "Declared before any network of this round was fitted. Candidates, every other setting "
    "the default's and clustered by the default consensus: the incumbent (one network on "
    f"{BUDGET:,} samples of 28 x 28 values with Adam at lr={DEFAULT_RATE:g}, the 0.2 default; "
    f"its rows and strata round 9's `{INCUMBENT}`, refitted here on PneumoniaMNIST) and "
    + " and ".join(f"`{name}` (`lr={s['lr']:g}`)" for name, s in CHALLENGERS.items())
    + ", the same network, budget and schedule (cosine from lr to 0 over the fit, no "
    "warm-up) with twice and four times the rate. The sets, seeds, margins, clauses and "
    "tie-break are round 7's, and so is the cost clause (the ratio to the incumbent in this "
    "round times the committed slowest fit), read on PneumoniaMNIST, where each seed's "
    "incumbent refit runs just before the challengers'. Round 7's rule, for reference: "
    + ROUND7_RULE
)


def embed_all(dataset: str, seed: int) -> None:
    """Fit and cache the challengers on one (set, seed); on :data:`COST_SET` the incumbent
    first."""
    if dataset == COST_SET:
        embed(dataset, seed, BUDGET, *REFIT)
    for name, settings in CHALLENGERS.items():
        embed(dataset, seed, BUDGET, name, settings)


def ready(dataset: str, seed: int) -> bool:
    """Whether every challenger's fit is cached and the incumbent's is (on :data:`COST_SET`)
    or round 9 scored it (elsewhere)."""
    if not all(_cache_file(dataset, seed, BUDGET, name).is_file() for name in CHALLENGERS):
        return False
    if dataset == COST_SET:
        return _cache_file(dataset, seed, BUDGET, REFIT[0]).is_file()
    return earlier_scored(ROUND9, dataset, seed)


def score_all(dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """Every candidate on one (set, seed), clustered by the default consensus: the incumbent
    refitted (on :data:`COST_SET`) or round 9's row with its strata kept here."""
    if dataset == COST_SET:
        rows = [score(dataset, seed, out, BUDGET, {INCUMBENT: across(1)}, REFIT[0])]
    else:
        rows = [kept_incumbent(ROUND9, dataset, seed, out)]
    rows += [score(dataset, seed, out, BUDGET, {name: across(1)}, name) for name in CHALLENGERS]
    return pd.concat(rows, ignore_index=True)


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    write_round(
        out,
        results,
        seeds,
        title="The learning rate, against the incumbent (selection data, never test)",
        script="benchmarks/learning_rate.py",
        cached_by="`python benchmarks/learning_rate.py --embed` (and rounds 7-9's `--embed`)",
        rule=RULE,
        incumbent=INCUMBENT,
        columns=COLUMNS,
        tail=refit_lines(out, seeds, ROUND9, "round 9"),
    )


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/learning_rate.md",
        DATASETS,
        score_all,
        report,
        embed_all,
        ready,
    )


if __name__ == "__main__":
    raise SystemExit(main())
