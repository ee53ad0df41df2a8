"""Scoring one benchmark run: strata against labels (train / test or transductive), probes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from lab.datasets import BenchmarkData, Split
from lab.methods import MethodResult
from stratify.analysis import metrics

__all__ = ["score"]


def _group_means(embedding: np.ndarray, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Average the slice latents of each volume: (n_volumes, D) and the volume labels."""
    if split.groups is None:
        raise ValueError("Expected the volume of each slice (groups), got none.")
    groups, inverse = np.unique(split.groups, return_inverse=True)
    sums = np.zeros((len(groups), embedding.shape[1]))
    np.add.at(sums, inverse, embedding)
    means = sums / np.bincount(inverse)[:, None]
    labels = np.zeros(len(groups), dtype=np.int64)
    labels[inverse] = split.labels
    return means, labels


def _accuracy(y_true: np.ndarray, labels: np.ndarray) -> float:
    """Hungarian ACC; extra clusters (HDBSCAN) count as errors, so it is never inflated."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return metrics.cluster_accuracy(y_true, labels)


def _smallest_share(labels: np.ndarray, n_clusters: int) -> float:
    """Share of the scored samples in the smallest of the ``n_clusters`` strata (0 when one
    holds none of them; noise, -1, counts in none).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0 or n_clusters < 1:
        return float("nan")
    counts = np.bincount(labels[labels >= 0], minlength=n_clusters)
    return float(counts.min() / len(labels))


def score(data: BenchmarkData, result: MethodResult, seed: int) -> dict[str, Any]:
    """The agreement and probe scores of one run (see the module docstring)."""
    y_test = data.test.labels
    # a classifier's own scores (plain accuracy: its classes need no matching)
    scores: dict[str, Any] = {
        "acc": (
            result.extra["acc"] if "acc" in result.extra else _accuracy(y_test, result.test_labels)
        ),
        "bacc": (
            result.extra["bacc"]
            if "bacc" in result.extra
            else metrics.balanced_cluster_accuracy(y_test, result.test_labels)
        ),
        "nmi": float(normalized_mutual_info_score(y_test, result.test_labels)),
        "ari": float(adjusted_rand_score(y_test, result.test_labels)),
        "majority_rate": metrics.majority_rate(y_test),
        "min_share": _smallest_share(result.test_labels, result.n_clusters),
        "n_classes": data.n_classes,
        "k": result.n_clusters,
        "knn_acc": float("nan"),
        "linear_probe_acc": float("nan"),
        "probe_level": "",
        "auc": result.extra.get("auc", float("nan")),
        "fidelity": result.extra.get("fidelity", float("nan")),
        "reconstruction_fidelity": result.extra.get("reconstruction_fidelity", float("nan")),
        "diversity_ratio": result.extra.get("diversity_ratio", float("nan")),
    }
    if result.train_embedding is None:
        return scores
    train_z, train_y = result.train_embedding, data.train.labels
    test_z = result.test_embedding
    if test_z is None:
        raise ValueError("Expected test latents beside the training latents, got none.")
    level = "sample"
    if data.train.groups is not None:
        train_z, train_y = _group_means(train_z, data.train)
        test_z, y_test = _group_means(test_z, data.test)
        level = "volume"
    if data.transductive:
        folds = int(min(5, np.bincount(train_y).min()))
        if folds >= 2:
            scores["knn_acc"] = metrics.knn_accuracy(train_z, train_y, cv=folds, random_state=seed)
            scores["linear_probe_acc"] = metrics.linear_probe_accuracy(
                train_z, train_y, cv=folds, random_state=seed
            )
        level += ", 5-fold CV" if folds == 5 else f", {folds}-fold CV"
    else:
        scores["knn_acc"] = metrics.knn_accuracy(train_z, train_y, test_z, y_test)
        scores["linear_probe_acc"] = metrics.linear_probe_accuracy(train_z, train_y, test_z, y_test)
    scores["probe_level"] = level
    return scores
