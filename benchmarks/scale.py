"""Scale on one machine: fit time and peak memory from 5k to 100k images, 64^3 volumes,
clustering backends at 20k and 100k latents, predict throughput, CLI latency.

Every measurement runs in a fresh child process (one at a time), which reports its wall time
and its peak resident memory (``ru_maxrss``, the whole process: Python, torch, the data);
finished items are appended to the CSV and skipped on restart.

Data (the shared folder has no 100k-image set and no 64^3 file, so both are built from the
official files, with the size, dtype and layout of the real thing):

* ``images-N``: N uint8 images of 1 x 28 x 28: PneumoniaMNIST (all splits, 5,856 images)
  tiled with a random shift of up to 2 pixels and a random horizontal flip per copy (seed 0).
* ``volumes-64``: AdrenalMNIST3D's 1,188 training volumes, trilinearly upsampled from 28^3 to
  64^3, uint8 (the 300 MB of AdrenalMNIST3D_64's training split).
* ``latents-N``: the 32-d latents of the 100k fit (its ``embedding_``, L2-normalised as the
  Stratifier clusters them), first N rows.

Items: ``fit`` (``Stratifier()`` defaults, one epoch, 2 strata: train + embed + cluster),
``cluster`` (``StrataClusterer(method, 5)`` with its defaults, large-N path included;
``hdbscan+umap``: on the manifold step, ``manifold="umap"``),
``predict`` (``Stratifier.predict`` on all 100k images), ``cli`` (``stratify fit
missing.npy``, median of 5). Usage::

    python benchmarks/scale.py --out benchmarks/results/scale.md
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

FIT_SIZES = (5_000, 20_000, 100_000)
CLUSTER_SIZES = (20_000, 100_000)
BACKENDS = ("kmeans", "gmm", "hdbscan", "agglomerative", "spectral")
N_STRATA = 5


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _images(n: int) -> np.ndarray:
    from stratify.data import load_medmnist

    base = load_medmnist("pneumoniamnist", "all", download=False).images  # (5856, 1, 28, 28)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(base), n)
    out = base[picks].copy()
    shifts = rng.integers(-2, 3, size=(n, 2))
    flips = rng.random(n) < 0.5
    for dy, dx in {tuple(s) for s in shifts.tolist()}:
        rows = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
        out[rows] = np.roll(out[rows], (dy, dx), axis=(2, 3))
    out[flips] = out[flips][..., ::-1]
    return out


def _volumes() -> np.ndarray:
    from lab.datasets import upsampled
    from stratify.data import load_medmnist

    small = load_medmnist("adrenalmnist3d", "train", download=False).images  # (1188,1,28,28,28)
    return upsampled(small, 64)


def _child_fit(dataset: str, scratch: Path) -> dict:
    from stratify import Stratifier

    data = _volumes() if dataset == "volumes-64" else _images(int(dataset.split("-")[1]))
    start = time.perf_counter()
    model = Stratifier(2, epochs=1, random_state=0).fit(data)
    seconds = time.perf_counter() - start
    train_seconds = float(model.history_["seconds"].sum())
    row = {
        "n": len(data),
        "seconds": seconds,
        "train_seconds": train_seconds,
        "train_ms_per_sample": 1000 * train_seconds / len(data),
        "batch_size": model.batch_size_,
        "strata": int(model.n_clusters_),
    }
    if dataset == "images-100000":
        latents = model.clustered_space()  # the coordinates the clustering reads
        np.save(scratch / "latents.npy", latents.astype(np.float32))
        start = time.perf_counter()
        model.predict(data)
        row["predict_images_per_second"] = len(data) / (time.perf_counter() - start)
    return row


def _child_cluster(dataset: str, method: str, scratch: Path) -> dict:
    from stratify import StrataClusterer

    n = int(dataset.split("-")[1])
    latents = np.load(scratch / "latents.npy")[:n].astype(np.float64)
    start = time.perf_counter()
    base, _, manifold = method.partition("+")
    fitted = StrataClusterer(base, N_STRATA, manifold=manifold or None, random_state=0).fit(latents)
    seconds = time.perf_counter() - start
    labels = fitted.labels_
    return {
        "n": n,
        "seconds": seconds,
        "strata": int(fitted.n_clusters_),
        "noise_share": float((labels < 0).mean()),
        "fitted_on": n if fitted.fit_rows_ is None else len(fitted.fit_rows_),
    }


def _child_cli() -> dict:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        done = subprocess.run(
            ["stratify", "fit", "missing.npy", "--out", "unused.pt"],
            capture_output=True,
            text=True,
            check=False,
        )
        times.append(time.perf_counter() - start)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    return {"n": 5, "seconds": float(np.median(times)), "message": done.stderr.strip()}


def _child(item: dict, scratch: Path) -> dict:
    if item["item"] == "fit":
        row = _child_fit(item["dataset"], scratch)
    elif item["item"] == "cluster":
        row = _child_cluster(item["dataset"], item["method"], scratch)
    else:
        row = _child_cli()
    return {**item, **row, "peak_rss_bytes": _peak_rss()}


def _items() -> list[dict]:
    items = [{"item": "cli", "dataset": "-", "method": "-"}]
    items += [{"item": "fit", "dataset": f"images-{n}", "method": "defaults"} for n in FIT_SIZES]
    items.append({"item": "fit", "dataset": "volumes-64", "method": "defaults"})
    items += [
        {"item": "cluster", "dataset": f"latents-{n}", "method": m}
        for n in CLUSTER_SIZES
        for m in BACKENDS
    ]
    # HDBSCAN as N2D uses it: on the UMAP step (itself on its large-N path at 100k)
    items.append({"item": "cluster", "dataset": "latents-100000", "method": "hdbscan+umap"})
    return items


def run(csv: Path, scratch: Path, timeout: int) -> pd.DataFrame:
    from lab.provenance import git_commit
    from stratify._atomic import write_csv

    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    for item in _items():
        key = (item["item"], item["dataset"], item["method"])
        if (
            not done.empty
            and (done[["item", "dataset", "method"]].apply(tuple, axis=1) == key).any()
        ):
            continue
        result = scratch / "result.json"
        result.unlink(missing_ok=True)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            json.dumps(item),
            "--scratch",
            str(scratch),
        ]
        start = time.perf_counter()
        try:
            subprocess.run(command, check=True, timeout=timeout)
            row = json.loads(result.read_text())
        except subprocess.TimeoutExpired:
            row = {
                **item,
                "seconds": float("nan"),
                "note": f"did not finish in {timeout} s (killed)",
            }
        except subprocess.CalledProcessError as error:
            row = {**item, "seconds": float("nan"), "note": f"failed: exit {error.returncode}"}
        row["wall_seconds"] = time.perf_counter() - start
        row["git_commit"] = git_commit()
        print(row, flush=True)
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
        write_csv(done, csv, index=False)
    return done


def _gib(value: float) -> str:
    return "-" if pd.isna(value) else f"{value / 1024**3:.2f}"


def report(results: pd.DataFrame, out: Path) -> None:
    from lab.provenance import header
    from stratify._atomic import write_text

    fits = results[results["item"] == "fit"]
    base = fits.loc[fits["dataset"] == "images-5000", "train_ms_per_sample"]
    lines = [
        *header(
            "Scale on one machine",
            "benchmarks/scale.py",
            results,
            None,
            "2 CPU cores, 24 GiB, no GPU",
        ),
        "One child process per row, run one after the other; peak RSS is the child's whole "
        "resident memory (`ru_maxrss`). Data: see the script's docstring (tiled "
        "PneumoniaMNIST images; AdrenalMNIST3D upsampled to 64^3).",
        "",
        "## Fit with the defaults (`Stratifier(2, epochs=1)`: train, embed, cluster)",
        "",
        "| data | N | batch (auto) | fit s | training ms / sample | vs 5k | peak RSS GiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in fits.iterrows():
        images = str(row["dataset"]).startswith("images-")
        ratio = (
            row["train_ms_per_sample"] / float(base.iloc[0])
            if images and len(base) and not pd.isna(row.get("train_ms_per_sample"))
            else float("nan")
        )
        lines.append(
            f"| {row['dataset']} | {int(row['n']) if not pd.isna(row.get('n')) else '-'} | "
            f"{'-' if pd.isna(row.get('batch_size')) else int(row['batch_size'])} | "
            f"{row['seconds']:.1f} | {row.get('train_ms_per_sample', float('nan')):.3f} | "
            f"{'-' if pd.isna(ratio) else f'{ratio:.2f}'} | {_gib(row.get('peak_rss_bytes'))} |"
        )
    predict = (
        fits["predict_images_per_second"].dropna()
        if "predict_images_per_second" in fits
        else pd.Series(dtype=float)
    )
    if len(predict):
        lines += ["", f"`predict` on the 100k images: {predict.iloc[0]:.0f} images / s."]
    clusters = results[results["item"] == "cluster"]
    lines += [
        "",
        f"## Clustering 32-d latents (`StrataClusterer(method, {N_STRATA})`, defaults)",
        "",
        "| backend | N | fitted on | seconds | peak RSS GiB | strata | noise share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in clusters.iterrows():
        if pd.isna(row["seconds"]):
            lines.append(
                f"| {row['method']} | {row['dataset'].split('-')[1]} | - | "
                f"{row.get('note', 'failed')} | - | - | - |"
            )
            continue
        lines.append(
            f"| {row['method']} | {int(row['n'])} | {int(row['fitted_on'])} | "
            f"{row['seconds']:.1f} | {_gib(row['peak_rss_bytes'])} | {int(row['strata'])} | "
            f"{row['noise_share']:.3f} |"
        )
    cli = results[results["item"] == "cli"]
    if len(cli):
        row = cli.iloc[0]
        lines += [
            "",
            "## Command-line latency",
            "",
            f"`stratify fit missing.npy --out unused.pt`: median {row['seconds']:.2f} s "
            f"over 5 calls, peak RSS {_gib(row['peak_rss_bytes'])} GiB (the measuring "
            f"process); message: `{row['message']}`",
        ]
    lines += ["", "Per row: `scale.csv` beside this file.", ""]
    write_text("\n".join(lines), out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.md"))
    parser.add_argument("--scratch", type=Path, default=Path("benchmarks/.scale-scratch"))
    parser.add_argument(
        "--timeout", type=int, default=900, help="seconds before a child is killed (default 900)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    if args.child:
        row = _child(json.loads(args.child), args.scratch)
        (args.scratch / "result.json").write_text(json.dumps(row, default=float))
        return 0
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    results = run(args.out.with_suffix(".csv"), args.scratch, args.timeout)
    report(results, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
