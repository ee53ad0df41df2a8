"""Consensus strata by evidence accumulation: the co-association against a naive loop, the
average-linkage cut and its stray patients on a matrix built by hand, new patients, the
backends in the clusterer (large-N path, storage, Gaussians), bad settings.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from lab.backends import register
from stratify.cluster import BACKENDS, StrataClusterer
from stratify.cluster.consensus import ConsensusStrata, coassociation

# the lab's research backends (agglomerative, spectral, head-sized, consensus,
# consensus-kmeans), registered into BACKENDS as a user registers their own
register()


def test_the_coassociation_is_the_share_of_runs_that_pair_two_patients():
    rng = np.random.default_rng(0)
    runs = [rng.integers(0, k, size=30) for k in (2, 3, 5, 3)]
    runs[1] = runs[1] * 7 + 11  # any label values, not only 0..k-1
    expected = np.zeros((30, 30))
    for i in range(30):
        for j in range(30):
            expected[i, j] = np.mean([run[i] == run[j] for run in runs])
    np.testing.assert_allclose(coassociation(runs), expected, atol=1e-7)


def _blocks_and_a_stray():
    """Blocks A (0-9) and B (10-19) co-occur always within, 10 % of runs across; patient 20
    goes with A in 5 % of the runs and never with B.
    """
    C = np.full((21, 21), 0.1, dtype=np.float32)
    C[:10, :10] = C[10:20, 10:20] = 1.0
    C[20, :] = C[:, 20] = 0.0
    C[20, :10] = C[:10, 20] = 0.05
    C[20, 20] = 1.0
    return C


def test_the_average_cut_sends_a_stray_patient_to_the_stratum_it_co_occurs_with_most():
    # average linkage of 1 - C merges A with B (distance 0.9) before the stray (>= 0.95):
    # the plain cut into 2 is {A, B} against the stray alone
    lonely = ConsensusStrata(2, min_share=0.0)._average_cut(_blocks_and_a_stray(), 2)
    assert np.bincount(lonely).tolist() == [20, 1]
    labels = ConsensusStrata(2, min_share=0.1)._average_cut(_blocks_and_a_stray(), 2)
    assert len(set(labels[:10])) == 1 and len(set(labels[10:20])) == 1
    assert labels[0] != labels[10]
    assert labels[20] == labels[0]  # 0.05 with A against 0 with B


@pytest.mark.parametrize(
    ("linkage", "base"), [("average", "gmm"), ("spectral", "gmm"), ("average", "kmeans")]
)
def test_well_separated_strata_are_found_and_numbered_by_size(linkage, base):
    X, truth = make_blobs([250, 150, 100], n_features=5, cluster_std=0.5, random_state=3)
    model = ConsensusStrata(3, linkage=linkage, base=base, random_state=0).fit(X)
    assert adjusted_rand_score(truth, model.labels_) == 1.0
    assert np.bincount(model.labels_).tolist() == [250, 150, 100]
    assert model.label_distributions_.shape == (500, 3)
    np.testing.assert_allclose(model.label_distributions_.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.label_distributions_.argmax(axis=1), model.labels_)
    assert model.run_strata_.min() >= 3 and model.run_strata_.max() <= math.ceil(3.0 * 3)
    again = ConsensusStrata(3, linkage=linkage, base=base, random_state=0).fit(X)
    np.testing.assert_array_equal(again.labels_, model.labels_)
    # the moments of each stratum, as GaussianMixture exposes them
    for c in range(3):
        members = X[model.labels_ == c]
        np.testing.assert_allclose(model.means_[c], members.mean(axis=0))
        np.testing.assert_allclose(
            model.covariances_[c], np.cov(members.T, bias=True) + 1e-6 * np.eye(5), atol=1e-10
        )


def test_new_patients_take_the_mean_shares_of_their_nearest_training_patients():
    X, _ = make_blobs(200, centers=2, n_features=3, random_state=0)
    model = ConsensusStrata(2, n_neighbors=4, random_state=0).fit(X)
    new = np.random.default_rng(1).normal(size=(7, 3)) * 3
    expected = np.empty((7, 2))
    for m, x in enumerate(new):
        closest = np.argsort(np.linalg.norm(X - x, axis=1))[:4]
        expected[m] = model.label_distributions_[closest].mean(axis=0)
    np.testing.assert_allclose(model.predict_proba(new), expected)
    np.testing.assert_array_equal(model.predict(new), expected.argmax(axis=1))


def test_a_training_patient_embedded_again_keeps_its_own_stratum():
    # two touching blobs: some patients' nearest neighbours are mostly of the other stratum
    X, _ = make_blobs(300, centers=[[0, 0], [1.5, 0]], cluster_std=1.0, random_state=0)
    model = ConsensusStrata(2, n_neighbors=10, random_state=0).fit(X)
    rows = model._index.kneighbors(X, return_distance=False)
    vote = model.label_distributions_[rows].mean(axis=1).argmax(axis=1)
    assert (vote != model.labels_).any()  # the neighbour rule alone would move them
    # each patient's stratum is its largest share (the reassignment after the cut)
    np.testing.assert_array_equal(model.label_distributions_.argmax(axis=1), model.labels_)
    noise = np.random.default_rng(0).normal(scale=1e-7, size=X.shape)
    np.testing.assert_array_equal(model.predict(X + noise), model.labels_)
    np.testing.assert_array_equal(model.predict_proba(X), model.label_distributions_)
    gaps = [np.sort(np.linalg.norm(X - x, axis=1))[1] for x in X]  # naive nearest other
    shifted = X[:1] + np.array([[2e-3 * np.median(gaps), 0]])  # beyond the coincidence radius
    np.testing.assert_allclose(
        model.predict_proba(shifted), model.label_distributions_[rows[:1]].mean(axis=1)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_runs": 0}, r"n_runs >= 1, got 0"),
        ({"split": 0.5}, r"split >= 1, got 0.5"),
        ({"linkage": "single"}, r"linkage in \('average', 'spectral'\), got 'single'"),
        ({"base": "hdbscan"}, r"base in \('gmm', 'kmeans'\), got 'hdbscan'"),
        ({"min_share": 1.0}, r"min_share in \[0, 1\), got 1.0"),
        ({"n_neighbors": 0}, r"n_neighbors >= 1, got 0"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConsensusStrata(2, **kwargs)


def test_more_strata_than_patients_is_refused():
    with pytest.raises(ValueError, match=r"n_components=5 <= samples, got 4 samples"):
        ConsensusStrata(5).fit(np.zeros((4, 2)))


@pytest.mark.parametrize("method", ["consensus", "consensus-spectral", "consensus-kmeans", "eac"])
def test_the_consensus_backends_cluster_store_and_give_gaussians(method):
    X, truth = make_blobs([120, 80], n_features=4, cluster_std=0.6, random_state=2)
    clusterer = StrataClusterer(method, 2, random_state=0).fit(X)
    assert adjusted_rand_score(truth, clusterer.labels_) == 1.0
    np.testing.assert_allclose(
        clusterer.probabilities_, clusterer.estimator_.label_distributions_.max(axis=1)
    )
    again = StrataClusterer.from_state(X, clusterer.state())
    np.testing.assert_array_equal(again.predict(X[:20] + 0.01), clusterer.predict(X[:20] + 0.01))
    mean, covariance = clusterer.stratum_gaussian(1)
    np.testing.assert_allclose(mean, X[clusterer.labels_ == 1].mean(axis=0))
    assert covariance.shape == (4, 4)


def test_the_large_n_path_fits_the_consensus_on_a_subsample_and_assigns_the_rest():
    X, truth = make_blobs([300, 200], n_features=4, cluster_std=0.6, random_state=5)
    clusterer = StrataClusterer("consensus", 2, fit_samples=100, random_state=0).fit(X)
    assert len(clusterer.fit_rows_) == 100
    rest = np.setdiff1d(np.arange(500), clusterer.fit_rows_)
    np.testing.assert_array_equal(clusterer.labels_[rest], clusterer.estimator_.predict(X[rest]))
    assert adjusted_rand_score(truth, clusterer.labels_) == 1.0
    assert BACKENDS["consensus"].fit_samples == 5_000


def test_the_consensus_across_networks_draws_each_run_on_one_block():
    # two "networks" of one column each: the first separates {0, 1} from {2, 3}, the second
    # {0, 2} from {1, 3}; one k-means run per block (k_r = k = 2) gives those partitions
    first = np.array([[0.0], [0.1], [10.0], [10.1]])
    second = np.array([[0.0], [10.0], [0.1], [10.1]])
    X = np.hstack([first, second])
    model = ConsensusStrata(2, n_runs=2, split=1.0, base="kmeans", blocks=2, random_state=0)
    model.fit(X)
    runs = model.run_partitions_
    assert runs.shape == (2, 4)
    assert adjusted_rand_score(runs[0], [0, 0, 1, 1]) == 1.0
    assert adjusted_rand_score(runs[1], [0, 1, 0, 1]) == 1.0
    # by hand: a pair shares a stratum in 1 of the 2 runs where one network pairs it
    by_hand = np.array(
        [
            [1.0, 0.5, 0.5, 0.0],
            [0.5, 1.0, 0.0, 0.5],
            [0.5, 0.0, 1.0, 0.5],
            [0.0, 0.5, 0.5, 1.0],
        ]
    )
    np.testing.assert_allclose(coassociation(list(runs)), by_hand)
    # the shares are the mean co-association with each stratum's members, normalised
    onehot = np.eye(2)[model.labels_]
    shares = (by_hand @ onehot) / onehot.sum(axis=0)
    np.testing.assert_allclose(
        model.label_distributions_, shares / shares.sum(axis=1, keepdims=True), atol=1e-6
    )


def test_one_block_is_the_consensus_on_the_whole_latents():
    X, _ = make_blobs(60, n_features=4, centers=3, random_state=1)
    one = ConsensusStrata(3, n_runs=6, linkage="spectral", random_state=3).fit(X)
    same = ConsensusStrata(3, n_runs=6, linkage="spectral", random_state=3, blocks=1).fit(X)
    np.testing.assert_array_equal(one.run_partitions_, same.run_partitions_)
    np.testing.assert_array_equal(one.labels_, same.labels_)


def test_latents_that_do_not_split_into_the_blocks_are_refused():
    X = np.zeros((10, 5))
    with pytest.raises(ValueError, match=r"5 columns split into blocks=2 .* got 1 left over"):
        ConsensusStrata(2, blocks=2).fit(X)
    with pytest.raises(ValueError, match=r"5 columns split into blocks=2"):
        StrataClusterer("kmeans", 2, normalize=True, blocks=2).fit(X + 1.0)


def test_the_clusterer_normalises_each_network_block_alike():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 6)) * np.array([1.0, 1.0, 1.0, 50.0, 50.0, 50.0])
    clusterer = StrataClusterer("kmeans", 2, normalize=True, blocks=2, random_state=0).fit(X)
    space = clusterer.transform_space(X)
    # by hand: each block of 3 columns scaled to length 1 / sqrt(2)
    expected = np.hstack(
        [b / np.linalg.norm(b, axis=1, keepdims=True) / np.sqrt(2) for b in (X[:, :3], X[:, 3:])]
    )
    np.testing.assert_allclose(space, expected, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(space, axis=1), 1.0)


def test_a_consensus_setting_is_a_clusterer_the_strata_clusterer_takes():
    from sklearn.base import clone

    X, truth = make_blobs([120, 80], n_features=4, cluster_std=0.5, random_state=5)
    setting = ConsensusStrata(2, n_runs=30, base="kmeans", random_state=1)
    copy = clone(setting)
    assert copy is not setting and copy.get_params() == setting.get_params()
    assert copy.get_params()["n_runs"] == 30 and copy.get_params()["base"] == "kmeans"
    labels = setting.fit_predict(X)
    np.testing.assert_array_equal(labels, setting.labels_)
    strata = StrataClusterer(setting, 2, normalize=False).fit(X)
    np.testing.assert_array_equal(strata.labels_, labels)  # the instance's own settings
    assert adjusted_rand_score(truth, strata.predict(X)) == 1.0


def test_eac_is_fred_and_jains_evidence_accumulation():
    X, _ = make_blobs([60, 40], n_features=3, cluster_std=0.5, random_state=4)
    consensus = StrataClusterer("eac", 2, random_state=0).fit(X).estimator_
    assert (consensus.n_runs, consensus.base, consensus.linkage) == (200, "kmeans", "average")
    assert consensus.run_partitions_.shape == (200, 100)
    # the strata are the average-linkage cut of the pooled runs' co-association
    again = ConsensusStrata(2, n_runs=200, base="kmeans", linkage="average")
    np.testing.assert_array_equal(
        again._average_cut(coassociation(list(consensus.run_partitions_)), 2),
        consensus.labels_,
    )


def test_the_default_backend_pools_twenty_gaussian_mixtures_under_a_spectral_cut():
    from stratify.cluster.backends import DEFAULT_BACKEND

    X, _ = make_blobs([60, 40], n_features=3, cluster_std=0.5, random_state=4)
    consensus = StrataClusterer(DEFAULT_BACKEND, 2, random_state=0).fit(X).estimator_
    assert DEFAULT_BACKEND == "consensus-spectral"
    assert (consensus.n_runs, consensus.base, consensus.linkage) == (20, "gmm", "spectral")
    assert consensus.run_partitions_.shape == (20, 100)
