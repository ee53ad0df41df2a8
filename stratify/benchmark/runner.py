"""The benchmark runner: a grid of datasets x methods x seeds, one CSV row per run.

Protocol (see the README, section Benchmarks): every unsupervised method fits on the
training split without labels, with k = the number of classes; the test split is assigned
with ``predict`` and scored (cluster ACC with the Hungarian matching, NMI, ARI; the
majority-class rate beside them); the kNN and linear probes train on the training latents
and test on the test latents. Datasets without a split (the MNIST test set, the synthetic
cohorts) are scored transductively, as the deep-clustering literature does, and their probes
are 5-fold cross-validated. Slice datasets also get volume-level probes (slice latents
averaged per volume).

Each finished run is appended to ``results.csv`` atomically (a temporary file, then a
rename), so an interrupted grid loses only the run in progress, and completed runs are
skipped on restart. A run that fails is recorded with its error and the grid goes on; it is
tried again on the next start.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from stratify import metrics
from stratify._atomic import write_csv
from stratify._version import __version__
from stratify.benchmark.datasets import BenchmarkData, Split, load_dataset
from stratify.benchmark.methods import METHODS, MethodResult, Settings, clear_cache
from stratify.benchmark.provenance import PeakMemory, git_commit

__all__ = ["COLUMNS", "PROFILES", "Run", "expand", "git_commit", "main", "read_results",
           "record", "run_grid", "run_one", "score"]

#: Columns of results.csv, in order.
COLUMNS = [
    "dataset", "method", "seed", "profile", "status", "kind", "scoring", "acc", "bacc", "nmi",
    "ari", "knn_acc", "linear_probe_acc", "probe_level", "auc", "fidelity",
    "reconstruction_fidelity", "diversity_ratio",
    "majority_rate", "n_classes", "k",
    "n_train", "n_test", "epochs", "fit_seconds", "peak_rss_mb", "error", "torch_version",
    "stratify_version", "git_commit", "device", "finished",
]

_UNSUPERVISED = [
    "pca-kmeans", "ae-kmeans", "vae-kmeans", "simclr-kmeans", "ae-simclr-kmeans",
    "vae-simclr-kmeans", "vae-simclr-gmm", "ae-simclr-gmm", "ae-simclr-hdbscan",
]
#: The strata rows of the clustering issue: what the manifold step and self-training add.
_STRATA = ["ae-simclr-kmeans", "ae-simclr-gmm", "ae-simclr-hdbscan", "ae-simclr-umap-kmeans",
           "ae-simclr-umap-gmm", "ae-simclr-umap-hdbscan", "ae-simclr-auto-gmm",
           "ae-simclr-selftrain-gmm",
           "ae-simclr-selftrain-umap-gmm"]
_ABLATION = ["ae-simclr-kmeans", "ae-simclr+yaware", "ae-simclr+clinical", "ae-simclr+wsp"]

#: Named grids. Each block is run as datasets x methods x seeds; ``epochs`` and
#: ``n_samples`` may be given per dataset (``"default"`` for the others).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "smoke test: the synthetic cohort, small and short (CI)",
        "seeds": [0],
        "blocks": [
            {"datasets": ["cohort"], "methods": [*_UNSUPERVISED, *_ABLATION[1:]]},
            {"datasets": ["cohort3d-slices"], "methods": ["ae-simclr-kmeans", "ae-simclr+wsp"]},
        ],
        "epochs": {"default": 3},
        "n_samples": {"cohort": 240, "cohort3d-slices": 24},
        "batch_size": 64,
        "supervised_epochs": 2,
        "slice_stride": 4,
        "figures": {"cohort": "ae-simclr-kmeans"},
    },
    "full": {
        "description": "the committed results: MedMNIST, MNIST, cohort ablations, 3 seeds "
                       "(run in parts on 2 CPU cores: the committed rows' fit times add up to 76 "
                       "minutes, plus loading and scoring)",
        "seeds": [0, 1, 2],
        "blocks": [
            {"datasets": ["cohort"], "methods": ["pca-kmeans", *_STRATA, *_ABLATION[1:]]},
            {"datasets": ["pneumoniamnist", "breastmnist"],
             "methods": [*_UNSUPERVISED, *_STRATA[3:], "resnet18-supervised"]},
            {"datasets": ["mnist"], "methods": ["pca-kmeans", "simclr-kmeans", *_STRATA,
                                                "vae-simclr-gmm"]},
            {"datasets": ["cohort3d-slices"], "methods": ["ae-simclr-kmeans", "ae-simclr+yaware",
                                                          "ae-simclr+wsp"]},
            {"datasets": ["adrenalmnist3d-slices"],
             "methods": ["ae-simclr-kmeans", "ae-simclr+yaware", "ae-simclr+wsp"]},
            {"datasets": ["adrenalmnist3d"], "methods": ["resnet18-supervised"], "seeds": [0]},
        ],
        "epochs": {"default": 15, "pneumoniamnist": 12, "breastmnist": 40, "mnist": 8,
                   "adrenalmnist3d-slices": 6},
        "n_samples": {"cohort3d-slices": 120},
        "batch_size": 256,
        "supervised_epochs": {"default": 15, "adrenalmnist3d": 10},
        "slice_stride": {"default": 2, "adrenalmnist3d-slices": 4},
        "figures": {"pneumoniamnist": ["ae-simclr-kmeans", "vae-simclr-gmm"],
                    "cohort": "ae-simclr+yaware", "mnist": ["ae-simclr-kmeans", "vae-simclr-gmm"]},
    },
}


@dataclass(frozen=True)
class Run:
    """One cell of the grid."""

    dataset: str
    method: str
    seed: int


def _per_dataset(value: Any, dataset: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(dataset, value.get("default"))
    return value


def expand(profile: Mapping[str, Any], datasets: Sequence[str] | None = None,
           methods: Sequence[str] | None = None, seeds: Sequence[int] | None = None
           ) -> list[Run]:
    """The runs of a profile, optionally restricted to some datasets, methods or seeds.

    A block may carry its own ``"seeds"`` (e.g. one seed for an expensive baseline). Runs are
    ordered dataset, then seed, then method, so that methods sharing a trained network
    (``ae-simclr-kmeans``, ``-gmm``, ``-hdbscan``) find it in the cache of
    :mod:`stratify.benchmark.methods`.
    """
    unknown = [m for m in methods or () if m not in METHODS]
    if unknown:
        raise ValueError(f"Expected methods among {sorted(METHODS)}, got unknown {unknown}.")
    runs = []
    for block in profile["blocks"]:
        for dataset in block["datasets"]:
            if datasets and dataset not in datasets:
                continue
            # seed-major: the clusterer variants of a seed follow its trained network (cache)
            for seed in seeds if seeds is not None else block.get("seeds", profile["seeds"]):
                for method in block["methods"]:
                    if methods and method not in methods:
                        continue
                    runs.append(Run(dataset, method, int(seed)))
    if datasets:  # datasets named on the command line but in no block: every method asked
        known = {d for block in profile["blocks"] for d in block["datasets"]}
        for dataset in datasets:
            if dataset not in known:
                for seed in seeds if seeds is not None else profile["seeds"]:
                    for method in methods or _UNSUPERVISED:
                        runs.append(Run(dataset, method, int(seed)))
    return runs


# --------------------------------------------------------------------------- scoring
def _group_means(embedding: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Average the slice latents of each volume: (n_volumes, D) and the volume labels."""
    groups, inverse = np.unique(split.groups, return_inverse=True)
    sums = np.zeros((len(groups), embedding.shape[1]))
    np.add.at(sums, inverse, embedding)
    means = sums / np.bincount(inverse)[:, None]
    labels = np.zeros(len(groups), dtype=np.int64)
    labels[inverse] = split.labels
    return means, labels


