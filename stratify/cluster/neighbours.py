"""Strata given as a distribution over strata per training patient, extended to new patients by
their nearest training neighbours.

The estimators of :mod:`~stratify.cluster.spreading` (label spreading) and
:mod:`~stratify.cluster.consensus` (evidence accumulation) find each training patient's
stratum as a row of shares over the strata, with no parametric boundary between them. A new
patient takes the mean row of its ``n_neighbors`` nearest training patients (the graph's
out-of-sample rule); a patient that coincides with a training patient (closer than
:data:`COINCIDENT` times the median distance between training neighbours: the float noise of
embedding the same image again) takes that patient's own row, so that ``predict`` of the
training images gives back ``labels_`` as a scikit-learn clusterer's does. The fitted
attributes mirror scikit-learn's ``GaussianMixture`` where the rest of the clustering reads
them: ``means_`` and full ``covariances_`` of each stratum's training patients and
``weights_`` their shares, so that per-stratum generation and the mixture's rules
(``predict``, ``predict_proba``, the strongest membership) work unchanged.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.neighbors import NearestNeighbors

__all__ = ["NeighbourStrata"]

#: A new patient closer than this share of the median nearest-neighbour distance between
#: training patients is the training patient itself (embedded again).
COINCIDENT = 1e-3


class NeighbourStrata(BaseEstimator):
    """Base of the strata defined by training rows of shares (``label_distributions_``).

    A scikit-learn estimator (``get_params``, ``clone``): the parameters are those of the
    subclass's ``__init__``.

    Subclasses set ``n_neighbors`` and ``reg_covar`` and call :meth:`_settle` at the end of
    their ``fit``.

    Attributes
    ----------
    labels_ : numpy.ndarray of int, shape (N,)
    label_distributions_ : numpy.ndarray, shape (N, C)
        Each training patient's shares over the strata (rows sum to 1).
    n_components : int
        C, the number of strata.
    weights_, means_, covariances_ : numpy.ndarray
        Shares (C,), means (C, D) and full covariances (C, D, D) of the strata's training
        patients (the whole set's for a stratum with fewer than 2 patients).
    covariance_type : str
        ``"full"``.
    """

    covariance_type = "full"
    n_neighbors: int
    reg_covar: float

    def _settle(
        self, X: np.ndarray, labels: np.ndarray, distributions: np.ndarray, index=None
    ) -> None:
        """Store the strata of ``X`` (N, D) and index it for new patients (``index``: an
        already fitted :class:`~sklearn.neighbors.NearestNeighbors` of ``X``).
        """
        classes = distributions.shape[1]
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.label_distributions_ = distributions
        self.n_components = classes
        if index is None:
            index = NearestNeighbors(n_neighbors=min(self.n_neighbors, len(X) - 1)).fit(X)
        self._index = index
        gaps = index.kneighbors(n_neighbors=1)[0][:, 0]  # each training patient's nearest other
        self._coincident = COINCIDENT * float(np.median(gaps))
        dim = X.shape[1]
        self.weights_ = np.bincount(self.labels_, minlength=classes) / len(X)
        self.means_ = np.empty((classes, dim))
        self.covariances_ = np.empty((classes, dim, dim))
        for c in range(classes):
            members = X[self.labels_ == c] if (self.labels_ == c).sum() >= 2 else X
            self.means_[c] = members.mean(axis=0)
            centred = members - self.means_[c]
            self.covariances_[c] = centred.T @ centred / len(members) + self.reg_covar * np.eye(dim)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean row of ``label_distributions_`` over the ``n_neighbors`` nearest training
        patients of each row of ``X`` (M, D), or the row of the training patient it coincides
        with; (M, C).
        """
        distances, rows = self._index.kneighbors(np.asarray(X, dtype=np.float64))
        proba = self.label_distributions_[rows].mean(axis=1)
        same = distances[:, 0] <= self._coincident
        proba[same] = self.label_distributions_[rows[same, 0]]
        return proba

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Stratum of each row of ``X`` (M, D): the largest entry of :meth:`predict_proba`."""
        return self.predict_proba(X).argmax(axis=1)
