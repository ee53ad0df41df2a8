"""Do the metadata priors help? Pretrain without target labels, probe with 1/10/100 % labels.

The protocol and the settings are in :mod:`lab.priors` (informative cohort,
nuisance control, WSP on AdrenalMNIST3D slices with 20 % flipped weak labels). Two stages,
both resumable (a finished run is a row of a CSV and is skipped on restart):

1. **Selection** (``priors-selection.csv``): each prior's candidates (:data:`GRID`:
   bandwidth in sd units x weight) are pretrained on seed ``SELECTION_SEED`` for
   ``SELECT_SHARE`` of the epochs rule, and scored on the setting's validation data by the
   10 %-label probe (validation ACC on the cohort, validation volume AUC on the slices).
   The rule: the highest score wins; a tie goes to the candidate listed first (smaller
   weight, then narrower kernel). Test data is never read by this stage's choice.
2. **Protocol rows** (``priors.csv``): every method with its chosen spec, the epochs rule
   (``epochs="auto"``), seeds ``--seeds``; the frozen-latent probe and Dufumier et al.'s
   fine-tuning step at each label fraction; the supervised ResNet-18 on the same subsets.
   The nuisance cohort uses the specs chosen on the informative cohort (the control asks
   whether that choice hurts where the metadata says nothing); its SimCLR rows are the
   informative cohort's (same images, SimCLR reads no metadata). The fainter cohort
   (``cohort-faint``) has its own selection on its own validation patients, by the same rule.

The report has a table per setting, the selection, the bar and a label-efficiency plot.
Usage (``--report-only`` rewrites the report from the CSVs, running nothing)::

    python benchmarks/priors.py --seeds 0 1 2 --out benchmarks/results/priors.md
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab.priors import (
    FAINT,
    FAINTER,
    FINETUNE_LR,
    FLIP_RATE,
    FRACTIONS,
    GRID,
    PRIORS,
    SUPERVISED_STEPS,
    VAL_PATIENTS,
    candidates,
    load_setting,
    run_one,
    run_supervised,
)
from lab.provenance import (
    git_commit,
    header,
    mean_sd,
    run_seeded,
    seeded_parser,
)
from stratify._atomic import atomic_write, write_csv, write_text
from stratify.training.config import auto_epochs

#: Run order: the settings of the bar first, then the nuisance control, then the fainter
#: cohort (added after the first three had run; see :mod:`lab.priors`).
SETTINGS = ("cohort-informative", "adrenal-wsp", "cohort-nuisance", "cohort-faint")
#: The (prior, setting) pairs whose candidates are compared on that setting's validation data.
SELECTED_ON = (
    ("yaware", "cohort-informative"),
    ("clinical", "cohort-informative"),
    ("wsp", "adrenal-wsp"),
    ("yaware", "cohort-faint"),
    ("clinical", "cohort-faint"),
)
#: A setting that uses another's choice instead of its own: the nuisance control asks
#: whether the informative cohort's choice hurts where the metadata says nothing.
CHOICE_OF = {"cohort-nuisance": "cohort-informative"}
#: The seed of the selection runs, and their share of the epochs rule (a cost limit).
SELECTION_SEED, SELECT_SHARE = 0, 0.25
#: The probe metric each setting is judged on (volume-level AUC for WSP, as Sarfati et al.).
METRIC = {"cohort": "probe_acc", "adrenal": "probe_auc"}
#: The validation score of the selection, per family.
VAL_METRIC = {"cohort": "val_acc", "adrenal": "val_auc"}


Pair = tuple[str, str]  # (prior, setting)


def _has(done: pd.DataFrame, **match: Any) -> bool:
    if done.empty:
        return False
    mask = np.ones(len(done), dtype=bool)
    for column, value in match.items():
        if column not in done:
            return False
        mask &= (done[column] == value).to_numpy()
    return bool(mask.any())


def _matches(frame: pd.DataFrame, spec: dict[str, Any], method: str, name: str) -> np.ndarray:
    """Rows of a selection frame of ``method`` on setting ``name`` run with ``spec`` (its
    weight and, if any, sigma_sd)."""
    mask = (frame["method"] == method).to_numpy() & (frame["setting"] == name).to_numpy()
    mask &= (frame["weight"] == spec["weight"]).to_numpy()
    if "sigma_sd" in spec:
        mask &= np.isclose(frame["sigma_sd"].to_numpy(dtype=float), spec["sigma_sd"])
    return mask


def select(csv: Path) -> tuple[pd.DataFrame, dict[Pair, list[Any]]]:
    """Stage 1: every candidate of every prior on its setting's validation data.

    Returns the selection rows and each prior's candidates (:func:`grids`).
    """
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    grid = grids()
    for method, name in SELECTED_ON:
        setting = None
        for spec in grid[method, name]:
            assert spec is not None
            if not done.empty and _matches(done, spec, method, name).any():
                continue
            setting = setting or load_setting(name, SELECTION_SEED)
            epochs = math.ceil(SELECT_SHARE * auto_epochs(len(setting.train_images)))
            rows = run_one(
                setting, method, SELECTION_SEED, epochs=epochs, spec=spec, fractions=(0.1,)
            )
            done = _append(done, rows, csv)
    return done, grid


def grids() -> dict[Pair, list[Any]]:
    """Each (prior, setting) pair's candidates, in grid order."""
    return {
        (method, name): candidates(load_setting(name, SELECTION_SEED), method)
        for method, name in SELECTED_ON
    }


