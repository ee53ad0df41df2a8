"""How strata relate to labels, and how good a representation is.

* Agreement of clusters with labels: :func:`cluster_accuracy` (one-to-one Hungarian matching),
  :func:`purity` (many-to-one, for over-clustering; never called accuracy), NMI, ARI, AMI.
* Representation quality of an embedding: :func:`knn_accuracy` and
  :func:`linear_probe_accuracy`, on a train / test pair or by cross-validation.
* :func:`evaluate` gathers them in one dictionary.
* Quality of generated images: :func:`stratum_fidelity` (do samples drawn for a stratum land
  back in it?) and :func:`mean_pairwise_distance` (their diversity).

Noise labels (``-1``, as HDBSCAN gives) are never matched to a class: they count as errors in
accuracy and purity, and as a cluster of their own in NMI / ARI / AMI.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import pdist
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = [
    "auc_score",
    "balanced_cluster_accuracy",
    "cluster_accuracy",
    "contingency",
    "evaluate",
    "knn_accuracy",
    "linear_probe_accuracy",
    "majority_rate",
    "matching",
    "mean_pairwise_distance",
    "purity",
    "stratum_fidelity",
]


def _check_labelings(y_true: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    y_true, labels = np.asarray(y_true), np.asarray(labels)
    if y_true.ndim != 1 or labels.ndim != 1 or len(y_true) != len(labels):
        raise ValueError(
            "Expected y_true and labels as 1D arrays of the same length, got shapes "
            f"{y_true.shape} and {labels.shape}."
        )
    if len(y_true) == 0:
        raise ValueError("Expected at least one sample, got empty arrays.")
    return y_true, labels


def contingency(y_true: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of (class, cluster) pairs, leaving noise (``-1``) out of the clusters.

    Returns
    -------
    table : numpy.ndarray of int, shape (n_classes, n_clusters)
    classes : numpy.ndarray, shape (n_classes,)
    clusters : numpy.ndarray, shape (n_clusters,)
    """
    y_true, labels = _check_labelings(y_true, labels)
    classes = np.unique(y_true)
    clusters = np.unique(labels[labels != -1])
    table = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    kept = labels != -1
    np.add.at(
        table,
        (np.searchsorted(classes, y_true[kept]), np.searchsorted(clusters, labels[kept])),
        1,
    )
    return table, classes, clusters


def matching(y_true: Any, labels: Any) -> dict[Any, Any]:
    """The one-to-one cluster -> class matching that :func:`cluster_accuracy` scores.

    Hungarian matching on the contingency table (maximum total overlap); clusters left
    without a class (more clusters than classes) are absent from the result, as is noise.

    Returns
    -------
    dict
        Cluster label -> matched class.
    """
    table, classes, clusters = contingency(y_true, labels)
    rows, cols = linear_sum_assignment(-table)
    return {clusters[c].item(): classes[r].item() for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(y_true: Any, labels: Any) -> float:
    """Clustering accuracy under the best one-to-one matching of clusters to classes.

    ``ACC = max over one-to-one maps m of (1/N) sum_i 1[y_i = m(c_i)]`` (Hungarian
    algorithm). With more clusters than classes, the unmatched clusters count as errors, so
    over-clustering can never raise ACC; use :func:`purity` for a many-to-one score. Noise
    (``-1``) counts as an error.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        True classes.
    labels : array-like of shape (N,)
        Cluster labels.

    Returns
    -------
    float
        In [0, 1].
    """
    table, classes, clusters = contingency(y_true, labels)
    if len(clusters) > len(classes):
        warnings.warn(
            f"{len(clusters)} clusters for {len(classes)} classes: accuracy matches them one "
            "to one and counts the extra clusters as errors; see purity() for many-to-one.",
            stacklevel=2,
        )
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(np.asarray(y_true)))


def balanced_cluster_accuracy(y_true: Any, labels: Any) -> float:
    """Mean per-class recall under the one-to-one matching of :func:`cluster_accuracy`.

    ``BACC = (1/C) sum_c |{i : y_i = c, m(c_i) = c}| / |{i : y_i = c}|`` with ``m`` the
    Hungarian matching that maximises the matched count (as for ACC). On imbalanced classes
    it is 1/C for a single stratum, where ACC would be the majority rate. Noise (``-1``) and
    unmatched clusters count as errors.

    Returns
    -------
    float
        In [0, 1].
    """
    table, _, _ = contingency(y_true, labels)
    rows, cols = linear_sum_assignment(table, maximize=True)
    sizes = np.unique(np.asarray(y_true), return_counts=True)[1]
    recall = np.zeros(len(sizes))
    recall[rows] = table[rows, cols] / sizes[rows]
    return float(recall.mean())


