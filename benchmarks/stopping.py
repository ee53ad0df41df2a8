"""Choosing the label-free stopping rule's threshold on the validation data, never on test.

For each dataset and seed, **one** default fit runs its whole epoch budget
(``epochs="auto"``). After every check epoch of the stopping rule
(:func:`stratify.training.convergence.check_epochs`, every 5 % of the budget) the script
records the rule's k-NN agreement of the fit's probe with the previous check, snapshots the
network, and later clusters each snapshot exactly as ``fit`` does (``--clusterer``, the
default clustering unless named, on the training latents; the committed ``stopping.md`` ran
when that default was the heads) and scores the strata on the selection data: MedMNIST's
``val`` split, or for the cohort a held-out cohort (seed + ``HELD_OUT_COHORT_OFFSET``,
fitted and scored transductively). The checks draw nothing from the fit's random streams,
so a fit with ``stop_agreement=t`` is exactly the full fit's snapshot at its first check with
agreement >= t: every threshold is evaluated from the one fit.

**The rule, declared before the run.** Candidates t in {0.50, 0.55, ..., 0.95} (and no stop,
the full budget). For each (set, seed) the stop is the first check with agreement >= t. The
chosen t is the *smallest* (the earliest stops) such that (a) the mean val ACC over every
(set, seed) is at least the full budget's mean minus 0.01, and (b) each set's mean val ACC is
at least that set's full-budget mean minus 0.02. If no t passes, the default stays the full
budget (``stop_agreement=None``).

**Rescoring with another clustering** (``--clusterer NAME --rescore CSV``). The agreement
trajectory does not depend on the clustering, only the val ACC of each stop does. Given an
earlier run's trajectories (``CSV``) and its cached full fits (``--model-cache``), the script
trains each (set, seed) again only up to the last check that is a stop of a candidate
t <= ``--max-threshold``, snapshots those checks, and scores them and the cached full fit with
``NAME``. The recomputed agreements are compared with the recorded ones (the fits are
deterministic; a difference is reported). The rule is the same, on the candidates up to
``--max-threshold``: the smallest passing one is what the whole grid would choose whenever
one of them passes; if none passes, none is chosen (the full budget).

Usage::

    python benchmarks/stopping.py --datasets pneumoniamnist breastmnist cohort \
        --seeds 0 1 2 --out benchmarks/results/stopping.md [--model-cache DIR]
    python benchmarks/stopping.py --clusterer consensus-spectral --max-threshold 0.8 \
        --rescore benchmarks/results/stopping.csv --model-cache DIR \
        --out benchmarks/results/stopping-consensus-spectral.md
    python benchmarks/stopping.py --report-only --clusterer head \
        --out benchmarks/results/stopping.md
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import normalized_mutual_info_score

import stratify._parts as estimator_module  # where the estimator calls train
from lab.datasets import load_dataset
from lab.methods import cache_file
from lab.provenance import git_commit, header, mean_sd
from lab.store import accumulate
from stratify import Stratifier
from stratify._atomic import write_text
from stratify._random import seed_from
from stratify.analysis.metrics import cluster_accuracy
from stratify.cluster.backends import DEFAULT_BACKEND
from stratify.training.batches import as_image_tensor
from stratify.training.config import TrainConfig
from stratify.training.convergence import NeighbourProbe, check_epochs

#: Candidate thresholds of the declared rule.
THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
#: Tolerances of the declared rule: on the mean over every (set, seed), and per set.
MEAN_TOLERANCE, SET_TOLERANCE = 0.01, 0.02


class _Enough(Exception):
    """Raised after the last check a rescoring run needs: the rest of the fit is not run."""


def _recording_train(snapshots: list[dict[str, Any]], needed: set[int] | None = None):
    """``stratify.training.train`` that also records the probe's agreement and a copy of the
    weights after every check epoch, into ``snapshots``. With ``needed``, only those checks
    keep weights and training ends (:class:`_Enough`) after the last of them.
    """
    original = estimator_module.train

    def train(model, objective, images, *, config: TrainConfig, random_state, **kwargs):
        tensor = as_image_tensor(images, "images")
        probe = NeighbourProbe(tensor, torch.arange(tensor.shape[0]), seed_from(random_state))
        checks = set(check_epochs(config.epochs, config.check_every))
        start, in_checks = time.perf_counter(), [0.0]

        def record(epoch: int, row: dict[str, float]) -> None:
            if epoch not in checks:
                return
            began = time.perf_counter()
            snapshots.append(
                {
                    "epoch": epoch,
                    "budget": config.epochs,
                    "train_seconds": began - start - in_checks[0],  # the checks not counted
                    "knn_agreement": probe.agreement(model, 256, next(model.parameters()).device),
                    "weights": (
                        copy.deepcopy(model.state_dict())
                        if needed is None or epoch in needed
                        else None
                    ),
                }
            )
            in_checks[0] += time.perf_counter() - began
            if needed is not None and epoch >= max(needed):
                raise _Enough

        return original(
            model,
            objective,
            images,
            config=config,
            random_state=random_state,
            callbacks=[record],
            **kwargs,
        )

    return train


def _score(model: Stratifier, data: Any) -> tuple[float, float, float]:
    """Cluster the model's current network as ``fit`` does; (val ACC, val NMI, seconds)."""
    start = time.perf_counter()
    model._embed_training(data.train.images)
    model._fit_clusterer()
    seconds = time.perf_counter() - start
    if data.transductive:
        truth, strata = data.train.labels, model.labels_
    else:
        truth, strata = data.test.labels, model.predict(data.test.images)
    return cluster_accuracy(truth, strata), normalized_mutual_info_score(truth, strata), seconds


