"""Do the metadata priors help? Pretrain without target labels, probe with 1/10/100 % labels.

The protocol and the settings are in :mod:`stratify.benchmark.priors` (informative cohort,
nuisance control, WSP on AdrenalMNIST3D slices with 20 % flipped weak labels). Each finished
(setting, method, seed) is appended to the CSV and skipped on restart; the report has a table
per setting and a label-efficiency plot (probe metric vs label fraction, one line per
method, the seed spread shaded). Usage::

    python benchmarks/priors.py --seeds 0 1 2 --out benchmarks/results/priors.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from stratify._atomic import atomic_write, write_csv, write_text
from stratify.benchmark.priors import (
    FAINT,
    FLIP_RATE,
    PRIORS,
    SUPERVISED_STEPS,
    load_setting,
    run_one,
    run_supervised,
)
from stratify.benchmark.provenance import (
    git_commit,
    header,
    mean_sd,
    run_seeded,
    seeded_parser,
)

SETTINGS = ("cohort-informative", "cohort-nuisance", "adrenal-wsp")
#: Pretraining epochs: the full benchmark profile's for the cohort and the Adrenal slices.
EPOCHS = {"cohort": 15, "adrenal": 6}
#: The probe metric each setting is judged on (volume-level AUC for WSP, as Sarfati et al.).
METRIC = {"cohort": "probe_acc", "adrenal": "probe_auc"}


def run(seeds: list[int], csv: Path) -> pd.DataFrame:
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    for seed in seeds:
        for name in SETTINGS:
            setting = None
            family = name.split("-")[0]
            for method in PRIORS[family]:
                if (
                    not done.empty
                    and (
                        (done["setting"] == name)
                        & (done["method"] == method)
                        & (done["seed"] == seed)
                    ).any()
                ):
                    continue
                setting = setting or load_setting(name, seed)
                rows = run_one(setting, method, seed, epochs=EPOCHS[family])
                done = _append(done, rows, csv)
            supervised = (
                done.empty
                or not (
                    (done["setting"] == name)
                    & (done["method"] == "supervised")
                    & (done["seed"] == seed)
                ).any()
            )
            if supervised:  # the cohorts share images and labels: the same reference
                earlier = done[
                    (done["setting"] == "cohort-informative")
                    & (done["method"] == "supervised")
                    & (done["seed"] == seed)
                ]
                if name == "cohort-nuisance" and len(earlier):
                    rows = earlier.drop(columns="git_commit").assign(setting=name)
                    done = _append(done, rows.to_dict("records"), csv)
                else:
                    setting = setting or load_setting(name, seed)
                    done = _append(done, run_supervised(setting, seed), csv)
    return done


#: What the committed run tried, for a reader of a missed bar (kept with the code that runs).
TRIED = (
    "What was tried: one recipe for every prior (the default Stratifier, AE + SimCLR at "
    "temperature 0.2, regularizer weight 1, 15 epochs on the cohorts and 6 on the slices), "
    "bandwidths by Silverman's rule (`sigma='auto'`; the values used are in the `sigma` "
    "column of `priors.csv`), clinical columns `weak_label` and `age` (4 quantile bins) with "
    "equal weights, WSP on position x weak label. Not tried (each would tune a setting "
    "to these data): a sweep of sigma or of the regularizer weight, longer pretraining, "
    "the prior alone without SimCLR. The bars stand as stated."
)


def _append(done: pd.DataFrame, rows: list[dict], csv: Path) -> pd.DataFrame:
    for row in rows:
        row["git_commit"] = git_commit()
    print(rows[len(rows) // 2], flush=True)
    done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
    write_csv(done, csv, index=False)
    return done


def _plot(results: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SETTINGS), figsize=(4.2 * len(SETTINGS), 3.4))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {
        m: palette[i % len(palette)]  # one colour per method in every panel
        for i, m in enumerate(dict.fromkeys(results["method"]))
    }
    for ax, name in zip(np.atleast_1d(axes), SETTINGS, strict=True):
        metric = METRIC[name.split("-")[0]]
        frame = results[results["setting"] == name]
        for method, group in frame.groupby("method", sort=False):
            stats = group.groupby("fraction")[metric].agg(["mean", "std"]).fillna(0.0)
            ax.plot(
                stats.index * 100, stats["mean"], marker="o", label=method, color=colour[method]
            )
            ax.fill_between(
                stats.index * 100,
                stats["mean"] - stats["std"],
                stats["mean"] + stats["std"],
                alpha=0.2,
                color=colour[method],
            )
        ax.set(xscale="log", xlabel="training labels (%)", ylabel=metric, title=name)
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def _verdicts(results: pd.DataFrame) -> list[str]:
    """The bar: each prior vs SimCLR at 10 % labels (informative: gain > spread; nuisance:
    loss <= spread)."""
    lines = []
    for name in SETTINGS:
        family = name.split("-")[0]
        frame = results[(results["setting"] == name) & (results["fraction"] == 0.1)]
        metrics = [METRIC[family]] + (["ari"] if family == "cohort" else [])
        base = frame[frame["method"] == "simclr"]
        for method in PRIORS[family]:
            if method == "simclr" or base.empty:
                continue
            prior = frame[frame["method"] == method]
            for metric in metrics:
                if len(prior) < 3 or len(base) < 3:
                    continue
                gain = prior[metric].mean() - base[metric].mean()
                spread = max(prior[metric].std(ddof=1), base[metric].std(ddof=1))
                if name == "cohort-nuisance":
                    verdict = (
                        "met (no loss beyond the spread)"
                        if gain >= -spread
                        else f"MISSED (loses {-gain:.3f} > spread)"
                    )
                else:
                    verdict = "met" if gain > spread else f"MISSED (gain {gain:+.3f} <= spread)"
                lines.append(
                    f"| {name} | {method} vs simclr | {metric} | {gain:+.3f} | "
                    f"{spread:.3f} | {verdict} |"
                )
    return lines


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    lines = [
        *header(
            "Metadata priors: pretraining without target labels, few-label probes",
            "benchmarks/priors.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        "Protocol (`stratify/benchmark/priors.py`): each method pretrains a default "
        "Stratifier (AE + SimCLR, plus its prior as a regularizer) on the training images "
        "and metadata, never on the target; a logistic-regression probe on the frozen, "
        "standardised latents is trained with a stratified 1 %, 10 % or 100 % of the "
        "training labels (the same subset for every method of a seed) and scored on the "
        "test split; `ari`: the strata (k = number of classes) against the target on the "
        f"test split. Cohort: texture contrast {FAINT} (faint), age and the 20 %-noisy weak "
        "label informative (`cohort-informative`) or permuted across patients "
        f"(`cohort-nuisance`), {EPOCHS['cohort']} epochs. AdrenalMNIST3D slices (every 4th "
        f"slice): weak label = volume label with {FLIP_RATE:.0%} of the training volumes "
        f"flipped, probe on volume means, {EPOCHS['adrenal']} epochs. Bandwidths: "
        "`sigma='auto'` (Silverman). `supervised`: ResNet-18 from scratch trained on the "
        f"same label subsets, {SUPERVISED_STEPS} steps of batch 64 at every fraction, no "
        "validation data (the images and labels of the two cohort settings are the same, so "
        "are its rows; on the Adrenal slices it trains on every slice of the picked volumes "
        "with the true volume label and scores a volume by its mean slice probabilities). "
        "Cells: mean ± sd over seeds.",
        "",
        "![label efficiency](priors.png)",
        "",
    ]
    for name in SETTINGS:
        frame = results[results["setting"] == name]
        if frame.empty:
            continue
        columns = [c for c in ("probe_acc", "probe_auc", "ari") if frame[c].notna().any()]
        lines += [
            f"## {name}",
            "",
            "| method | labels | " + " | ".join(columns) + " |",
            "|---|---:|" + "---|" * len(columns),
        ]
        for (method, fraction), group in frame.groupby(["method", "fraction"], sort=False):
            cells = [mean_sd(group[c], 3) for c in columns]
            lines.append(f"| {method} | {fraction:.0%} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## The bar (10 % labels, 3 seeds)",
        "",
        "| setting | comparison | metric | gain | spread (larger sd) | verdict |",
        "|---|---|---|---:|---:|---|",
        *_verdicts(results),
        "",
        TRIED,
        "",
        "Per run: `priors.csv` beside this file.",
        "",
    ]
    _plot(results, out.with_suffix(".png"))
    write_text("\n".join(lines), out)


def main() -> int:
    parser = seeded_parser(__doc__.splitlines()[0], "benchmarks/results/priors.md")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    return run_seeded(run, report, args)


if __name__ == "__main__":
    raise SystemExit(main())
