"""A local pretrained trunk for the ``resnet18-transfer`` rows: a ResNet-18 (28) trained with
labels on a source dataset, saved as a state dict that ``--weights`` takes.

No ImageNet weights can be had offline here, and nothing is downloaded; the issue allows any
compatible state dict. The source is a labelled set other than the target (by default the
MNIST test set: handwritten digits, a supervised out-of-domain source as ImageNet is), trained
with the MedMNIST v2 protocol's settings (:func:`lab.baselines.medmnist_protocol`, the
same stem, Adam 1e-3, batch 128, learning rate x0.1 at 50 % and 75 % of the epochs, the epoch
with the best validation AUC kept) for ``--epochs`` epochs; a source without a validation
split keeps a stratified 10 % of its images for it. The trunk (no classifier head) is written
atomically, and a markdown file records how it was made: command, versions, source, split,
epochs, seed, validation accuracy and AUC, the file's MD5 (the benchmark rows name the file
and its MD5 in their ``weights`` column).

Usage::

    python benchmarks/pretrain_weights.py --source mnist --epochs 5 --seed 0 \
        --weights ~/models/resnet18-mnist.pt --out benchmarks/results/transfer_weights.md
    python benchmarks/run.py --profile full --out benchmarks/results \
        --methods resnet18-transfer --weights ~/models/resnet18-mnist.pt
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from lab.baselines import medmnist_protocol
from lab.datasets import load_dataset
from lab.provenance import git_commit, header
from stratify._atomic import write_text
from stratify.data._files import md5sum

#: Share of a source without a validation split kept for model selection.
VALIDATION_SHARE = 0.1


def pretrain(source: str, epochs: int, seed: int, weights: Path, root: str | None = None) -> dict:
    """Train the source network, save its trunk to ``weights``; return what the record says."""
    data = load_dataset(source, seed=seed, root=root)
    images, labels = data.train.images, np.asarray(data.train.labels).reshape(-1)
    if data.val is not None and not data.transductive:
        val_images, val_labels = data.val.images, np.asarray(data.val.labels).reshape(-1)
        split = "the source's own train / val split"
    else:
        images, val_images, labels, val_labels = train_test_split(
            images, labels, test_size=VALIDATION_SHARE, stratify=labels, random_state=seed
        )
        split = f"a stratified {VALIDATION_SHARE:.0%} of the images held out (seed {seed})"
    model = medmnist_protocol(
        "resnet18", volumes=images.ndim == 5, epochs=epochs, random_state=seed, verbose=True
    )
    start = time.perf_counter()
    model.fit(images, labels, X_val=val_images, y_val=val_labels)
    seconds = time.perf_counter() - start
    model.save_trunk(weights)
    scores = model.evaluate(val_images, val_labels)
    return {
        "source": source,
        "image_shape": model.image_shape_,
        "classes": len(model.classes_),
        "n_train": len(images),
        "n_val": len(val_images),
        "split": split,
        "epochs": epochs,
        "best_epoch": model.best_epoch_,
        "seed": seed,
        "val_acc": scores["acc"],
        "val_auc": scores["auc"],
        "seconds": seconds,
        "file": weights.name,
        "md5": md5sum(weights),
        "git_commit": git_commit(),
        "tensors": len(model.model_.encoder.state_dict()),
    }


def report(record: dict, out: Path) -> None:
    frame = pd.DataFrame([record])
    lines = header(
        "Pretrained trunk for the resnet18-transfer rows",
        "benchmarks/pretrain_weights.py",
        frame,
        [record["seed"]],
        "2 CPU cores, no GPU",
    )
    lines += [
        f"A ResNet-18 (28) with the MedMNIST stem, trained with labels on `{record['source']}` "
        f"(images {tuple(record['image_shape'])}, {record['classes']} classes): "
        f"{record['n_train']} training and {record['n_val']} validation images "
        f"({record['split']}), {record['epochs']} epochs of the MedMNIST v2 protocol's "
        f"settings (milestones at 50 % and 75 %), the epoch with the best validation AUC kept "
        f"(epoch {record['best_epoch']}), {record['seconds']:.0f} s.",
        "",
        "| file | MD5 | tensors | val ACC | val AUC |",
        "|---|---|---|---|---|",
        f"| {record['file']} | {record['md5']} | {record['tensors']} | "
        f"{record['val_acc']:.4f} | {record['val_auc']:.4f} |",
        "",
        "The file is not committed (45 MB); the command above remakes it. The transfer rows of "
        "`report.md` name the file and its MD5 in `results.csv`'s `weights` column, with how "
        "many tensors loaded (a grey source's stem does not fit RGB targets and is left "
        "out, reported).",
        "",
    ]
    write_text("\n".join(lines), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", default="mnist", help="a labelled benchmark dataset: mnist or any MedMNIST flag"
    )
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", type=Path, required=True, help="state dict to write")
    parser.add_argument("--out", type=Path, required=True, help="markdown record to write")
    parser.add_argument("--root", help="folder of the MedMNIST files")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    warnings.filterwarnings("ignore", category=UserWarning)
    record = pretrain(args.source, args.epochs, args.seed, args.weights, args.root)
    report(record, args.out)
    print(f"wrote {args.weights} and {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
