"""One process vs two processes (torchrun, gloo) on this machine's CPU, same global batch.

The default recipe (``Stratifier()``: AE + SimCLR, BCE reconstruction) on PneumoniaMNIST's
4,708 training images, ``EPOCHS`` epochs, global batch 256:

* 1 process: ``batch_size=256``, 2 torch threads (the machine's two cores);
* 2 processes: ``torchrun --standalone --nproc_per_node 2``, ``batch_size=128`` per process,
  1 thread each.

Measured per run: training throughput (training images per second, from the per-epoch
``seconds`` of ``history_``, every epoch counted) and the last epoch's losses. Runs are
interleaved (1, 2, 1, 2, ...) so that a disturbance of the machine hits both settings; each
finished (seed, processes) is appended to the CSV and skipped on restart. Usage::

    python benchmarks/distributed.py --seeds 0 1 2 --out benchmarks/results/distributed.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lab.provenance import (
    git_commit,
    header,
    mean_sd,
    run_seeded,
    seeded_parser,
)
from stratify._atomic import write_csv, write_text

EPOCHS = 10
GLOBAL_BATCH = 256
CORES = 2
WORLDS = (1, 2)


def _worker(seed: int, world: int, result: Path) -> None:
    """One fit (run directly, or by torchrun on every rank)."""
    from lab.datasets import load_dataset
    from stratify import Stratifier
    from stratify.distributed import is_main_process

    data = load_dataset("pneumoniamnist", seed=0)
    model = Stratifier(
        2,
        epochs=EPOCHS,
        batch_size=GLOBAL_BATCH // world,
        random_state=seed,
        device="cpu",
        train_config={"num_threads": CORES // world, "progress": False},
    ).fit(data.train.images)
    if not is_main_process():
        return
    history = model.history_
    last = history.iloc[-1]
    row = {
        "seed": seed,
        "processes": world,
        "batch_per_process": GLOBAL_BATCH // world,
        "threads_per_process": CORES // world,
        "epochs": EPOCHS,
        "n_train": len(data.train.images),
        "train_seconds": float(history["seconds"].sum()),
        "images_per_second": len(data.train.images) * EPOCHS / float(history["seconds"].sum()),
        "final_total": float(last["total"]),
        "final_reconstruction": float(last["reconstruction"]),
        "final_contrastive": float(last["contrastive"]),
    }
    result.write_text(json.dumps(row))


def _launch(seed: int, world: int, scratch: Path) -> dict:
    result = scratch / f"run-{seed}-{world}.json"
    result.unlink(missing_ok=True)
    script = [
        str(Path(__file__).resolve()),
        "--worker",
        "--seeds",
        str(seed),
        "--processes",
        str(world),
        "--result",
        str(result),
    ]
    if world == 1:
        command = [sys.executable, *script]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={world}",
            *script,
        ]
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK")}
    subprocess.run(command, check=True, env=env)
    return json.loads(result.read_text())


def run(seeds: list[int], csv: Path) -> pd.DataFrame:
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    for seed in seeds:
        for world in WORLDS:  # interleaved
            if not done.empty and ((done["seed"] == seed) & (done["processes"] == world)).any():
                continue
            row = {**_launch(seed, world, csv.parent), "git_commit": git_commit()}
            print(row, flush=True)
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            write_csv(done, csv, index=False)
    for leftover in csv.parent.glob("run-*.json"):
        leftover.unlink()
    return done


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    one = results[results["processes"] == 1].set_index("seed")
    two = results[results["processes"] == 2].set_index("seed")
    ratio = (two["images_per_second"] / one["images_per_second"]).dropna()
    lines = [
        *header(
            "One process vs two processes (torchrun, gloo) on the CPU",
            "benchmarks/distributed.py",
            results,
            seeds,
            f"{CORES} CPU cores, no GPU",
        ),
        f"The default recipe (`Stratifier()`: AE + SimCLR) on PneumoniaMNIST's "
        f"{int(results['n_train'].iloc[0])} training images, {EPOCHS} epochs, global batch "
        f"{GLOBAL_BATCH} in both settings (2 processes: {GLOBAL_BATCH // 2} per process, "
        f"1 thread each; 1 process: {CORES} threads). Runs interleaved; mean ± sd over seeds.",
        "",
        "| processes | images / s | last-epoch total loss | reconstruction | contrastive |",
        "|---:|---|---|---|---|",
    ]
    for world, group in results.groupby("processes"):
        lines.append(
            f"| {world} | {mean_sd(group['images_per_second'], 1)} | "
            f"{mean_sd(group['final_total'], 4)} | {mean_sd(group['final_reconstruction'], 4)} | "
            f"{mean_sd(group['final_contrastive'], 4)} |"
        )
    if len(ratio):
        lines += [
            "",
            f"Throughput of 2 processes / 1 process, per seed: "
            f"{', '.join(f'{r:.2f}' for r in ratio)} (mean {np.mean(ratio):.2f}).",
        ]
    lines += ["", "Per run: `distributed.csv` beside this file.", ""]
    write_text("\n".join(lines), out)


def main() -> int:
    parser = seeded_parser(__doc__.splitlines()[0], "benchmarks/results/distributed.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.seeds[0], args.processes, args.result)
        return 0
    return run_seeded(run, report, args)


if __name__ == "__main__":
    raise SystemExit(main())
