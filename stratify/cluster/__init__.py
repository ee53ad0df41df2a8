"""The clustering space, one owner: normalise -> whiten -> manifold -> backend.

* :mod:`~stratify.cluster.backends`: the :data:`BACKENDS` table, one :class:`Backend` entry a
  backend (how it fits, predicts, scores candidates, what else it gives);
* :mod:`~stratify.cluster.whitening`: PCA whitening and the rule of ``whiten="auto"``;
* :mod:`~stratify.cluster.manifold`: the manifold step (N2D's UMAP) with an array-only rule
  for new samples;
* :mod:`~stratify.cluster.selection`: the number of strata and the space, chosen without
  labels;
* :mod:`~stratify.cluster.head` and :mod:`~stratify.cluster.consensus`: the backends with a
  module of their own (SCAN-style clustering heads; evidence accumulation over many
  Gaussian-mixture or k-means runs);
* :mod:`~stratify.cluster.seeded` and :mod:`~stratify.cluster.spreading`: strata anchored by
  a few known labels (a seeded Gaussian mixture; label spreading on the k-NN graph);
* :mod:`~stratify.cluster.neighbours`: strata given as shares per training sample, extended
  to new samples by their nearest neighbours (spreading's and the consensus' rule);
* :mod:`~stratify.cluster.clusterer`: :class:`StrataClusterer`, which chains them.

The backend table is imported eagerly (it is light: scikit-learn and hdbscan load when a
backend is fitted); the clusterer and the manifold step on first use (PEP 562), so reading
``BACKENDS`` does not import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratify._lazy import lazy_names
from stratify.cluster.backends import (
    BACKENDS,
    BIC,
    DBCV,
    METHODS,
    SILHOUETTE,
    Backend,
    Criterion,
    UnreachableK,
)
from stratify.cluster.whitening import WHITEN_SAMPLES_PER_DIMENSION, Whitening

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from stratify.cluster.clusterer import MANIFOLDS, StrataClusterer
    from stratify.cluster.manifold import ManifoldEmbedding
    from stratify.cluster.selection import STABILITY_RUNS

_LAZY = {
    "MANIFOLDS": "stratify.cluster.clusterer",
    "StrataClusterer": "stratify.cluster.clusterer",
    "ManifoldEmbedding": "stratify.cluster.manifold",
    "STABILITY_RUNS": "stratify.cluster.selection",
}

__all__ = [
    "BACKENDS",
    "BIC",
    "DBCV",
    "MANIFOLDS",
    "METHODS",
    "SILHOUETTE",
    "STABILITY_RUNS",
    "WHITEN_SAMPLES_PER_DIMENSION",
    "Backend",
    "Criterion",
    "ManifoldEmbedding",
    "StrataClusterer",
    "UnreachableK",
    "Whitening",
]

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY, ())
