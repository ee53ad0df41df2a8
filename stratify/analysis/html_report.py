"""One self-contained HTML file to hand a clinician: the strata of a fitted model, what they
hold, how they differ, how far to trust them, and how the model was made.

A document first, tables second: the date and the inputs, a plain-language paragraph per
stratum generated from the numbers (:mod:`stratify.analysis.summary`), then the evidence:
stratum sizes, a 2D map of the clustered space coloured by stratum, example images per
stratum, per-stratum metadata profiles (shares labelled as such) with Benjamini-Hochberg
tests, survival curves with the log-rank test and hazard ratios, the stability of the strata,
the caveats, and a short model card. Figures are embedded as base64 PNG (no other file
travels with it). Synthetic images are shown only where a classifier of the real strata,
on pixels, puts them back in their stratum (:data:`SYNTHETIC_FIDELITY`); otherwise the report
says they do not show what distinguishes the strata.
"""

from __future__ import annotations

import base64
import html
import io as _io
import os
import platform
from datetime import datetime
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
#: Synthetic images per stratum checked by the pixel classifier of the real strata.
SYNTHETIC_CHECKED = 20
#: The rule for showing synthetic images, declared here: the share the classifier puts back
#: in their stratum must reach this and twice chance (2 / number of strata).
SYNTHETIC_FIDELITY = 0.5


def _stability_section(measured: Any, n_resamples: int) -> str:
    """Per-stratum Jaccard and per-patient agreement of the clustering refitted on
    subsamples of the training latents.
    """
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
       max-width: 80em; padding: 0 1.5em; color: #222; line-height: 1.45; }
.summary p { font-size: 1.05em; } .caveats li { margin-bottom: 0.3em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f3f3f3; } img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


def _png(figure: Any, scale: float = 1.0) -> str:
    """A matplotlib figure as an ``<img>`` with a base64 PNG (the figure is closed);
    ``scale`` enlarges a small figure (its fonts too).
    """
    import matplotlib.pyplot as plt

    if scale != 1.0:
        width, height = figure.get_size_inches()
        figure.set_size_inches(width * scale, height * scale)
        for text in figure.findobj(lambda artist: hasattr(artist, "set_fontsize")):
            text.set_fontsize(text.get_fontsize() * scale)
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


def _networks(model: Any) -> str:
    """``"an ensemble of 3 networks, each: "`` for an ensemble, else nothing."""
    from stratify.models.ensemble import Ensemble

    count = len(model.model_) if isinstance(model.model_, Ensemble) else 1
    return f"an ensemble of {count} networks, each: " if count > 1 else ""


def model_card(model: Any) -> pd.DataFrame:
    """What a reader needs to know of the model: one ``value`` per ``field``."""
    params = model.get_params(deep=False)
    priors = params.get("regularizers") or {}
    clusterer = params["clusterer"]
    rows = {
        "stratify version": __version__,
        "torch version": _version("torch"),
        "python": platform.python_version(),
        "training images": len(model.labels_),
        "patients": len(set(model.ids_)) if getattr(model, "ids_", None) is not None else "",
        "image shape (C, *S)": str(tuple(model.image_shape_)),
        "network": f"{_networks(model)}{'variational ' if params['model'] == 'vae' else ''}"
        f"autoencoder, {params['latent_dim']}-dimensional latent space",
        "training losses": ", ".join(
            term for term in model.objective_.terms if term not in ("kl",)
        ),
        "metadata priors": ", ".join(
            f"{name} ({spec.get('kind', 'term')} on {spec.get('columns', name)})"
            if isinstance(spec, dict)
            else name
            for name, spec in priors.items()
        )
        or "none",
        "known labels": getattr(model, "label_column_", None) or "none",
        "clustering": (clusterer if isinstance(clusterer, str) else type(clusterer).__name__)
        + (" on the UMAP manifold" if params.get("manifold") == "umap" else " on the latents"),
        "strata": model.n_clusters_,
        "epochs run": int(model.history_["epoch"].max()) if len(model.history_) else 0,
        "batch size": getattr(model, "batch_size_", ""),
        "fit time (s)": f"{getattr(model, 'fit_seconds_', float('nan')):.1f}",
        "seed (random_state)": params.get("random_state"),
    }
    return pd.DataFrame({"value": [str(v) for v in rows.values()]}, index=list(rows))


def _labelled_profile(profile: pd.DataFrame) -> pd.DataFrame:
    """Profile columns named for a reader: ``age mean``, ``site = A (share)``."""

    def name(column: str) -> str:
        if "=" in column:
            variable, level = column.split("=", 1)
            return f"{variable} = {level} (share)"
        for suffix, words in (("_mean", "mean"), ("_std", "sd"), ("_missing", "missing")):
            if column.endswith(suffix):
                return f"{column[: -len(suffix)]} {words}"
        return "images" if column == "n" else column

    return profile.rename(columns=name)


