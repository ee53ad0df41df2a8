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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lab.agreement import save_strata, write_seed_agreement
from lab.datasets import BenchmarkData, load_dataset
from lab.methods import METHODS, MethodResult, Settings, clear_cache
from lab.profiles import PROFILES, Run, expand, per_dataset
from lab.provenance import PeakMemory, git_commit
from lab.scoring import score
from lab.store import COLUMNS, completed, read_results, record
from stratify._version import __version__
from stratify.training.environment import resolve_device

__all__ = [
    "COLUMNS",
    "PROFILES",
    "Run",
    "expand",
    "git_commit",
    "main",
    "read_results",
    "record",
    "run_grid",
    "run_one",
    "score",
]


# ------------------------------------------------------------------------------ grid
@dataclass
class _Loaded:
    key: tuple[str, int] | None = None
    data: BenchmarkData | None = None


def settings_for(
    profile: Mapping[str, Any],
    dataset: str,
    device: str,
    verbose: bool,
    weights: str | None,
    model_cache: str | None = None,
    checkpoints: str | None = None,
) -> Settings:
    return Settings(
        epochs=int(per_dataset(profile["epochs"], dataset)),
        batch_size=int(per_dataset(profile.get("batch_size", 256), dataset)),
        supervised_epochs=int(per_dataset(profile.get("supervised_epochs", 20), dataset)),
        supervised_weights=weights,
        device=device,
        verbose=verbose,
        model_cache=model_cache,
        checkpoints=checkpoints,
    )


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _earlier_seconds(model: Any) -> float:
    """Training time that earlier, interrupted processes spent on a resumed fit: the
    ``seconds`` of the epochs restored from its checkpoint (0 for a fresh fit).
    """
    resumed = getattr(model, "resumed_epochs_", 0)  # only models that can resume have it
    return float(model.history_["seconds"].iloc[:resumed].sum()) if resumed else 0.0


def run_one(
    run: Run, data: BenchmarkData, settings: Settings, profile_name: str
) -> tuple[dict[str, Any], MethodResult | None]:
    """Fit and score one run; failures become a row with ``status="failed"``."""
    import torch

    method = METHODS[run.method]
    row: dict[str, Any] = {
        "dataset": run.dataset,
        "method": run.method,
        "seed": run.seed,
        "profile": profile_name,
        "kind": method.kind,
        "scoring": data.scoring,
        "n_train": len(data.train),
        "n_test": len(data.test),
        "epochs": settings.supervised_epochs if method.kind == "supervised" else settings.epochs,
        "torch_version": torch.__version__,
        "stratify_version": __version__,
        "git_commit": git_commit(),
        "device": str(resolve_device(settings.device)),
    }
    result = None
    try:
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = method.run(data, run.seed, settings)
            row["fit_seconds"] = time.perf_counter() - start + _earlier_seconds(result.model)
        if getattr(result.model, "epochs_", None):  # what epochs="auto" chose
            row["epochs"] = int(result.model.epochs_)
        elif method.kind == "supervised" and isinstance(
            getattr(result.model, "epochs", None), int
        ):  # a protocol's own schedule
            row["epochs"] = result.model.epochs
        row["weights"] = result.extra.get("weights", "")
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
    root: str | os.PathLike | None = None,
    verbose: bool = False,
    model_cache: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    log: Any = sys.stderr,
    allow_dirty: bool = False,
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
    root : path-like, optional
        Folder of the MedMNIST files, searched before ``STRATIFY_DATA``.
    verbose : bool, default=False
        Training progress bars.
    model_cache : path-like, optional
        Folder where the deep methods' fitted Stratifiers are saved and looked up (see
        :class:`~lab.methods.Settings`), so that a later run that only
        clusters differently does not train again.
    checkpoints : path-like, optional
        Folder of the protocol rows' training checkpoints (see
        :class:`~lab.methods.Settings`): a row interrupted part-way resumes at
        its last finished epoch when the grid is started again.
    log : file or None, default=sys.stderr
        Where the grid's progress lines go (None: nowhere).
    allow_dirty : bool, default=False
        Record rows from code that differs from its commit (their ``git_commit`` ends in
        ``+dirty`` and the report lists them); by default such a grid is refused before any
        run, since its rows could not be reproduced from the repository.

    Returns
    -------
    pandas.DataFrame
        The whole results file after the grid.
    """
    from lab import report

    commit = git_commit()
    if commit.endswith("+dirty") and not allow_dirty:
        raise ValueError(
            f"Expected committed code to record benchmark rows, got uncommitted changes "
            f"(git_commit {commit}); commit them first, or pass --allow-dirty (the rows are "
            "then marked +dirty in results.csv and listed in the report)."
        )
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
    done = completed(path, profile_name)
    todo = [r for r in runs if (r.dataset, r.method, r.seed) not in done]
    say(
        f"benchmark {profile_name}: {len(runs)} runs, {len(runs) - len(todo)} already done, "
        f"{len(todo)} to go -> {path}"
    )
    start = time.perf_counter()
    loaded = _Loaded()
    figures = profile.get("figures", {})
    for i, run in enumerate(todo, start=1):
        settings = settings_for(
            profile,
            run.dataset,
            device,
            verbose,
            weights,
            None if model_cache is None else str(model_cache),
            None if checkpoints is None else str(checkpoints),
        )
        prefix = f"[{i}/{len(todo)}] {run.dataset} · {run.method} · seed {run.seed}"
        try:
            data = _load(loaded, run, profile, root)
        except Exception as error:
            row = {
                "dataset": run.dataset,
                "method": run.method,
                "seed": run.seed,
                "profile": profile_name,
                "status": "failed",
                "error": f"{type(error).__name__}: {error}"[:500],
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            record(row, path)
            say(f"{prefix}: dataset failed: {row['error']}")
            continue
        reason = METHODS[run.method].applies(data, settings)
        if reason is not None:
            say(f"{prefix}: skipped ({reason})")
            continue
        say(f"{prefix} ...")
        row, result = run_one(run, data, settings, profile_name)
        if result is not None and row["status"] == "ok":
            labels, comparable = result.test_labels, not data.seeded_data
            save_strata(out, run.dataset, run.method, run.seed, labels, comparable)
        record(row, path)
        elapsed = time.perf_counter() - start
        left = len(todo) - i
        eta = f", about {_format_seconds(elapsed / i * left)} left" if left else ""
        outcome = (
            f"ACC {row['acc']:.3f} NMI {row['nmi']:.3f} ARI {row['ari']:.3f} in "
            f"{row['fit_seconds']:.0f} s"
            if row["status"] == "ok"
            else f"FAILED: {row['error']}"
        )
        say(f"{prefix}: {outcome} (elapsed {_format_seconds(elapsed)}{eta})")
        wanted = figures.get(run.dataset, ())
        wanted = [wanted] if isinstance(wanted, str) else list(wanted)
        if result is not None and run.method in wanted and run.seed == min(profile["seeds"]):
            report.run_figures(data, result, out / "figures" / run.dataset, run.method)
    clear_cache()
    write_seed_agreement(out)
    results = read_results(path)
    report.write_report(results, out, profile_name, profile)
    return results


def _load(
    loaded: _Loaded, run: Run, profile: Mapping[str, Any], root: str | os.PathLike | None = None
) -> BenchmarkData:
    """The run's dataset, reloaded only when the dataset or (for cohorts) the seed changes."""
    key = (run.dataset, run.seed)
    if loaded.key != key:
        loaded.data = None  # free the previous one first
        clear_cache()
        loaded.data = load_dataset(
            run.dataset,
            seed=run.seed,
            n_samples=per_dataset(profile.get("n_samples", {}), run.dataset),
            slice_stride=int(per_dataset(profile.get("slice_stride", 1), run.dataset)),
            root=root,
            split=profile.get("split", "test"),
        )
        loaded.key = key
    assert loaded.data is not None
    return loaded.data


