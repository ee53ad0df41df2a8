"""Optional dependencies: import one, or say which extra installs it.

The core (training, clustering, the estimator, the CLI's fit / predict) needs none of them.
Each serves one feature: ``medmnist`` the MedMNIST downloads and their catalogue, ``seaborn``
(with matplotlib) the figures, ``lifelines`` the outcomes per stratum, ``nibabel`` /
``pydicom`` / ``Pillow`` the cohort files. ``pip install 'stratify[all]'`` installs them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependency", "require"]

#: The distribution that provides a module, where its name differs.
_PACKAGES = {"PIL": "Pillow", "matplotlib": "matplotlib"}


class MissingDependency(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(
    module: str,
    extra: str,
    feature: str,
    error: type[Exception] = MissingDependency,
) -> ModuleType:
    """Import ``module`` (e.g. ``"seaborn"``, ``"PIL.Image"``), or raise ``error`` naming the
    ``feature`` that needs it and ``pip install 'stratify[extra]'``.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        package = _PACKAGES.get(top, top)
        raise error(
            f"{feature} needs {package} (pip install 'stratify[{extra}]' or pip install {package})"
        ) from None
