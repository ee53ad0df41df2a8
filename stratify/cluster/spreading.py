r"""Strata anchored by a few known labels, spread along the latent neighbour graph.

Label spreading (Zhou et al. 2004, "Learning with local and global consistency"): the
symmetric k-nearest-neighbour graph of the training latents, :math:`W_{ij} = 1` when ``j`` is
among the ``n_neighbors`` nearest of ``i`` or ``i`` among those of ``j``, normalised as
:math:`S = D^{-1/2} W D^{-1/2}` (:math:`D` the degrees); the one-hot known labels :math:`Y`
(zero rows for the unknown) spread by :math:`F \leftarrow \alpha S F + (1 - \alpha) Y` to the
fixed point :math:`F^* = (1 - \alpha)(I - \alpha S)^{-1} Y`. Each patient's stratum is the
largest entry of its row of :math:`F^*`, except that a labelled patient stays in its class's
stratum (the anchoring).

With ``class_mass=True`` the spread rows are rescaled per class before the argmax by class
mass normalisation (Zhu, Ghahramani & Lafferty 2003): column :math:`c` of the row-normalised
:math:`F^*` is multiplied by :math:`q_c / \sum_i F^*_{ic}`, :math:`q_c` the share of class
:math:`c` among the known labels, and the rows normalised again. Without it the class with
more known labels pulls the undecided patients its way (on imbalanced sets, towards the
majority); with it the strata's sizes follow the known labels' class shares.

Where the mixture of :class:`~stratify.cluster.seeded.SeededGMM`
draws one Gaussian boundary per class, the graph follows the shape of the classes in the
latent space (a class that is a curved or multi-modal region is still one stratum), as the
k-NN probe of the latents does.

A new patient takes the mean of the spread rows of its ``n_neighbors`` nearest training
patients (the same graph's out-of-sample rule, :class:`~stratify.cluster.neighbours.
NeighbourStrata`, which also gives the Gaussian-mixture-like attributes).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

from stratify.cluster.neighbours import NeighbourStrata

__all__ = ["SpreadStrata"]


class SpreadStrata(NeighbourStrata):
    """Label spreading on the k-NN graph, the labelled patients kept in their class.

    Parameters
    ----------
    n_neighbors : int, default=20
        Neighbours of each patient in the graph (at most N - 1 are used).
    alpha : float, default=0.2
        Share of a patient's spread row taken from its neighbours at each step, in (0, 1);
        the rest from its own known label (Zhou et al.'s alpha).
    tol : float, default=1e-6
        Stop iterating when no entry of :math:`F` changes by more than this share of its
        row's sum (once the labels have reached every patient they can).
    max_iter : int, default=1000
    class_mass : bool, default=False
        Class mass normalisation of the spread rows (see the module docstring).
    reg_covar : float, default=1e-6
        Added to the diagonal of each stratum's covariance.

    Attributes
    ----------
    labels_ : numpy.ndarray of int, shape (N,)
        Stratum of each training patient (a labelled one: its class).
    label_distributions_ : numpy.ndarray, shape (N, C)
        Rows of :math:`F^*` normalised to sum to 1 (uniform for a patient the labels never
        reached: a graph component without a labelled patient, or one so many hops away
        that ``alpha`` to that power underflows), class-mass normalised with
        ``class_mass``.
    weights_, means_, covariances_ : numpy.ndarray
        Shares (C,), means (C, D) and full covariances (C, D, D) of the strata.
    covariance_type : str
        ``"full"``.
    n_iter_ : int
    converged_ : bool
    """

    def __init__(
        self,
        n_neighbors: int = 20,
        *,
        alpha: float = 0.2,
        tol: float = 1e-6,
        max_iter: int = 1000,
        class_mass: bool = False,
        reg_covar: float = 1e-6,
    ) -> None:
        if not 0 < alpha < 1:
            raise ValueError(f"Expected alpha in (0, 1), got {alpha}.")
        if n_neighbors < 1:
            raise ValueError(f"Expected n_neighbors >= 1, got {n_neighbors}.")
        self.n_neighbors, self.alpha, self.tol = n_neighbors, alpha, tol
        self.max_iter, self.class_mass, self.reg_covar = max_iter, class_mass, reg_covar

    def fit(self, X: np.ndarray, anchors: np.ndarray) -> SpreadStrata:
        """Spread the known labels over ``X`` (N, D); ``anchors`` (N,): class 0..C-1 or -1.

        Raises
        ------
        ValueError
            If some class 0..C-1 has no labelled sample, or there are fewer than 2 samples.
        """
        X = np.asarray(X, dtype=np.float64)
        anchors = np.asarray(anchors, dtype=np.int64)
        if len(X) < 2:
            raise ValueError(f"Expected at least 2 samples to spread labels over, got {len(X)}.")
        classes = int(anchors.max()) + 1
        missing = sorted(set(range(classes)) - set(anchors[anchors >= 0].tolist()))
        if classes < 1 or missing:
            raise ValueError(
                f"Expected labelled samples of every class 0..{classes - 1}, got none of {missing}."
            )
        index = NearestNeighbors(n_neighbors=min(self.n_neighbors, len(X) - 1)).fit(X)
        graph = index.kneighbors_graph(mode="connectivity")  # no one its own neighbour
        graph = graph.maximum(graph.T).tocsr()  # symmetric: i ~ j if either is a neighbour
        degree = np.asarray(graph.sum(axis=1)).ravel()
        scale = sparse.diags(1 / np.sqrt(np.maximum(degree, 1e-12)))
        S = (scale @ graph @ scale).tocsr()
        Y = np.zeros((len(X), classes))
        known = anchors >= 0
        Y[np.flatnonzero(known), anchors[known]] = 1.0
        F = Y.copy()
        self.converged_, self.n_iter_ = False, 0
        reached = known.copy()
        while self.n_iter_ < self.max_iter and not self.converged_:
            new = self.alpha * (S @ F) + (1 - self.alpha) * Y
            now = new.sum(axis=1) > 0
            # relative to each row's own mass: a row many hops from every label holds tiny
            # values whose ratios (the stratum) still move; converged once no new row was
            # reached (every reachable one is) and no row's shares move by more than tol
            mass = np.where(now, new.sum(axis=1), 1.0)[:, None]
            moved = float((np.abs(new - F) / mass).max())
            self.converged_ = bool((now == reached).all()) and moved < self.tol
            F, reached, self.n_iter_ = new, now, self.n_iter_ + 1
        totals = F.sum(axis=1, keepdims=True)
        self.label_distributions_ = np.full_like(F, 1 / classes)
        self.label_distributions_[reached] = F[reached] / totals[reached]
        if self.class_mass:
            shares = np.bincount(anchors[known], minlength=classes) / known.sum()
            rescaled = self.label_distributions_ * (shares / self.label_distributions_.sum(0))
            self.label_distributions_ = rescaled / rescaled.sum(axis=1, keepdims=True)
        labels = self.label_distributions_.argmax(axis=1)
        labels[known] = anchors[known]
        self._settle(X, labels, self.label_distributions_, index)
        return self
