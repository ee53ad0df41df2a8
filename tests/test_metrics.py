"""Metrics against hand-worked examples and brute-force references."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from stratify import metrics


def _brute_force_accuracy(y_true, labels):
    """Try every injective map from clusters to classes (noise never matches)."""
    classes = sorted(set(y_true))
    clusters = sorted(set(labels) - {-1})
    targets = classes + [None] * max(0, len(clusters) - len(classes))
    best = 0
    for image in itertools.permutations(targets, len(clusters)):
        mapping = dict(zip(clusters, image, strict=True))
        hits = sum(1 for t, c in zip(y_true, labels, strict=True) if mapping.get(c) == t)
        best = max(best, hits)
    return best / len(y_true)


def test_accuracy_hand_worked():
    # clusters 1 -> class 0 (2 hits), 0 -> class 1 (2 hits), 2 -> class 2 (1 hit): 5 / 6
    y_true = [0, 0, 1, 1, 2, 2]
    labels = [1, 1, 0, 0, 0, 2]
    assert metrics.cluster_accuracy(y_true, labels) == pytest.approx(5 / 6)
    assert metrics.purity(y_true, labels) == pytest.approx(5 / 6)


def test_accuracy_is_invariant_to_renaming_clusters():
    y_true = [0, 0, 0, 1, 1, 2]
    assert metrics.cluster_accuracy(y_true, [5, 5, 5, 9, 9, 7]) == 1.0
    assert metrics.cluster_accuracy(y_true, ["a", "a", "a", "b", "b", "c"]) == 1.0


@pytest.mark.parametrize("seed", range(6))
def test_accuracy_and_purity_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n_classes, n_clusters = rng.integers(2, 4), rng.integers(2, 6)
    y_true = rng.integers(0, n_classes, 25).tolist()
    labels = rng.integers(-1, n_clusters, 25).tolist()  # includes noise
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = metrics.cluster_accuracy(y_true, labels)
    assert acc == pytest.approx(_brute_force_accuracy(y_true, labels))
    majority = sum(
        max(sum(1 for t, c in zip(y_true, labels, strict=True) if c == k and t == cls)
            for cls in set(y_true))
        for k in set(labels) - {-1}
    )
    assert metrics.purity(y_true, labels) == pytest.approx(majority / 25)


def test_over_clustering_warns_and_never_inflates_accuracy():
    y_true = [0, 0, 0, 0, 1, 1, 1, 1]
    labels = [0, 0, 1, 1, 2, 2, 3, 3]  # every cluster is pure
    with pytest.warns(UserWarning, match="4 clusters for 2 classes.*purity"):
        acc = metrics.cluster_accuracy(y_true, labels)
    assert acc == pytest.approx(0.5)
    assert metrics.purity(y_true, labels) == 1.0


def test_noise_counts_as_error():
    assert metrics.cluster_accuracy([0, 0, 1, 1], [0, -1, 1, 1]) == pytest.approx(0.75)


def test_majority_rate():
    assert metrics.majority_rate([1, 1, 1, 0]) == 0.75


def test_evaluate_hand_worked_and_keys():
    y_true = np.array([0, 0, 1, 1, 1, 1])
    labels = np.array([0, 0, 1, 1, 1, -1])
    scores = metrics.evaluate(y_true, labels)
    assert scores["acc"] == pytest.approx(5 / 6)
    assert scores["n_clusters"] == 2 and scores["n_classes"] == 2
    assert scores["noise_fraction"] == pytest.approx(1 / 6)
    assert scores["majority_rate"] == pytest.approx(4 / 6)
    perfect = metrics.evaluate(y_true, y_true)
    assert perfect["nmi"] == perfect["ari"] == perfect["ami"] == pytest.approx(1.0)


def test_evaluate_with_embedding_scores_representation():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 30)
    embedding = rng.normal(size=(90, 4)) + 6 * np.eye(3, 4)[y]  # separable
    scores = metrics.evaluate(y, y, embedding)
    assert scores["knn_accuracy"] > 0.95 and scores["linear_probe_accuracy"] > 0.95
    assert scores["silhouette"] > 0.5
    noise = metrics.evaluate(y, y, rng.normal(size=(90, 4)))
    assert noise["knn_accuracy"] < 0.6 and noise["silhouette"] < 0.2


def test_probes_on_train_test_pair():
    train, test = np.array([[0.0, 1], [0, 2], [5, 0], [6, 0]]), np.array([[0.0, 3], [7, 0]])
    assert metrics.knn_accuracy(train, [0, 0, 1, 1], test, [0, 1], n_neighbors=1) == 1.0
    assert metrics.linear_probe_accuracy(train, [0, 0, 1, 1], test, [1, 0]) == 0.0
    with pytest.raises(ValueError, match="both test_embedding and test_y"):
        metrics.knn_accuracy(train, [0, 0, 1, 1], test)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 1], [0]), r"same length, got shapes \(2,\) and \(1,\)"),
        (([], []), "at least one sample"),
        (([[0, 1]], [[0, 1]]), "1D arrays"),
    ],
)
def test_bad_labelings(args, match):
    with pytest.raises(ValueError, match=match):
        metrics.cluster_accuracy(*args)


def test_embedding_rows_must_match():
    with pytest.raises(ValueError, match=r"one row per sample \(3\), got shape \(2, 2\)"):
        metrics.evaluate([0, 1, 1], [0, 1, 1], np.zeros((2, 2)))


def test_balanced_cluster_accuracy_by_hand():
    from stratify.metrics import balanced_cluster_accuracy

    # 8 of class 0, 2 of class 1; one stratum for everyone: ACC would be 0.8, BACC is 1/2
    y = np.array([0] * 8 + [1] * 2)
    assert balanced_cluster_accuracy(y, np.zeros(10, dtype=int)) == pytest.approx(0.5)
    # stratum 5 holds 6 of class 0 and 1 of class 1, stratum 7 holds 2 + 1: matched 5->0,
    # 7->1, recalls 6/8 and 1/2
    labels = np.array([5] * 6 + [7] * 2 + [5, 7])
    assert balanced_cluster_accuracy(y, labels) == pytest.approx((6 / 8 + 1 / 2) / 2)
    # noise counts as an error
    assert balanced_cluster_accuracy(y, np.array([-1] * 8 + [3, 3])) == pytest.approx(0.5)
