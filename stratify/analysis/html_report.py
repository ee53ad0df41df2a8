"""One self-contained HTML file to hand a clinician: the strata of a fitted model, what they
hold, how they differ, and how the model was made.

Figures are embedded as base64 PNG (no other file travels with it): cohort summary, stratum
sizes, example images per stratum (real images when given, else images decoded from each
stratum, labelled synthetic), per-stratum metadata profiles with Benjamini-Hochberg-adjusted
tests, survival curves with the log-rank test and hazard ratios (with an outcome), the
stability of the strata (across seeded reruns when the model chose its space by it; per
stratum and per patient from refits of the clustering on subsamples) and a model card
(parameters, versions, seed, training).
"""

from __future__ import annotations

import base64
import html
import io as _io
import os
import platform
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stratify._atomic import write_text
from stratify._version import __version__
from stratify.analysis.resampling import stability

__all__ = ["model_card", "write_html_report"]

#: Example images per stratum.
EXAMPLES = 8
#: Subsamples of the report's stability section.
STABILITY_RESAMPLES = 10
#: A patient kept in its stratum in fewer than this share of the resamples is unstable.
UNSTABLE_PATIENT = 0.8


def _stability_section(model: Any, n_resamples: int) -> str:
    """Per-stratum Jaccard and per-patient agreement of the clustering refitted on
    subsamples of the training latents.
    """
    measured = stability(model, n_resamples=n_resamples, random_state=0)
    patients = measured.patients[~np.isnan(measured.patients)]
    unstable = int((patients < UNSTABLE_PATIENT).sum())
    share = unstable / max(len(patients), 1)
    return (
        f"<p>The clustering refitted on {n_resamples} random subsamples (80 %) of the "
        "training latents, the network frozen: mean adjusted Rand index with the strata "
        f"{measured.resamples['ari'].mean():.3f}. Per stratum, the Jaccard index with the "
        "best-matching resample cluster (Hennig 2007: above 0.75 stable, below 0.5 "
        "dissolved) and the mean agreement of its images. "
        f"{unstable} of {len(patients)} images ({share:.0%}) stayed in their stratum in "
        f"fewer than {UNSTABLE_PATIENT:.0%} of the resamples that drew them: their stratum "
        "is uncertain.</p>" + _table(measured.strata.round(3))
    )


