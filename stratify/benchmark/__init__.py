"""The benchmark: MedMNIST, MNIST and synthetic-cohort grids of methods x seeds.

Run it as ``python benchmarks/run.py`` or ``stratify benchmark`` (see
:func:`stratify.benchmark.runner.main`); :func:`run_grid` is the Python entry point.
"""

from stratify.benchmark.datasets import BenchmarkData, dataset_names, load_dataset
from stratify.benchmark.methods import METHODS
from stratify.benchmark.runner import PROFILES, main, run_grid

__all__ = [
    "METHODS",
    "PROFILES",
    "BenchmarkData",
    "dataset_names",
    "load_dataset",
    "main",
    "run_grid",
]
