"""Choosing the default clustering of the default network, on validation data, never test.

Reads the ``validation`` profile's rows (``python benchmarks/run.py --profile validation
--out benchmarks/results/validation --model-cache DIR``: the default network of each set and
seed, clustered by every candidate of the default recipe, scored on PneumoniaMNIST's and
BreastMNIST's val splits and on a held-out synthetic cohort) and applies the rule declared
before the runs (README, "The default recipe"):

1. A candidate is out if in any (set, seed) its smallest stratum holds less than
   ``MIN_SHARE`` (5 %) of the scored patients (cluster ACC rewards putting everyone in the
   majority class of an imbalanced set; such strata say nothing), or if a (set, seed) row is
   missing or lacks that share.
2. Of the rest, the highest mean val ACC over the sets (each set's mean over seeds) wins;
   candidates within ``TIE`` (0.005) of the best are a tie, broken by the highest worst set.

Usage::

    python benchmarks/choose_default.py --results benchmarks/results/validation/results.csv \
        --out benchmarks/results/validation/choice.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lab.profiles import PROFILES
from lab.provenance import mean_sd
from lab.store import read_results
from stratify._atomic import write_text

#: A candidate is out if a stratum holds less than this share of the scored patients.
MIN_SHARE = 0.05
#: Candidates within this mean val ACC of the best tie (broken by the worst set).
TIE = 0.005


def choose(results: pd.DataFrame, candidates: list[str], sets: list[str], seeds: list[int]):
    """The declared rule: the chosen candidate (None if none is eligible) and the table."""
    rows = []
    for name in candidates:
        runs = results[(results["method"] == name) & results["dataset"].isin(sets)]
        runs = runs[runs["seed"].isin(seeds)]
        per_set = runs.groupby("dataset")["acc"].mean()
        complete = len(runs) == len(sets) * len(seeds) and set(per_set.index) == set(sets)
        smallest = runs["min_share"].min() if "min_share" in runs else float("nan")
        if not complete:
            why = "missing runs"
        elif runs["min_share"].isna().any():
            why = "no stratum sizes"
        elif smallest < MIN_SHARE:
            why = f"a stratum under {MIN_SHARE:.0%}"
        else:
            why = ""
        rows.append(
            {
                "candidate": name,
                "mean": per_set.mean() if complete else float("nan"),
                "worst": per_set.min() if complete else float("nan"),
                "min_share": smallest,
                "out": why,
                **{f"acc_{d}": mean_sd(runs[runs["dataset"] == d]["acc"], 3) for d in sets},
            }
        )
    table = pd.DataFrame(rows)
    eligible = table[table["out"] == ""]
    if eligible.empty:
        return None, table
    best = eligible["mean"].max()
    tied = eligible[eligible["mean"] >= best - TIE]
    chosen = str(tied.loc[tied["worst"].idxmax(), "candidate"])
    return chosen, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--results", type=Path, default=Path("benchmarks/results/validation/results.csv")
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/validation/choice.md"))
    args = parser.parse_args(argv)
    profile = PROFILES["validation"]
    (block,) = profile["blocks"]
    sets, candidates, seeds = block["datasets"], block["methods"], profile["seeds"]
    results = read_results(args.results)
    chosen, table = choose(results, candidates, sets, seeds)
    commits = ", ".join(
        sorted(set(results[results["method"].isin(candidates)]["git_commit"].astype(str)))
    )
    lines = [
        "# Choosing the default clustering (validation data, never test)",
        "",
        f"Command: `python benchmarks/choose_default.py --results {args.results} --out "
        f"{args.out}`; rows from commit(s) {commits}, seeds {seeds}.",
        "",
        "The rule, declared before the runs: out if any (set, seed) has a stratum under "
        f"{MIN_SHARE:.0%} of the scored patients; of the rest, the highest mean val ACC over "
        f"the sets, ties within {TIE} broken by the highest worst set.",
        "",
        f"**Chosen: {'none eligible' if chosen is None else f'`{chosen}`'}.**",
        "",
        "| candidate | "
        + " | ".join(f"{d} val ACC" for d in sets)
        + " | mean | worst | smallest stratum | out |",
        "|---|" + "---:|" * (len(sets) + 3) + "---|",
    ]
    for _, row in table.sort_values("mean", ascending=False).iterrows():
        lines.append(
            f"| `{row['candidate']}` | "
            + " | ".join(row[f"acc_{d}"] for d in sets)
            + f" | {row['mean']:.3f} | {row['worst']:.3f} | {row['min_share']:.1%} | "
            f"{row['out'] or '-'} |"
        )
    write_text("\n".join([*lines, ""]), args.out)
    print(f"wrote {args.out}: chosen {chosen}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
