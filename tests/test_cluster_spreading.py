"""Label spreading that anchors the strata: the fixed point against a by-hand closed form,
the anchoring, new patients, the choice between spreading and the seeded mixture, storage.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from stratify import Stratifier, make_cohort
from stratify.analysis.metrics import cluster_accuracy
from stratify.cluster import StrataClusterer
from stratify.cluster.seeded import SeededGMM
from stratify.cluster.spreading import SpreadStrata


def _rings(n=200, seed=0):
    """Class 0 a ring of radius 1, class 1 a ring of radius 4 around it."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * np.pi, size=2 * n)
    radius = np.repeat([1.0, 4.0], n) + rng.normal(scale=0.1, size=2 * n)
    X = np.c_[radius * np.cos(angle), radius * np.sin(angle)]
    return X, np.repeat([0, 1], n)


def _few(truth, per_class=3, seed=0):
    rng = np.random.default_rng(seed)
    anchors = -np.ones(len(truth), dtype=int)
    for c in np.unique(truth):
        anchors[rng.choice(np.flatnonzero(truth == c), per_class, replace=False)] = c
    return anchors


def test_the_spread_rows_are_zhous_closed_form_built_by_hand():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(25, 3))
    anchors = -np.ones(25, dtype=int)
    anchors[[0, 1, 2]] = [0, 1, 1]
    k, alpha = 4, 0.3
    # W by hand: i ~ j when either is among the other's k nearest (Euclidean)
    d = np.linalg.norm(X[:, None] - X[None], axis=2)
    W = np.zeros((25, 25))
    for i in range(25):
        order = [j for j in np.argsort(d[i]) if j != i][:k]
        W[i, order] = 1
    W = np.maximum(W, W.T)
    S = W / np.sqrt(np.outer(W.sum(1), W.sum(1)))
    Y = np.zeros((25, 2))
    Y[[0, 1, 2], [0, 1, 1]] = 1
    F = (1 - alpha) * np.linalg.solve(np.eye(25) - alpha * S, Y)
    model = SpreadStrata(k, alpha=alpha, tol=1e-12).fit(X, anchors)
    assert model.converged_
    np.testing.assert_allclose(model.label_distributions_, F / F.sum(1, keepdims=True), atol=1e-8)
    expected = F.argmax(1)
    expected[[0, 1, 2]] = [0, 1, 1]
    np.testing.assert_array_equal(model.labels_, expected)
    # the moments of each stratum, as GaussianMixture exposes them
    for c in (0, 1):
        members = X[model.labels_ == c]
        np.testing.assert_allclose(model.means_[c], members.mean(0))
        np.testing.assert_allclose(
            model.covariances_[c], np.cov(members.T, bias=True) + 1e-6 * np.eye(3), atol=1e-12
        )
    np.testing.assert_allclose(model.weights_, np.bincount(model.labels_) / 25)


def test_spreading_follows_the_shape_of_a_class_where_the_mixture_cannot():
    X, truth = _rings()
    anchors = _few(truth)
    spread = SpreadStrata(10).fit(X, anchors)
    mixture = SeededGMM(2, random_state=0).fit(X, anchors)
    assert cluster_accuracy(truth, spread.labels_) > 0.99
    assert cluster_accuracy(truth, mixture.labels_) < 0.9  # two concentric Gaussians overlap


def test_labelled_patients_stay_in_their_class_and_unreached_ones_are_uniform():
    # one patient labelled 1 amid twenty labelled 0: with alpha near 1 its spread row is
    # mostly its neighbours' (class 0), yet its stratum is its own class
    rng = np.random.default_rng(2)
    X = np.r_[rng.normal(size=(21, 2)) * 0.1, rng.normal(size=(20, 2)) * 0.1 + 5]
    anchors = np.r_[np.zeros(20, dtype=int), 1, -np.ones(19, dtype=int), 1]
    model = SpreadStrata(10, alpha=0.99).fit(X, anchors)
    assert model.label_distributions_[20].argmax() == 0
    assert model.labels_[20] == 1
    assert (model.labels_[anchors >= 0] == anchors[anchors >= 0]).all()
    assert (model.labels_[21:] == 1).all()
    X, truth = _rings()
    far = np.r_[X, [[100.0, 100.0], [100.5, 100.0]]]  # a graph component with no label
    model = SpreadStrata(1).fit(far, np.r_[_few(truth), -1, -1])
    np.testing.assert_allclose(model.label_distributions_[-2:], 0.5)


def test_new_patients_take_the_mean_row_of_their_nearest_training_patients():
    X, truth = _rings()
    model = SpreadStrata(7).fit(X, _few(truth))
    new = np.random.default_rng(3).normal(scale=3, size=(15, 2))
    expected = np.stack(
        [
            model.label_distributions_[np.argsort(np.linalg.norm(X - x, axis=1))[:7]].mean(0)
            for x in new
        ]
    )
    np.testing.assert_allclose(model.predict_proba(new), expected)
    np.testing.assert_array_equal(model.predict(new), expected.argmax(1))


