"""Few known labels (y = -1 where unknown): the seeded mixture, the checks, the estimator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

from stratify import Stratifier, make_cohort
from stratify.cluster import StrataClusterer
from stratify.cluster.seeded import SeededGMM, check_partial_labels

TINY = {"latent_dim": 8, "width": 4, "epochs": 2, "batch_size": 32, "random_state": 0}


def _three_blobs(n=150, seed=0):
    """Blobs A (x=-6), B (x=+6) and C (y=+6): class 0 is A and B, class 1 is C."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    blob = np.repeat(np.arange(3), n)
    X = centres[blob] + rng.normal(size=(3 * n, 2))
    return X, blob


def test_the_posterior_matches_scipy_and_sums_to_one():
    X, _ = _three_blobs()
    anchors = -np.ones(len(X), dtype=int)
    anchors[[0, 1, 300, 301]] = [0, 0, 1, 1]
    gmm = SeededGMM(3, random_state=0).fit(X, anchors)
    dens = np.stack(
        [
            w * multivariate_normal(m, c).pdf(X)
            for w, m, c in zip(gmm.weights_, gmm.means_, gmm.covariances_, strict=True)
        ],
        axis=1,
    )
    np.testing.assert_allclose(gmm.predict_proba(X), dens / dens.sum(1, keepdims=True), atol=1e-9)
    assert gmm.converged_ and gmm.covariance_type == "full"


def test_labelled_patients_of_a_class_stay_in_one_stratum():
    X, _ = _three_blobs()
    anchors = -np.ones(len(X), dtype=int)
    anchors[[0, 1, 2, 150, 151, 152]] = 0  # three in A, three in B: one class
    anchors[[300, 301, 302]] = 1
    # without the anchoring, two strata put A and B apart (the labelled class split)
    free = GaussianMixture(2, random_state=0).fit(X).predict(X)
    assert len(set(free[anchors == 0])) == 2
    gmm = SeededGMM(2, random_state=0).fit(X, anchors)
    assert set(gmm.labels_[anchors == 0]) == {0} and set(gmm.labels_[anchors == 1]) == {1}
    # a third stratum takes the blob the labels do not separate, and holds no labelled one
    clusterer = StrataClusterer("gmm", 3, random_state=0).fit(X, anchors)
    np.testing.assert_array_equal(clusterer.stratum_classes_, [0, 1, -1])
    assert set(clusterer.labels_[anchors == 0]) == {0}
    assert (clusterer.labels_ == 2).sum() > 100 and not (anchors[clusterer.labels_ == 2] >= 0).any()
    # new samples get the posterior's stratum, unconstrained
    np.testing.assert_array_equal(clusterer.predict(X), clusterer.estimator_.predict(X))
    # any backend name: the known labels make the strata a seeded mixture
    kmeans = StrataClusterer("kmeans", 3, random_state=0).fit(X, anchors)
    assert isinstance(kmeans.estimator_, SeededGMM)
    np.testing.assert_array_equal(kmeans.labels_, clusterer.labels_)


@pytest.mark.parametrize(
    ("y", "k", "match"),
    [
        (np.array([0.0, 1.0, -1.0, 1.0]), 2, r"integer labels .* got dtype float64"),
        (np.array([0, -2, 1, 1]), 2, r"labels >= -1 \(-1 = unknown\), got -2"),
        (np.array([0, 2, 2, -1]), 2, r"known classes as 0..1 .* got labels \[2\] outside -1..1"),
        (np.array([0, 1, 2, 2]), 2, r"at most n_clusters=2 known classes .* got 3"),
        (np.array([0, 1, 1]), 2, r"y of shape \(4,\), one label per image, got \(3,\)"),
    ],
)
def test_bad_partial_labels_are_refused(y, k, match):
    with pytest.raises(ValueError, match=match):
        check_partial_labels(y, 4, k)


