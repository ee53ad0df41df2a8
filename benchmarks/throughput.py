"""Training throughput on 2 CPU cores: compute floor vs stratify's loop vs a naive DataLoader.

Same data (the first N PneumoniaMNIST train images, 28 px), same default 2D network
(``build_model("ae", (1, 28, 28))``, channels-last as ``train`` holds it on the CPU), the
default estimator's objective (BCE reconstruction of the clean batch + NT-Xent at tau 0.2 on
two views; the clean batch and the views in one encoder pass, as the loop runs them), the same
optimizer (Adam), batch 256:

1. floor: forward + backward + step on pre-made clean and view tensors (no augmentation, no
   data handling) - the best any loop can do;
2. stratify: ``stratify.training.train`` end to end (uint8 batches, batched per-sample
   augmentation, Objective, optimizer, bookkeeping);
3. naive: a ``torch.utils.data.DataLoader`` whose Dataset applies a torchvision v2 pipeline
   per image to make the two views (equivalent transforms), same network and loss.

Each timed unit is the same for the three methods: a fresh copy of the initial model and a
fresh Adam, one warm-up epoch, then one timed epoch. ``--repeats`` units per method are run
interleaved across the methods (other processes may share the cores); the median and the
best unit (least disturbed by other processes) are reported.
Figures are training samples (image pairs, two views each) per second.

Run from the repository root::

    python benchmarks/throughput.py --out benchmarks/results/throughput.md
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from stratify.data import load_medmnist
from stratify.data.augment import AugmentParams, TwoViewAugment
from stratify.losses import Objective, build_objective
from stratify.models import build_model
from stratify.models.conv import use_layout
from stratify.training import TrainConfig, physical_cores, train

TEMPERATURE = 0.2


def _objective() -> Objective:
    """The default estimator's objective: BCE reconstruction + NT-Xent (weight 1)."""
    return build_objective("bce", contrastive="simclr", temperature=TEMPERATURE)


def _step(model, objective, optimizer, x, v1, v2) -> None:
    """The default's step: the clean batch and both views in one encoder pass, the clean
    batch decoded."""
    n = x.shape[0]
    mu, _ = model.encode(torch.cat([x, v1, v2]))
    inputs = {
        "x": x,
        "recon": model.decode(mu[:n]),
        "z1": model.project(mu[n : 2 * n]),
        "z2": model.project(mu[2 * n :]),
    }
    total, _ = objective(inputs)
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()


def floor(model, images: np.ndarray, args) -> Callable[[], float]:
    """Forward + backward + step only, on pre-made float batches and views; returns a timed
    epoch."""
    x = torch.from_numpy(images).float() / 255
    v1, v2 = TwoViewAugment()(x, torch.Generator().manual_seed(0))
    parts = (x.split(args.batch_size), v1.split(args.batch_size), v2.split(args.batch_size))
    batches = list(zip(*parts, strict=True))
    return _fresh_fit(model, len(images), lambda: batches)


def _fresh_fit(model, n: int, batches: Callable) -> Callable[[], float]:
    """A timed unit like stratify's: a fresh copy of the model and optimizer, one warm-up
    epoch, then one timed epoch; returns pairs per second of the timed epoch."""

    def run() -> float:
        net = copy.deepcopy(model)
        objective = _objective()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        for clean, a, b in batches():  # warm-up epoch
            _step(net, objective, optimizer, clean, a, b)
        start = time.perf_counter()
        for clean, a, b in batches():
            _step(net, objective, optimizer, clean, a, b)
        return n / (time.perf_counter() - start)

    return run


def stratify_loop(model, images: np.ndarray, args) -> Callable[[], float]:
    """stratify.training.train end to end: a fresh 2-epoch fit of a copy of the model; the
    first epoch is the warm-up, the second is timed (the ``seconds`` column)."""
    config = TrainConfig(
        epochs=2,
        batch_size=args.batch_size,
        scheduler="none",
        progress=False,
        num_threads=args.threads,
    )

    def epoch() -> float:
        result = train(copy.deepcopy(model), _objective(), images, config=config, random_state=0)
        return len(images) / result.history["seconds"].iloc[1]

    return epoch


