"""The benchmark's named grids (profiles) and their expansion into runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lab.methods import METHODS

__all__ = ["FULL_BARS", "PROFILES", "PUBLISHED", "PUBLISHED_SOURCE", "Run", "expand", "per_dataset"]

_UNSUPERVISED = [
    "pca-kmeans",
    "ae-kmeans",
    "vae-kmeans",
    "simclr-kmeans",
    "ae-simclr-kmeans",
    "vae-simclr-kmeans",
    "vae-simclr-gmm",
    "ae-simclr-gmm",
    "ae-simclr-hdbscan",
]
#: The strata rows: what the manifold step adds to the latents.
_STRATA = [
    "ae-simclr-kmeans",
    "ae-simclr-gmm",
    "ae-simclr-hdbscan",
    "ae-simclr-umap-kmeans",
    "ae-simclr-umap-gmm",
    "ae-simclr-umap-hdbscan",
    "ae-simclr-auto-gmm",
]
#: The supervised anchors of the MedMNIST v2 protocol. ResNet-50 (28) runs on BreastMNIST
#: only (about half an hour a seed on 2 CPU cores, hours on PneumoniaMNIST); the 3D variant
#: is registered too, but takes hours per seed.
_SUPERVISED = [
    "resnet18-medmnist",
    "resnet18-medmnist-short",
    "resnet18-transfer",
    "ae-simclr-finetune",
]
_ABLATION = ["ae-simclr-kmeans", "ae-simclr+yaware", "ae-simclr+clinical", "ae-simclr+wsp"]
#: The default recipe (every Stratifier default, epochs by its rule) and what each of its
#: clustering choices contributes, on the same network.
_DEFAULT_RECIPE = [
    "default",
    "default-latent-gmm",
    "default-raw-gmm",
    "default-white-gmm",
    "default-umap-gmm",
    "default-auto-gmm",
    "default-head",
    "default-head-sized",
    "default-consensus",
    "default-consensus-spectral",
    "default-consensus-kmeans",
]

#: Published test scores of the rows that reproduce a paper's protocol: (dataset, method) ->
#: {metric: value}. Shown in the report's ``published`` column and read by the protocol bars.
#: Source: :data:`PUBLISHED_SOURCE` (ResNet-18 / ResNet-50 at 28 px; ResNet-18 + 3D for
#: volumes).
PUBLISHED: dict[tuple[str, str], dict[str, float]] = {
    ("pneumoniamnist", "resnet18-medmnist"): {"acc": 0.854, "auc": 0.944},
    ("pneumoniamnist", "resnet50-medmnist"): {"acc": 0.854, "auc": 0.948},
    ("breastmnist", "resnet18-medmnist"): {"acc": 0.863, "auc": 0.901},
    ("breastmnist", "resnet50-medmnist"): {"acc": 0.812, "auc": 0.857},
    ("adrenalmnist3d", "resnet18-medmnist"): {"acc": 0.721, "auc": 0.827},
}
PUBLISHED_SOURCE = (
    "MedMNIST v2 (Yang et al. 2023, Sci. Data 10:41), benchmark table, test split, 28 px"
)
#: How close the protocol rows must come to the published scores.
PROTOCOL_TOLERANCE = {"acc": 0.02, "auc": 0.03}

#: The full profile's quality bars, checked by its report
#: (see :func:`lab.report.check_bar` for the rules).
FULL_BARS: list[dict[str, Any]] = [
    {
        "label": "PneumoniaMNIST cluster ACC",
        "dataset": "pneumoniamnist",
        "metric": "acc",
        "method": "best unsupervised",
        "at_least": 0.80,
    },
    {
        "label": "PneumoniaMNIST linear probe",
        "dataset": "pneumoniamnist",
        "metric": "linear_probe_acc",
        "method": "best unsupervised",
        "at_least": 0.85,
    },
    {
        "label": "MNIST test set cluster ACC",
        "dataset": "mnist",
        "metric": "acc",
        "method": "best unsupervised",
        "at_least": 0.95,
    },
    {
        "label": "MNIST test set, the default recipe's cluster ACC",
        "dataset": "mnist",
        "metric": "acc",
        "method": "default",
        "at_least": 0.95,
    },
    {
        "label": "PneumoniaMNIST, the default recipe's cluster ACC",
        "dataset": "pneumoniamnist",
        "metric": "acc",
        "method": "default",
        "at_least": 0.85,
    },
    {
        "label": "BreastMNIST, the default recipe's NMI (the best before it: 0.075)",
        "dataset": "breastmnist",
        "metric": "nmi",
        "method": "default",
        "above_by_spread": 0.075,
    },
    {
        "label": "PneumoniaMNIST vae-kmeans linear probe",
        "dataset": "pneumoniamnist",
        "metric": "linear_probe_acc",
        "method": "vae-kmeans",
        "at_least": 0.84,
    },
    {
        "label": "PneumoniaMNIST vae-simclr-kmeans ACC within 0.02 of the best AE variant",
        "dataset": "pneumoniamnist",
        "metric": "acc",
        "method": "vae-simclr-kmeans",
        "within_of_best": {"prefix": "ae-", "margin": 0.02},
    },
    {
        "label": "PneumoniaMNIST default VAE (vae-simclr-gmm) stratum fidelity",
        "dataset": "pneumoniamnist",
        "metric": "fidelity",
        "method": "vae-simclr-gmm",
        "at_least": 0.90,
    },
    {
        "label": "MNIST default VAE (vae-simclr-gmm) stratum fidelity",
        "dataset": "mnist",
        "metric": "fidelity",
        "method": "vae-simclr-gmm",
        "at_least": 0.90,
    },
    {
        "label": "Cohort: a metadata regularizer beats plain contrastive in ARI by more than "
        "the seed spread",
        "dataset": "cohort",
        "metric": "ari",
        "method": "-",
        "beats_by_spread": {"base": "ae-simclr-kmeans", "contains": "+"},
    },
    *(
        {
            "label": f"{title} ResNet-18 (28), MedMNIST v2 protocol, {metric.upper()}",
            "dataset": dataset,
            "metric": metric,
            "method": "resnet18-medmnist",
            "within": {
                "value": PUBLISHED[(dataset, "resnet18-medmnist")][metric],
                "tolerance": tolerance,
            },
        }
        for dataset, title in (("pneumoniamnist", "PneumoniaMNIST"), ("breastmnist", "BreastMNIST"))
        for metric, tolerance in PROTOCOL_TOLERANCE.items()
    ),
]

#: Named grids. Each block is run as datasets x methods x seeds; ``epochs`` and
#: ``n_samples`` may be given per dataset (``"default"`` for the others).
PROFILES: dict[str, dict[str, Any]] = {
    "quick": {
        "description": "smoke test: the synthetic cohort, small and short (CI)",
        "seeds": [0],
        "blocks": [
            {"datasets": ["cohort"], "methods": [*_UNSUPERVISED, *_ABLATION[1:]]},
            {"datasets": ["cohort3d-slices"], "methods": ["ae-simclr-kmeans", "ae-simclr+wsp"]},
        ],
        "epochs": {"default": 3},
        "n_samples": {"cohort": 240, "cohort3d-slices": 24},
        "batch_size": 64,
        "supervised_epochs": 2,
        "slice_stride": 4,
        "figures": {"cohort": "ae-simclr-kmeans"},
    },
    "full": {
        "description": "the committed results: MedMNIST, MNIST, cohort ablations, 3 seeds "
        "(run in parts on 2 CPU cores)",
        "seeds": [0, 1, 2],
        "blocks": [
            {
                "datasets": ["mnist", "pneumoniamnist", "breastmnist", "cohort"],
                "methods": _DEFAULT_RECIPE,
            },
            {"datasets": ["cohort"], "methods": ["pca-kmeans", *_STRATA, *_ABLATION[1:]]},
            {
                "datasets": ["pneumoniamnist", "breastmnist"],
                "methods": [*_UNSUPERVISED, *_STRATA[3:], "resnet18-supervised", *_SUPERVISED],
            },
            {
                "datasets": ["mnist"],
                "methods": ["pca-kmeans", "simclr-kmeans", *_STRATA, "vae-simclr-gmm"],
            },
            {
                "datasets": ["cohort3d-slices"],
                "methods": ["ae-simclr-kmeans", "ae-simclr+yaware", "ae-simclr+wsp"],
            },
            {
                "datasets": ["adrenalmnist3d-slices"],
                "methods": ["ae-simclr-kmeans", "ae-simclr+yaware", "ae-simclr+wsp"],
            },
            {"datasets": ["adrenalmnist3d"], "methods": ["resnet18-supervised"], "seeds": [0]},
            {"datasets": ["breastmnist"], "methods": ["resnet50-medmnist"]},
        ],
        "epochs": {
            "default": 15,
            "pneumoniamnist": 12,
            "breastmnist": 40,
            "mnist": 8,
            "adrenalmnist3d-slices": 6,
        },
        "n_samples": {"cohort3d-slices": 120},
        "batch_size": 256,
        "supervised_epochs": {"default": 15, "adrenalmnist3d": 10},
        "slice_stride": {"default": 2, "adrenalmnist3d-slices": 4},
        "figures": {
            "pneumoniamnist": ["ae-simclr-kmeans", "vae-simclr-gmm"],
            "cohort": "ae-simclr+yaware",
            "mnist": ["ae-simclr-kmeans", "vae-simclr-gmm"],
        },
        "bars": FULL_BARS,
    },
}
#: Where the default recipe is chosen: the full profile's networks (the same training split,
#: epochs and seeds, so ``--model-cache`` shares them), their strata scored on MedMNIST's val
#: split and on a held-out synthetic cohort, never on test (README, "The default recipe").
PROFILES["validation"] = {
    "description": "selection of the default recipe: the full profile's default networks, "
    "strata scored on PneumoniaMNIST's and BreastMNIST's val splits and on a held-out cohort",
    "seeds": [0, 1, 2],
    "split": "val",
    "blocks": [
        {"datasets": ["pneumoniamnist", "breastmnist", "cohort"], "methods": _DEFAULT_RECIPE}
    ],
    "epochs": PROFILES["full"]["epochs"],
    "batch_size": PROFILES["full"]["batch_size"],
}


@dataclass(frozen=True)
class Run:
    """One cell of the grid."""

    dataset: str
    method: str
    seed: int


def per_dataset(value: Any, dataset: str) -> Any:
    """``value`` itself, or its entry for ``dataset`` when it is a per-dataset mapping."""
    if isinstance(value, Mapping):
        return value.get(dataset, value.get("default"))
    return value


def expand(
    profile: Mapping[str, Any],
    datasets: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[Run]:
    """The runs of a profile, optionally restricted to some datasets, methods or seeds.

    A block may carry its own ``"seeds"`` (e.g. one seed for an expensive baseline). Runs are
    ordered dataset, then seed, then method, so that methods sharing a trained network
    (``ae-simclr-kmeans``, ``-gmm``, ``-hdbscan``) find it in the cache of
    :mod:`lab.methods`.

    A dataset in ``datasets`` that no block names runs every method in ``methods`` (the
    unsupervised ones if none are given); a method in ``methods`` runs on every dataset in
    ``datasets``, with the profile's seeds, also where no block pairs the two. Methods that no
    block runs, given without ``datasets``, are refused (there is nothing to run them on).
    """
    unknown = [m for m in methods or () if m not in METHODS]
    if unknown:
        raise ValueError(f"Expected methods among {sorted(METHODS)}, got unknown {unknown}.")
    runs = []
    for block in profile["blocks"]:
        for dataset in block["datasets"]:
            if datasets and dataset not in datasets:
                continue
            # seed-major: the clusterer variants of a seed follow its trained network (cache)
            for seed in seeds if seeds is not None else block.get("seeds", profile["seeds"]):
                for method in block["methods"]:
                    if methods and method not in methods:
                        continue
                    runs.append(Run(dataset, method, int(seed)))
    if datasets:
        known = {d for block in profile["blocks"] for d in block["datasets"]}
        # a dataset named on the command line but in no block runs every method asked (the
        # unsupervised ones if none); a known one also runs an asked method no block pairs
        # it with, so that `--datasets X --methods M` never quietly runs nothing
        covered = {(r.dataset, r.method) for r in runs}
        for dataset in dict.fromkeys(datasets):
            asked = methods or (() if dataset in known else _UNSUPERVISED)
            missing = [m for m in asked if (dataset, m) not in covered]
            for seed in seeds if seeds is not None else profile["seeds"]:
                runs.extend(Run(dataset, method, int(seed)) for method in missing)
    elif methods:
        in_blocks = {m for block in profile["blocks"] for m in block["methods"]}
        orphans = [m for m in methods if m not in in_blocks]
        if orphans:
            raise ValueError(
                f"Expected --datasets with methods that no block of the profile "
                f"runs, got {orphans} and no datasets."
            )
    return runs