def _accuracy(y_true: np.ndarray, labels: np.ndarray) -> float:
    """Hungarian ACC; extra clusters (HDBSCAN) count as errors, so it is never inflated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return metrics.cluster_accuracy(y_true, labels)


def score(data: BenchmarkData, result: MethodResult, seed: int) -> dict[str, Any]:
    """The agreement and probe scores of one run (see the module docstring)."""
    y_test = data.test.labels
    scores: dict[str, Any] = {
        "acc": _accuracy(y_test, result.test_labels),
        "bacc": metrics.balanced_cluster_accuracy(y_test, result.test_labels),
        "nmi": float(normalized_mutual_info_score(y_test, result.test_labels)),
        "ari": float(adjusted_rand_score(y_test, result.test_labels)),
        "majority_rate": metrics.majority_rate(y_test),
        "n_classes": data.n_classes,
        "k": result.n_clusters,
        "knn_acc": float("nan"),
        "linear_probe_acc": float("nan"),
        "probe_level": "",
        "auc": result.extra.get("auc", float("nan")),
        "fidelity": result.extra.get("fidelity", float("nan")),
        "reconstruction_fidelity": result.extra.get("reconstruction_fidelity", float("nan")),
        "diversity_ratio": result.extra.get("diversity_ratio", float("nan")),
    }
    if result.train_embedding is None:
        return scores
    train_z, train_y = result.train_embedding, data.train.labels
    test_z = result.test_embedding
    level = "sample"
    if data.train.groups is not None:
        train_z, train_y = _group_means(train_z, data.train)
        test_z, y_test = _group_means(test_z, data.test)
        level = "volume"
    if data.transductive:
        folds = int(min(5, np.bincount(train_y).min()))
        if folds >= 2:
            scores["knn_acc"] = metrics.knn_accuracy(train_z, train_y, cv=folds,
                                                     random_state=seed)
            scores["linear_probe_acc"] = metrics.linear_probe_accuracy(
                train_z, train_y, cv=folds, random_state=seed)
        level += ", 5-fold CV" if folds == 5 else f", {folds}-fold CV"
    else:
        scores["knn_acc"] = metrics.knn_accuracy(train_z, train_y, test_z, y_test)
        scores["linear_probe_acc"] = metrics.linear_probe_accuracy(train_z, train_y, test_z,
                                                                   y_test)
    scores["probe_level"] = level
    return scores


# ------------------------------------------------------------------------ results file
def read_results(path: Path) -> pd.DataFrame:
    """The results CSV, or an empty frame with :data:`COLUMNS`."""
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, keep_default_na=True)
    return frame.reindex(columns=[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)])


def record(row: Mapping[str, Any], path: Path) -> None:
    """Append ``row`` to the CSV at ``path`` atomically, replacing an earlier row of the same
    (dataset, method, seed, profile) (a failed run tried again)."""
    frame = read_results(path).reindex(columns=COLUMNS)
    key = ["dataset", "method", "seed", "profile"]
    if len(frame):
        same = np.ones(len(frame), dtype=bool)
        for column in key:
            same &= frame[column].astype(str).to_numpy() == str(row[column])
        frame = frame[~same]
    new = pd.DataFrame([{c: row.get(c, np.nan) for c in COLUMNS}])
    frame = new if frame.empty else pd.concat([frame, new], ignore_index=True)
    write_csv(frame[COLUMNS], path, index=False)


def _completed(path: Path, profile: str) -> set[tuple[str, str, int]]:
    frame = read_results(path)
    done = frame[(frame["status"] == "ok") & (frame["profile"] == profile)]
    return {(d, m, int(s)) for d, m, s in zip(done["dataset"], done["method"], done["seed"],
                                              strict=True)}


# ------------------------------------------------------------------------------ grid
@dataclass
class _Loaded:
    key: tuple[str, int] | None = None
    data: BenchmarkData | None = None


def _settings(profile: Mapping[str, Any], dataset: str, device: str, verbose: bool,
              weights: str | None) -> Settings:
    return Settings(
        epochs=int(_per_dataset(profile["epochs"], dataset)),
        batch_size=int(_per_dataset(profile.get("batch_size", 256), dataset)),
        supervised_epochs=int(_per_dataset(profile.get("supervised_epochs", 20), dataset)),
        supervised_weights=weights, device=device, verbose=verbose,
    )


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _device_name(device: str) -> str:
    """The device a run uses: ``"auto"`` resolved as the training loop resolves it."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def run_one(run: Run, data: BenchmarkData, settings: Settings, profile_name: str
            ) -> tuple[dict[str, Any], MethodResult | None]:
    """Fit and score one run; failures become a row with ``status="failed"``."""
    import torch

    method = METHODS[run.method]
    row: dict[str, Any] = {
        "dataset": run.dataset, "method": run.method, "seed": run.seed,
        "profile": profile_name, "kind": method.kind, "scoring": data.scoring,
        "n_train": len(data.train), "n_test": len(data.test),
        "epochs": settings.supervised_epochs if method.kind == "supervised" else settings.epochs,
        "torch_version": torch.__version__, "stratify_version": __version__,
        "git_commit": git_commit(), "device": _device_name(settings.device),
    }
    result = None
    try:
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = method.run(data, run.seed, settings)
            row["fit_seconds"] = time.perf_counter() - start
        row["peak_rss_mb"] = memory.peak
        row.update(score(data, result, run.seed))
        row["status"] = "ok"
    except Exception as error:
        row["status"] = "failed"
        row["error"] = f"{type(error).__name__}: {error}".replace("\n", " ")[:500]
        traceback.print_exc(file=sys.stderr)
    row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return row, result


