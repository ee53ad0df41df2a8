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
* ``cohort-faint``: the informative cohort at half its texture (``texture_contrast=FAINTER``),
  declared after the informative cohort's probe saturated at the epochs rule (plain SimCLR
  0.993 at 10 % labels): the same question where the images alone leave room.
* ``adrenal-wsp``: AdrenalMNIST3D's volumes cut into slices (``position`` from the slicing);
  the weak label is the volume label with ``FLIP_RATE`` of the training volumes flipped
  (seeded; all slices of a volume share it); the target is the true volume label, probed at
  volume level (slice latents averaged) on the test split.

The same seed gives the same cohort, the same flips and the same label subsets for every
method (:func:`label_subset` is stratified and seeded only by the seed and the fraction).

Each setting also has validation data, disjoint from train and test, on which a prior's
bandwidth and weight are chosen (:data:`GRID`, :func:`candidates`; never on test): for the
cohorts ``VAL_PATIENTS`` further patients of the same generator (seed ``VAL_SEED + seed``),
for AdrenalMNIST3D MedMNIST's ``val`` split. The fine-tuning step of Dufumier et al.
(pretrain, then train the encoder and a linear head on the few labels) is
:func:`run_finetune`, scored as the supervised reference is (:func:`run_supervised`).
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
    "COHORTS",
    "FAINT",
    "FAINTER",
    "FINETUNE_LR",
    "FLIP_RATE",
    "FRACTIONS",
    "GRID",
    "PRIORS",
    "SUPERVISED_BATCH",
    "SUPERVISED_STEPS",
    "VAL_PATIENTS",
    "VAL_SEED",
    "Setting",
    "candidates",
    "flip_weak_labels",
    "label_subset",
    "load_setting",
    "run_finetune",
    "run_one",
    "run_supervised",
]

#: Label fractions of the probe.
FRACTIONS = (0.01, 0.1, 1.0)
#: Stratum texture of the informative cohort (the default cohort uses 0.22).
FAINT = 0.08
#: Stratum texture of the fainter informative cohort (``cohort-faint``).
FAINTER = 0.04
#: Each cohort setting's stratum texture and whether its metadata is permuted (nuisance).
COHORTS: dict[str, tuple[float, bool]] = {
    "cohort-informative": (FAINT, False),
    "cohort-nuisance": (FAINT, True),
    "cohort-faint": (FAINTER, False),
}
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


#: The candidates chosen among on validation data, per prior: ``sigma`` in units of the
#: training column's standard deviation (Silverman's rule gives about 0.23 sd at 1,000
#: patients, so the grid starts there and widens to one sd), ``weight`` the regularizer's
#: weight beside NT-Xent (weight 1). The clinical prior has no bandwidth (equality kernels).
GRID: dict[str, dict[str, tuple[float, ...]]] = {
    "yaware": {"sigma": (0.25, 0.5, 1.0), "weight": (1.0, 3.0)},
    "wsp": {"sigma": (0.25, 0.5, 1.0), "weight": (1.0, 3.0)},
    "clinical": {"weight": (1.0, 3.0)},
}
#: Extra patients of the cohort generator that form the cohorts' validation data.
VAL_PATIENTS = 300
#: Offset of the validation cohort's seed (``VAL_SEED + seed``): other patients, same cohort.
VAL_SEED = 10_000
#: Learning rate of the fine-tuning step (a tenth of the from-scratch rate, 1e-3).
FINETUNE_LR = 1e-4

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
    val_images: np.ndarray | None = None  # where a prior's candidates are compared
    val_y: np.ndarray | None = None
    val_groups: np.ndarray | None = None

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
    name: str,
    seed: int,
    *,
    n_train: int = 1000,
    n_test: int = 500,
    n_val: int = VAL_PATIENTS,
    slice_stride: int = 4,
) -> Setting:
    """Build a setting (see the module docstring); deterministic in ``seed``.

    ``n_train``, ``n_test`` and ``n_val`` size the cohorts (AdrenalMNIST3D keeps its
    splits). The cohorts' validation patients come from their own draw of the generator
    (seed ``VAL_SEED + seed``), so train and test are those of a setting without them.
    """
    known = (*COHORTS, "adrenal-wsp")
    if name not in known:
        raise ValueError(f"Expected a known setting ({', '.join(known)}), got {name!r}.")
    if name in COHORTS:
        from stratify.data import make_cohort

        texture, permuted = COHORTS[name]
        images, strata, metadata = make_cohort(
            n_train + n_test, texture_contrast=texture, random_state=seed
        )
        train_meta = metadata.iloc[:n_train].reset_index(drop=True)
        if permuted:
            rng = np.random.default_rng(seed + 1)
            for column in ("age", "weak_label"):
                train_meta[column] = rng.permutation(train_meta[column].to_numpy())
        val_images, val_y, _ = make_cohort(
            n_val, texture_contrast=texture, random_state=VAL_SEED + seed
        )
        return Setting(
            name,
            images[:n_train],
            strata[:n_train],
            train_meta,
            images[n_train:],
            strata[n_train:],
            val_images=val_images,
            val_y=val_y,
        )
    from lab.datasets import load_dataset

    data = load_dataset("adrenalmnist3d-slices", slice_stride=slice_stride)
    train, test, val = data.train, data.test, data.val
    if train.groups is None or val is None:
        raise ValueError("Expected the volume of each slice (groups) and a val split, got none.")
    volumes = np.unique(train.groups)
    true = pd.Series(train.labels, index=train.groups).groupby(level=0).first()
    weak = pd.Series(flip_weak_labels(true.loc[volumes].to_numpy(), FLIP_RATE, seed), index=volumes)
    meta = train.metadata[["position"]].copy()
    meta["weak_label"] = weak.loc[train.groups].to_numpy()
    return Setting(
        name,
        train.images,
        train.labels,
        meta,
        test.images,
        test.labels,
        train.groups,
        test.groups,
        val.images,
        val.labels,
        val.groups,
    )


