"""The metadata-prior protocol: pretrain without target labels, probe with few labels.

As the papers measure it (Dufumier et al. 2021, Sarfati et al. 2023, Kokilepersaud et al.
2023): a representation is pretrained with plain SimCLR or with one metadata prior, never
seeing the target label; its frozen latents are then evaluated on the target label with
1 %, 10 % and 100 % of the training labels (a logistic-regression probe on standardised
latents), together with the strata's ARI against the target.

Settings (:func:`load_setting`):

* ``cohort-informative``: the synthetic cohort with a faint stratum texture
  (``texture_contrast=FAINT``), so the images show the strata only weakly, while ``age``
  (``N(45 + 10 k, 8)``) and ``weak_label`` (disease yes/no, 20 % flipped) carry information
  about them; 1,000 training and 500 test patients.
* ``cohort-nuisance``: the same images, with ``age`` and ``weak_label`` permuted across the
  training patients (same marginals, no information): a prior must not hurt here.
* ``adrenal-wsp``: AdrenalMNIST3D's volumes cut into slices (``position`` from the slicing);
  the weak label is the volume label with ``FLIP_RATE`` of the training volumes flipped
  (seeded; all slices of a volume share it); the target is the true volume label, probed at
  volume level (slice latents averaged) on the test split.

The same seed gives the same cohort, the same flips and the same label subsets for every
method (:func:`label_subset` is stratified and seeded only by the seed and the fraction).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "FAINT",
    "FLIP_RATE",
    "FRACTIONS",
    "PRIORS",
    "SUPERVISED_BATCH",
    "SUPERVISED_STEPS",
    "Setting",
    "flip_weak_labels",
    "label_subset",
    "load_setting",
    "run_one",
    "run_supervised",
]

#: Label fractions of the probe.
FRACTIONS = (0.01, 0.1, 1.0)
#: Stratum texture of the informative cohort (the default cohort uses 0.22).
FAINT = 0.08
#: Share of training volumes whose weak label is flipped (a cheap, noisy radiological score).
FLIP_RATE = 0.2
#: The priors by setting family (regularizer specs of the Stratifier); "simclr" has none.
PRIORS: dict[str, dict[str, dict[str, Any] | None]] = {
    "cohort": {
        "simclr": None,
        "yaware": {"kind": "yaware", "columns": "age", "sigma": "auto"},
        "clinical": {
            "kind": "clinical",
            "columns": {"weak_label": 1.0, "age": 1.0},
            "bins": {"age": 4},
        },
    },
    "adrenal": {
        "simclr": None,
        "wsp": {
            "kind": "wsp",
            "label_column": "weak_label",
            "position_column": "position",
            "sigma": "auto",
        },
    },
}


#: The supervised model's optimisation steps and batch at every label fraction (the same
#: number of steps whatever the number of labels, as in ``benchmarks/augmentation.py``).
SUPERVISED_STEPS, SUPERVISED_BATCH = 400, 64


@dataclasses.dataclass
class Setting:
    """One setting: images, target labels, metadata (train and test), and probe level."""

    name: str
    train_images: np.ndarray
    train_y: np.ndarray
    train_metadata: pd.DataFrame
    test_images: np.ndarray
    test_y: np.ndarray
    train_groups: np.ndarray | None = None  # volume of each slice (volume-level probes)
    test_groups: np.ndarray | None = None

    @property
    def family(self) -> str:
        """The prior's family name (its kind, or 'simclr' without one)."""
        return self.name.split("-")[0]