def synthetic_fidelity(model: Any, images: np.ndarray, random_state: int = 0) -> float:
    """Share of synthetic images that a pixel classifier of the real strata puts back in the
    stratum they were drawn for (:func:`stratify.analysis.metrics.stratum_fidelity` on
    pixels); chance is 1 / number of strata.
    """
    from stratify.analysis.metrics import stratum_fidelity

    labels = np.asarray(model.labels_)
    kept = labels >= 0
    strata = [int(k) for k in np.unique(labels[kept])]
    drawn = [model.sample(SYNTHETIC_CHECKED, cluster=k, random_state=random_state) for k in strata]
    real = np.asarray(images, dtype=np.float32).reshape(len(images), -1)[kept]
    samples = np.concatenate([np.asarray(d, dtype=np.float32).reshape(len(d), -1) for d in drawn])
    overall, _ = stratum_fidelity(real, labels[kept], samples, np.repeat(strata, SYNTHETIC_CHECKED))
    return float(overall)


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
    inputs: str | None = None,
    time_unit: str = "time units",
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
        stability (:func:`stratify.analysis.resampling.stability`); 0 leaves it out.
    inputs : str, optional
        One line on where the images came from (folder, files, size, window).
    time_unit : str, default="time units"
        What the outcome's times count (days, months, ...).

    Returns
    -------
    pathlib.Path
    """
    from stratify.analysis import plotting
    from stratify.analysis.summary import stratum_paragraphs

    labels = np.asarray(model.labels_)
    strata = [int(k) for k in np.unique(labels) if k >= 0]
    card = model_card(model)
    n_patients = card.loc["patients", "value"] or None
    shape = tuple(model.image_shape_)
    profile = tests = survival = measured = None
    if metadata is not None:
        profile, tests = model.describe(metadata, outcome=outcome)
    if outcome is not None and patients is not None:
        from stratify.analysis.survival import survival_by_stratum

        survival = survival_by_stratum(
            patients["stratum"], patients[outcome[0]], patients[outcome[1]]
        )
    if stability_resamples:
        measured = stability(model, n_resamples=stability_resamples, random_state=0)
    per_patient = None
    if getattr(model, "ids_", None) is not None and len(set(model.ids_)) < len(labels):
        frame = pd.DataFrame({"id": model.ids_, "stratum": labels})
        per_patient = frame.drop_duplicates("id")["stratum"].value_counts().to_dict()

    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>Generated {generated} by stratify {__version__}. Inputs: "
        + html.escape(
            inputs
            or f"{len(labels)} training images"
            + ("" if n_patients is None else f" of {n_patients} patients")
        )
        + f"; images of shape {shape}; {model.n_clusters_} strata.</p>",
    ]
    paragraphs = stratum_paragraphs(
        labels,
        metadata=metadata,
        tests=tests,
        survival=survival,
        time_unit=time_unit,
        stability=None if measured is None else measured.strata,
        patients_per_stratum=per_patient,
    )
    parts.append(
        "<h2>Summary</h2><div class='summary'>"
        + "".join(f"<p>{html.escape(text)}</p>" for text in paragraphs.values())
        + "</div>"
    )
    parts.append(
        "<h2>Cohort</h2><p>"
        + f"{len(labels)} training images"
        + ("" if n_patients is None else f" of {n_patients} patients")
        + f", each of shape {shape}, in {model.n_clusters_} strata"
        + (f" ({int((labels == -1).sum())} marked noise)" if (labels == -1).any() else "")
        + ".</p>"
    )
    sizes = pd.Series(labels).value_counts().sort_index().rename("images").to_frame()
    sizes["share of the cohort"] = sizes["images"] / len(labels)
    parts.append(
        "<h2>Stratum sizes</h2>"
        + _table(sizes)
        + _png(plotting.plot_strata_sizes(labels), scale=1.8)
    )
    parts.append(
        "<h2>Map of the strata</h2><p class='note'>Each point is a training image, placed by "
        "the first two principal components of the space the strata were found in, coloured "
        "by stratum. Overlap in two dimensions does not mean overlap in the full space.</p>"
        + _png(
            plotting.plot_latent_space(
                model.clustered_space(), labels, space_name="clustered space"
            ),
            scale=1.6,
        )
    )

    def shown(batch: np.ndarray) -> np.ndarray:
        """(M, C, H, W) to draw: volumes by their middle slice along the depth."""
        batch = np.asarray(batch).reshape(len(batch), *shape)
        return batch[:, :, shape[1] // 2] if len(shape) == 4 else batch

    show_synthetic, synthetic_note = False, ""
    if getattr(model.model_, "has_decoder", False) and len(strata) >= 2:
        if images is None:
            synthetic_note = (
                "Synthetic images are not shown: without the training images (--images) the "
                "report cannot check that they look like their strata."
            )
        else:
            fidelity = synthetic_fidelity(model, images)
            needed = max(SYNTHETIC_FIDELITY, 2.0 / len(strata))
            show_synthetic = fidelity >= needed
            synthetic_note = (
                f"Synthetic images (decoded from each stratum, not patients) are shown: a "
                f"classifier of the real strata on pixels put {fidelity:.0%} of them back in "
                f"their stratum (chance {1 / len(strata):.0%})."
                if show_synthetic
                else f"Synthetic images are not shown: a classifier of the real strata on "
                f"pixels put only {fidelity:.0%} of them back in their stratum (chance "
                f"{1 / len(strata):.0%}; shown from {needed:.0%}), so they do not show what "
                "distinguishes the strata."
            )
    rows: dict[str, np.ndarray] = {}
    for k in strata:
        if images is not None:
            rows[f"stratum {k}: real"] = shown(images[labels == k][:EXAMPLES])
        if show_synthetic:
            rows[f"stratum {k}: synthetic"] = shown(
                model.sample(EXAMPLES, cluster=k, random_state=0)
            )
    if rows or synthetic_note:
        parts.append(
            "<h2>Example images per stratum</h2><p class='note'>"
            + html.escape(synthetic_note)
            + (" Volumes are shown by their middle slice." if len(shape) == 4 else "")
            + "</p>"
            + (_png(plotting.plot_image_grid(rows, value_range=model.data_range_)) if rows else "")
        )

    if profile is not None and tests is not None:
        trained = tests.index[tests["used_in_training"]].tolist()
        role = {"labels": "known labels", "prior": "a prior"}
        named = ", ".join(f"{c} ({role[tests.loc[c, 'training_role']]})" for c in trained)
        parts.append(
            "<h2>Metadata per stratum</h2><p class='note'>Means and standard deviations of "
            "numeric columns; shares (0 to 1) of each level of categorical columns.</p>"
            + _table(_labelled_profile(profile))
            + "<p class='note'>Tests across strata; p-values adjusted by Benjamini-Hochberg; "
            "effect size in [0, 1] (Cramér's V for categories, epsilon squared for numbers)."
            "</p>"
            + _table(tests)
            + (
                f"<p class='note'>Used in training: {html.escape(named)}. The strata were "
                "pushed to follow these columns, so their differences across strata are "
                "expected, not a finding.</p>"
                if trained
                else ""
            )
        )

    if survival is not None and outcome is not None:
        logrank = survival.logrank
        parts.append(
            f"<h2>Survival (time: {html.escape(outcome[0])} in {html.escape(time_unit)}, "
            f"event: {html.escape(outcome[1])})</h2>"
            + _png(plotting.plot_survival(survival))
            + f"<p>Log-rank test across the strata: chi-square {logrank['statistic']:.2f} "
            f"on {logrank['dof']:.0f} degrees of freedom, p = {logrank['p_value']:.3g}.</p>"
            + _table(
                survival.summary.rename(
                    columns={
                        "n": "patients",
                        "median_survival": f"median survival ({time_unit})",
                    }
                )
            )
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
    if measured is not None:
        parts.append(_stability_section(measured, stability_resamples))
    elif selection is None:
        parts.append(
            "<p class='note'>Not measured for this report; "
            "<code>stratify.stability(model)</code> refits the clustering on "
            "subsamples.</p>"
        )
    parts.append(
        "<h2>Caveats</h2><ul class='caveats'>"
        "<li>Strata are groups the model found in the images without being told the "
        "diagnosis; they are hypotheses to examine, not diagnoses or validated subtypes.</li>"
        "<li>Differences in metadata are associations found in this cohort, adjusted for "
        "multiple testing but not for confounding (site, scanner, protocol).</li>"
        "<li>Columns used in training (priors, known labels) differ across the strata by "
        "construction.</li>"
        "<li>Strata depend on the random seed to a degree: the stability section says how "
        "much for this model's clustering; a refit with another seed may draw other "
        "boundaries.</li>"
        "<li>Synthetic images are decoded from the model; they are not patients.</li>"
        "</ul>"
    )
    parts.append("<h2>Model card</h2>" + _table(card))
    document = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    return write_text(document, Path(path))