def run_one(
    dataset: str,
    seed: int,
    model_cache: str | None = None,
    clusterer: str = DEFAULT_BACKEND,
    earlier: pd.DataFrame | None = None,
    thresholds: tuple[float, ...] = THRESHOLDS,
) -> list[dict]:
    """Every check of one full default fit, each clustered with ``clusterer`` and scored on
    the selection data. With
    ``model_cache``, the full fit is saved there as the benchmark runner's ``default``
    network of this set and seed (the recording changes nothing about it).

    With ``earlier`` (this set and seed's trajectory from an earlier run), the fit is rerun
    only up to the last stop of ``thresholds``; those stops and the cached full fit (which
    must exist) are scored with ``clusterer``.
    """
    data = load_dataset(dataset, seed=seed, split="val")
    snapshots: list[dict[str, Any]] = []
    needed = None
    if earlier is not None:
        needed = {int(stops(earlier, t)["epoch"].iloc[0]) for t in thresholds}
    original = estimator_module.train
    estimator_module.train = _recording_train(snapshots, needed)
    try:
        model = Stratifier(data.n_classes, random_state=seed)
        path = None if model_cache is None else cache_file(model_cache, data, seed, model)
        if earlier is not None and (path is None or not path.is_file()):
            raise FileNotFoundError(
                f"rescoring {dataset} seed {seed} needs its cached full fit; expected "
                f"{path} (--model-cache of the earlier run)"
            )
        try:
            model.fit(data.train.images, metadata=data.train.metadata)
        except _Enough:
            pass
    finally:
        estimator_module.train = original
    rows = []
    if earlier is None:
        if path is not None and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
        model.set_params(clusterer=clusterer)
    else:  # the full budget: the cached fit, its time and agreement as recorded
        model = Stratifier.load(path)
        model.set_params(clusterer=clusterer)
        last = earlier.sort_values("epoch").iloc[-1]
        full = {key: last[key] for key in ("epoch", "budget", "train_seconds", "knn_agreement")}
        snapshots.append(
            {
                **full,
                "weights": None,
                "recorded": last["knn_agreement"],
                "scores": _score(model, data),
            }
        )
        recorded = earlier.set_index("epoch")["knn_agreement"]
        for snap in snapshots[:-1]:
            snap["recorded"] = recorded.get(snap["epoch"], np.nan)
    for snap in snapshots:
        if snap["weights"] is not None:
            model.model_.load_state_dict(snap["weights"])
            acc, nmi, seconds = _score(model, data)
        else:  # the cached full fit's scores, or a check no stop needs (its agreement only)
            acc, nmi, seconds = snap.get("scores", (np.nan, np.nan, np.nan))
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "epoch": snap["epoch"],
                "budget": snap["budget"],
                "fraction": snap["epoch"] / snap["budget"],
                "train_seconds": snap["train_seconds"],
                "cluster_seconds": seconds,
                "knn_agreement": snap["knn_agreement"],
                "val_acc": acc,
                "val_nmi": nmi,
                "n_train": len(data.train),
                "git_commit": git_commit(),
                **({} if earlier is None else {"recorded_agreement": snap["recorded"]}),
            }
        )
    return rows


