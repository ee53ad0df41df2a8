"""Does VAE sampling help a classifier that has few labels? (Ferrante et al.'s augmentation claim)

For each seed and label fraction: draw a stratified subset of PneumoniaMNIST's training split
(1 % or 10 % of its labels); fit the default VAE Stratifier (``model="vae"``, no labels) on
the whole training split, once per seed; then train the same classifier twice, on the
labelled images alone and on the labelled images plus ``N_PER_SAMPLE`` VAE augmentations of
each (``Stratifier.augment`` with its default ``scale``: decoded draws around the image's
posterior, labelled as their source image). Both runs take the same number of optimisation
steps, so the augmented run does not simply train longer. Scored on the test split: ACC,
balanced ACC and AUC.

The classifier is the benchmark's supervised model (``SupervisedBaseline``: ResNet-18 from
scratch, stem stride 2), without validation data (a study with 1 % of the labels has no
labelled validation set to early-stop on).

Each finished (seed, fraction, variant) is appended to the CSV atomically and skipped on
restart. Usage::

    python benchmarks/augmentation.py --seeds 0 1 2 --out benchmarks/results/augmentation.md
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import train_test_split

from lab.baselines import SupervisedBaseline
from lab.datasets import load_dataset
from lab.provenance import (
    git_commit,
    header,
    mean_sd,
    run_seeded,
    seeded_parser,
)
from stratify import Stratifier
from stratify._atomic import write_csv, write_text

FRACTIONS = (0.01, 0.10)
VARIANTS = ("labelled only", "labelled + VAE augmentations")
#: Augmentations drawn per labelled image.
N_PER_SAMPLE = 10
#: Epochs of the VAE (the full benchmark profile's PneumoniaMNIST setting).
VAE_EPOCHS = 12
#: Optimisation steps of every classifier run, and its batch size.
STEPS, BATCH = 400, 64
STEM_STRIDE = 2


def _classify(images: np.ndarray, labels: np.ndarray, data, seed: int) -> dict[str, float]:
    epochs = math.ceil(STEPS * BATCH / len(images))  # same number of steps for every run
    model = SupervisedBaseline(
        epochs=epochs, batch_size=BATCH, stem_stride=STEM_STRIDE, random_state=seed
    )
    start = time.perf_counter()
    model.fit(images, labels)
    scores = model.evaluate(data.test.images, data.test.labels)
    scores["bacc"] = float(
        balanced_accuracy_score(data.test.labels, model.predict(data.test.images))
    )
    scores["fit_seconds"] = time.perf_counter() - start
    scores["epochs"] = epochs
    return scores


def run(seeds: list[int], csv: Path) -> pd.DataFrame:
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    data = load_dataset("pneumoniamnist", seed=0)
    train_x, train_y = data.train.images, data.train.labels
    for seed in seeds:
        vae = None
        for fraction in FRACTIONS:
            for variant in VARIANTS:
                if (
                    not done.empty
                    and (
                        (done["seed"] == seed)
                        & (done["fraction"] == fraction)
                        & (done["variant"] == variant)
                    ).any()
                ):
                    continue
                picked, _ = train_test_split(
                    np.arange(len(train_x)),
                    train_size=fraction,
                    stratify=train_y,
                    random_state=seed,
                )
                images, labels = train_x[picked], train_y[picked]
                if variant != "labelled only":
                    if vae is None:
                        vae = Stratifier(2, model="vae", epochs=VAE_EPOCHS, random_state=seed)
                        vae.fit(train_x)
                    extra, source = vae.perturb(
                        images, n_per_sample=N_PER_SAMPLE, random_state=seed
                    )
                    images = np.concatenate([images, extra])
                    labels = np.concatenate([labels, labels[source]])
                scores = _classify(images, labels, data, seed)
                row = {
                    "seed": seed,
                    "fraction": fraction,
                    "n_labelled": len(picked),
                    "variant": variant,
                    "n_train": len(images),
                    **scores,
                    "git_commit": git_commit(),
                }
                print(row, flush=True)
                done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                write_csv(done, csv, index=False)
    return done


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    lines = [
        *header(
            "VAE augmentation with few labels (PneumoniaMNIST, test split)",
            "benchmarks/augmentation.py",
            results,
            seeds,
            "CPU",
        ),
        f"Protocol (see the script's docstring): a stratified 1 % / 10 % of the 4,708 training "
        f"labels; the default VAE (`Stratifier(model='vae')`, {VAE_EPOCHS} epochs) fitted on "
        f"all training images without labels; {N_PER_SAMPLE} augmentations per labelled image "
        f"(`augment`, default scale 0.5); classifier = ResNet-18 from scratch (stem stride "
        f"{STEM_STRIDE}), {STEPS} steps of batch {BATCH} in every run, no validation set. "
        "Cells are mean ± sd over seeds; the majority-class rate of the test split is 0.625.",
        "",
        "| labels | training set | n train | ACC | balanced ACC | AUC |",
        "|---|---|---:|---|---|---|",
    ]
    order = {variant: i for i, variant in enumerate(VARIANTS)}
    results = results.sort_values(
        ["fraction", "variant"],
        key=lambda c: c.map(order) if c.name == "variant" else c,
        kind="stable",
    )
    for (fraction, variant), group in results.groupby(["fraction", "variant"], sort=False):
        cells = [mean_sd(group[m], 3) for m in ("acc", "bacc", "auc")]
        lines.append(
            f"| {fraction:.0%} ({int(group['n_labelled'].iloc[0])}) | {variant} | "
            f"{int(group['n_train'].iloc[0])} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Per seed: `augmentation.csv` beside this file.", ""]
    write_text("\n".join(lines), out)


def main() -> int:
    parser = seeded_parser(__doc__.splitlines()[0], "benchmarks/results/augmentation.md")
    args = parser.parse_args()
    return run_seeded(run, report, args)


if __name__ == "__main__":
    raise SystemExit(main())
