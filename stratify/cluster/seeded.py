"""Strata anchored by a few known labels: a Gaussian mixture fitted by semi-supervised EM.

The labelled patients of class ``c`` belong to component ``c`` throughout EM (their
responsibilities are clamped to it: the *constrained* EM of Nigam et al. 2000, the mixture
form of Basu et al.'s 2002 seeded / constrained k-means); the unlabelled patients are
assigned by the usual posterior, so the class's component grows from its labelled seeds to
the patients that resemble them. Components beyond the known classes (``n_components > C``)
start from D²-sampled unlabelled patients and hold no labelled patient: strata the labels
do not name (the "finer-grained groups" of Ferrante et al.), mapped to class -1.

Initialisation: each class's component at the mean of its labelled patients, the others by
D² sampling among the unlabelled patients (k-means++, Arthur and Vassilvitskii 2007) against
the centres already chosen; the first responsibilities are the nearest centre's. Full
covariances with ``reg_covar`` on their diagonal, as scikit-learn's ``GaussianMixture``, whose
fitted attributes and ``predict`` / ``predict_proba`` this class mirrors (so the ``"gmm"``
backend's rules read it unchanged).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

__all__ = ["SeededGMM", "check_partial_labels", "marks_unknown"]


def marks_unknown(y: Any) -> bool:
    """Whether ``y`` is a vector of few known labels: numeric with at least one ``-1``.

    A clusterer's ``y`` is ignored by scikit-learn's convention (pipelines pass the
    targets to every step); the ``-1`` of ``sklearn.semi_supervised`` is what says that
    ``y`` holds known labels instead, so a ``y`` without one is still ignored.
    """
    if y is None:
        return False
    values = np.asarray(y)
    return values.dtype.kind in "iuf" and bool((values == -1).any())


def check_partial_labels(y: Any, n: int, n_clusters: int | str) -> np.ndarray:
    """Check few known labels: int (N,) with classes 0..C-1 and -1 where unknown.

    Parameters
    ----------
    y : array-like of shape (N,) or (N, 1)
    n : int
        Number of samples.
    n_clusters : int or "auto"
        Strata asked for; an int must be at least C.

    Returns
    -------
    numpy.ndarray of int64, shape (N,)

    Raises
    ------
    ValueError
        A wrong shape, a non-integer dtype, a label below -1, known labels that are not
        0..C-1, or more known classes than ``n_clusters``. A class with a single labelled
        sample warns (its stratum is seeded by one patient).
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"Expected y of shape ({n},), one label per image, got {y.shape}.")
    if y.dtype.kind not in "iu":
        raise ValueError(
            "Expected integer labels y (classes 0..C-1, -1 where unknown), got dtype "
            f"{y.dtype}. Encode the classes as integers and the unknown as -1."
        )
    y = y.astype(np.int64)
    if (y < -1).any():
        raise ValueError(f"Expected labels >= -1 (-1 = unknown), got {int(y.min())}.")
    known = np.unique(y[y >= 0])
    if known.size and not np.array_equal(known, np.arange(known.size)):
        outside = sorted(set(known.tolist()) - set(range(known.size)))
        raise ValueError(
            f"Expected the {known.size} known classes as 0..{known.size - 1} (-1 = unknown), "
            f"got labels {outside} outside -1..{known.size - 1}."
        )
    if isinstance(n_clusters, int) and known.size > n_clusters:
        raise ValueError(
            f"Expected at most n_clusters={n_clusters} known classes (a stratum per class), "
            f"got {known.size}."
        )
    counts = np.bincount(y[y >= 0], minlength=known.size)
    single = np.flatnonzero(counts == 1).tolist()
    if single:
        warnings.warn(
            f"Classes {single} have a single labelled sample: their strata are seeded by one "
            "patient each.",
            UserWarning,
            stacklevel=3,
        )
    return y


