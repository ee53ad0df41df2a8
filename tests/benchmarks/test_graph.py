"""The neighbour-graph cut of the cut-space round (benchmarks/lab/graph.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score

from lab.graph import GraphStrata
from stratify.cluster.manifold import fuzzy_weights


def _two_chains(n: int = 40, gap: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Two long parallel chains of points, closer to each other across than their ends are
    along: a mixture of two Gaussians prefers to cut across the chains, the graph along."""
    t = np.linspace(0.0, 20.0, n)
    X = np.concatenate([np.c_[t, np.zeros(n)], np.c_[t, np.full(n, gap)]])
    return X, np.repeat([0, 1], n)


@pytest.mark.parametrize("weights", ["connectivity", "fuzzy"])
def test_the_cut_follows_the_chains_where_a_mixture_cuts_across(weights):
    from sklearn.mixture import GaussianMixture

    X, truth = _two_chains()
    graph = GraphStrata(2, n_neighbors=4, weights=weights, random_state=0).fit(X)
    assert adjusted_rand_score(truth, graph.labels_) == 1.0
    mixture = GaussianMixture(2, covariance_type="spherical", random_state=0).fit_predict(X)
    assert adjusted_rand_score(truth, mixture) < 0.5


def test_connectivity_graph_is_the_symmetrised_neighbour_matrix_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    graph = GraphStrata(1, n_neighbors=1, weights="connectivity").fit(X)
    # nearest other: 0->1, 1->0, 2->1, 3->2; W = (A + A^T) / 2
    expected = np.zeros((4, 4))
    for i, j in ((0, 1), (1, 0), (2, 1), (3, 2)):
        expected[i, j] += 0.5
        expected[j, i] += 0.5
    np.testing.assert_allclose(graph.affinity_.toarray(), expected)


def test_fuzzy_graph_is_the_fuzzy_union_of_umaps_memberships_by_hand():
    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    graph = GraphStrata(1, n_neighbors=2, weights="fuzzy").fit(X)
    neighbours = {0: (1, 2), 1: (0, 2), 2: (1, 0), 3: (2, 1)}
    gaps = {i: np.abs(X[list(js), 0] - X[i, 0]) for i, js in neighbours.items()}
    A = np.zeros((4, 4))
    for i, js in neighbours.items():
        A[i, list(js)] = fuzzy_weights(gaps[i][None, :])[0]
    expected = A + A.T - A * A.T
    np.testing.assert_allclose(graph.affinity_.toarray(), expected, atol=1e-12)
    assert A[3, 2] == 1.0  # the nearest neighbour's membership is 1 (rho)


def test_new_patients_take_their_neighbours_strata_and_training_rows_their_own():
    X, truth = _two_chains()
    graph = GraphStrata(2, n_neighbors=4, random_state=0).fit(X)
    np.testing.assert_array_equal(graph.predict(X), graph.labels_)
    near_chain_1 = np.array([[10.2, 2.9], [0.1, 3.2]])
    assert (graph.predict(near_chain_1) == graph.labels_[truth == 1][0]).all()
    assert np.bincount(graph.labels_).tolist() == [40, 40]
    np.testing.assert_allclose(graph.label_distributions_.sum(axis=1), 1.0)


def test_clone_and_bad_settings():
    assert clone(GraphStrata(3, n_neighbors=7)).get_params()["n_neighbors"] == 7
    with pytest.raises(ValueError, match=r"weights in \('connectivity', 'fuzzy'\), got 'rbf'"):
        GraphStrata(2, weights="rbf")
    with pytest.raises(ValueError, match="n_components=5 <= samples, got 3 samples"):
        GraphStrata(5).fit(np.zeros((3, 2)))