def chosen(selection: pd.DataFrame, grid: dict[Pair, list[Any]]) -> dict[Pair, dict[str, Any]]:
    """The winning spec of each (prior, setting) pair of ``grid`` (highest validation
    score; ties: grid order)."""
    out = {}
    for (method, name), specs in grid.items():
        metric = VAL_METRIC[name.split("-")[0]]
        best, best_score = None, -np.inf
        for spec in specs:
            assert spec is not None
            row = selection[_matches(selection, spec, method, name)]
            if row.empty:
                raise ValueError(
                    f"Expected a selection run of {method} {spec} on {name}, got none."
                )
            score = float(row[metric].iloc[0])
            if score > best_score:
                best, best_score = spec, score
        assert best is not None
        out[method, name] = best
    return out


def run(seeds: list[int], csv: Path) -> pd.DataFrame:
    specs = chosen(*select(csv.with_name(csv.stem + "-selection.csv")))
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    for name in SETTINGS:
        family = name.split("-")[0]
        for seed in seeds:
            setting = None
            for method in PRIORS[family]:
                if _has(done, setting=name, method=method, seed=seed, protocol="probe"):
                    continue
                if name == "cohort-nuisance" and method == "simclr":
                    rows = _copied(done, "cohort-informative", name, method, seed)
                    if rows:
                        done = _append(done, rows, csv, keep_commit=True)
                        continue
                setting = setting or load_setting(name, seed)
                spec = specs.get((method, CHOICE_OF.get(name, name)))
                rows = run_one(setting, method, seed, epochs="auto", spec=spec, finetune=FRACTIONS)
                done = _append(done, rows, csv)
            if _has(done, setting=name, method="supervised", seed=seed):
                continue
            rows = _copied(done, "cohort-informative", name, "supervised", seed)
            if name == "cohort-nuisance" and rows:  # the cohorts share images and labels
                done = _append(done, rows, csv, keep_commit=True)
            else:
                setting = setting or load_setting(name, seed)
                done = _append(done, run_supervised(setting, seed), csv)
    return done


def _copied(done: pd.DataFrame, source: str, target: str, method: str, seed: int) -> list[dict]:
    """The rows of ``method`` and ``seed`` on ``source``, relabelled as ``target``'s."""
    if done.empty:
        return []
    rows = done[(done["setting"] == source) & (done["method"] == method) & (done["seed"] == seed)]
    return rows.assign(setting=target).to_dict("records")


#: What the committed run tried, for a reader of a missed bar (kept with the code that runs).
TRIED = (
    "What was tried: the first protocol (Silverman's bandwidth, weight 1, 15 epochs on the "
    "cohorts and 6 on the slices, frozen probe only; its report is "
    "`benchmarks/results/priors.md` at commit 1723eb0) met only the clinical prior's bar. "
    "This run chooses the bandwidth "
    "and the weight on validation data from the grid above, trains for the epochs rule and "
    "adds the fine-tuning step. Clinical columns `weak_label` and `age` (4 quantile bins) "
    "with equal weights, WSP on position x weak label. Not tried: a wider grid, selection "
    "on more than one seed or at the full budget (cost), the prior alone without SimCLR."
)