class SeededGMM:
    """Gaussian mixture whose labelled samples stay in their class's component.

    Parameters
    ----------
    n_components : int
        Components (strata), at least the number of known classes.
    reg_covar : float, default=1e-6
        Added to every covariance's diagonal.
    max_iter : int, default=200
    tol : float, default=1e-4
        Stop when the mean log-likelihood per sample improves by less.
    random_state : int, default=0
        Seeds the D² sampling of the unnamed components.

    Attributes
    ----------
    weights_ : numpy.ndarray, shape (K,)
    means_ : numpy.ndarray, shape (K, D)
    covariances_ : numpy.ndarray, shape (K, D, D)
    covariance_type : str
        ``"full"``.
    labels_ : numpy.ndarray of int, shape (N,)
        Component of each training sample (a labelled one: its class).
    n_iter_ : int
    converged_ : bool
    """

    covariance_type = "full"

    def __init__(
        self,
        n_components: int,
        *,
        reg_covar: float = 1e-6,
        max_iter: int = 200,
        tol: float = 1e-4,
        random_state: int = 0,
    ) -> None:
        self.n_components = n_components
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X: np.ndarray, anchors: np.ndarray) -> SeededGMM:
        """Fit on ``X`` (N, D); ``anchors`` (N,) gives each sample's class 0..C-1 or -1.

        Raises
        ------
        ValueError
            If a class in 0..C-1 has no labelled sample or C > ``n_components``.
        """
        X = np.asarray(X, dtype=np.float64)
        anchors = np.asarray(anchors, dtype=np.int64)
        classes = int(anchors.max()) + 1 if (anchors >= 0).any() else 0
        if classes > self.n_components:
            raise ValueError(
                f"Expected at most n_components={self.n_components} known classes, got {classes}."
            )
        missing = sorted(set(range(classes)) - set(anchors[anchors >= 0].tolist()))
        if missing:
            raise ValueError(
                f"Expected labelled samples of every class 0..{classes - 1}, got none of {missing}."
            )
        labelled = anchors >= 0
        clamp = np.zeros((len(X), self.n_components))
        clamp[np.flatnonzero(labelled), anchors[labelled]] = 1.0
        centres = self._initial_centres(X, anchors, classes)
        distances = ((X[:, None, :] - centres[None]) ** 2).sum(axis=-1)
        resp = np.eye(self.n_components)[distances.argmin(axis=1)]
        resp[labelled] = clamp[labelled]
        previous = -np.inf
        self.converged_ = False
        for iteration in range(1, self.max_iter + 1):
            self.n_iter_ = iteration
            self._m_step(X, resp)
            log_joint = self._log_joint(X)
            total = logsumexp(log_joint, axis=1)
            # the labelled samples' likelihood is that of their own component
            score = float(
                np.where(labelled, log_joint[np.arange(len(X)), anchors.clip(0)], total).mean()
            )
            resp = np.exp(log_joint - total[:, None])
            resp[labelled] = clamp[labelled]
            if abs(score - previous) < self.tol:
                self.converged_ = True
                break
            previous = score
        self._m_step(X, resp)
        labels = self.predict(X)
        labels[labelled] = anchors[labelled]
        self.labels_ = labels
        return self

    def _initial_centres(self, X: np.ndarray, anchors: np.ndarray, classes: int) -> np.ndarray:
        """Class means, then D²-sampled unlabelled samples (any sample if none is left)."""
        rng = np.random.default_rng(self.random_state)
        centres = [X[anchors == c].mean(axis=0) for c in range(classes)]
        pool = X[anchors < 0] if (anchors < 0).any() else X
        while len(centres) < self.n_components:
            if centres:
                d2 = ((pool[:, None, :] - np.asarray(centres)[None]) ** 2).sum(-1).min(axis=1)
                p = d2 / d2.sum() if d2.sum() > 0 else None
            else:
                p = None
            centres.append(pool[rng.choice(len(pool), p=p)])
        return np.asarray(centres)

    def _m_step(self, X: np.ndarray, resp: np.ndarray) -> None:
        counts = resp.sum(axis=0) + 10 * np.finfo(float).eps
        self.weights_ = counts / counts.sum()
        self.means_ = resp.T @ X / counts[:, None]
        covariances = np.empty((resp.shape[1], X.shape[1], X.shape[1]))
        for k in range(resp.shape[1]):
            centred = X - self.means_[k]
            covariances[k] = (resp[:, k, None] * centred).T @ centred / counts[k]
        covariances += self.reg_covar * np.eye(X.shape[1])[None]
        self.covariances_ = covariances

    def _log_joint(self, X: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x | mu_k, Sigma_k)``, shape (N, K)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.empty((len(X), self.n_components))
        dim = X.shape[1]
        for k in range(self.n_components):
            chol = np.linalg.cholesky(self.covariances_[k])
            solved = solve_triangular(chol, (X - self.means_[k]).T, lower=True)  # (D, N)
            log_det = 2.0 * np.log(np.diag(chol)).sum()
            out[:, k] = np.log(self.weights_[k]) - 0.5 * (
                dim * np.log(2 * np.pi) + log_det + (solved**2).sum(axis=0)
            )
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Posterior (M, K) of each component."""
        log_joint = self._log_joint(X)
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable component (M,) of new samples (no label constrains them)."""
        return self._log_joint(X).argmax(axis=1)
