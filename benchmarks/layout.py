"""The default training step on the CPU in PyTorch's default layout and channels-last.

:func:`stratify.models.conv.use_layout` holds the built-in convolutional encoder's and
decoder's weights channels-last on the CPU. This measures what that buys on the default
network's own training step, in 2D and 3D: the default AE (``build_model("ae", shape)``),
the default objective (BCE reconstruction + NT-Xent at tau 0.2,
``build_objective("bce", contrastive="simclr")``), the built-in two-view augmentation, Adam,
and the batch ``batch_size="auto"`` gives on the CPU
(:func:`stratify.training.memory.fit_batch_size`). The step is
:func:`stratify.training.step.step_loss` plus backward and the optimizer's step, as the
training loop runs it.

Each timed unit: a fresh copy of the same initial weights in one layout, a fresh Adam, two
warm-up steps, then ``--steps`` timed steps. ``--repeats`` units per layout, interleaved
(ABAB...), so that load from other processes falls on both; the ratio of the medians is
reported, with each unit's time.

Usage::

    python benchmarks/layout.py --out benchmarks/results/layout.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lab.provenance import git_commit
from stratify._atomic import write_text
from stratify.data.augment import TwoViewAugment
from stratify.losses import build_objective
from stratify.models import build_model
from stratify.models.conv import use_layout
from stratify.training import TrainConfig, physical_cores
from stratify.training.memory import fit_batch_size
from stratify.training.step import Plan, step_loss

#: Image shapes (C, *S): the 2D sizes of MedMNIST and the 3D sizes of the benchmarks.
SHAPES = [(1, 28, 28), (1, 64, 64), (1, 28, 28, 28), (1, 64, 64, 64)]
LAYOUTS = ("default", "channels-last")


def step_time(shape: tuple[int, ...], layout: str, steps: int) -> tuple[float, int]:
    """Median seconds of one training step of the default network (and the batch)."""
    cpu = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("ae", shape)
    objective = build_objective("bce", contrastive="simclr")
    augment = TwoViewAugment()
    plan = Plan.of(objective)
    batch = fit_batch_size(
        model, objective, plan, augment, TrainConfig(batch_size="auto"), cpu, shape
    )
    if layout == "channels-last":
        use_layout(model, cpu)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((batch, *shape), generator=generator)
    inputs = {"x": x, "metadata": {}, "labels": None}
    seconds = []
    for i in range(steps + 2):
        start = time.perf_counter()
        total, _ = step_loss(model, objective, inputs, plan, augment, generator)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if i >= 2:  # two warm-up steps
            seconds.append(time.perf_counter() - start)
    return float(np.median(seconds)), batch


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed units per layout")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per unit")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    threads = physical_cores()
    torch.set_num_threads(threads)
    rows = []
    for shape in SHAPES:
        runs: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        batch = 0
        for _ in range(args.repeats):
            for layout in LAYOUTS:
                seconds, batch = step_time(shape, layout, args.steps)
                runs[layout].append(seconds)
        median = {layout: float(np.median(values)) for layout, values in runs.items()}
        rows.append((shape, batch, median, runs))
        print(shape, batch, median, flush=True)

    command = "python " + " ".join(["benchmarks/layout.py", *(argv or sys.argv[1:])])
    lines = [
        "# The default training step on the CPU: default layout vs channels-last",
        "",
        f"Command: `{command}`",
        "",
        f"stratify at commit {git_commit()}, torch {torch.__version__}, {threads} torch threads, "
        f"{platform.machine()}, no GPU. The default AE and objective (BCE reconstruction + "
        "NT-Xent, tau 0.2), the built-in augmentation, Adam, the CPU's auto batch. Per "
        f"layout {args.repeats} units (fresh weights and optimizer, 2 warm-up steps, "
        f"{args.steps} timed), interleaved; the median of each unit's median step.",
        "",
        "| image shape | auto batch | default layout, s/step | channels-last, s/step | "
        "ratio (channels-last / default) | speed-up |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape, batch, median, _ in rows:
        ratio = median["channels-last"] / median["default"]
        lines.append(
            f"| {' x '.join(map(str, shape[1:]))} | {batch} | {median['default']:.3f} | "
            f"{median['channels-last']:.3f} | {ratio:.2f} | {1 / ratio:.2f}x |"
        )
    lines += ["", "Each unit's median step (s), in run order:", ""]
    for shape, _, _, runs in rows:
        lines.append(
            f"- {' x '.join(map(str, shape[1:]))}: "
            + "; ".join(f"{k}: {', '.join(f'{v:.3f}' for v in vals)}" for k, vals in runs.items())
        )
    report = "\n".join(lines) + "\n"
    if args.out:
        write_text(report, args.out)
    sys.stdout.write(report)
    return report


if __name__ == "__main__":
    main()