def _append(
    done: pd.DataFrame, rows: list[dict], csv: Path, *, keep_commit: bool = False
) -> pd.DataFrame:
    for row in rows:
        if not keep_commit:
            row["git_commit"] = git_commit()
    print(rows[len(rows) // 2], flush=True)
    done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
    write_csv(done, csv, index=False)
    return done


def _plot(results: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in SETTINGS if (results["setting"] == name).any()]  # run ones
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour = {
        m: palette[i % len(palette)]  # one colour per method in every panel
        for i, m in enumerate(dict.fromkeys(results["method"]))
    }
    style = {"probe": "-", "finetune": "--", "scratch": ":"}
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        metric = METRIC[name.split("-")[0]]
        frame = results[results["setting"] == name]
        for (method, protocol), group in frame.groupby(["method", "protocol"], sort=False):
            stats = group.groupby("fraction")[metric].agg(["mean", "std"]).fillna(0.0)
            ax.plot(
                stats.index * 100,
                stats["mean"],
                marker="o",
                linestyle=style[protocol],
                label=f"{method} ({protocol})",
                color=colour[method],
            )
            ax.fill_between(
                stats.index * 100,
                stats["mean"] - stats["std"],
                stats["mean"] + stats["std"],
                alpha=0.15,
                color=colour[method],
            )
        ax.set(xscale="log", xlabel="training labels (%)", ylabel=metric, title=name)
        ax.legend(fontsize=6)
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120))
    plt.close(fig)


def _verdicts(results: pd.DataFrame) -> list[str]:
    """Each prior vs SimCLR at 10 % labels, frozen probe (the bar) and fine-tuned
    (informative: gain > spread; nuisance: loss <= spread)."""
    lines = []
    for name in SETTINGS:
        family = name.split("-")[0]
        at_ten = results[(results["setting"] == name) & (results["fraction"] == 0.1)]
        metrics = [METRIC[family]] + (["ari"] if family == "cohort" else [])
        for protocol in ("probe", "finetune"):
            frame = at_ten[at_ten["protocol"] == protocol]
            base = frame[frame["method"] == "simclr"]
            for method in PRIORS[family]:
                prior = frame[frame["method"] == method]
                if method == "simclr" or len(prior) < 3 or len(base) < 3:
                    continue
                for metric in metrics if protocol == "probe" else metrics[:1]:
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
                        f"| {name} | {method} vs simclr | {protocol} | {metric} | "
                        f"{gain:+.3f} | {spread:.3f} | {verdict} |"
                    )
    return lines