def purity(y_true: Any, labels: Any) -> float:
    """Fraction of samples in their cluster's majority class (many-to-one; noise is an error).

    Purity rises with the number of clusters (it is 1 with one cluster per sample), so it is
    reported for over-clustering, never as accuracy.
    """
    table, _, _ = contingency(y_true, labels)
    return float(table.max(axis=0).sum() / len(np.asarray(y_true)))


def majority_rate(y_true: Any) -> float:
    """Share of the most frequent class: the accuracy of always guessing it."""
    _, counts = np.unique(np.asarray(y_true), return_counts=True)
    return float(counts.max() / counts.sum())


def _probe(
    model: Any,
    embedding: np.ndarray,
    y: np.ndarray,
    test_embedding: np.ndarray | None,
    test_y: np.ndarray | None,
    cv: int,
    random_state: int | None,
) -> float:
    if (test_embedding is None) != (test_y is None):
        raise ValueError("Expected both test_embedding and test_y, or neither, got only one.")
    if test_embedding is not None:
        return float(model.fit(embedding, y).score(test_embedding, np.asarray(test_y)))
    folds = StratifiedKFold(cv, shuffle=True, random_state=random_state)
    return float(cross_val_score(model, embedding, y, cv=folds).mean())


def knn_accuracy(
    embedding: Any,
    y: Any,
    test_embedding: Any = None,
    test_y: Any = None,
    *,
    n_neighbors: int = 10,
    cv: int = 5,
    random_state: int | None = 0,
) -> float:
    """Accuracy of a k-nearest-neighbour classifier (cosine distance) on frozen latents.

    Trained on ``(embedding, y)`` and scored on ``(test_embedding, test_y)`` when given,
    otherwise ``cv``-fold stratified cross-validation on ``(embedding, y)``.

    Parameters
    ----------
    embedding : array-like of shape (N, D)
    y : array-like of shape (N,)
    test_embedding : array-like of shape (M, D), optional
    test_y : array-like of shape (M,), optional
    n_neighbors : int, default=10
    cv : int, default=5
    random_state : int or None, default=0
        Seed of the fold shuffling.
    """
    model = KNeighborsClassifier(n_neighbors=n_neighbors, metric="cosine")
    return _probe(
        model, np.asarray(embedding), np.asarray(y), test_embedding, test_y, cv, random_state
    )


def linear_probe_accuracy(
    embedding: Any,
    y: Any,
    test_embedding: Any = None,
    test_y: Any = None,
    *,
    cv: int = 5,
    random_state: int | None = 0,
) -> float:
    """Accuracy of a logistic regression on standardised frozen latents.

    Same protocol as :func:`knn_accuracy`.
    """
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return _probe(
        model, np.asarray(embedding), np.asarray(y), test_embedding, test_y, cv, random_state
    )