class RandomGamma(torch.nn.Module):
    """Gamma exponent drawn log-uniformly per call (torchvision has no random gamma)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.log_low, self.log_high = np.log(low), np.log(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = float(torch.rand(()))
        return x.clamp(0, 1).pow(float(np.exp(self.log_low + u * (self.log_high - self.log_low))))


def naive_pipeline(size: int) -> v2.Compose:
    """torchvision v2 transforms equivalent to ``AugmentParams()`` (one image at a time)."""
    p = AugmentParams()
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=p.crop_scale, ratio=p.crop_ratio, antialias=False),
            v2.RandomAffine(degrees=p.rotation, translate=(p.translation, p.translation)),
            v2.ToDtype(torch.float32, scale=True),
            v2.ColorJitter(brightness=p.brightness, contrast=p.contrast),
            RandomGamma(*p.gamma),
            v2.RandomApply([v2.GaussianBlur(7, sigma=p.blur_sigma)], p=p.blur_prob),
            v2.GaussianNoise(sigma=p.noise_std, clip=True),
            v2.RandomErasing(p=p.cutout_prob, scale=(0.01, 0.09), ratio=(0.5, 2.0), value=0),
        ]
    )


class TwoViewDataset(Dataset):
    def __init__(self, images: np.ndarray, transform) -> None:
        self.images = torch.from_numpy(images)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img = self.images[i]
        return img.float() / 255, self.transform(img), self.transform(img)


def naive(model, images: np.ndarray, args) -> Callable[[], float]:
    """DataLoader + per-image torchvision v2 pipeline, same network, loss and optimizer."""
    dataset = TwoViewDataset(images, naive_pipeline(images.shape[-1]))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=0)
    return _fresh_fit(model, len(images), lambda: loader)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4096, help="training images")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7, help="timed epochs per method")
    parser.add_argument("--threads", type=int, default=None, help="default: physical cores")
    parser.add_argument("--root", default=None, help="folder holding pneumoniamnist.npz")
    parser.add_argument("--out", default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    args.threads = args.threads or physical_cores()
    torch.set_num_threads(args.threads)

    images = load_medmnist("pneumoniamnist", "train", root=args.root, download=False).images[
        : args.n
    ]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        initial = build_model("ae", tuple(images.shape[1:]))
    use_layout(initial, torch.device("cpu"))  # the layout `train` runs it in, for every method
    makers = {"floor": floor, "stratify": stratify_loop, "naive": naive}
    epochs = {name: make(copy.deepcopy(initial), images, args) for name, make in makers.items()}
    runs: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(args.repeats):  # interleaved, so that load from other processes is shared
        for name, epoch in epochs.items():
            runs[name].append(epoch())
    med = {name: float(np.median(values)) for name, values in runs.items()}
    best = {name: max(values) for name, values in runs.items()}

    cpu = platform.processor() or platform.machine()
    command = "python " + " ".join(["benchmarks/throughput.py", *(argv or sys.argv[1:])])
    lines = [
        "# Training throughput (image pairs per second)",
        "",
        f"Command: `{command}`",
        "",
        f"torch {torch.__version__}, {args.threads} torch threads, {cpu}, "
        f"{len(images)} PneumoniaMNIST train images (28 px), batch {args.batch_size}, default "
        f"2D model and objective (BCE reconstruction + NT-Xent, tau {TEMPERATURE}), Adam. "
        "Each timed unit: fresh copy of the model and optimizer, a warm-up epoch, then one "
        f"timed epoch; {args.repeats} units per method, interleaved across methods.",
        "",
        "| method | median pairs/s | best pairs/s | worst | median vs floor | median vs naive "
        "| best vs floor | best vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {
        "floor": "1. compute floor (pre-made views: forward + backward + step)",
        "stratify": "2. stratify `train` end to end",
        "naive": "3. naive DataLoader + per-image torchvision v2",
    }
    for name, label in labels.items():
        lines.append(
            f"| {label} | {med[name]:.0f} | {best[name]:.0f} | {min(runs[name]):.0f} | "
            f"{med[name] / med['floor']:.2f} | {med[name] / med['naive']:.2f} | "
            f"{best[name] / best['floor']:.2f} | {best[name] / best['naive']:.2f} |"
        )
    lines.append("")
    for kind, values in (("median", med), ("best", best)):
        ok_floor = values["stratify"] >= 0.85 * values["floor"]
        ok_naive = values["stratify"] >= 1.5 * values["naive"]
        lines.append(
            f"Targets on the {kind} epochs: stratify >= 0.85 x floor: "
            f"{'met' if ok_floor else 'MISSED'}; stratify >= 1.5 x naive: "
            f"{'met' if ok_naive else 'MISSED'}.  "
        )
    lines += [
        "",
        "Per-epoch pairs/s, in run order: "
        + "; ".join(f"{k}: {', '.join(f'{v:.0f}' for v in vals)}" for k, vals in runs.items()),
    ]
    report = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).write_text(report)
    sys.stdout.write(report)
    return report


if __name__ == "__main__":
    main()