def stops(trajectories: pd.DataFrame, threshold: float | None) -> pd.DataFrame:
    """The check each (set, seed) stops at under ``threshold`` (None: the last check)."""
    chosen = []
    for _, run in trajectories.sort_values("epoch").groupby(["dataset", "seed"], sort=False):
        hit = run[run["knn_agreement"] >= threshold] if threshold is not None else run.iloc[:0]
        chosen.append(hit.iloc[0] if len(hit) else run.iloc[-1])
    return pd.DataFrame(chosen).reset_index(drop=True)


def choose(
    trajectories: pd.DataFrame, thresholds: tuple[float, ...] = THRESHOLDS
) -> tuple[float | None, pd.DataFrame]:
    """The declared rule: the smallest passing threshold (None: none passes), and the table
    of every candidate.
    """
    full = stops(trajectories, None)
    full_mean, full_sets = full["val_acc"].mean(), full.groupby("dataset")["val_acc"].mean()
    table, chosen = [], None
    for threshold in (*thresholds, None):
        at = stops(trajectories, threshold)
        sets = at.groupby("dataset")["val_acc"].mean()
        passes = bool(
            at["val_acc"].mean() >= full_mean - MEAN_TOLERANCE
            and (sets >= full_sets - SET_TOLERANCE).all()
        )
        if threshold is not None and passes and chosen is None:
            chosen = threshold
        table.append(
            {
                "threshold": threshold,
                "mean_acc": at["val_acc"].mean(),
                "worst_set": sets.min(),
                "fraction": at["fraction"].mean(),
                "passes": passes,
                **{f"acc_{name}": value for name, value in sets.items()},
                **{
                    f"fraction_{name}": value
                    for name, value in at.groupby("dataset")["fraction"].mean().items()
                },
            }
        )
    return chosen, pd.DataFrame(table)


def _agreement_gap(trajectories: pd.DataFrame) -> str:
    """The largest |recomputed - recorded| agreement over the checks, as text."""
    gap = (trajectories["knn_agreement"] - trajectories["recorded_agreement"]).abs().max()
    return "none compared" if pd.isna(gap) else f"{gap:.2g}"