def run_grid(
    profile_name: str,
    out: str | os.PathLike,
    *,
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    profile: Mapping[str, Any] | None = None,
    device: str = "auto",
    weights: str | None = None,
    verbose: bool = False,
    log: Any = sys.stderr,
) -> pd.DataFrame:
    """Run a profile's grid into ``out`` (``results.csv``, figures) and write the report.

    Parameters
    ----------
    profile_name : str
        A key of :data:`PROFILES`, or the name recorded for a custom ``profile``.
    out : path-like
        Results folder.
    datasets, methods, seeds : sequence, optional
        Restrict the grid.
    profile : mapping, optional
        A custom profile (same keys as :data:`PROFILES` entries).
    device : str, default="auto"
    weights : str, optional
        Local weights file of the supervised baseline's trunk.
    verbose : bool, default=False
        Training progress bars.
    log : file or None, default=sys.stderr
        Where the grid's progress lines go (None: nowhere).

    Returns
    -------
    pandas.DataFrame
        The whole results file after the grid.
    """
    from stratify.benchmark import report

    if profile is None:
        if profile_name not in PROFILES:
            raise ValueError(f"Expected a profile among {sorted(PROFILES)}, got {profile_name!r}.")
        profile = PROFILES[profile_name]
    def say(message: str) -> None:
        if log is not None:
            print(message, file=log, flush=True)

    out = Path(out)
    path = out / "results.csv"
    runs = expand(profile, datasets, methods, seeds)
    done = _completed(path, profile_name)
    todo = [r for r in runs if (r.dataset, r.method, r.seed) not in done]
    say(f"benchmark {profile_name}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
        f"{len(todo)} to go -> {path}")
    start = time.perf_counter()
    loaded = _Loaded()
    figures = profile.get("figures", {})
    for i, run in enumerate(todo, start=1):
        settings = _settings(profile, run.dataset, device, verbose, weights)
        prefix = f"[{i}/{len(todo)}] {run.dataset} · {run.method} · seed {run.seed}"
        try:
            data = _load(loaded, run, profile)
        except Exception as error:
            row = {"dataset": run.dataset, "method": run.method, "seed": run.seed,
                   "profile": profile_name, "status": "failed",
                   "error": f"{type(error).__name__}: {error}"[:500],
                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
            record(row, path)
            say(f"{prefix}: dataset failed: {row['error']}")
            continue
        reason = METHODS[run.method].applies(data)
        if reason is not None:
            say(f"{prefix}: skipped ({reason})")
            continue
        say(f"{prefix} ...")
        row, result = run_one(run, data, settings, profile_name)
        record(row, path)
        elapsed = time.perf_counter() - start
        left = len(todo) - i
        eta = f", about {_format_seconds(elapsed / i * left)} left" if left else ""
        outcome = (f"ACC {row['acc']:.3f} NMI {row['nmi']:.3f} ARI {row['ari']:.3f} in "
                   f"{row['fit_seconds']:.0f} s" if row["status"] == "ok"
                   else f"FAILED: {row['error']}")
        say(f"{prefix}: {outcome} (elapsed {_format_seconds(elapsed)}{eta})")
        wanted = figures.get(run.dataset, ())
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        if result is not None and run.method in wanted and run.seed == min(profile["seeds"]):
            report.run_figures(data, result, out / "figures" / run.dataset, run.method)
    clear_cache()
    results = read_results(path)
    report.write_report(results, out, profile_name, profile)
    return results


def _load(loaded: _Loaded, run: Run, profile: Mapping[str, Any]) -> BenchmarkData:
    """The run's dataset, reloaded only when the dataset or (for cohorts) the seed changes."""
    key = (run.dataset, run.seed)
    if loaded.key != key:
        loaded.data = None  # free the previous one first
        clear_cache()
        loaded.data = load_dataset(
            run.dataset, seed=run.seed,
            n_samples=_per_dataset(profile.get("n_samples", {}), run.dataset),
            slice_stride=int(_per_dataset(profile.get("slice_stride", 1), run.dataset)),
        )
        loaded.key = key
    assert loaded.data is not None
    return loaded.data


# ------------------------------------------------------------------------------- CLI
def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run the stratify benchmark grid (datasets x methods x seeds) "
        "and write results.csv, report.md and figures.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        f"  {prog} --profile quick --out bench_quick\n"
        f"  {prog} --profile full --out benchmarks/results\n"
        f"  {prog} --profile full --datasets pneumoniamnist --methods pca-kmeans --seeds 0\n"
        f"  {prog} --config my_grid.json --out my_results\n\n"
        "Datasets: any MedMNIST flag, <3D flag>-slices, mnist, cohort, cohort3d-slices.\n"
        f"Methods: {', '.join(METHODS)}.\n"
        "MedMNIST files are read from $STRATIFY_DATA (or downloaded when online); the MNIST "
        "test set from $STRATIFY_MNIST.",
    )
    parser.add_argument("--profile", default="quick", help="quick or full (default quick)")
    parser.add_argument("--config", help="JSON file with a custom profile (same keys as the "
                        "built-in ones: seeds, blocks, epochs, n_samples, ...)")
    parser.add_argument("--out", default="benchmark_results", help="results folder")
    parser.add_argument("--datasets", nargs="+", help="restrict to these datasets")
    parser.add_argument("--methods", nargs="+", help="restrict to these methods")
    parser.add_argument("--seeds", "--seed", nargs="+", type=int,
                        help="restrict to these seeds")
    parser.add_argument("--weights", help="local weights file for the supervised baseline")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite report.md and the summary figures from results.csv")
    parser.add_argument("--verbose", action="store_true", help="training progress bars")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/run.py") -> int:
    """Command-line entry point (``python benchmarks/run.py`` and ``stratify benchmark``).

    Returns the exit code: 0, or 2 after a one-line error on stderr (a traceback with
    ``--debug``). Failed runs do not change the exit code; they are listed in the report.
    """
    args = _parser(prog).parse_args(argv)
    try:
        return _main(args)
    except (ValueError, TypeError, OSError, KeyError) as error:
        if args.debug:
            raise
        from stratify._errors import error_line

        print(f"{prog}: error: {error_line(error)}", file=sys.stderr)
        return 2


def _main(args: argparse.Namespace) -> int:
    from stratify.benchmark import report

    profile = None
    name = args.profile
    if args.config:
        config = Path(args.config)
        if not config.is_file():
            raise FileNotFoundError(f"config file not found: {config}")
        profile = json.loads(config.read_text(encoding="utf-8"))
        name = profile.get("name", config.stem)
    elif name not in PROFILES:
        raise ValueError(f"Expected --profile among {sorted(PROFILES)}, got {name!r}.")
    if args.report_only:
        report.write_report(read_results(Path(args.out) / "results.csv"), Path(args.out), name,
                            profile or PROFILES[name])
        return 0
    results = run_grid(name, args.out, datasets=args.datasets, methods=args.methods,
                       seeds=args.seeds, profile=profile, device=args.device,
                       weights=args.weights, verbose=args.verbose,
                       log=None if args.quiet else sys.stderr)
    failed = results[(results["profile"] == name) & (results["status"] == "failed")]
    if not args.quiet:
        print(f"report: {Path(args.out).resolve() / 'report.md'}"
              + (f" ({len(failed)} failed runs, see results.csv)" if len(failed) else ""))
    return 0
