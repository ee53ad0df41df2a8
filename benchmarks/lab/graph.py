"""Strata cut from the k-nearest-neighbour graph of the latents (a candidate of
``benchmarks/cut_space.py``).

The consensus default pools Gaussian mixtures fitted to the latents: strata are regions a
mixture of ellipsoids can describe. Where the classes of a separable latent space are
elongated or of very different sizes, every mixture may merge two of them (the held-out
cohort: a linear probe reads 0.998 of its latents, the consensus 0.667). A cut of the
neighbour graph asks only which patients are connected to which: the normalised spectral
cut (Shi & Malik 2000; Ng, Jordan & Weiss 2002; von Luxburg 2007's tutorial for the
k-nearest-neighbour graph) of

* ``"connectivity"``: ``W = (A + A^T) / 2`` with ``A_ij = 1`` when ``j`` is one of the
  ``n_neighbors`` nearest of ``i`` (scikit-learn's ``affinity="nearest_neighbors"``), or
* ``"fuzzy"``: UMAP's fuzzy graph (McInnes et al. 2018, section 3.1):
  ``A_ij = exp(-max(0, d_ij - rho_i) / sigma_i)`` (:func:`~stratify.cluster.manifold.
  fuzzy_weights`), symmetrised by the fuzzy union ``W = A + A^T - A * A^T``; the graph UMAP
  lays out, without its layout.

The spectral embedding is discretised by ``cluster_qr`` (Damle et al. 2019), which has no
random restarts; the only seeded step is the eigensolver's start vector. New patients take
their nearest training patients' strata (:class:`~stratify.cluster.neighbours.
NeighbourStrata`).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse
from sklearn.base import ClusterMixin
from sklearn.neighbors import NearestNeighbors

from stratify.cluster.manifold import fuzzy_weights
from stratify.cluster.neighbours import NeighbourStrata

__all__ = ["GRAPH_WEIGHTS", "GraphStrata"]

#: The edge weights of the graph (module docstring).
GRAPH_WEIGHTS = ("connectivity", "fuzzy")


class GraphStrata(ClusterMixin, NeighbourStrata):
    """k strata from the normalised spectral cut of the k-nearest-neighbour graph.

    Parameters
    ----------
    n_components : int
        The number of strata k.
    n_neighbors : int, default=15
        Neighbours per patient in the graph (capped at N - 1), and the training neighbours
        whose strata a new patient takes.
    weights : {"connectivity", "fuzzy"}, default="fuzzy"
        The edge weights (module docstring).
    random_state : int or None, default=None
        Seeds the eigensolver's start vector.
    reg_covar : float, default=1e-6
        Added to the diagonal of each stratum's covariance.

    Attributes
    ----------
    labels_, label_distributions_, weights_, means_, covariances_, n_components
        As :class:`~stratify.cluster.neighbours.NeighbourStrata` (one-hot rows).
    affinity_ : scipy.sparse.csr_matrix, shape (N, N)
        The symmetric graph that was cut.
    """

    def __init__(
        self,
        n_components: int,
        *,
        n_neighbors: int = 15,
        weights: str = "fuzzy",
        random_state: int | None = None,
        reg_covar: float = 1e-6,
    ) -> None:
        if n_components < 1:
            raise ValueError(f"Expected n_components >= 1, got {n_components!r}.")
        if n_neighbors < 1:
            raise ValueError(f"Expected n_neighbors >= 1, got {n_neighbors!r}.")
        if weights not in GRAPH_WEIGHTS:
            raise ValueError(f"Expected weights in {GRAPH_WEIGHTS}, got {weights!r}.")
        self.n_components, self.n_neighbors, self.weights = n_components, n_neighbors, weights
        self.random_state, self.reg_covar = random_state, reg_covar

    def fit(self, X: np.ndarray) -> GraphStrata:
        """Find the strata of ``X`` (N, D).

        Raises
        ------
        ValueError
            If there are fewer than 2 samples or fewer samples than strata.
        """
        from sklearn.cluster import SpectralClustering

        from stratify.cluster.consensus import _by_size

        X = np.asarray(X, dtype=np.float64)
        k, n = self.n_components, len(X)
        if n < 2 or k > n:
            raise ValueError(
                f"Expected at least 2 samples and n_components={k} <= samples, got {n} samples."
            )
        m = min(self.n_neighbors, n - 1)
        index = NearestNeighbors(n_neighbors=m).fit(X)
        distances, rows = index.kneighbors()  # each patient's m nearest others
        values = fuzzy_weights(distances) if self.weights == "fuzzy" else np.ones_like(distances)
        A = sparse.csr_matrix((values.ravel(), (np.repeat(np.arange(n), m), rows.ravel())), (n, n))
        if self.weights == "fuzzy":
            W = A + A.T - A.multiply(A.T)
        else:
            W = (A + A.T) / 2.0
        self.affinity_ = sparse.csr_matrix(W)
        if k == 1:
            labels = np.zeros(n, dtype=np.int64)
        else:
            spectral = SpectralClustering(
                k,
                affinity="precomputed",
                assign_labels="cluster_qr",
                random_state=self.random_state,
            )
            with warnings.catch_warnings():  # components no edge joins: the ideal case
                warnings.filterwarnings("ignore", message="Graph is not fully connected")
                labels = _by_size(np.asarray(spectral.fit_predict(self.affinity_)))
        onehot = np.zeros((n, k))
        onehot[np.arange(n), labels] = 1.0
        self._settle(X, labels, onehot, index)
        return self
