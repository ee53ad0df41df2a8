"""Loss library: reconstruction, KL / ELBO, kernel-weighted contrastive terms, cross-entropy.

Pure functions live in :mod:`stratify.losses.functional`; the ``nn.Module`` terms below wrap
them, and an :class:`Objective` sums named, weighted terms for the training loop.
:class:`CrossEntropy` (the supervised baseline's term) keeps its pure function beside it in
:mod:`stratify.losses.supervised`.
"""

from stratify.losses import functional
from stratify.losses._base import INPUT_KEYS, LossTerm
from stratify.losses.clustering import ClusterHeads, SelfTraining
from stratify.losses.contrastive import (
    ALONE_SHARE,
    POSITIVE_CHECK_BATCHES,
    ClinicalContrastive,
    KernelContrastive,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
)
from stratify.losses.kernels import (
    KERNELS,
    LABELS,
    EpanechnikovKernel,
    EqualityKernel,
    GaussianKernel,
    Kernel,
    LaplacianKernel,
    ProductKernel,
    SumKernel,
    make_kernel,
    silverman_bandwidth,
)
from stratify.losses.objective import Objective, build_objective
from stratify.losses.reconstruction import (
    ELBO,
    BCEReconstruction,
    KLDivergence,
    MSEReconstruction,
)
from stratify.losses.registry import TERMS, make_term, regularizer_from_spec
from stratify.losses.supervised import CrossEntropy

__all__ = [
    "ALONE_SHARE",
    "ELBO",
    "INPUT_KEYS",
    "KERNELS",
    "LABELS",
    "POSITIVE_CHECK_BATCHES",
    "TERMS",
    "BCEReconstruction",
    "ClinicalContrastive",
    "ClusterHeads",
    "CrossEntropy",
    "EpanechnikovKernel",
    "EqualityKernel",
    "GaussianKernel",
    "KLDivergence",
    "Kernel",
    "KernelContrastive",
    "LaplacianKernel",
    "LossTerm",
    "MSEReconstruction",
    "NTXent",
    "Objective",
    "ProductKernel",
    "SelfTraining",
    "SumKernel",
    "SupCon",
    "WSPContrastive",
    "YAwareInfoNCE",
    "build_objective",
    "functional",
    "make_kernel",
    "make_term",
    "regularizer_from_spec",
    "silverman_bandwidth",
]
