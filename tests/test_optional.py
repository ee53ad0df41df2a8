"""Optional dependencies: a missing one is named with the extra that installs it."""

import sys

import numpy as np
import pytest

from stratify._optional import MissingDependency, require
from stratify.analysis import plotting
from stratify.data.files import FileCohortError


def test_require_imports_or_names_the_extra():
    assert require("json", "none", "x").dumps([1]) == "[1]"
    with pytest.raises(MissingDependency, match=r"^figures needs no_such_pkg \(pip install "):
        require("no_such_pkg.sub", "figures", "figures")
    with pytest.raises(
        FileCohortError, match=r"reading these files needs Pillow .*stratify\[files\]"
    ):
        require("PIL.NotAModule", "files", "reading these files", error=FileCohortError)


def test_figures_without_seaborn_say_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "seaborn", None)  # import seaborn -> ImportError
    with pytest.raises(MissingDependency, match=r"pip install 'stratify\[figures\]'"):
        plotting.plot_latent_space(np.zeros((4, 2)), np.array([0, 0, 1, 1]))


def test_the_medmnist_catalogue_without_medmnist(monkeypatch):
    from stratify.data.medmnist import medmnist_flags

    monkeypatch.setitem(sys.modules, "medmnist.info", None)
    with pytest.raises(MissingDependency, match=r"MedMNIST catalogue .*stratify\[medmnist\]"):
        medmnist_flags()
