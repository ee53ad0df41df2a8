"""Metrics against hand-worked examples and brute-force references."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from stratify.analysis import metrics


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
        max(
            sum(1 for t, c in zip(y_true, labels, strict=True) if c == k and t == cls)
            for cls in set(y_true)
        )
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
    from stratify.analysis.metrics import balanced_cluster_accuracy

    # 8 of class 0, 2 of class 1; one stratum for everyone: ACC would be 0.8, BACC is 1/2
    y = np.array([0] * 8 + [1] * 2)
    assert balanced_cluster_accuracy(y, np.zeros(10, dtype=int)) == pytest.approx(0.5)
    # stratum 5 holds 6 of class 0 and 1 of class 1, stratum 7 holds 2 + 1: matched 5->0,
    # 7->1, recalls 6/8 and 1/2
    labels = np.array([5] * 6 + [7] * 2 + [5, 7])
    assert balanced_cluster_accuracy(y, labels) == pytest.approx((6 / 8 + 1 / 2) / 2)
    # noise counts as an error
    assert balanced_cluster_accuracy(y, np.array([-1] * 8 + [3, 3])) == pytest.approx(0.5)


def _blobs(rng, n_per, centres):
    latents = np.concatenate([rng.normal(c, 0.3, size=(n_per, 2)) for c in centres])
    return latents, np.repeat(np.arange(len(centres)), n_per)


def test_stratum_fidelity_known_answers():
    rng = np.random.default_rng(0)
    centres = [(-5.0, 0.0), (5.0, 0.0), (0.0, 5.0)]
    real, strata = _blobs(rng, 50, centres)
    drawn, wanted = _blobs(rng, 20, centres)
    overall, per = metrics.stratum_fidelity(real, strata, drawn, wanted)
    assert overall == 1.0 and per == {0: 1.0, 1: 1.0, 2: 1.0}
    # samples of stratum 2 drawn where stratum 0 lives: all of them are unfaithful
    wrong = drawn.copy()
    wrong[wanted == 2] = rng.normal(centres[0], 0.3, size=(20, 2))
    overall, per = metrics.stratum_fidelity(real, strata, wrong, wanted)
    assert per == {0: 1.0, 1: 1.0, 2: 0.0}
    assert overall == pytest.approx(40 / 60)
    # noise in the real strata is left out of the classifier
    noisy = np.concatenate([strata[:-5], np.full(5, -1)])
    assert metrics.stratum_fidelity(real, noisy, drawn, wanted)[0] == 1.0


def test_stratum_fidelity_errors():
    real, strata = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"real strata \[0, 1\], got strata \[2\]"):
        metrics.stratum_fidelity(real, strata, np.zeros((1, 2)), [2])
    with pytest.raises(ValueError, match=r"shapes \(N, D\) and \(M, D\)"):
        metrics.stratum_fidelity(real, strata, np.zeros((1, 3)), [0])
    with pytest.raises(ValueError, match=r"at least 2 real strata, got \[0\]"):
        metrics.stratum_fidelity(real, [0, 0, 0, -1], np.zeros((1, 2)), [0])


def test_mean_pairwise_distance_against_a_loop():
    images = np.random.default_rng(1).random((6, 1, 3, 3))
    pairs = [
        np.sqrt(((images[i] - images[j]) ** 2).sum()) for i in range(6) for j in range(i + 1, 6)
    ]
    assert metrics.mean_pairwise_distance(images) == pytest.approx(np.mean(pairs))
    assert metrics.mean_pairwise_distance(np.ones((3, 4))) == 0.0
    with pytest.raises(ValueError, match="at least 2 images, got 1"):
        metrics.mean_pairwise_distance(np.ones((1, 4)))