def _by_group(
    latents: np.ndarray, y: np.ndarray, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if groups is None:
        return latents, y
    frame = pd.DataFrame(latents).groupby(groups)
    labels = pd.Series(y).groupby(groups).first()
    return frame.mean().to_numpy(), labels.loc[frame.mean().index].to_numpy()


def _probe(
    train_z: np.ndarray, train_y: np.ndarray, scored: dict[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """Fit a logistic-regression probe on standardised latents; score it on each named set.

    Returns ``{prefix}acc`` (and ``{prefix}auc`` for two classes) for each ``prefix`` of
    ``scored``, a mapping of prefix to ``(latents, labels)``.
    """
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(train_z, train_y)
    scores = {}
    for prefix, (z, y) in scored.items():
        scores[f"{prefix}acc"] = float((model.predict(z) == y).mean())
        if len(np.unique(y)) == 2:
            scores[f"{prefix}auc"] = float(roc_auc_score(y, model.predict_proba(z)[:, 1]))
    return scores


def candidates(setting: Setting, method: str) -> list[dict[str, Any] | None]:
    """The specs of ``method`` compared on validation data (``[None]`` for SimCLR).

    :data:`GRID`'s weights x bandwidths, in that order; a bandwidth is ``sigma`` times the
    standard deviation of the prior's continuous column on the training patients
    (``sigma_sd`` keeps the multiple).
    """
    spec = PRIORS[setting.family][method]
    if spec is None:
        return [None]
    grid = GRID[method]
    column = spec.get("position_column", spec.get("columns"))
    out: list[dict[str, Any] | None] = []
    for weight in grid["weight"]:
        if "sigma" not in grid:
            out.append({**spec, "weight": weight})
            continue
        sd = float(np.nanstd(setting.train_metadata[column].to_numpy(dtype=float)))
        if not sd > 0:
            raise ValueError(
                f"Expected {column!r} to vary across the training samples (a bandwidth in "
                f"sd units), got a standard deviation of {sd}."
            )
        for scale in grid["sigma"]:
            out.append({**spec, "weight": weight, "sigma": scale * sd, "sigma_sd": scale})
    return out


def run_one(
    setting: Setting,
    method: str,
    seed: int,
    *,
    epochs: int | str,
    fractions: Sequence[float] = FRACTIONS,
    spec: dict[str, Any] | None = None,
    finetune: Sequence[float] = (),
    **params: Any,
) -> list[dict[str, Any]]:
    """Pretrain ``method`` on ``setting`` (no target labels) and probe it at each fraction.

    Parameters
    ----------
    setting : Setting
    method : str
        A key of ``PRIORS[setting.family]``.
    seed : int
    epochs : int or "auto"
        Pretraining epochs (``"auto"``: the estimator's epochs rule).
    fractions : sequence of float
        Label fractions of the frozen-latent probe.
    spec : dict, optional
        The prior's regularizer spec (one of :func:`candidates`; a ``sigma_sd`` key is
        bookkeeping); default ``PRIORS[family][method]`` (Silverman's bandwidth, weight 1).
    finetune : sequence of float, default=()
        Label fractions at which the pretrained encoder is also fine-tuned
        (:func:`run_finetune`).
    **params
        Further Stratifier parameters.

    Returns
    -------
    list of dict
        One row per probe fraction (``protocol`` "probe"): ``probe_acc`` (and ``probe_auc``
        for two classes) on the test split at the probe's level (volumes for slices),
        ``val_acc`` / ``val_auc`` on the validation data when the setting has it, ``ari`` of
        the strata on the test samples and the bookkeeping columns; then the fine-tuned
        rows.
    """
    from stratify import Stratifier

    if spec is None:
        spec = PRIORS[setting.family][method]
    regularizer = None if spec is None else {k: v for k, v in spec.items() if k != "sigma_sd"}
    n_classes = len(np.unique(setting.train_y))
    # the strata as in the first protocol's rows: GMM on the raw latents (not the default)
    params = {"manifold": None, "clusterer": "gmm", **params}
    model = Stratifier(
        n_classes,
        epochs=epochs,
        random_state=seed,
        regularizers=None if regularizer is None else {method: regularizer},
        **params,
    )
    model.fit(setting.train_images, metadata=setting.train_metadata if spec else None)
    ari = float(adjusted_rand_score(setting.test_y, model.predict(setting.test_images)))
    train_z, train_y = _by_group(
        model.transform(setting.train_images), setting.train_y, setting.train_groups
    )
    scored = {
        "probe_": _by_group(
            model.transform(setting.test_images), setting.test_y, setting.test_groups
        )
    }
    if setting.val_images is not None and setting.val_y is not None:
        scored["val_"] = _by_group(
            model.transform(setting.val_images), setting.val_y, setting.val_groups
        )
    common = {
        "setting": setting.name,
        "method": method,
        "seed": seed,
        "ari": ari,
        "batch_size": model.batch_size_,
        "epochs": model.epochs_,
        "sigma": None if spec is None else str(_sigma(model, method)),
        "sigma_sd": None if spec is None else spec.get("sigma_sd"),
        "weight": None if spec is None else spec.get("weight", 1.0),
    }
    rows = []
    for fraction in fractions:
        picked = label_subset(train_y, fraction, seed)
        scores = _probe(train_z[picked], train_y[picked], scored)
        rows.append(
            {**common, "protocol": "probe", "fraction": fraction, "n_labels": len(picked), **scores}
        )
    if finetune:
        for row in run_finetune(setting, model, seed, fractions=finetune):
            rows.append({**common, **row, "method": method, "sigma": common["sigma"]})
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

    ResNet-18 from scratch (stem stride 2, :class:`~lab.baselines.SupervisedBaseline`),
    ``steps`` optimisation steps of ``batch_size`` at every fraction, no validation data;
    scored on the test split (``probe_acc`` and, for two classes, ``probe_auc``); ``ari`` is
    NaN. Slice settings: the label subset is drawn over volumes exactly as the probes draw
    it, the network trains on every slice of the picked volumes with the volume's true label,
    and a test volume's class probabilities are the mean over its slices.
    """
    from lab.baselines import SupervisedBaseline

    def make(epochs: int) -> Any:
        return SupervisedBaseline(
            epochs=epochs, batch_size=batch_size, stem_stride=2, random_state=seed
        )

    rows = _trained_on_subsets(setting, seed, fractions, steps * batch_size, make)
    return [{**row, "method": "supervised", "protocol": "scratch"} for row in rows]


def run_finetune(
    setting: Setting,
    model: Any,
    seed: int,
    *,
    fractions: Sequence[float] = FRACTIONS,
    steps: int = SUPERVISED_STEPS,
    batch_size: int = SUPERVISED_BATCH,
    lr: float = FINETUNE_LR,
) -> list[dict[str, Any]]:
    """Dufumier et al.'s fine-tuning step: the pretrained encoder and a new linear head,
    trained on the few labels.

    ``model`` is a fitted Stratifier; its encoder (``model_.encoder``, images to features)
    is copied and trained with cross-entropy exactly as the supervised reference
    (:func:`run_supervised`: the same label subsets, ``steps`` steps of ``batch_size``, no
    validation data, slices of the picked volumes, volumes scored by their mean slice
    probabilities), at learning rate ``lr``. Rows have ``protocol`` "finetune".
    """
    from lab.baselines import SupervisedBaseline

    encoder = model.model_.encoder

    def make(epochs: int) -> Any:
        return SupervisedBaseline(
            epochs=epochs, batch_size=batch_size, arch=encoder, lr=lr, random_state=seed
        )

    rows = _trained_on_subsets(setting, seed, fractions, steps * batch_size, make)
    return [{**row, "protocol": "finetune"} for row in rows]


def _trained_on_subsets(
    setting: Setting,
    seed: int,
    fractions: Sequence[float],
    samples: int,
    make: Any,
) -> list[dict[str, Any]]:
    """Train ``make(epochs)`` (a SupervisedBaseline) on each label subset for about
    ``samples`` samples; score it on the test split (volumes by mean slice probability).
    """
    import math

    from lab.baselines import auc_score

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
        classifier = make(math.ceil(samples / len(slices)))
        classifier.fit(setting.train_images[slices], setting.train_y[slices])
        proba, test_y = _by_group(
            classifier.predict_proba(setting.test_images), setting.test_y, setting.test_groups
        )
        codes = np.searchsorted(classifier.classes_, test_y)
        row = {
            "setting": setting.name,
            "seed": seed,
            "fraction": fraction,
            "n_labels": len(picked),
            "ari": float("nan"),
            "batch_size": classifier.batch_size,
            "sigma": None,
            "probe_acc": float(np.mean(np.argmax(proba, axis=1) == codes)),
        }
        if len(np.unique(setting.test_y)) == 2:
            row["probe_auc"] = auc_score(codes, proba)
        rows.append(row)
    return rows
