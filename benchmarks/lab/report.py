"""The benchmark's markdown report and figures, written from ``results.csv``.

:func:`write_report` summarises every dataset and method as mean ± standard deviation over
seeds, beside the published anchors and the majority-class rate, checks the quality bar and
draws the ACC bar plot; :func:`run_figures` draws the figures of one fitted run (latent space,
cluster-versus-label heatmap, reconstructions, samples per stratum, training curves).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lab.datasets import BenchmarkData
from lab.methods import METHODS, MethodResult
from lab.profiles import PUBLISHED, PUBLISHED_SOURCE
from lab.provenance import mean_sd
from stratify._atomic import write_text
from stratify.analysis import plotting

__all__ = ["ANCHORS", "check_bar", "run_figures", "summarize", "write_report"]

#: Published numbers shown beside ours (test split, 28 px), with their source.
ANCHORS: dict[str, list[tuple[str, str]]] = {
    "pneumoniamnist": [
        ("ResNet-18 (28), supervised ACC", "0.854 (MedMNIST v2, Yang et al. 2023)"),
        ("VAESim cluster ACC", "0.678 (Ferrante et al. 2022); VAE + k-means 0.631"),
        ("majority class", "0.625"),
    ],
    "breastmnist": [
        ("ResNet-18 (28), supervised ACC", "0.863 (MedMNIST v2)"),
        ("majority class", "0.731"),
    ],
    "adrenalmnist3d": [("ResNet-18 + 3D (28), supervised ACC", "0.721 (MedMNIST v2)")],
    "mnist": [("deep clustering ACC (MNIST test set)", "about 0.82 (DEC) to 0.98 (N2D)")],
}

_METRICS = ["acc", "bacc", "nmi", "ari", "knn_acc", "linear_probe_acc", "auc"]
#: Scores of a VAE's per-stratum samples (summarised, shown in their own table).
_GENERATION = ["fidelity", "reconstruction_fidelity", "diversity_ratio"]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each (dataset, method) with ``status="ok"``.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, method): ``<metric>_mean`` and ``<metric>_sd`` for ACC, NMI,
        ARI, kNN, linear probe and AUC, plus ``n_seeds``, ``majority_rate``, ``k`` (mean),
        ``fit_seconds`` and ``peak_rss_mb`` (means), ``scoring``, ``probe_level`` and
        ``weights`` (the distinct trunk weights files of a transfer row's seeds, or "").
    """
    ok = results[results["status"] == "ok"]
    rows = []
    for (dataset, method), group in ok.groupby(["dataset", "method"], sort=False):
        row: dict[str, Any] = {"dataset": dataset, "method": method, "n_seeds": len(group)}
        for metric in [*_METRICS, *_GENERATION]:
            values = group[metric].astype(float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_sd"] = values.std(ddof=1) if len(values) > 1 else 0.0
        for column in ("majority_rate", "k", "fit_seconds", "peak_rss_mb"):
            row[column] = group[column].astype(float).mean()
        row["scoring"] = group["scoring"].iloc[0]
        row["probe_level"] = group["probe_level"].astype(object).fillna("").iloc[0]
        sources = group.get("weights", pd.Series(dtype=object)).dropna().astype(str)
        row["weights"] = "; ".join(sorted({w for w in sources if w}))
        rows.append(row)
    columns = [
        "dataset",
        "method",
        "n_seeds",
        *(f"{m}_{s}" for m in [*_METRICS, *_GENERATION] for s in ("mean", "sd")),
        "majority_rate",
        "k",
        "fit_seconds",
        "peak_rss_mb",
        "scoring",
        "probe_level",
        "weights",
    ]
    return pd.DataFrame(rows, columns=columns)


def _cell(row: pd.Series, metric: str) -> str:
    """``mean ± sd`` over seeds, the value alone for one seed, "–" when not measured."""
    mean, sd = row[f"{metric}_mean"], row[f"{metric}_sd"]
    if np.isnan(mean):
        return "–"
    return f"{mean:.3f}" if row["n_seeds"] == 1 else f"{mean:.3f} ± {sd:.3f}"


def _dataset_table(summary: pd.DataFrame, dataset: str) -> list[str]:
    rows = summary[summary["dataset"] == dataset].set_index("method")
    lines = [
        "| method | ACC | balanced ACC | NMI | ARI | kNN acc | linear probe | AUC | published | "
        "k | seeds | fit s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---:|---:|---:|---:|",
    ]
    for method in [m for m in METHODS if m in rows.index]:
        row = rows.loc[method]
        scores = PUBLISHED.get((dataset, method))
        published = (
            "–"
            if scores is None
            else ", ".join(f"{metric.upper()} {value:.3f}" for metric, value in scores.items())
        )
        lines.append(
            f"| {method} | "
            + " | ".join(_cell(row, m) for m in _METRICS)
            + f" | {published} | {row['k']:.3g} | {row['n_seeds']} | "
            f"{row['fit_seconds']:.0f} | {row['peak_rss_mb']:.0f} |"
        )
    if any((dataset, method) in PUBLISHED for method in rows.index):
        lines += ["", f"published: {PUBLISHED_SOURCE}."]
    for method, source in rows["weights"].items():
        if source:
            lines += ["", f"{method}: trunk weights from {source}."]
    generated = rows[rows["fidelity_mean"].notna()]
    if not generated.empty:
        lines += [
            "",
            "Per-stratum samples of the VAE rows (200 per stratum, against the scored "
            "images): stratum fidelity = share of samples that a logistic regression on the "
            "real images' clustered coordinates puts back in their stratum; reconstruction "
            "fidelity = the same for the reconstructions of the real images (the ceiling the "
            "decoder leaves); diversity ratio = mean pairwise distance of the samples / that "
            "of real images of the stratum.",
            "",
            "| method | stratum fidelity | reconstruction fidelity | diversity ratio | seeds |",
            "|---|---|---|---|---:|",
        ]
        for method in [m for m in METHODS if m in generated.index]:
            row = generated.loc[method]
            lines.append(
                f"| {method} | {_cell(row, 'fidelity')} | "
                f"{_cell(row, 'reconstruction_fidelity')} | "
                f"{_cell(row, 'diversity_ratio')} | {row['n_seeds']} |"
            )
    return lines


def _verdict(value: float, target: float) -> str:
    if np.isnan(value) or np.isnan(target):
        return "not run (needs 3 seeds)"
    return "met" if value >= target else f"MISSED by {target - value:.3f}"


def _rows(summary: pd.DataFrame, dataset: str) -> pd.DataFrame:
    if summary.empty:
        return summary
    return summary[(summary["dataset"] == dataset) & (summary["n_seeds"] >= 3)]


def _pick(rows: pd.DataFrame, method: str, metric: str) -> pd.Series | None:
    """The row of ``method``, or of the best unsupervised method (``"best unsupervised"``)."""
    if rows.empty or f"{metric}_mean" not in rows.columns:
        return None
    if method == "best unsupervised":
        rows = rows[
            rows["method"].map(lambda m: m in METHODS and METHODS[m].kind == "unsupervised")
        ]
        rows = rows[rows[f"{metric}_mean"].notna()]
        return None if rows.empty else rows.loc[rows[f"{metric}_mean"].idxmax()]
    rows = rows[rows["method"] == method]
    return None if rows.empty else rows.iloc[0]


def check_bar(summary: pd.DataFrame, bar: Mapping[str, Any]) -> tuple[str, str]:
    """One criterion of a profile's ``bars`` -> (text with the measured values, verdict).

    A bar is a mapping with ``label``, ``dataset``, ``metric``, ``method`` (a method name or
    ``"best unsupervised"``) and one rule: ``at_least`` (a number), ``within_of_best``
    (``{"prefix": p, "margin": m}``: at least the best unsupervised ``p*`` method's mean minus
    m), or
    ``beats_by_spread`` (``{"base": method, "contains": s}``: the best method whose name
    contains s beats the base by more than the larger of the two seed sds), ``within``
    (``{"value": v, "tolerance": t}``: the mean is within t of a published v, either side),
    or ``above_by_spread`` (a number v: the mean exceeds v by more than the method's seed sd).
    """
    rows = _rows(summary, bar["dataset"])
    metric = bar["metric"]
    if "beats_by_spread" in bar:
        rule = bar["beats_by_spread"]
        base = _pick(rows, rule["base"], metric)
        others = (
            rows
            if base is None
            else rows[rows["method"].str.contains(rule["contains"], regex=False)]
        )
        if base is None or others.empty:
            return bar["label"], "not run (needs 3 seeds)"
        top = others.loc[others[f"{metric}_mean"].idxmax()]
        spread = max(base[f"{metric}_sd"], top[f"{metric}_sd"])
        gain = top[f"{metric}_mean"] - base[f"{metric}_mean"]
        return (
            f"{bar['label']} (best: {top['method']} {top[f'{metric}_mean']:.3f} vs "
            f"{base[f'{metric}_mean']:.3f}; gain {gain:.3f}, spread {spread:.3f})",
            "met" if gain > spread else "MISSED",
        )
    found = _pick(rows, bar["method"], metric)
    mean = float("nan") if found is None else found[f"{metric}_mean"]
    sd = float("nan") if found is None else found[f"{metric}_sd"]
    shown = (
        "fewer than 3 seeds so far" if found is None else f"{found['method']} {mean:.3f} ± {sd:.3f}"
    )
    if "within_of_best" in bar:
        rule = bar["within_of_best"]
        unsupervised = rows["method"].map(
            lambda m: m in METHODS and METHODS[m].kind == "unsupervised"
        )
        peers = (
            rows[rows["method"].str.startswith(rule["prefix"]) & unsupervised]
            if found is not None
            else rows.iloc[:0]
        )
        best = None if peers.empty else peers.loc[peers[f"{metric}_mean"].idxmax()]
        target = float("nan") if best is None else best[f"{metric}_mean"] - rule["margin"]
        peer = "none" if best is None else f"{best['method']} {best[f'{metric}_mean']:.3f}"
        return (f"{bar['label']} ({shown}; best: {peer})", _verdict(mean, target))
    if "above_by_spread" in bar:
        value, gap = bar["above_by_spread"], mean - bar["above_by_spread"]
        verdict = (
            "not run (needs 3 seeds)"
            if np.isnan(mean)
            else "met"
            if gap > sd
            else f"MISSED by {sd - gap:.3f}"
        )
        return (f"{bar['label']} above {value:.3f} by more than the seed sd ({shown})", verdict)
    if "within" in bar:
        value, tolerance = bar["within"]["value"], bar["within"]["tolerance"]
        gap = abs(mean - value)
        verdict = (
            "not run (needs 3 seeds)"
            if np.isnan(mean)
            else "met"
            if gap <= tolerance
            else f"MISSED by {gap - tolerance:.3f}"
        )
        return f"{bar['label']} within {tolerance:.2f} of {value:.3f} ({shown})", verdict
    return (f"{bar['label']} >= {bar['at_least']:.2f} ({shown})", _verdict(mean, bar["at_least"]))


#: The label-free recipe the headline reports, and the supervised rows it is read against:
#: the MedMNIST v2 protocol (``*-medmnist``), never the shorter ``resnet18-supervised``.
HEADLINE_STRATA = "default"
HEADLINE_SUPERVISED = ("resnet18-medmnist", "resnet50-medmnist")


def _headline(summary: pd.DataFrame) -> list[str]:
    """Per dataset with a ``default`` row: its strata against the protocol supervised rows
    and the majority-class rate (no row: nothing).
    """
    lines = []
    for dataset in dict.fromkeys(summary["dataset"]):
        rows = _rows(summary, dataset)
        strata = _pick(rows, HEADLINE_STRATA, "acc")
        if strata is None:
            continue
        supervised = [
            f"{method} {_cell(row, 'acc')} (AUC {_cell(row, 'auc')})"
            for method in HEADLINE_SUPERVISED
            if (row := _pick(rows, method, "acc")) is not None
        ]
        lines.append(
            f"| {dataset} | {_cell(strata, 'acc')} | {_cell(strata, 'nmi')} | "
            f"{_cell(strata, 'linear_probe_acc')} | {'; '.join(supervised) or 'not run'} | "
            f"{float(strata['majority_rate']):.3f} |"
        )
    if not lines:
        return []
    return [
        "## Headline: the label-free strata against the supervised protocol",
        "",
        f"`{HEADLINE_STRATA}` (the default `Stratifier()`, no labels) against the supervised "
        "MedMNIST v2 protocol rows trained with every label (`*-medmnist`); cluster ACC of "
        "the strata, classification ACC of the supervised rows.",
        "",
        "| dataset | strata ACC | strata NMI | linear probe | supervised protocol | "
        "majority class |",
        "|---|---|---|---|---|---|",
        *lines,
        "",
    ]


#: The rows of the label-budget table: method -> (family, percent of train labels known).
LABEL_BUDGET = {
    "default": ("strata", 0),
    "guided-1pct": ("strata", 1),
    "guided-10pct": ("strata", 10),
    "resnet18-medmnist-1pct": ("supervised", 1),
    "resnet18-medmnist-10pct": ("supervised", 10),
    "resnet18-medmnist": ("supervised", 100),
}


def label_budget(summary: pd.DataFrame) -> pd.DataFrame:
    """The label-budget rows of the datasets with a guided row: one row per (dataset,
    method of :data:`LABEL_BUDGET`) with ``family``, ``percent``, ACC ``mean`` / ``sd``,
    ``n_seeds``, ``majority_rate`` and ``scoring`` (empty without a guided row).
    """
    columns = [
        "dataset", "method", "family", "percent", "mean", "sd", "n_seeds", "majority_rate",
        "scoring",
    ]  # fmt: skip
    guided = summary[summary["method"].str.startswith("guided-")]
    rows = summary[
        summary["dataset"].isin(set(guided["dataset"])) & summary["method"].isin(LABEL_BUDGET)
    ]
    table = pd.DataFrame(
        {
            "dataset": rows["dataset"],
            "method": rows["method"],
            "family": [LABEL_BUDGET[m][0] for m in rows["method"]],
            "percent": [LABEL_BUDGET[m][1] for m in rows["method"]],
            "mean": rows["acc_mean"],
            "sd": rows["acc_sd"],
            "n_seeds": rows["n_seeds"],
            "majority_rate": rows["majority_rate"],
            "scoring": rows["scoring"],
        },
        columns=columns,
    )
    return table.sort_values(["dataset", "percent", "family"], kind="stable").reset_index(drop=True)


def _label_budget_lines(table: pd.DataFrame, figure: str | None) -> list[str]:
    """The "how many labels to buy" section: per dataset and share of labels, the strata's
    cluster ACC beside the supervised protocol's ACC on the same labels.
    """
    if table.empty:
        return []
    lines = [
        "## How many labels to buy",
        "",
        "Per share of the training labels known: the strata's cluster ACC (`default` with no "
        "label, `guided-*` told a stratified, seeded share; k = number of classes) beside "
        "the MedMNIST v2 protocol trained on the same labelled images and selected on the "
        "same share of val (`resnet18-medmnist-*pct`; 100 %: `resnet18-medmnist`). Test "
        "split; mean ± sd over seeds (seed count in brackets).",
        "",
        "| dataset | labels | strata ACC | supervised ACC | majority class |",
        "|---|---:|---|---|---|",
    ]
    for (dataset, percent), part in table.groupby(["dataset", "percent"], sort=False):
        transductive = part["scoring"].astype(str).str.startswith("transductive").any()
        cells = {}
        for family in ("strata", "supervised"):
            row = part[part["family"] == family]
            if row.empty:  # "–": no method of this family at this share, or none can apply
                exists = (family, percent) in LABEL_BUDGET.values()
                no_split = family == "supervised" and transductive
                cells[family] = (
                    "– (no held-out split)" if no_split else ("not run" if exists else "–")
                )
                continue
            r = row.iloc[0]
            spread = "" if r["n_seeds"] == 1 else f" ± {r['sd']:.3f}"
            cells[family] = f"{r['mean']:.3f}{spread} ({int(r['n_seeds'])})"
        lines.append(
            f"| {dataset} | {percent} % | {cells['strata']} | {cells['supervised']} | "
            f"{part['majority_rate'].mean():.3f} |"
        )
    if figure:
        lines += ["", f"![label efficiency]({figure})"]
    return [*lines, ""]


def _environment(results: pd.DataFrame) -> str:
    import sklearn
    import torch

    commits = sorted(set(results["git_commit"].dropna().astype(str)))
    versions = sorted(set(results["stratify_version"].dropna().astype(str)))
    return (
        f"stratify {', '.join(versions) or 'unknown'} "
        f"(commits {', '.join(commits) or 'unknown'}), torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
        f"threads, device(s): {', '.join(sorted(set(results['device'].dropna().astype(str))))}"
    )


def _total_fit_time(results: pd.DataFrame) -> list[str]:
    """How long the reported rows' fits took together (their ``fit_seconds``), as report lines.

    Summed from the rows rather than written into a profile's description, so the sentence
    stays true as rows are added; empty when no row was timed.
    """
    seconds = pd.to_numeric(results["fit_seconds"], errors="coerce").dropna()
    if seconds.empty:
        return []
    return [
        f"The {len(seconds)} timed rows' fits add up to {seconds.sum() / 60:.0f} minutes "
        "(plus loading and scoring).",
        "",
    ]


def _dirty_rows(results: pd.DataFrame) -> list[str]:
    """A warning paragraph naming the rows run from uncommitted code (none: nothing)."""
    if "git_commit" not in results:
        return []
    dirty = results[results["git_commit"].astype(str).str.endswith("+dirty")]
    if dirty.empty:
        return []
    commits = ", ".join(sorted(dirty["git_commit"].astype(str).unique()))
    return [
        f"**{len(dirty)} of {len(results)} rows were run from uncommitted code** ({commits}): "
        "they cannot be reproduced from the repository.",
        "",
    ]


def _seed_agreement_lines(out: Path) -> list[str]:
    """Per (dataset, method): the adjusted Rand index between the strata of every pair of
    seeds (``seed_agreement.csv``, :mod:`lab.agreement`); nothing without that file."""
    path = Path(out) / "seed_agreement.csv"
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    grouped = table.groupby(["dataset", "method"], sort=True)["ari"]
    lines = [
        "## Seed agreement",
        "",
        "Adjusted Rand index between the scored strata of two seeds of the same method "
        "(1: the same partition; 0: chance), over every pair of seeds (`seed_agreement.csv`). "
        "Sets whose patients are drawn per seed (the synthetic cohort, seeded subsets) have "
        "no pairs to compare.",
        "",
        "| dataset | method | seed pairs | mean ARI | min ARI |",
        "|---|---|---:|---|---:|",
    ]
    for (dataset, method), ari in grouped:
        lines.append(f"| {dataset} | {method} | {len(ari)} | {mean_sd(ari, 3)} | {ari.min():.3f} |")
    return [*lines, ""]


def write_report(
    results: pd.DataFrame, out: str | os.PathLike, profile_name: str, profile: Mapping[str, Any]
) -> Path:
    """Write ``report.md`` and ``acc_by_method.png`` in ``out`` from the results.

    Only the rows of ``profile_name`` are reported. Returns the report's path.
    """
    out = Path(out)
    results = results[results["profile"].astype(str) == profile_name]
    command = (
        " ".join(["python benchmarks/run.py", *sys.argv[1:]])
        if sys.argv[1:]
        else (f"python benchmarks/run.py --profile {profile_name} --out {out}")
    )
    lines = [
        f"# stratify benchmark: profile `{profile_name}`",
        "",
        f"Command: `{command}`",
        "",
        f"{profile.get('description', '')}. Seeds {list(profile.get('seeds', []))}; written "
        f"{time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    if results.empty:
        lines.append("No runs yet.")
        write_text("\n".join(lines) + "\n", out / "report.md")
        return out / "report.md"
    lines += [_environment(results), "", *_total_fit_time(results), *_dirty_rows(results)]
    lines += [
        "Protocol: unsupervised methods fit on the training split without labels, k = number "
        "of classes; the test split is assigned with `predict` and scored (ACC with the "
        "Hungarian matching, extra clusters count as errors; NMI; ARI). kNN (k=10, cosine) "
        "and linear probes (logistic regression) train on training latents and test on test "
        "latents. Datasets without a split (MNIST test set, synthetic cohorts) are scored "
        "transductively and their probes cross-validated. Cells are mean ± sd over seeds; "
        "`fit s` is the wall time of fitting (the clusterer variants re-use the trained "
        "network of `ae-simclr-kmeans`, so their time is the clustering's), `peak MB` the "
        "peak resident memory of the run.",
        "",
    ]
    summary = summarize(results)
    lines += _headline(summary)
    budget = label_budget(summary)
    figure = None
    if (budget["percent"] > 0).any():
        figure = "label_efficiency.png"
        plotting.plot_label_efficiency(budget, path=out / figure)
    lines += _label_budget_lines(budget, figure)
    if profile.get("bars"):
        lines += [
            "## The bar (the profile's acceptance criteria; test split, k = number of "
            "classes, mean over 3 seeds)",
            "",
            "| criterion | verdict |",
            "|---|---|",
        ]
        lines += [
            f"| {text} | {verdict} |"
            for text, verdict in (check_bar(summary, bar) for bar in profile["bars"])
        ]
        lines.append("")
    for dataset in dict.fromkeys(results["dataset"]):
        frame = results[results["dataset"] == dataset]
        ok = frame[frame["status"] == "ok"]
        lines += [f"## {dataset}", ""]
        if not ok.empty:
            first = ok.iloc[0]
            level = str(first["probe_level"]) if isinstance(first["probe_level"], str) else ""
            lines.append(
                f"Scored on: {first['scoring']} ({int(first['n_test'])} samples; trained on "
                f"{int(first['n_train'])}); majority-class rate {float(first['majority_rate']):.3f}"
                + (f"; probes at {level} level" if level else "")
                + "."
            )
            supervised = ok[ok["kind"] == "supervised"]
            if not supervised.empty:
                lines.append(
                    "Supervised rows (see the method table in `benchmarks/lab/methods.py`): "
                    "ACC and balanced ACC are classification accuracies, AUC from the class "
                    "probabilities, NMI / ARI compare predicted and true classes; "
                    "`*-medmnist` rows follow the MedMNIST v2 protocol (100 epochs), "
                    "`*-short` rows the same protocol shortened, `*-transfer` and "
                    "`*-finetune` start from pretrained trunks."
                )
            lines += ["", *_dataset_table(summary, dataset), ""]
        for label, value in ANCHORS.get(dataset.removesuffix("-slices"), []):
            lines.append(f"* Published: {label}: {value}")
        failed = frame[frame["status"] == "failed"]
        for _, row in failed.iterrows():
            lines.append(f"* FAILED {row['method']} seed {row['seed']}: {row['error']}")
        lines.append("")
    lines += _seed_agreement_lines(out)
    lines += ["## Figures", ""]
    scored = results[(results["status"] == "ok") & results["acc"].notna()]
    if not scored.empty:
        plotting.plot_scores(scored, metric="acc", path=out / "acc_by_method.png")
        lines += ["![ACC per method](acc_by_method.png)", ""]
    for folder in sorted((out / "figures").glob("*")) if (out / "figures").is_dir() else []:
        for png in sorted(folder.glob("*.png")):
            lines.append(f"* [{folder.name}/{png.name}](figures/{folder.name}/{png.name})")
    write_text("\n".join(lines) + "\n", out / "report.md")
    return out / "report.md"


def run_figures(
    data: BenchmarkData, result: MethodResult, folder: str | os.PathLike, method: str
) -> list[Path]:
    """Figures of one fitted run: latent space, heatmap, reconstructions, samples, curves.

    The latent space and the heatmap show the scored samples (the test split, or every
    sample when transductive); generation figures need a model with a decoder.
    """
    folder = Path(folder)
    written = []
    model = result.model
    if result.test_embedding is not None:
        written.append(folder / f"{method}_latent_space.png")
        space, name = result.test_embedding, "latent space"
        if hasattr(model, "clustered_space"):
            space = (
                model.clustered_space()
                if data.transductive
                else model.clustered_space(data.test.images)
            )
            name = "clustered space"
        plotting.plot_latent_space(
            space,
            result.test_labels,
            data.test.labels,
            truth_name="true class",
            space_name=name,
            path=written[-1],
        )
    written.append(folder / f"{method}_heatmap.png")
    plotting.plot_contingency(data.test.labels, result.test_labels, path=written[-1])
    if model is not None and getattr(getattr(model, "model_", None), "has_decoder", False):
        shown = data.test.images[:10]
        if shown.ndim == 4:
            written.append(folder / f"{method}_reconstructions.png")
            plotting.plot_image_grid(
                {"input": shown, "reconstruction": model.reconstruct(shown)}, path=written[-1]
            )
            rows = {}
            for k in range(model.n_clusters_):
                real = data.test.images[result.test_labels == k][:10]
                if len(real):
                    rows[f"stratum {k}: real"] = real
                rows[f"stratum {k}: synthetic"] = model.sample(10, cluster=k, random_state=0)
            written.append(folder / f"{method}_samples_per_stratum.png")
            plotting.plot_image_grid(rows, value_range=model.data_range_, path=written[-1])
    if model is not None and hasattr(model, "history_"):
        written.append(folder / f"{method}_training.png")
        weights = getattr(getattr(model, "objective_", None), "current_weights", None)
        plotting.plot_history(model.history_, weights() if weights else None, path=written[-1])
    return written
