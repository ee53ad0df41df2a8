"""stratify: patient stratification from medical images.

Learn a latent space in which patients separate (an autoencoder trained with contrastive and
metadata-kernel losses), cluster it into strata, and relate the strata to labels and metadata.
"""

from stratify import metrics
from stratify._version import __version__
from stratify.cluster import StrataClusterer
from stratify.data import (
    DataNotFoundError,
    load_medmnist,
    load_mnist_test,
    make_cohort,
    volumes_to_slices,
)
from stratify.estimator import Stratifier
from stratify.report import describe_strata, stability

__all__ = [
    "DataNotFoundError",
    "StrataClusterer",
    "Stratifier",
    "__version__",
    "describe_strata",
    "load_medmnist",
    "load_mnist_test",
    "make_cohort",
    "metrics",
    "stability",
    "volumes_to_slices",
]