def evaluate(
    y_true: Any,
    labels: Any,
    embedding: Any = None,
    *,
    random_state: int | None = 0,
) -> dict[str, float]:
    """All agreement scores of a clustering, and representation scores of its embedding.

    Parameters
    ----------
    y_true : array-like of shape (N,)
        True classes.
    labels : array-like of shape (N,)
        Cluster labels (``-1`` = noise).
    embedding : array-like of shape (N, D), optional
        The latents the clustering was made on; adds ``silhouette`` (on clustered points),
        and cross-validated ``knn_accuracy`` and ``linear_probe_accuracy``.
    random_state : int or None, default=0
        Seed of the cross-validation folds and of silhouette's subsample (N > 5000).

    Returns
    -------
    dict
        ``acc`` (one-to-one; extra clusters are errors), ``purity``, ``nmi``, ``ari``,
        ``ami``, ``majority_rate``, ``n_clusters``, ``n_classes``, ``noise_fraction`` and,
        with an embedding, ``silhouette``, ``knn_accuracy``, ``linear_probe_accuracy``.
    """
    y_true, labels = _check_labelings(y_true, labels)
    clusters = np.unique(labels[labels != -1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # reported below as n_clusters
        acc = cluster_accuracy(y_true, labels)
    scores: dict[str, float] = {
        "acc": acc,
        "purity": purity(y_true, labels),
        "nmi": float(skm.normalized_mutual_info_score(y_true, labels)),
        "ari": float(skm.adjusted_rand_score(y_true, labels)),
        "ami": float(skm.adjusted_mutual_info_score(y_true, labels)),
        "majority_rate": majority_rate(y_true),
        "n_clusters": len(clusters),
        "n_classes": len(np.unique(y_true)),
        "noise_fraction": float(np.mean(labels == -1)),
    }
    if embedding is not None:
        embedding = np.asarray(embedding)
        if len(embedding) != len(labels):
            raise ValueError(
                f"Expected an embedding with one row per sample ({len(labels)}), got shape "
                f"{embedding.shape}."
            )
        kept = labels != -1
        if 2 <= len(clusters) < kept.sum():
            scores["silhouette"] = float(
                skm.silhouette_score(
                    embedding[kept],
                    labels[kept],
                    sample_size=min(5000, int(kept.sum())),
                    random_state=random_state,
                )
            )
        else:
            scores["silhouette"] = float("nan")
        n_folds = int(min(5, np.bincount(np.unique(y_true, return_inverse=True)[1]).min()))
        if n_folds >= 2:
            scores["knn_accuracy"] = knn_accuracy(
                embedding, y_true, cv=n_folds, random_state=random_state
            )
            scores["linear_probe_accuracy"] = linear_probe_accuracy(
                embedding, y_true, cv=n_folds, random_state=random_state
            )
        else:
            scores["knn_accuracy"] = scores["linear_probe_accuracy"] = float("nan")
    return scores


def stratum_fidelity(
    real_latents: Any, real_strata: Any, sample_latents: Any, sample_strata: Any
) -> tuple[float, dict[int, float]]:
    """Share of generated samples that a classifier of the real strata puts back in theirs.

    A logistic regression on standardised latents is trained on the real latents and their
    strata (noise ``-1`` left out), then predicts the stratum of each sample's latent (the
    encoder's latent of the decoded image); a sample is faithful when that is the stratum it
    was drawn for.

    Parameters
    ----------
    real_latents : array-like of shape (N, D)
    real_strata : array-like of int, shape (N,)
    sample_latents : array-like of shape (M, D)
    sample_strata : array-like of int, shape (M,)
        The stratum each sample was drawn for.

    Returns
    -------
    overall : float
        Share of faithful samples, in [0, 1].
    per_stratum : dict of int to float
        The same share among the samples drawn for each stratum.

    Raises
    ------
    ValueError
        If the shapes disagree, fewer than two real strata remain, or a sample was drawn for
        a stratum that no real latent has.
    """
    real = np.asarray(real_latents, dtype=np.float64)
    strata = np.asarray(real_strata)
    drawn = np.asarray(sample_latents, dtype=np.float64)
    wanted = np.asarray(sample_strata)
    if real.ndim != 2 or drawn.ndim != 2 or real.shape[1] != drawn.shape[1]:
        raise ValueError(
            f"Expected real and sample latents of shapes (N, D) and (M, D), got {real.shape} "
            f"and {drawn.shape}."
        )
    if strata.shape != (len(real),) or wanted.shape != (len(drawn),):
        raise ValueError(
            f"Expected one stratum per latent, got {strata.shape} strata for {len(real)} real "
            f"latents and {wanted.shape} for {len(drawn)} samples."
        )
    kept = strata != -1
    known = np.unique(strata[kept])
    if len(known) < 2:
        raise ValueError(f"Expected at least 2 real strata, got {known.tolist()}.")
    unknown = sorted(set(np.unique(wanted).tolist()) - set(known.tolist()))
    if unknown:
        raise ValueError(
            f"Expected samples drawn for the real strata {known.tolist()}, got strata {unknown}."
        )
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    hits = classifier.fit(real[kept], strata[kept]).predict(drawn) == wanted
    per_stratum = {int(k): float(hits[wanted == k].mean()) for k in np.unique(wanted)}
    return float(hits.mean()), per_stratum


def mean_pairwise_distance(images: Any) -> float:
    """Mean Euclidean distance between all pairs of images (flattened): their diversity.

    Parameters
    ----------
    images : array-like of shape (M, ...)
        At least two images, on a common intensity scale.

    Returns
    -------
    float
    """
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if len(flat) < 2:
        raise ValueError(f"Expected at least 2 images, got {len(flat)}.")
    return float(pdist(flat).mean())


def auc_score(codes: np.ndarray, proba: np.ndarray) -> float:
    """ROC AUC of class probabilities (N, K) for class codes 0..K-1 (N,): binary, the
    positive column; otherwise the mean one-vs-rest AUC over classes (MedMNIST's rule). NaN
    when ``codes`` holds a single class.
    """
    present = np.unique(codes)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(codes, proba[:, 1]))
    return float(
        skm.roc_auc_score(
            codes, proba, multi_class="ovr", average="macro", labels=np.arange(proba.shape[1])
        )
    )
