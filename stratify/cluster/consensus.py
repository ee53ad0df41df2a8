r"""Consensus strata by evidence accumulation over many partitions of the latents.

One clustering run of the latents lands in one local optimum; the stability rule of
``manifold="auto"`` keeps the run that agrees best with the others (the medoid), and so keeps
its errors. Evidence accumulation (Fred & Jain 2005, "Combining multiple clusterings using
evidence accumulation") pools the runs instead: ``n_runs`` seeded partitions (Gaussian
mixtures, the latent clusterer, or k-means as in the paper: ``base``), each with a number of
strata :math:`k_r` drawn uniformly from :math:`[k, \text{split} \cdot k]` (finer than the
strata asked for, so that each run cuts the data into smaller pieces and the pieces' union
can follow a class of any shape), vote into the co-association matrix

.. math:: C_{ij} = \frac{1}{R} \sum_{r=1}^{R} [\ell_r(i) = \ell_r(j)],

the share of runs in which patients :math:`i` and :math:`j` share a stratum. When the
columns of the latents are ``blocks`` equal blocks, one per network of an ensemble
(:class:`~stratify.Stratifier` with ``train_config={"networks": m}``), run :math:`r` clusters
block :math:`r \bmod m` alone, so that :math:`C` accumulates the evidence of every network
(a consensus across networks, not only across restarts on one network). The consensus
partition into :math:`k` strata is read from :math:`C`:

* ``"average"``: the average-linkage dendrogram of the distances :math:`1 - C`, cut at the
  fewest clusters of which :math:`k` each hold at least ``min_share`` of the patients (a plain
  cut into :math:`k` would make strata of a few stray patients); the patients of the smaller
  fragments join the stratum they share most runs with (largest mean :math:`C` to its
  members). Fred & Jain's consensus function.
* ``"spectral"``: normalised-cut spectral clustering with :math:`C` as the affinity (the
  cluster-based similarity partitioning of Strehl & Ghosh 2002, with a spectral cut for
  their graph partitioner).

Each training patient's shares over the strata (``label_distributions_``) are its mean
co-association with each stratum's members, normalised, and its stratum is the largest of
them (one reassignment after the cut, which moves the few patients whose largest share is
another stratum's; skipped if it would empty a stratum), so that the shares, ``labels_`` and
``predict`` of the training patients agree; a new patient takes the mean shares
of its nearest training patients (:class:`~stratify.cluster.neighbours.NeighbourStrata`).

The co-association matrix is N x N: the backend is fitted on at most
``CONSENSUS_FIT_SAMPLES`` patients (:class:`~stratify.cluster.StrataClusterer`'s large-N
path assigns the rest).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import ClusterMixin

from stratify.cluster.neighbours import NeighbourStrata

__all__ = [
    "CONSENSUS_BASES",
    "CONSENSUS_LINKAGES",
    "ConsensusStrata",
    "block_width",
    "coassociation",
]

#: The consensus functions.
CONSENSUS_LINKAGES = ("average", "spectral")
#: The clusterings whose runs are pooled.
CONSENSUS_BASES = ("gmm", "kmeans")


def block_width(X: np.ndarray, blocks: int) -> int:
    """Columns of one of the ``blocks`` equal column blocks of ``X`` (N, D), one per network.

    Raises
    ------
    ValueError
        If D does not split into ``blocks`` equal blocks.
    """
    if X.shape[1] % blocks:
        raise ValueError(
            f"Expected latents whose {X.shape[1]} columns split into blocks={blocks} "
            f"equal blocks (one per network), got {X.shape[1] % blocks} left over."
        )
    return X.shape[1] // blocks


def coassociation(partitions: list[np.ndarray]) -> np.ndarray:
    """Share of the ``partitions`` (each (N,) int labels) in which each pair shares a label.

    Returns
    -------
    numpy.ndarray of float32, shape (N, N)
        Symmetric, ones on the diagonal.
    """
    n = len(partitions[0])
    counts = np.zeros((n, n), dtype=np.float32)
    for labels in partitions:
        _, codes = np.unique(labels, return_inverse=True)
        onehot = np.zeros((n, int(codes.max()) + 1), dtype=np.float32)
        onehot[np.arange(n), codes] = 1.0
        counts += onehot @ onehot.T
    return counts / len(partitions)


class ConsensusStrata(ClusterMixin, NeighbourStrata):
    """Evidence accumulation: k strata from the co-association of many clustering runs.

    A scikit-learn clusterer (``fit_predict``, ``clone``), so that a setting of it can be
    given to :class:`~stratify.cluster.StrataClusterer` or :class:`~stratify.Stratifier` as
    the ``clusterer``.

    Parameters
    ----------
    n_components : int
        The number of strata k.
    n_runs : int, default=20
        Partitions pooled.
    split : float, default=3.0
        Each run has :math:`k_r` strata drawn uniformly from ``[k, ceil(split * k)]``
        (capped at N).
    linkage : {"average", "spectral"}, default="average"
        The consensus function (module docstring).
    base : {"gmm", "kmeans"}, default="gmm"
        The runs: Gaussian mixtures (full covariances, one k-means initialisation each; the
        latent clusterer whose restarts land in different local optima) or k-means (one
        initialisation each; Fred & Jain's).
    min_share : float, default=0.02
        ``"average"``: the smallest share of the patients a stratum holds.
    n_neighbors : int, default=10
        Training neighbours whose shares a new patient takes.
    random_state : int or None, default=None
        Seeds the runs (and the spectral cut).
    reg_covar : float, default=1e-6
        Added to the diagonal of each stratum's covariance.
    blocks : int, default=1
        The columns of ``X`` are this many equal blocks (one per network); run ``r`` is
        fitted on block ``r % blocks``. New patients take their neighbours in all columns.

    Attributes
    ----------
    labels_, label_distributions_, weights_, means_, covariances_, n_components
        As :class:`~stratify.cluster.neighbours.NeighbourStrata`.
    run_strata_ : numpy.ndarray of int, shape (n_runs,)
        :math:`k_r` of each run.
    run_partitions_ : numpy.ndarray of int, shape (n_runs, N)
        The runs' partitions of the training patients (run ``r`` on block ``r % blocks``);
        :func:`coassociation` of them is the matrix the strata were cut from.
    """

    def __init__(
        self,
        n_components: int,
        *,
        n_runs: int = 20,
        split: float = 3.0,
        linkage: str = "average",
        base: str = "gmm",
        min_share: float = 0.02,
        n_neighbors: int = 10,
        random_state: int | None = None,
        reg_covar: float = 1e-6,
        blocks: int = 1,
    ) -> None:
        checks: list[tuple[bool, str, Any]] = [
            (n_components >= 1, "n_components >= 1", n_components),
            (n_runs >= 1, "n_runs >= 1", n_runs),
            (split >= 1, "split >= 1", split),
            (linkage in CONSENSUS_LINKAGES, f"linkage in {CONSENSUS_LINKAGES}", linkage),
            (base in CONSENSUS_BASES, f"base in {CONSENSUS_BASES}", base),
            (0 <= min_share < 1, "min_share in [0, 1)", min_share),
            (n_neighbors >= 1, "n_neighbors >= 1", n_neighbors),
            (blocks >= 1, "blocks >= 1", blocks),
        ]
        for ok, expected, got in checks:
            if not ok:
                raise ValueError(f"Expected {expected}, got {got!r}.")
        self.n_components, self.n_runs, self.split = n_components, n_runs, split
        self.linkage, self.base = linkage, base
        self.min_share, self.n_neighbors = min_share, n_neighbors
        self.random_state, self.reg_covar = random_state, reg_covar
        self.blocks = blocks

    def fit(self, X: np.ndarray) -> ConsensusStrata:
        """Find the consensus strata of ``X`` (N, D).

        Raises
        ------
        ValueError
            If there are fewer samples than strata, or fewer than 2 samples, or the columns
            do not split into ``blocks`` equal blocks.
        """
        from sklearn.cluster import KMeans
        from sklearn.mixture import GaussianMixture

        X = np.asarray(X, dtype=np.float64)
        k, n = self.n_components, len(X)
        if n < 2 or k > n:
            raise ValueError(
                f"Expected at least 2 samples and n_components={k} <= samples, got {n} samples."
            )
        width = block_width(X, self.blocks)
        rng = np.random.default_rng(self.random_state)
        high = min(n, max(k, math.ceil(self.split * k)))
        self.run_strata_ = rng.integers(k, high + 1, size=self.n_runs)
        seeds = rng.integers(2**31 - 1, size=self.n_runs)
        partitions = [
            (
                KMeans(int(k_r), n_init=1, random_state=int(seed))
                if self.base == "kmeans"
                else GaussianMixture(int(k_r), random_state=int(seed))
            ).fit_predict(X[:, (r % self.blocks) * width : (r % self.blocks + 1) * width])
            for r, (k_r, seed) in enumerate(zip(self.run_strata_, seeds, strict=True))
        ]
        self.run_partitions_ = np.stack(partitions).astype(np.int64)
        C = coassociation(partitions)
        if k == 1:
            labels = np.zeros(n, dtype=np.int64)
        elif self.linkage == "average":
            labels = self._average_cut(C, k)
        else:
            from sklearn.cluster import SpectralClustering

            spectral = SpectralClustering(
                k,
                affinity="precomputed",
                assign_labels="cluster_qr",
                random_state=int(rng.integers(2**31 - 1)),
            )
            with warnings.catch_warnings():  # strata no run ever joins: the ideal case
                warnings.filterwarnings("ignore", message="Graph is not fully connected")
                labels = spectral.fit_predict(C.astype(np.float64))
            labels = _by_size(labels)
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[np.arange(n), labels] = 1.0
        shares = (C @ onehot) / np.maximum(onehot.sum(axis=0), 1.0)
        shares = shares / np.maximum(shares.sum(axis=1, keepdims=True), 1e-12)
        moved = shares.argmax(axis=1)
        if np.bincount(moved, minlength=k).min() > 0:  # no stratum emptied by the move
            mapping = _size_order(moved)  # old stratum j is new stratum mapping[j]
            labels = mapping[moved]
            shares[:, mapping] = shares.copy()
        self._settle(X, labels, shares.astype(np.float64))
        return self

    def _average_cut(self, C: np.ndarray, k: int) -> np.ndarray:
        """The average-linkage consensus (module docstring), strata numbered by size."""
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        n = len(C)
        distance = 1.0 - C.astype(np.float64)
        np.fill_diagonal(distance, 0.0)
        tree = linkage(squareform(distance, checks=False), method="average")
        smallest = max(1, min(math.ceil(self.min_share * n), n // k))
        for cut in range(k, n + 1):
            fragments = fcluster(tree, cut, criterion="maxclust")
            ids, sizes = np.unique(fragments, return_counts=True)
            if (sizes >= smallest).sum() >= k:
                break
        kept = ids[np.argsort(-sizes, kind="stable")[:k]]  # the k largest
        labels = np.full(n, -1, dtype=np.int64)
        for stratum, fragment in enumerate(kept):
            labels[fragments == fragment] = stratum
        stray = labels < 0
        if stray.any():
            onehot = np.zeros((n, k), dtype=np.float32)
            onehot[~stray, labels[~stray]] = 1.0
            affinity = (C[stray] @ onehot) / onehot.sum(axis=0)
            labels[stray] = affinity.argmax(axis=1)
        return labels


def _size_order(labels: np.ndarray) -> np.ndarray:
    """The new number of each label, 0.. from the largest stratum down (ties: the lower)."""
    ids, sizes = np.unique(labels, return_counts=True)
    order = ids[np.argsort(-sizes, kind="stable")]
    mapping = np.empty(int(ids.max()) + 1, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    return mapping


def _by_size(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0.. from the largest stratum down (ties: the lower label)."""
    return _size_order(labels)[labels]