def report(
    trajectories: pd.DataFrame,
    datasets: list[str],
    seeds: list[int],
    out: Path,
    thresholds: tuple[float, ...] = THRESHOLDS,
    clusterer: str = DEFAULT_BACKEND,
) -> None:
    chosen, table = choose(trajectories, thresholds)
    ran = trajectories.groupby(["dataset", "seed"]).ngroups
    missing = len(datasets) * len(seeds) - ran
    verdict = (
        f"**Partial: {ran} of {len(datasets) * len(seeds)} (set, seed) runs; no threshold is "
        "chosen until every run is in (rerun the command: it resumes).**"
        if missing
        else f"**Chosen: {'no stop (the full budget)' if chosen is None else f't = {chosen}'}.**"
    )
    sets = sorted(trajectories["dataset"].unique())
    lines = [
        *header(
            "Choosing the stopping rule's threshold (selection data, never test)",
            "benchmarks/stopping.py",
            trajectories,
            seeds,
            "2 CPU cores, no GPU",
        ),
        (
            "One full default fit per (set, seed); at every check (5 % of the epoch budget) the "
            "probe's 10-NN agreement with the previous check and the val ACC of that snapshot's "
            f"strata (`{clusterer}`, as `fit` clusters)."
            if "recorded_agreement" not in trajectories
            else "The earlier run's fits rerun up to the last stop of a candidate; those stops "
            f"and the cached full fits clustered with `{clusterer}` as `fit` clusters, scored on "
            "val. Largest difference between the recomputed and the recorded agreements: "
            + _agreement_gap(trajectories)
            + "."
        )
        + " The rule, declared before the run: the "
        f"smallest t in {list(thresholds)} whose stops keep the mean val ACC within "
        f"{MEAN_TOLERANCE} of the full budget's and every set's mean within {SET_TOLERANCE} of "
        "its own.",
        "",
        verdict,
        "",
        "| t | mean val ACC | worst set | budget used | passes | "
        + " | ".join(f"{s} ACC (budget)" for s in sets)
        + " |",
        "|---:|---:|---:|---:|:---:|" + "---:|" * len(sets),
    ]
    for _, row in table.iterrows():
        name = "full" if pd.isna(row["threshold"]) else f"{row['threshold']:.2f}"
        lines.append(
            f"| {name} | {row['mean_acc']:.3f} | {row['worst_set']:.3f} | "
            f"{row['fraction']:.0%} | {'yes' if row['passes'] else 'no'} | "
            + " | ".join(f"{row[f'acc_{s}']:.3f} ({row[f'fraction_{s}']:.0%})" for s in sets)
            + " |"
        )
    if missing:  # a per-set comparison with a stop chosen on part of the runs would mislead
        write_text(
            "\n".join([*lines, "", f"Trajectories: `{out.with_suffix('.csv').name}`.", ""]), out
        )
        return
    lines += [
        "",
        "Per set, the full budget against the chosen stop (mean ± sd over seeds):",
        "",
        "| set | full: val ACC | full: train s | stop: val ACC | stop: train s | stop epoch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    full, at = stops(trajectories, None), stops(trajectories, chosen)
    for name in sets:
        f, a = full[full["dataset"] == name], at[at["dataset"] == name]
        lines.append(
            f"| {name} | {mean_sd(f['val_acc'], 3)} | {mean_sd(f['train_seconds'], 0)} | "
            f"{mean_sd(a['val_acc'], 3)} | {mean_sd(a['train_seconds'], 0)} | "
            f"{', '.join(str(int(e)) for e in a['epoch'])} of {int(a['budget'].iloc[0])} |"
        )
    lines += ["", f"Trajectories: `{out.with_suffix('.csv').name}` (one row per check).", ""]
    write_text("\n".join(lines), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["pneumoniamnist", "breastmnist", "cohort"]
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/stopping.md"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--model-cache",
        default=None,
        help="save each full default fit here, where benchmarks/run.py --model-cache finds it",
    )
    parser.add_argument(
        "--clusterer", default=DEFAULT_BACKEND, help="the clustering that scores the stops"
    )
    parser.add_argument(
        "--rescore",
        type=Path,
        default=None,
        help="an earlier run's trajectories: rerun its fits only up to the needed stops",
    )
    parser.add_argument("--max-threshold", type=float, default=max(THRESHOLDS))
    args = parser.parse_args(argv)
    thresholds = tuple(t for t in THRESHOLDS if t <= args.max_threshold + 1e-9)
    if not thresholds:
        parser.error(f"--max-threshold must be >= {min(THRESHOLDS)}; got {args.max_threshold}")
    if args.rescore is not None and args.model_cache is None:
        parser.error("--rescore needs --model-cache (the earlier run's full fits)")
    path = args.out.with_suffix(".csv")
    if args.report_only and not path.is_file():
        parser.error(f"--report-only reads the trajectories {path}; no such file")
    earlier = None if args.rescore is None else pd.read_csv(args.rescore)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = accumulate(  # --report-only: no run, the CSV as it is
        path,
        []
        if args.report_only
        else [(dataset, seed) for dataset in args.datasets for seed in args.seeds],
        lambda d, s: pd.DataFrame(
            run_one(
                d,
                s,
                args.model_cache,
                args.clusterer,
                None if earlier is None else earlier[(earlier.dataset == d) & (earlier.seed == s)],
                thresholds,
            )
        ),
        lambda d, s, rows: f"{d} seed {s}: {len(rows)} checks",
    )
    keep = results["dataset"].isin(args.datasets) & results["seed"].isin(args.seeds)
    report(results[keep], args.datasets, args.seeds, args.out, thresholds, args.clusterer)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