@pytest.mark.parametrize(
    ("kwargs", "anchors", "match"),
    [
        ({"alpha": 1.0}, [0, 1, -1], r"alpha in \(0, 1\), got 1.0"),
        ({"n_neighbors": 0}, [0, 1, -1], "n_neighbors >= 1, got 0"),
        ({}, [0, 2, -1], r"every class 0..2, got none of \[1\]"),
    ],
)
def test_bad_settings_are_refused(kwargs, anchors, match):
    with pytest.raises(ValueError, match=match):
        SpreadStrata(**kwargs).fit(np.arange(6.0).reshape(3, 2), np.array(anchors))


def test_the_clusterer_spreads_with_one_stratum_per_class_and_mixes_beyond():
    X, truth = _rings()
    anchors = _few(truth)
    auto = StrataClusterer("gmm", 2, random_state=0).fit(X, anchors)
    assert (
        isinstance(auto.estimator_, SpreadStrata) and cluster_accuracy(truth, auto.labels_) > 0.99
    )
    np.testing.assert_array_equal(auto.stratum_classes_, [0, 1])
    np.testing.assert_array_equal(auto.predict(X[:30]), auto.estimator_.predict(X[:30]))
    more = StrataClusterer("gmm", 3, random_state=0).fit(X, anchors)
    assert isinstance(more.estimator_, SeededGMM)
    forced = StrataClusterer("gmm", 2, anchoring="gmm", random_state=0).fit(X, anchors)
    assert isinstance(forced.estimator_, SeededGMM)
    with pytest.raises(ValueError, match=r"more strata \(n_clusters=3\) than known classes \(2\)"):
        StrataClusterer("gmm", 3, anchoring="spread").fit(X, anchors)
    with pytest.raises(ValueError, match="'anchoring' parameter of StrataClusterer"):
        StrataClusterer("gmm", 2, anchoring="knn").fit(X, anchors)


def test_stored_clusterings_refit_with_their_own_anchoring():
    X, truth = _rings()
    anchors = _few(truth)
    auto = StrataClusterer("gmm", 2, random_state=0).fit(X, anchors)
    again = StrataClusterer.from_state(X, auto.state())
    assert isinstance(again.estimator_, SpreadStrata)
    np.testing.assert_array_equal(again.labels_, auto.labels_)
    # a file written before spreading existed holds no "anchoring": its strata were the mixture's
    old = StrataClusterer("gmm", 2, anchoring="gmm", random_state=0).fit(X, anchors).state()
    del old["params"]["anchoring"]
    assert isinstance(StrataClusterer.from_state(X, old).estimator_, SeededGMM)
    free = GaussianMixture(2, random_state=0).fit(X).predict(X)  # the labels are what steer
    assert cluster_accuracy(truth, free) < 0.9


def test_a_guided_fit_with_one_stratum_per_class_spreads_and_round_trips(tmp_path):
    images, strata, _ = make_cohort(160, random_state=0)
    y = _few(strata, per_class=4)
    tiny = {"latent_dim": 8, "width": 4, "epochs": 2, "batch_size": 32, "random_state": 0}
    model = Stratifier(3, **tiny).fit(images, y)
    assert isinstance(model.clusterer_.estimator_, SpreadStrata)
    assert all(set(model.labels_[y == c]) == {c} for c in range(3))
    loaded = Stratifier.load(model.save(tmp_path / "m.pt"))
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    np.testing.assert_array_equal(loaded.predict(images[:20]), model.predict(images[:20]))


def test_class_mass_normalisation_rescales_each_class_to_its_known_share_by_hand():
    # an imbalanced pair of blobs with more labels on the large one (4 of class 0, 1 of
    # class 1): Zhu et al.'s class mass normalisation, worked out on the plain spread rows
    rng = np.random.default_rng(4)
    X = np.r_[rng.normal(size=(60, 2)), rng.normal(size=(20, 2)) + np.array([2.5, 0])]
    anchors = -np.ones(80, dtype=int)
    anchors[[0, 1, 2, 3, 60]] = [0, 0, 0, 0, 1]
    plain = SpreadStrata(8).fit(X, anchors)
    rows = plain.label_distributions_ * (np.array([0.8, 0.2]) / plain.label_distributions_.sum(0))
    expected = rows / rows.sum(1, keepdims=True)
    mass = SpreadStrata(8, class_mass=True).fit(X, anchors)
    np.testing.assert_allclose(mass.label_distributions_, expected)
    labels = expected.argmax(1)
    labels[[0, 1, 2, 3, 60]] = [0, 0, 0, 0, 1]
    np.testing.assert_array_equal(mass.labels_, labels)
    # each class's mass now is its share of the known labels
    np.testing.assert_allclose(mass.label_distributions_.sum(0) / 80, [0.8, 0.2], atol=0.05)
