"""The benchmark lab: MedMNIST, MNIST and synthetic-cohort grids of methods x seeds.

Not part of the installed package: it lives beside the scripts in ``benchmarks/`` and uses
stratify as a user does. Run it as ``python benchmarks/run.py`` (see
:func:`lab.runner.main`); :func:`run_grid` is the Python entry point. Importing it
registers the lab's research clustering backends (:mod:`lab.backends`).
"""

from lab.backends import register
from lab.datasets import BenchmarkData, dataset_names, load_dataset
from lab.methods import METHODS
from lab.runner import PROFILES, main, run_grid

__all__ = [
    "METHODS",
    "PROFILES",
    "BenchmarkData",
    "dataset_names",
    "load_dataset",
    "main",
    "run_grid",
]

register()
