"""PCA whitening of the latents before a backend clusters them, and the rule that decides it.

With ``whiten=True`` the latents are PCA-whitened (:class:`Whitening`, fitted on the samples
the backend is fitted on) and new latents are whitened the same way; the manifold
coordinates are never whitened. For the full-covariance GMM this changes only the starting
point (its k-means initialisation runs on whitened coordinates, where no latent direction
dominates the distances); the mixture family itself is invariant to the affine map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["WHITEN_SAMPLES_PER_DIMENSION", "Whitening", "whitens"]

#: Eigenvalues of the latent covariance below this share of the largest are directions the
#: latents do not vary along (e.g. the radial one of L2-normalised latents); they are dropped
#: rather than divided by (almost) zero.
WHITENING_RTOL = 1e-9
#: ``whiten="auto"`` whitens when every stratum can have at least this many samples per
#: latent dimension (N / k >= 10 D). Whitening gives every direction unit variance, the
#: directions the latents barely vary along too; with few samples per stratum the k-means
#: start of the mixture then follows chance structure in those directions (the measurements
#: behind the threshold: the documentation's benchmark pages).
WHITEN_SAMPLES_PER_DIMENSION = 10


def whitens(whiten: bool | str, n_samples: int, n_dims: int, n_clusters: int) -> bool:
    """Whether ``n_samples`` latents of dimension ``n_dims`` in up to ``n_clusters`` strata
    are whitened under the setting ``whiten`` (True, False or "auto").
    """
    if whiten != "auto":
        return bool(whiten)
    return n_samples >= WHITEN_SAMPLES_PER_DIMENSION * n_dims * n_clusters


@dataclass
class Whitening:
    """PCA whitening: ``W = (X - mean) @ components.T / sqrt(variances)``.

    Attributes (after :meth:`fit`)
    ------------------------------
    mean : numpy.ndarray, shape (D,)
    components : numpy.ndarray, shape (R, D)
        Orthonormal eigenvectors of the covariance (rows), R = its numerical rank.
    variances : numpy.ndarray, shape (R,)
        Their eigenvalues (the variance of ``X`` along each component), descending.
    """

    mean: np.ndarray | None = None
    components: np.ndarray | None = None
    variances: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Whitening:
        """Fit on ``X`` of shape (N, D), N >= 2."""
        self.mean = X.mean(axis=0)
        values, vectors = np.linalg.eigh(
            np.cov(X - self.mean, rowvar=False).reshape(X.shape[1], X.shape[1])
        )
        order = np.argsort(values)[::-1]
        values, vectors = values[order], vectors[:, order]
        kept = values > WHITENING_RTOL * max(float(values[0]), np.finfo(float).tiny)
        self.components, self.variances = vectors[:, kept].T, values[kept]
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, components, variances)``, or a RuntimeError before :meth:`fit`."""
        if self.mean is None or self.components is None or self.variances is None:
            raise RuntimeError("This Whitening is not fitted yet: call fit(X) first.")
        return self.mean, self.components, self.variances

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Whitened coordinates (M, R) of ``X`` (M, D)."""
        mean, components, variances = self._fitted()
        return (X - mean) @ components.T / np.sqrt(variances)

    def inverse_gaussian(
        self, mean: np.ndarray, covariance: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian N(mean (R,), covariance (R, R)) in whitened coordinates, mapped back to
        the latents: mean (D,) and covariance (D, D) of ``w @ A + self.mean`` with
        ``A = diag(sqrt(variances)) @ components``.
        """
        center, components, variances = self._fitted()
        A = np.sqrt(variances)[:, None] * components
        return mean @ A + center, A.T @ covariance @ A