def flip_weak_labels(labels: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Flip exactly ``round(rate * n)`` binary labels, chosen at random (seeded)."""
    labels = np.asarray(labels, dtype=np.float64).copy()
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=round(rate * len(labels)), replace=False)
    labels[flipped] = 1.0 - labels[flipped]
    return labels


def label_subset(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of ``y`` (at least one per class), seeded."""
    y = np.asarray(y)
    if fraction >= 1.0:
        return np.arange(len(y))
    n_classes = len(np.unique(y))
    size = max(n_classes, round(fraction * len(y)))
    picked, _ = train_test_split(np.arange(len(y)), train_size=size, stratify=y, random_state=seed)
    return np.sort(picked)


def load_setting(
    name: str, seed: int, *, n_train: int = 1000, n_test: int = 500, slice_stride: int = 4
) -> Setting:
    """Build a setting (see the module docstring); deterministic in ``seed``."""
    if name.startswith("cohort"):
        from stratify.data import make_cohort

        images, strata, metadata = make_cohort(
            n_train + n_test, texture_contrast=FAINT, random_state=seed
        )
        train_meta = metadata.iloc[:n_train].reset_index(drop=True)
        if name == "cohort-nuisance":
            rng = np.random.default_rng(seed + 1)
            for column in ("age", "weak_label"):
                train_meta[column] = rng.permutation(train_meta[column].to_numpy())
        elif name != "cohort-informative":
            raise ValueError(f"Expected a known setting, got {name!r}.")
        return Setting(
            name, images[:n_train], strata[:n_train], train_meta, images[n_train:], strata[n_train:]
        )
    if name != "adrenal-wsp":
        raise ValueError(f"Expected a known setting, got {name!r}.")
    from stratify.benchmark.datasets import load_dataset

    data = load_dataset("adrenalmnist3d-slices", slice_stride=slice_stride)
    train, test = data.train, data.test
    if train.groups is None:
        raise ValueError("Expected the volume of each slice (groups), got none.")
    volumes = np.unique(train.groups)
    true = pd.Series(train.labels, index=train.groups).groupby(level=0).first()
    weak = pd.Series(flip_weak_labels(true.loc[volumes].to_numpy(), FLIP_RATE, seed), index=volumes)
    meta = train.metadata[["position"]].copy()
    meta["weak_label"] = weak.loc[train.groups].to_numpy()
    return Setting(
        name, train.images, train.labels, meta, test.images, test.labels, train.groups, test.groups
    )


def _by_group(
    latents: np.ndarray, y: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if groups is None:
        return latents, y
    frame = pd.DataFrame(latents).groupby(groups)
    labels = pd.Series(y).groupby(groups).first()
    return frame.mean().to_numpy(), labels.loc[frame.mean().index].to_numpy()


def _probe(train_z, train_y, test_z, test_y) -> dict[str, float]:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train_z, train_y)
    scores = {"probe_acc": float((model.predict(test_z) == test_y).mean())}
    if len(np.unique(test_y)) == 2:
        scores["probe_auc"] = float(roc_auc_score(test_y, model.predict_proba(test_z)[:, 1]))
    return scores


def run_one(
    setting: Setting,
    method: str,
    seed: int,
    *,
    epochs: int,
    fractions: Sequence[float] = FRACTIONS,
    **params: Any,
) -> list[dict[str, Any]]:
    """Pretrain ``method`` on ``setting`` (no target labels) and probe it at each fraction.

    Returns one row per fraction: ``probe_acc`` (and ``probe_auc`` for two classes) on the
    test split at the probe's level (volumes for slices), ``ari`` of the strata on the test
    samples, and the bookkeeping columns.
    """
    from stratify import Stratifier

    spec = PRIORS[setting.family][method]
    n_classes = len(np.unique(setting.train_y))
    # the strata as when the committed rows were measured: GMM on the latents, unwhitened
    params = {"manifold": None, "whiten": False, **params}
    model = Stratifier(
        n_classes,
        epochs=epochs,
        random_state=seed,
        regularizers=None if spec is None else {method: spec},
        **params,
    )
    model.fit(setting.train_images, metadata=setting.train_metadata if spec else None)
    train_z = model.transform(setting.train_images)
    test_z = model.transform(setting.test_images)
    ari = float(adjusted_rand_score(setting.test_y, model.predict(setting.test_images)))
    train_z, train_y = _by_group(train_z, setting.train_y, setting.train_groups)
    test_z, test_y = _by_group(test_z, setting.test_y, setting.test_groups)
    rows = []
    for fraction in fractions:
        picked = label_subset(train_y, fraction, seed)
        rows.append(
            {
                "setting": setting.name,
                "method": method,
                "seed": seed,
                "fraction": fraction,
                "n_labels": len(picked),
                "ari": ari,
                "batch_size": model.batch_size_,
                "sigma": None if spec is None else str(_sigma(model, method)),
                **_probe(train_z[picked], train_y[picked], test_z, test_y),
            }
        )
    return rows


def _sigma(model: Any, method: str) -> Any:
    term = model.objective_.terms[method]
    return getattr(term, "sigma_", None)


def run_supervised(
    setting: Setting,
    seed: int,
    *,
    fractions: Sequence[float] = FRACTIONS,
    steps: int = SUPERVISED_STEPS,
    batch_size: int = SUPERVISED_BATCH,
) -> list[dict[str, Any]]:
    """The supervised model trained on the same label subsets (the probes' reference).

    ResNet-18 from scratch (stem stride 2, :class:`~stratify.baselines.SupervisedBaseline`),
    ``steps`` optimisation steps of ``batch_size`` at every fraction, no validation data;
    scored on the test split (``probe_acc`` and, for two classes, ``probe_auc``); ``ari`` is
    NaN. Slice settings: the label subset is drawn over volumes exactly as the probes draw
    it, the network trains on every slice of the picked volumes with the volume's true label,
    and a test volume's class probabilities are the mean over its slices.
    """
    import math

    from stratify.baselines import SupervisedBaseline, auc_score

    groups = setting.train_groups
    volumes = None if groups is None else np.unique(groups)  # the order of _by_group's rows
    volume_y = (
        setting.train_y
        if groups is None
        else pd.Series(setting.train_y).groupby(groups).first().to_numpy()
    )
    rows = []
    for fraction in fractions:
        picked = label_subset(volume_y, fraction, seed)
        slices = (
            picked
            if groups is None or volumes is None
            else np.flatnonzero(np.isin(groups, volumes[picked]))
        )
        model = SupervisedBaseline(
            epochs=math.ceil(steps * batch_size / len(slices)),
            batch_size=batch_size,
            stem_stride=2,
            random_state=seed,
        )
        model.fit(setting.train_images[slices], setting.train_y[slices])
        proba, test_y = _by_group(
            model.predict_proba(setting.test_images), setting.test_y, setting.test_groups
        )
        codes = np.searchsorted(model.classes_, test_y)
        row = {
            "setting": setting.name,
            "method": "supervised",
            "seed": seed,
            "fraction": fraction,
            "n_labels": len(picked),
            "ari": float("nan"),
            "batch_size": batch_size,
            "sigma": None,
            "probe_acc": float(np.mean(np.argmax(proba, axis=1) == codes)),
        }
        if len(np.unique(setting.test_y)) == 2:
            row["probe_auc"] = auc_score(codes, proba)
        rows.append(row)
    return rows
