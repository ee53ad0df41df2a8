"""stratify: patient stratification from medical images.

Learn a latent space in which patients separate (an autoencoder trained with contrastive and
metadata-kernel losses), cluster it into strata, and relate the strata to labels and metadata.
"""

from stratify._version import __version__
from stratify.data import (
    DataNotFoundError,
    load_medmnist,
    load_mnist_test,
    make_cohort,
    volumes_to_slices,
)

__all__ = [
    "DataNotFoundError",
    "__version__",
    "load_medmnist",
    "load_mnist_test",
    "make_cohort",
    "volumes_to_slices",
]
