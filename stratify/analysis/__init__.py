"""What the strata mean: everything that reads a fitted Stratifier and its cohort.

* :mod:`~stratify.analysis.report`: per-stratum metadata profiles with tests across strata
  (:func:`describe_strata`);
* :mod:`~stratify.analysis.resampling`: how reproducible the strata are (:func:`stability`);
* :mod:`~stratify.analysis.survival`: outcomes per stratum (Kaplan-Meier, log-rank, Cox);
* :mod:`~stratify.analysis.metrics`: strata against known labels (ACC, NMI, ARI, probes);
* :mod:`~stratify.analysis.baseline`: the pixel PCA + k-means floor;
* :mod:`~stratify.analysis.plotting`: the figures;
* :mod:`~stratify.analysis.html_report`: the self-contained HTML report.

Submodules load on first use (PEP 562), so that importing this package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratify._lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from stratify.analysis.baseline import pixel_pca_kmeans
    from stratify.analysis.report import StrataProfile, describe_strata
    from stratify.analysis.resampling import StrataStability, stability
    from stratify.analysis.survival import SurvivalResult, survival_by_stratum

_LAZY = {
    "StrataProfile": "stratify.analysis.report",
    "StrataStability": "stratify.analysis.resampling",
    "SurvivalResult": "stratify.analysis.survival",
    "describe_strata": "stratify.analysis.report",
    "pixel_pca_kmeans": "stratify.analysis.baseline",
    "stability": "stratify.analysis.resampling",
    "survival_by_stratum": "stratify.analysis.survival",
}
_SUBMODULES = (
    "baseline",
    "html_report",
    "metrics",
    "plotting",
    "report",
    "resampling",
    "survival",
)

__all__ = [
    "StrataProfile",
    "StrataStability",
    "SurvivalResult",
    "baseline",
    "describe_strata",
    "html_report",
    "metrics",
    "pixel_pca_kmeans",
    "plotting",
    "report",
    "resampling",
    "stability",
    "survival",
    "survival_by_stratum",
]

__getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY, _SUBMODULES)
