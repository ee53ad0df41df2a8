"""The lab's research backends, registered into :data:`stratify.cluster.BACKENDS` as a user
registers their own (the documentation's "Extending" page).

They lost the validation rule or were ablations, so the product no longer ships them, but
the committed rows that name them (``default-head-sized``, ``default-consensus``, the
ablations of ``benchmarks/choose_default.py``) must stay reproducible. Importing
:mod:`lab` registers them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stratify.cluster import BACKENDS, Backend
from stratify.cluster.backends import consensus_backend, head_backend

__all__ = ["RESEARCH_BACKENDS", "register"]

#: Ward agglomerative keeps a condensed distance matrix, quadratic in memory; spectral
#: clustering a k-NN graph eigendecomposition: the large-N path's sizes for them.
AGGLOMERATIVE_FIT_SAMPLES = 10_000
SPECTRAL_FIT_SAMPLES = 5_000


def _fit_agglomerative(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(k, linkage="ward")
    return model, np.asarray(model.fit_predict(X), dtype=np.int64)


def _fit_spectral(X: np.ndarray, k: int | None, seed: int, options: dict[str, Any]) -> tuple:
    from sklearn.cluster import SpectralClustering

    model = SpectralClustering(
        k,
        affinity="nearest_neighbors",
        n_neighbors=max(2, min(10, len(X) - 1)),
        assign_labels="cluster_qr",
        random_state=seed,
    )
    return model, np.asarray(model.fit_predict(X), dtype=np.int64)


#: Name -> backend of the research backends.
RESEARCH_BACKENDS: dict[str, Backend] = {
    "agglomerative": Backend(fit=_fit_agglomerative, fit_samples=AGGLOMERATIVE_FIT_SAMPLES),
    "spectral": Backend(fit=_fit_spectral, fit_samples=SPECTRAL_FIT_SAMPLES),
    "head-sized": head_backend("gmm"),
    "consensus": consensus_backend("average", "gmm"),
    "consensus-kmeans": consensus_backend("average", "kmeans"),
}


def register() -> None:
    """Add the research backends to :data:`stratify.cluster.BACKENDS` (idempotent)."""
    BACKENDS.update(RESEARCH_BACKENDS)
