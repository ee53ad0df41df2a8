"""stratify: patient stratification from medical images.

Learn a latent space in which patients separate (an autoencoder trained with contrastive and
metadata-kernel losses), cluster it into strata, and relate the strata to labels and metadata.

The names below are imported on first use (PEP 562), so that ``import stratify`` and the
``stratify`` command start without loading torch, scikit-learn or the plotting libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratify._lazy import lazy_names
from stratify._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from stratify import analysis
    from stratify.analysis import describe_strata, stability
    from stratify.cluster import StrataClusterer
    from stratify.data import (
        DataNotFoundError,
        load_medmnist,
        load_mnist_test,
        make_cohort,
        volumes_to_slices,
    )
    from stratify.estimator import Stratifier

#: Public name -> the module that defines it.
_LAZY = {
    "DataNotFoundError": "stratify.data",
    "StrataClusterer": "stratify.cluster",
    "Stratifier": "stratify.estimator",
    "describe_strata": "stratify.analysis",
    "load_medmnist": "stratify.data",
    "load_mnist_test": "stratify.data",
    "make_cohort": "stratify.data",
    "stability": "stratify.analysis",
    "volumes_to_slices": "stratify.data",
}

__all__ = [
    "DataNotFoundError",
    "StrataClusterer",
    "Stratifier",
    "__version__",
    "analysis",
    "describe_strata",
    "load_medmnist",
    "load_mnist_test",
    "make_cohort",
    "stability",
    "volumes_to_slices",
]

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY, ("analysis",))