def test_a_class_with_one_label_warns():
    with pytest.warns(UserWarning, match=r"Classes \[1\] have a single labelled sample"):
        out = check_partial_labels(np.array([[0], [0], [1], [-1]]), 4, 2)
    np.testing.assert_array_equal(out, [0, 0, 1, -1])


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(160, random_state=0)


def test_all_unknown_is_the_label_free_fit_bit_for_bit(cohort):
    images = cohort.images
    free = Stratifier(3, **TINY).fit(images)
    unknown = Stratifier(3, **TINY).fit(images, np.full(len(images), -1))
    np.testing.assert_array_equal(free.embedding_, unknown.embedding_)
    np.testing.assert_array_equal(free.labels_, unknown.labels_)
    assert unknown.known_labels_ is None and not hasattr(unknown, "stratum_classes_")


def test_known_labels_steer_training_and_anchor_the_strata(cohort, tmp_path):
    images, strata = cohort.images, cohort.strata
    y = np.full(len(images), -1)
    rng = np.random.default_rng(0)
    for c in range(3):
        y[rng.choice(np.flatnonzero(strata == c), 4, replace=False)] = c
    model = Stratifier(4, **TINY).fit(images, y)
    assert type(model.objective_.terms["contrastive"]).__name__ == "SupCon"
    for c in range(3):
        assert set(model.labels_[y == c]) == {c}
    np.testing.assert_array_equal(model.stratum_classes_, [0, 1, 2, -1])
    loaded = Stratifier.load(model.save(tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.known_labels_, y)
    assert loaded.label_column_ is None and loaded.columns_in_training() == {}  # unnamed y
    np.testing.assert_array_equal(loaded.stratum_classes_, model.stratum_classes_)
    np.testing.assert_array_equal(loaded.predict(images[:20]), model.predict(images[:20]))


def test_labels_without_the_contrastive_term_fail_before_training(cohort, monkeypatch):
    import stratify._parts as parts  # where the estimator calls the one training loop

    monkeypatch.setattr(parts, "train", lambda *a, **k: pytest.fail("trained"))
    y = np.full(len(cohort.images), -1)
    y[:6] = [0, 1, 2, 0, 1, 2]
    with pytest.raises(
        ValueError, match=r"expected contrastive='simclr' with them, got contrastive=None"
    ):
        Stratifier(3, contrastive=None, **TINY).fit(cohort.images, y)
    with pytest.raises(ValueError, match=r"at most n_clusters=2 known classes .* got 3"):
        Stratifier(2, **TINY).fit(cohort.images, y)


def test_a_y_without_an_unknown_is_ignored_as_a_clusterers_y():
    X, blob = _three_blobs(60)
    free = StrataClusterer("gmm", 2, random_state=0).fit(X)
    given = StrataClusterer("gmm", 2, random_state=0).fit(X, blob)  # 3 classes, no -1
    np.testing.assert_array_equal(free.labels_, given.labels_)
    assert not hasattr(given, "anchors_")
    with pytest.raises(ValueError, match=r"at most n_clusters=2 known classes"):
        StrataClusterer("gmm", 2).fit(X, np.where(np.arange(len(X)) % 2, blob, -1))


def test_rgb_images_with_few_labels_anchor_the_strata_too():
    # the fundus-set case of issue 33: (N, 3, H, W) colour images with 10 % known labels
    rng = np.random.default_rng(1)
    strata = np.repeat(np.arange(3), 40)
    images = rng.integers(0, 40, size=(120, 3, 16, 16)).astype(np.uint8)
    for i, c in enumerate(strata):
        images[i, c] += 150  # class c: a bright channel c
    y = np.full(len(images), -1)
    y[np.arange(len(images)) % 10 == 0] = strata[np.arange(len(images)) % 10 == 0]
    model = Stratifier(3, **TINY).fit(images, y)
    for c in range(3):
        assert set(model.labels_[y == c]) == {c}
    assert model.predict_proba(images[:5]).shape == (5, 3)