def _selection_lines(selection: pd.DataFrame, specs: dict[Pair, dict[str, Any]]) -> list[str]:
    lines = [
        "## Selection (validation data, seed "
        f"{SELECTION_SEED}, {SELECT_SHARE:.0%} of the epochs rule, 10 % labels)",
        "",
        "| setting | prior | sigma (sd units) | sigma | weight | val ACC | val AUC | chosen |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    picked = np.zeros(len(selection), dtype=bool)
    for (method, name), spec in specs.items():
        picked |= _matches(selection, spec, method, name)
    for same, (_, row) in zip(picked, selection.iterrows(), strict=True):
        sigma_sd = "" if pd.isna(row.get("sigma_sd")) else f"{row['sigma_sd']:g}"
        auc = "" if pd.isna(row.get("val_auc")) else f"{row['val_auc']:.3f}"
        lines.append(
            f"| {row['setting']} | {row['method']} | {sigma_sd} | {row['sigma']} | "
            f"{row['weight']:g} | {row['val_acc']:.3f} | {auc} | {'**yes**' if same else ''} |"
        )
    return [*lines, ""]


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    selection_csv = out.with_name(out.stem + "-selection.csv")
    selection = pd.read_csv(selection_csv)
    ran = set(zip(selection["method"], selection["setting"], strict=True))
    specs = chosen(selection, {pair: c for pair, c in grids().items() if pair in ran})
    grid = "; ".join(
        f"{method}: " + ", ".join(f"{k} {list(v)}" for k, v in options.items())
        for method, options in GRID.items()
    )
    lines = [
        *header(
            "Metadata priors: pretraining without target labels, few-label probes and fine-tuning",
            "benchmarks/priors.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        "Protocol (`benchmarks/lab/priors.py`, `benchmarks/priors.py`): each method "
        "pretrains a Stratifier (AE + SimCLR, plus its prior as a regularizer) on the "
        "training images and metadata, never on the target, for the epochs rule "
        "(`epochs='auto'`: about 256,000 samples seen). Its frozen, standardised latents "
        "get a logistic-regression probe (`probe`) trained with a stratified 1 %, 10 % or "
        "100 % of the training labels (the same subset for every method of a seed); the "
        "pretrained encoder is also fine-tuned with a new linear head on the same labels "
        f"(`finetune`, Dufumier et al.'s step: {SUPERVISED_STEPS} steps of batch 64, lr "
        f"{FINETUNE_LR:g}, no validation data). Both are scored on the test split; `ari`: "
        "the strata (GMM, k = number of classes) against the target on the test split. "
        f"Cohort: texture contrast {FAINT} (faint), age and the 20 %-noisy weak label "
        "informative (`cohort-informative`) or permuted across patients "
        f"(`cohort-nuisance`), and at texture {FAINTER} with informative metadata "
        "(`cohort-faint`: added after the informative cohort's probe saturated at the epochs "
        "rule, declared before its run, with its own selection); validation: "
        f"{VAL_PATIENTS} further patients of the same generator. AdrenalMNIST3D slices "
        "(every 4th slice, 28 px: the 64 px release is not "
        f"in `../shared` and cannot be downloaded here): weak label = volume label with "
        f"{FLIP_RATE:.0%} of the training volumes flipped, probe on volume means; "
        "validation: MedMNIST's val split. Each prior's bandwidth and weight were chosen on "
        f"the validation data ({grid}; sigma in units of the training column's sd) by "
        "the rule in the script's docstring: highest validation score of the 10 %-label "
        "probe, ties to the first listed; the nuisance cohort reuses the informative "
        "cohort's choice. `supervised` (`scratch`): ResNet-18 from scratch trained on the "
        f"same label subsets, {SUPERVISED_STEPS} steps of batch 64 at every fraction, no "
        "validation data (the informative cohort's and Adrenal's rows were measured by the "
        "first protocol's run, whose code is unchanged; the nuisance cohort shares the "
        "informative cohort's images and labels, so its rows are the same; `cohort-faint` "
        "has its own images, so its rows were run by this protocol). Cells: "
        "mean ± sd over seeds.",
        "",
        "![label efficiency](priors.png)",
        "",
        *_selection_lines(selection, specs),
    ]
    for name in SETTINGS:
        frame = results[results["setting"] == name]
        if frame.empty:
            lines += [f"## {name}", "", "Not run at these commits.", ""]
            continue
        columns = [
            c
            for c in ("probe_acc", "probe_auc", "val_acc", "val_auc", "ari")
            if c in frame and frame[c].notna().any()
        ]
        lines += [
            f"## {name}",
            "",
            "| method | protocol | labels | " + " | ".join(columns) + " |",
            "|---|---|---:|" + "---|" * len(columns),
        ]
        groups = frame.groupby(["method", "protocol", "fraction"], sort=False)
        for (method, protocol, fraction), group in groups:
            cells = [
                mean_sd(group[c].dropna(), 3) if group[c].notna().any() else "" for c in columns
            ]
            lines.append(f"| {method} | {protocol} | {fraction:.0%} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## The bar (10 % labels, 3 seeds; the bar is the frozen probe, fine-tuning beside it)",
        "",
        "| setting | comparison | protocol | metric | gain | spread (larger sd) | verdict |",
        "|---|---|---|---|---:|---:|---|",
        *_verdicts(results),
        "",
        TRIED,
        "",
        "Per run: `priors.csv` and `priors-selection.csv` beside this file.",
        "",
    ]
    _plot(results, out.with_suffix(".png"))
    write_text("\n".join(lines), out)


def main() -> int:
    parser = seeded_parser(__doc__.splitlines()[0], "benchmarks/results/priors.md")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="write the report of the rows in the CSVs as they are; run nothing",
    )
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    csv = args.out.with_suffix(".csv")
    if not args.report_only:
        return run_seeded(run, report, args)
    for path in (csv, csv.with_name(csv.stem + "-selection.csv")):
        if not path.is_file():
            parser.error(f"--report-only reads {path}; no such file")
    results = pd.read_csv(csv)
    sys.argv = [a for a in sys.argv if a != "--report-only"]  # the command that runs the rows
    report(results[results["seed"].isin(args.seeds)], args.seeds, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
