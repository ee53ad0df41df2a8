"""Benchmark datasets: each name gives train / test splits (or one transductive set).

- any MedMNIST flag: ``load_medmnist(flag, split)``: train, val and test splits; 2D images or
  3D volumes, grey or RGB, binary, multi-class or ordinal (scored as classes); scored on the
  test split. ``<flag>_<size>`` (e.g. ``dermamnist_64``) reads the file of that size (64,
  128 or 224 px for 2D flags, 64 for 3D), from ``--root`` / ``STRATIFY_DATA`` as the file
  ``<flag>_<size>.npz``. Multi-label flags (ChestMNIST) are refused: neither strata nor a
  single-label classifier can be scored against 14 binary labels per image.
- ``<3D flag>-slices``: the 3D flag's volumes cut into depth slices
  (:func:`volumes_to_slices`), with ``position`` in [0, 1] and the volume's label as
  ``weak_label``; scored per slice and, by the probes, per volume (slice latents averaged).
- ``mnist``: the MNIST test set (10,000 digits); no split: scored transductively.
- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 digits of 8 x 8 px, 17 grey
  levels stretched to 0-255), a selection set only (``split="val"``): the digit set the
  default is chosen on, so that MNIST's scores stay a test.
- ``cohort``: the synthetic cohort (:func:`make_cohort`, 2D), one per seed, with ``age``,
  ``site`` and ``weak_label``; scored transductively.
- ``cohort3d-slices``: the 3D synthetic cohort cut into slices, with ``position``;
  transductive.

A dataset also names the metadata-kernel regularizers its metadata supports
(:attr:`BenchmarkData.regularizers`), so a method such as ``ae-simclr+yaware`` runs only where
it means something.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stratify.data import load_medmnist, load_mnist_test, make_cohort, volumes_to_slices
from stratify.data.medmnist import medmnist_flags, medmnist_info

__all__ = [
    "HELD_OUT_COHORT_OFFSET",
    "BenchmarkData",
    "Split",
    "dataset_names",
    "load_dataset",
    "upsampled",
]

#: Cohort settings of the benchmark: fainter textures than make_cohort's default, so that the
#: images alone leave room for the metadata priors (the default cohort is solved by plain
#: contrastive learning, ARI ~0.98, see benchmarks/results/cohort_recovery.md).
COHORT_TEXTURE = 0.1
#: The held-out synthetic cohort that defaults are chosen on is drawn with the run's seed plus
#: this (the scored cohorts use the seed itself).
HELD_OUT_COHORT_OFFSET = 100


@dataclass(frozen=True)
class Split:
    """Images of one split with their labels and metadata.

    Attributes
    ----------
    images : numpy.ndarray of uint8, shape (N, C, H, W) or (N, C, D, H, W)
    labels : numpy.ndarray of int64, shape (N,)
        The classes (or true strata) the clusters are scored against.
    metadata : pandas.DataFrame
        One row per image.
    groups : numpy.ndarray of int64, shape (N,) or None
        Parent volume of each slice (slice datasets only): latents are also averaged per
        group for a volume-level probe.
    """

    images: np.ndarray
    labels: np.ndarray
    metadata: pd.DataFrame
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class BenchmarkData:
    """One benchmark dataset, ready for the methods.

    Attributes
    ----------
    name : str
    train : Split
        What the methods fit on (without labels, except the supervised baseline).
    test : Split
        What is scored; the same object as ``train`` when ``transductive``. With
        ``scored_split="val"``, MedMNIST's validation split.
    val : Split or None
        Early-stopping data of the supervised baseline.
    transductive : bool
        No held-out split: clusters of the fitted samples are scored, as the deep
        clustering literature does on MNIST.
    n_classes : int
        Number of classes; the number of clusters asked of every method.
    regularizers : mapping of str to dict
        Metadata-kernel regularizers (``Stratifier(regularizers=...)`` specs) the metadata
        supports, by short name (``"yaware"``, ``"clinical"``, ``"wsp"``).
    seeded_data : bool
        The samples themselves depend on the seed (a synthetic cohort drawn per seed, a
        seeded subset): two seeds' strata are of other patients and are not compared.
    scored_split : {"test", "val"}
        What the rows are scored on: the test split, or the selection data (MedMNIST's val
        split; for a synthetic cohort, another cohort drawn with the seed plus
        :data:`HELD_OUT_COHORT_OFFSET`).
    """

    name: str
    train: Split
    test: Split
    val: Split | None
    transductive: bool
    n_classes: int
    regularizers: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    scored_split: str = "test"
    seeded_data: bool = False

    @property
    def scoring(self) -> str:
        """How the scores were obtained, as the report states it."""
        if self.scored_split == "val":
            if not self.transductive:
                return "val split"
            return f"held-out {'digit set' if self.name == 'digits' else 'cohort'}, transductive"
        return "transductive" if self.transductive else "test split"


def _subsample(split: Split, n: int | None, seed: int) -> Split:
    """A class-stratified random subset of ``n`` samples (all of them when n is None)."""
    if n is None or n >= len(split):
        return split
    if split.groups is not None:
        raise ValueError("Expected no subsampling of a slice dataset (whole volumes are kept).")
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(split.labels):
        members = np.flatnonzero(split.labels == label)
        share = max(1, round(n * len(members) / len(split)))
        keep.append(rng.choice(members, size=min(share, len(members)), replace=False))
    rows = np.sort(np.concatenate(keep))
    return Split(
        split.images[rows], split.labels[rows], split.metadata.iloc[rows].reset_index(drop=True)
    )


def _single_label(labels: np.ndarray, name: str) -> np.ndarray:
    if labels.ndim != 1:
        raise ValueError(
            f"Expected single-label classes for cluster scoring, got {name} with multi-label "
            f"indicators of shape {labels.shape}; cluster accuracy is not defined for it."
        )
    return labels.astype(np.int64)


def _medmnist_split(flag: str, split: str, size: int, root: Any) -> Split:
    images, labels, metadata = load_medmnist(flag, split, size=size, root=root)
    return Split(images, _single_label(labels, flag), metadata)


def _flag_and_size(name: str) -> tuple[str, int]:
    """``"dermamnist_64"`` -> ("dermamnist", 64); a plain flag is 28 px."""
    flag, _, size = name.rpartition("_")
    if flag and size.isdigit():
        return flag, int(size)
    return name, 28


def _slices(volumes: Split, *, label_column: str, margin: float, stride: int) -> Split:
    """Depth slices with ``position``, the parent's metadata and its label as ``label_column``.

    The slices are scored against the volume's label; ``groups`` holds the parent volume.
    """
    dropped = {"patient_id", "index", "split", "label", "label_name", label_column}
    parent = volumes.metadata.drop(columns=[c for c in volumes.metadata.columns if c in dropped])
    slices = volumes_to_slices(
        volumes.images, axis=0, labels=volumes.labels, metadata=parent, margin=margin, stride=stride
    )
    frame = slices.metadata.rename(columns={"label": label_column})
    return Split(
        slices.slices,
        frame[label_column].to_numpy(np.int64),
        frame,
        groups=frame["volume_id"].to_numpy(np.int64),
    )


SLICE_REGULARIZERS = {
    "yaware": {"kind": "yaware", "columns": "position", "sigma": 0.1, "weight": 1.0},
    "wsp": {
        "kind": "wsp",
        "label_column": "weak_label",
        "position_column": "position",
        "sigma": 0.1,
        "weight": 1.0,
    },
}
COHORT_REGULARIZERS = {
    "yaware": {"kind": "yaware", "columns": "age", "sigma": 5.0, "weight": 1.0},
    "clinical": {"kind": "clinical", "columns": {"weak_label": 1.0, "site": 0.5}, "weight": 1.0},
}


def dataset_names() -> list[str]:
    """Every dataset name :func:`load_dataset` accepts."""
    flags = list(medmnist_flags())
    sliced = [
        f"{flag}-slices"
        for flag in flags
        if medmnist_info(flag)["n_channels"] == 1 and flag.endswith("3d")
    ]
    return ["cohort", "cohort3d-slices", "digits", "mnist", *flags, *sliced]


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    n_samples: int | None = None,
    slice_stride: int = 1,
    root: str | os.PathLike | None = None,
    split: str = "test",
) -> BenchmarkData:
    """Load a benchmark dataset by name.

    Parameters
    ----------
    name : str
        See the module's table; :func:`dataset_names` lists them.
    seed : int, default=0
        Seed of the synthetic cohorts (one cohort per seed) and of subsampling.
    n_samples : int or None, default=None
        Cohort size, or a class-stratified subset of the training split (and of a
        transductive set) for quick runs; None keeps every sample (cohort: 1000).
    slice_stride : int, default=1
        Keep every ``slice_stride``-th slice of slice datasets.
    root : path-like, optional
        Folder of the MedMNIST files (before ``STRATIFY_DATA`` and medmnist's default).
    split : {"test", "val"}, default="test"
        What is scored (``BenchmarkData.test``): the test split, or the data that defaults
        are chosen on, never test: MedMNIST's val split (the methods still fit on train, so
        a network is shared with the test rows), a held-out synthetic cohort (seed +
        :data:`HELD_OUT_COHORT_OFFSET`, scored transductively). The MNIST test set and the
        slice sets have no such data.

    Returns
    -------
    BenchmarkData
    """
    if split not in ("test", "val"):
        raise ValueError(f"Expected split 'test' or 'val', got {split!r}.")
    if split == "val" and (name == "mnist" or name.endswith("-slices")):
        raise ValueError(
            f"Expected a dataset with selection data for split='val', got {name!r}, which has "
            "none (MedMNIST flags and the 2D cohort have)."
        )
    if name == "digits":
        if split != "val":
            raise ValueError(
                "Expected split='val' for 'digits', the selection digit set, got "
                f"split={split!r}: the digit test set is 'mnist'."
            )
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
        digits = _subsample(
            Split(images, bunch.target.astype(np.int64), pd.DataFrame(index=range(len(images)))),
            n_samples,
            seed,
        )
        return BenchmarkData(name, digits, digits, None, True, 10, scored_split="val")
    if name == "cohort" and split == "val":
        images, strata, metadata = make_cohort(
            n_samples or 1000,
            texture_contrast=COHORT_TEXTURE,
            random_state=seed + HELD_OUT_COHORT_OFFSET,
        )
        cohort = Split(images, strata, metadata)
        return BenchmarkData(
            name,
            cohort,
            cohort,
            None,
            True,
            len(np.unique(strata)),
            COHORT_REGULARIZERS,
            "val",
            seeded_data=True,
        )
    if name == "mnist":
        digits = _subsample(Split(*load_mnist_test()), n_samples, seed)
        return BenchmarkData(
            name, digits, digits, None, True, 10, seeded_data=n_samples is not None
        )
    if name in ("cohort", "cohort3d-slices"):
        mode = "3d" if name.startswith("cohort3d") else "2d"
        images, strata, metadata = make_cohort(
            n_samples or (1000 if mode == "2d" else 200),
            mode=mode,
            texture_contrast=COHORT_TEXTURE,
            random_state=seed,
        )
        n_classes = len(np.unique(strata))
        if mode == "2d":
            cohort = Split(images, strata, metadata)
            return BenchmarkData(
                name, cohort, cohort, None, True, n_classes, COHORT_REGULARIZERS, seeded_data=True
            )
        # the true stratum is the label scored; WSP reads the cohort's own noisy weak_label
        cohort = _slices(
            Split(images, strata, metadata), label_column="stratum", margin=0.0, stride=slice_stride
        )
        return BenchmarkData(
            name, cohort, cohort, None, True, n_classes, SLICE_REGULARIZERS, seeded_data=True
        )
    base, sliced = (name[: -len("-slices")], True) if name.endswith("-slices") else (name, False)
    flag, size = _flag_and_size(base)
    if flag not in medmnist_flags():
        raise ValueError(
            f"Expected a dataset among {dataset_names()} (a MedMNIST flag may end in _64, "
            f"_128 or _224 for another size), got {name!r}."
        )
    task = medmnist_info(flag)["task"]
    if task.startswith("multi-label"):
        raise ValueError(
            f"Expected a single-label MedMNIST flag, got {flag!r}, a {task} task "
            f"({len(medmnist_info(flag)['label'])} binary labels per image): strata and the "
            "supervised baselines are scored against one class per image."
        )
    splits = {split: _medmnist_split(flag, split, size, root) for split in ("train", "val", "test")}
    n_classes = len(medmnist_info(flag)["label"])
    if sliced:
        if len(splits["train"].images.shape) != 5:
            raise ValueError(f"Expected a 3D MedMNIST flag for {name!r}, got the 2D flag {flag!r}.")
        splits = {
            k: _slices(v, label_column="weak_label", margin=0.1, stride=slice_stride)
            for k, v in splits.items()
        }
        return BenchmarkData(
            name,
            splits["train"],
            splits["test"],
            splits["val"],
            False,
            n_classes,
            SLICE_REGULARIZERS,
        )
    train = _subsample(splits["train"], n_samples, seed)
    seeded = n_samples is not None
    if split == "val":
        return BenchmarkData(
            name,
            train,
            splits["val"],
            None,
            False,
            n_classes,
            scored_split="val",
            seeded_data=seeded,
        )
    return BenchmarkData(
        name, train, splits["test"], splits["val"], False, n_classes, seeded_data=seeded
    )


def upsampled(volumes: np.ndarray, size: int) -> np.ndarray:
    """uint8 volumes (N, C, D, H, W) resized to ``size``^3 by trilinear interpolation, in
    chunks of 64 (a 64^3 copy of AdrenalMNIST3D's 1,188 training volumes is 311 MB).
    """
    import torch

    out = np.empty((len(volumes), volumes.shape[1], size, size, size), dtype=np.uint8)
    for start in range(0, len(volumes), 64):
        part = torch.from_numpy(volumes[start : start + 64]).float()
        big = torch.nn.functional.interpolate(
            part, size=(size, size, size), mode="trilinear", align_corners=False
        )
        out[start : start + 64] = big.round().clamp(0, 255).to(torch.uint8).numpy()
    return out
