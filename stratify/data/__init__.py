"""Data layer: MedMNIST and MNIST loaders, the synthetic cohort, volume slicing."""

from stratify.data._files import DataNotFoundError, ImageSet
from stratify.data.cohort import Cohort, make_cohort
from stratify.data.medmnist import load_medmnist, medmnist_flags, medmnist_info
from stratify.data.mnist import load_mnist_test
from stratify.data.volumes import Slices, volumes_to_slices

__all__ = [
    "Cohort",
    "DataNotFoundError",
    "ImageSet",
    "Slices",
    "load_medmnist",
    "load_mnist_test",
    "make_cohort",
    "medmnist_flags",
    "medmnist_info",
    "volumes_to_slices",
]