# ------------------------------------------------------------------------------- CLI
def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the stratify benchmark grid (datasets x methods x seeds) "
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
    parser.add_argument(
        "--config",
        help="JSON file with a custom profile (same keys as the "
        "built-in ones: seeds, blocks, epochs, n_samples, ...)",
    )
    parser.add_argument("--out", default="benchmark_results", help="results folder")
    parser.add_argument(
        "--datasets",
        nargs="+",
        help="restrict to these datasets (one in no block of the profile runs "
        "the methods asked, or the unsupervised ones)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        help="restrict to these methods (with --datasets, they also run where "
        "no block of the profile pairs them)",
    )
    parser.add_argument("--seeds", "--seed", nargs="+", type=int, help="restrict to these seeds")
    parser.add_argument("--weights", help="local weights file for the supervised baseline")
    parser.add_argument(
        "--model-cache",
        help="folder to save the fitted networks in and reuse "
        "them from (rows that only recluster then do not "
        "train again)",
    )
    parser.add_argument(
        "--checkpoints",
        help="folder for the supervised protocol rows' "
        "per-epoch checkpoints: an interrupted row resumes where it stopped",
    )
    parser.add_argument(
        "--root",
        help="folder of the MedMNIST .npz files (before "
        "$STRATIFY_DATA; any flag present there runs by name, e.g. "
        "--datasets dermamnist dermamnist_64)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite report.md and the summary figures from results.csv",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="record rows from uncommitted code (marked +dirty; refused by default)",
    )
    parser.add_argument("--verbose", action="store_true", help="training progress bars")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/run.py") -> int:
    """Command-line entry point (``python benchmarks/run.py``).

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
    from lab import report

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
        report.write_report(
            read_results(Path(args.out) / "results.csv"),
            Path(args.out),
            name,
            profile or PROFILES[name],
        )
        return 0
    results = run_grid(
        name,
        args.out,
        datasets=args.datasets,
        methods=args.methods,
        seeds=args.seeds,
        profile=profile,
        device=args.device,
        weights=args.weights,
        root=args.root,
        verbose=args.verbose,
        model_cache=args.model_cache,
        checkpoints=args.checkpoints,
        log=None if args.quiet else sys.stderr,
        allow_dirty=args.allow_dirty,
    )
    failed = results[(results["profile"] == name) & (results["status"] == "failed")]
    if not args.quiet:
        print(
            f"report: {Path(args.out).resolve() / 'report.md'}"
            + (f" ({len(failed)} failed runs, see results.csv)" if len(failed) else "")
        )
    return 0
