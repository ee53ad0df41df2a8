"""The default recipe on a GPU: training throughput against the compute floor, and default
fits, in float32 and under bfloat16 autocast.

Data: synthetic cohorts (:func:`stratify.data.make_cohort`; a GPU machine need not hold the
MedMNIST files), 2D at 28, 64 and 128 px and 3D at 28^3 and 64^3, with their true strata.
For each setting and precision:

* **throughput**, image pairs per second of the default network and objective (AE with
  BCE reconstruction + NT-Xent, tau 0.2, Adam, the automatic batch): the compute floor
  (forward + backward + step on pre-made views already on the GPU: no data handling, no
  augmentation) against ``stratify.training.train`` end to end; each the median of
  ``--repeats`` epochs after a warm-up epoch;
* **default fit**: ``Stratifier(3, device="cuda", random_state=seed,
  train_config={"mixed_precision": ...}).fit`` timed end to end, its strata scored (ACC,
  NMI) against the cohort's true strata.

Usage (on the GPU machine, from the repository root)::

    python benchmarks/gpu.py --out benchmarks/results/gpu.md
    python benchmarks/gpu.py --device cpu --quick --out /tmp/gpu.md   # the script itself
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import normalized_mutual_info_score

from stratify import Stratifier
from stratify._atomic import write_csv, write_text
from stratify.analysis.metrics import cluster_accuracy
from stratify.data import make_cohort
from stratify.data.augment import TwoViewAugment
from stratify.losses import build_objective
from stratify.models import build_model
from stratify.training import TrainConfig, train
from stratify.training.memory import default_budget, fit_batch_size
from stratify.training.step import Plan, step_loss

#: (name, mode, size, patients)
SETTINGS = [
    ("2d-28", "2d", 28, 4000),
    ("2d-64", "2d", 64, 4000),
    ("2d-128", "2d", 128, 2000),
    ("3d-28", "3d", 28, 1200),
    ("3d-64", "3d", 64, 1200),
]
PRECISIONS = {"float32": False, "bfloat16": "bfloat16"}


def _objective(shape: tuple[int, ...]):
    return build_objective(
        reconstruction="bce",
        contrastive="simclr",
        temperature=0.2,
        elements_per_sample=int(np.prod(shape)),
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor(images: np.ndarray, batch: int, precision, device, repeats: int) -> float:
    """Pairs/s of forward + backward + step on pre-made views already on the device."""
    shape = images.shape[1:]
    model = build_model("ae", shape).to(device)
    objective = _objective(shape)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x = torch.from_numpy(images[: batch * max(1, len(images) // batch)]).float().div(255)
    v1, v2 = TwoViewAugment()(x, generator)
    chunks = [
        (a.to(device), b.to(device), c.to(device))
        for a, b, c in zip(x.split(batch), v1.split(batch), v2.split(batch), strict=True)
    ]
    plan = Plan.of(objective)
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if precision == "bfloat16"
        else torch.autocast(device.type, enabled=False)
    )

    def epoch() -> float:
        _sync(device)
        start = time.perf_counter()
        for clean, a, b in chunks:
            with autocast:
                total, _ = step_loss(
                    model, objective, {"x": clean}, plan, lambda _x, _g, a=a, b=b: (a, b), generator
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
        _sync(device)
        return sum(len(c[0]) for c in chunks) / (time.perf_counter() - start)

    epoch()  # warm-up
    return statistics.median(epoch() for _ in range(repeats))


def loop(images: np.ndarray, batch: int, precision, device, repeats: int) -> float:
    """Pairs/s of ``stratify.training.train`` end to end (the epochs after the first)."""
    shape = images.shape[1:]
    config = TrainConfig(
        epochs=1 + repeats,
        batch_size=batch,
        device=str(device),
        mixed_precision=precision,
        scheduler="none",
        progress=False,
    )
    result = train(build_model("ae", shape), _objective(shape), images, config=config)
    return len(images) / float(np.median(result.history["seconds"].iloc[1:]))


def run(args: argparse.Namespace) -> pd.DataFrame:
    device = torch.device(args.device)
    rows = []
    for name, mode, size, n in SETTINGS:
        n = min(n, args.max_patients)
        cohort = make_cohort(n, mode=mode, size=size, random_state=0)
        images, strata = cohort.images, cohort.strata
        shape = images.shape[1:]
        budget = default_budget(device)
        batch = fit_batch_size(
            build_model("ae", shape).to(device),
            _objective(shape),
            Plan.of(_objective(shape)),
            TwoViewAugment(),
            TrainConfig(batch_size="auto", device=str(device)),
            device,
            tuple(shape),
        )
        for precision_name, precision in PRECISIONS.items():
            row = {"setting": name, "precision": precision_name, "n": n, "batch": batch}
            row["floor_pairs_s"] = floor(images, batch, precision, device, args.repeats)
            row["loop_pairs_s"] = loop(images, batch, precision, device, args.repeats)
            row["loop_vs_floor"] = row["loop_pairs_s"] / row["floor_pairs_s"]
            seconds, accs, nmis = [], [], []
            for seed in args.seeds:
                model = Stratifier(
                    3,
                    device=str(device),
                    random_state=seed,
                    train_config={"mixed_precision": precision, "memory_budget": budget}
                    if device.type == "cuda"
                    else {"memory_budget": budget},
                    **({"epochs": 1} if args.quick else {}),
                )
                start = time.perf_counter()
                model.fit(images)
                seconds.append(time.perf_counter() - start)
                accs.append(cluster_accuracy(strata, model.labels_))
                nmis.append(normalized_mutual_info_score(strata, model.labels_))
            row.update(
                fit_seconds=float(np.mean(seconds)),
                fit_seconds_max=float(np.max(seconds)),
                acc=float(np.mean(accs)),
                acc_sd=float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0,
                nmi=float(np.mean(nmis)),
            )
            rows.append(row)
            print(row, flush=True)
    return pd.DataFrame(rows)


def report(table: pd.DataFrame, args: argparse.Namespace, out: Path) -> None:
    device = torch.cuda.get_device_name(0) if torch.device(args.device).type == "cuda" else "CPU"
    lines = [
        "# The default recipe on a GPU",
        "",
        f"Command: `python benchmarks/gpu.py {' '.join(args.argv)}`",
        "",
        f"Device: {device}; torch {torch.__version__}, Python {platform.python_version()}. "
        f"Seeds {args.seeds}. Written {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "| setting | precision | patients | batch | floor pairs/s | train pairs/s | vs floor "
        "| default fit s (max) | ACC | NMI |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.setting} | {r.precision} | {r.n} | {r.batch} | {r.floor_pairs_s:.0f} "
            f"| {r.loop_pairs_s:.0f} | {r.loop_vs_floor:.2f} | {r.fit_seconds:.0f} "
            f"({r.fit_seconds_max:.0f}) | {r.acc:.3f} ± {r.acc_sd:.3f} | {r.nmi:.3f} |"
        )
    write_text("\n".join(lines) + "\n", out)
    write_csv(table, out.with_suffix(".csv"), index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-patients", type=int, default=10**9)
    parser.add_argument("--quick", action="store_true", help="one epoch per fit (a check)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.md"))
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else __import__("sys").argv[1:]
    table = run(args)
    report(table, args, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