_STYLE = """
body { font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f3f3f3; } img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


def _png(figure: Any) -> str:
    """A matplotlib figure as an ``<img>`` with a base64 PNG (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    return frame.to_html(index=index, float_format=lambda v: f"{v:.3g}", border=0, escape=True)


def _version(package: str) -> str:
    try:
        return _metadata.version(package)
    except _metadata.PackageNotFoundError:
        return "not installed"


def model_card(model: Any) -> pd.DataFrame:
    """What the model is and how it was made: one ``value`` per ``field``."""
    params = model.get_params(deep=False)
    plain = {k: v for k, v in params.items() if isinstance(v, (str, int, float, bool, type(None)))}
    rows = {
        "stratify version": __version__,
        **{f"{p} version": _version(p) for p in ("torch", "scikit-learn", "numpy", "umap-learn")},
        "python": platform.python_version(),
        "training images": len(model.labels_),
        "patients": len(set(model.ids_)) if getattr(model, "ids_", None) is not None else "",
        "image shape (C, *S)": str(tuple(model.image_shape_)),
        "strata": model.n_clusters_,
        "epochs run": int(model.history_["epoch"].max()) if len(model.history_) else 0,
        "batch size": getattr(model, "batch_size_", ""),
        "fit time (s)": f"{getattr(model, 'fit_seconds_', float('nan')):.1f}",
        "seed (random_state)": params.get("random_state"),
        **{f"parameter {k}": v for k, v in sorted(plain.items()) if k != "random_state"},
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


def write_html_report(
    model: Any,
    path: str | os.PathLike,
    *,
    metadata: pd.DataFrame | None = None,
    patients: pd.DataFrame | None = None,
    outcome: tuple[str, str] | None = None,
    images: np.ndarray | None = None,
    title: str = "stratify report",
    stability_resamples: int = STABILITY_RESAMPLES,
) -> Path:
    """Write the report of a fitted Stratifier to ``path`` (one HTML file, atomically).

    Parameters
    ----------
    model : Stratifier
        Fitted.
    path : path
        The ``.html`` file.
    metadata : pandas.DataFrame, optional
        One row per training image (in training order) for the profiles and tests.
    patients : pandas.DataFrame, optional
        One row per patient with a ``stratum`` column and the outcome columns.
    outcome : (str, str), optional
        Time and event columns of ``patients``.
    images : numpy.ndarray, shape (N, C, *S), optional
        The training images, for real examples per stratum.
    title : str, default="stratify report"
    stability_resamples : int, default=STABILITY_RESAMPLES
        Subsamples the clustering is refitted on for the per-stratum and per-patient
        stability (:func:`stratify.analysis.resampling`); 0 leaves it out.

    Returns
    -------
    pathlib.Path
    """
    from stratify.analysis import plotting

    labels = np.asarray(model.labels_)
    strata = [int(k) for k in np.unique(labels) if k >= 0]
    parts = [f"<h1>{html.escape(title)}</h1>"]
    card = model_card(model)
    n_patients = card.loc["patients", "value"] or None
    parts.append(
        "<h2>Cohort</h2><p>"
        + f"{len(labels)} training images"
        + ("" if n_patients is None else f" of {n_patients} patients")
        + f", each of shape {tuple(model.image_shape_)}, in {model.n_clusters_} strata"
        + (f" ({int((labels == -1).sum())} marked noise)" if (labels == -1).any() else "")
        + ".</p>"
    )
    sizes = pd.Series(labels).value_counts().sort_index().rename("images").to_frame()
    parts.append(
        "<h2>Stratum sizes</h2>" + _table(sizes) + _png(plotting.plot_strata_sizes(labels))
    )

    shape = tuple(model.image_shape_)

    def shown(batch: np.ndarray) -> np.ndarray:
        """(M, C, H, W) to draw: volumes by their middle slice along the depth."""
        batch = np.asarray(batch).reshape(len(batch), *shape)
        return batch[:, :, shape[1] // 2] if len(shape) == 4 else batch

    rows: dict[str, np.ndarray] = {}
    for k in strata:
        if images is not None:
            rows[f"stratum {k}: real"] = shown(images[labels == k][:EXAMPLES])
        if getattr(model.model_, "has_decoder", False):
            rows[f"stratum {k}: synthetic"] = shown(
                model.sample(EXAMPLES, cluster=k, random_state=0)
            )
    if rows:
        parts.append(
            "<h2>Example images per stratum</h2><p class='note'>Rows marked synthetic are "
            "decoded from the model, not patients"
            + ("; volumes are shown by their middle slice" if len(shape) == 4 else "")
            + ".</p>"
            + _png(plotting.plot_image_grid(rows, value_range=model.data_range_))
        )

    if metadata is not None:
        profile, tests = model.describe(metadata, outcome=outcome)
        trained = tests.index[tests["used_in_training"]].tolist()
        role = {"labels": "known labels", "prior": "a prior"}
        named = ", ".join(f"{c} ({role[tests.loc[c, 'training_role']]})" for c in trained)
        parts.append(
            "<h2>Metadata per stratum</h2>" + _table(profile) + "<p class='note'>Tests across "
            "strata; p-values adjusted by Benjamini-Hochberg.</p>"
            + _table(tests)
            + (
                f"<p class='note'>Used in training: {html.escape(named)}. The strata were "
                "pushed to follow these columns, so their differences across strata are "
                "expected, not a finding.</p>"
                if trained
                else ""
            )
        )

    if outcome is not None and patients is not None:
        from stratify.analysis.survival import survival_by_stratum

        survival = survival_by_stratum(
            patients["stratum"], patients[outcome[0]], patients[outcome[1]]
        )
        logrank = survival.logrank
        parts.append(
            f"<h2>Survival (time: {html.escape(outcome[0])}, event: "
            f"{html.escape(outcome[1])})</h2>"
            + _png(plotting.plot_survival(survival))
            + f"<p>Log-rank test across the strata: chi-square {logrank['statistic']:.2f} "
            f"on {logrank['dof']:.0f} degrees of freedom, p = {logrank['p_value']:.3g}.</p>"
            + _table(survival.summary)
            + f"<p>Cox hazard ratios against the largest stratum ({survival.reference}), "
            "95 % confidence intervals:</p>" + _table(survival.hazard_ratios, index=False)
        )

    parts.append("<h2>Stability</h2>")
    selection = getattr(model, "manifold_selection_", None)
    if selection is not None:
        parts.append(
            "<p>Agreement (mean pairwise adjusted Rand index) of the strata across seeded "
            "reruns, per candidate space; the model kept the most stable.</p>"
            + _table(pd.DataFrame(selection), index=False)
        )
    if stability_resamples:
        parts.append(_stability_section(model, stability_resamples))
    elif selection is None:
        parts.append(
            "<p class='note'>Not measured for this report; "
            "<code>stratify.stability(model)</code> refits the clustering on "
            "subsamples.</p>"
        )
    parts.append("<h2>Model card</h2>" + _table(card))
    document = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    return write_text(document, Path(path))
