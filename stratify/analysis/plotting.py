"""Figures of a fitted Stratifier (seaborn and matplotlib, imported lazily).

Each function draws on a new figure, saves it to ``path`` when given (PNG, written atomically)
and returns the matplotlib Figure. Nothing is shown on screen: the Agg backend is used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from stratify._atomic import atomic_write
from stratify._optional import require

__all__ = [
    "plot_contingency",
    "plot_history",
    "plot_image_grid",
    "plot_k_selection",
    "plot_label_efficiency",
    "plot_latent_space",
    "plot_scores",
    "plot_strata_sizes",
    "plot_survival",
    "plot_views",
    "save_figure",
]


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "figures", "figures")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """Save ``figure`` as PNG atomically (temporary file, then rename) and close it."""
    try:
        return atomic_write(
            path, lambda tmp: figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        )
    finally:
        _pyplot().close(figure)


def _finish(figure: Any, path: str | os.PathLike | None) -> Any:
    """Lay ``figure`` out, save it when a path is given (closing it), and return it."""
    figure.tight_layout()
    if path is not None:
        save_figure(figure, path)
    return figure


def _matched_palettes(
    labels: np.ndarray, truth: np.ndarray | None
) -> tuple[dict[Any, Any], dict[Any, Any] | None]:
    """Colours of strata and reference groups: a stratum takes the colour of the group it is
    matched to (Hungarian matching, as cluster ACC scores it); the rest take the next ones.
    """
    from stratify.analysis.metrics import matching

    colours = _pyplot().get_cmap("tab20").colors
    strata = [k for k in np.unique(labels) if k != -1]
    if truth is None:
        palette = {k: colours[i % len(colours)] for i, k in enumerate(strata)}
        return {**palette, -1: (0.6, 0.6, 0.6)}, None
    groups = list(np.unique(truth))
    truth_palette = {g: colours[i % len(colours)] for i, g in enumerate(groups)}
    matched = matching(truth, labels)
    spare = iter(colours[len(groups) % len(colours) :] + colours)
    palette = {k: truth_palette[matched[k]] if k in matched else next(spare) for k in strata}
    return {**palette, -1: (0.6, 0.6, 0.6)}, truth_palette


def plot_latent_space(
    embedding: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray | None = None,
    *,
    truth_name: str = "reference labels",
    color_by: dict[str, np.ndarray] | None = None,
    space_name: str = "latent space",
    random_state: int = 0,
    path: str | os.PathLike | None = None,
) -> Any:
    """The clustered coordinates in 2D (PCA), coloured by stratum, reference and metadata.

    Parameters
    ----------
    embedding : numpy.ndarray, shape (N, D)
        The coordinates the strata were found in (``Stratifier.clustered_space(X)``: the
        normalised latents, or the manifold's), so the picture shows what was clustered.
    labels : numpy.ndarray, shape (N,)
        Strata (``-1`` = noise, grey).
    truth : numpy.ndarray, shape (N,), optional
        A reference labelling (true strata, a clinical label) for a second panel. Each
        stratum is drawn in the colour of the reference group it is matched to (Hungarian
        matching, as cluster ACC scores it), so agreement shows as equal colours.
    truth_name : str, default="reference labels"
        What ``truth`` is, for its panel's title.
    color_by : dict of str to numpy.ndarray of shape (N,), optional
        More panels, one per metadata column (e.g. the scanner site: a nuisance the strata
        may follow).
    space_name : str, default="latent space"
        What ``embedding`` is, for the titles.
    """
    import pandas as pd

    sns = require("seaborn", "figures", "figures")
    from sklearn.decomposition import PCA

    plt = _pyplot()
    coords = PCA(2, random_state=random_state).fit_transform(np.asarray(embedding, float))
    labels = np.asarray(labels)
    strata_palette, truth_palette = _matched_palettes(
        labels, None if truth is None else np.asarray(truth)
    )
    panels: list[tuple[str, np.ndarray, Any]] = [("stratum", labels, strata_palette)]
    if truth is not None:
        panels.append((truth_name, np.asarray(truth), truth_palette))
    for name, values in (color_by or {}).items():
        values = np.asarray(values)
        numeric = np.issubdtype(values.dtype, np.number) and len(np.unique(values)) > 12
        panels.append((name, values, "viridis" if numeric else "tab10"))
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for ax, (name, values, palette) in zip(axes[0], panels, strict=True):
        continuous = palette == "viridis"
        frame = pd.DataFrame(
            {
                "PC 1": coords[:, 0],
                "PC 2": coords[:, 1],
                name: values if continuous else pd.Categorical(values),
            }
        )
        sns.scatterplot(
            frame, x="PC 1", y="PC 2", hue=name, s=12, linewidth=0, ax=ax, palette=palette
        )
        ax.set_title(f"{space_name} (PCA), coloured by {name}", fontsize=9)
    return _finish(figure, path)


def plot_image_grid(
    rows: dict[str, np.ndarray],
    *,
    value_range: tuple[float, float] | None = None,
    path: str | os.PathLike | None = None,
) -> Any:
    """A grid of images: one row per key (e.g. real images and samples of each stratum).

    Parameters
    ----------
    rows : dict of str to numpy.ndarray of shape (M, C, H, W) or (M, H, W)
        Grey-level images are drawn in grey; 3-channel images in colour; volumes should be
        sliced first. Name synthetic rows as such (e.g. "stratum 0: synthetic").
    value_range : (float, float), optional
        The intensity scale shared by every image (e.g. ``Stratifier.data_range_``), so real
        and generated images are comparable; by default 0-255 for uint8 and the rows' joint
        minimum and maximum otherwise. Images are never rescaled one by one.
    """
    plt = _pyplot()
    if value_range is None:
        arrays = [np.asarray(images) for images in rows.values()]
        if all(a.dtype == np.uint8 for a in arrays):
            value_range = (0.0, 255.0)
        else:
            value_range = (min(float(a.min()) for a in arrays), max(float(a.max()) for a in arrays))
    low, high = value_range
    n_cols = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(
        len(rows), n_cols, figsize=(1.3 * n_cols, 1.5 * len(rows)), squeeze=False
    )
    for r, (name, images) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            image = np.asarray(images[c], dtype=float)
            if image.ndim == 3:
                image = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
            image = np.clip((image - low) / (high - low if high > low else 1.0), 0.0, 1.0)
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    return _finish(figure, path)


def plot_views(
    images: Any,
    augmentation: Any = None,
    *,
    n_images: int = 8,
    random_state: int = 0,
    path: str | os.PathLike | None = None,
) -> Any:
    """The two contrastive views the augmentation makes of a few images, under the
    originals: check that they keep what tells your classes apart before training.

    Parameters
    ----------
    images : array of shape (N, C, H, W) or (N, C, D, H, W)
        uint8 or floats in [0, 1]; the first ``n_images`` are drawn (volumes: their middle
        depth slice, after augmenting the whole volume).
    augmentation : AugmentParams, callable or None, default=None
        As the Stratifier's ``augmentation`` parameter (None: the defaults).
    n_images : int, default=8
    random_state : int, default=0
        Seed of the views.
    path : path-like, optional
    """
    import torch

    from stratify._validation import check_array_images
    from stratify.data.augment import AugmentParams, TwoViewAugment

    batch = check_array_images(images)[:n_images]
    x = torch.as_tensor(batch, dtype=torch.float32)
    if batch.dtype == np.uint8:
        x = x / 255.0
    if augmentation is None or isinstance(augmentation, AugmentParams):
        augmentation = TwoViewAugment(augmentation)
    with torch.no_grad():
        v1, v2 = augmentation(x, torch.Generator().manual_seed(random_state))
    rows = {"original": x, "view 1": v1, "view 2": v2}
    if x.ndim == 5:  # the middle depth slice of each volume
        rows = {name: views[:, :, views.shape[2] // 2] for name, views in rows.items()}
    return plot_image_grid(
        {name: views.numpy() for name, views in rows.items()}, value_range=(0.0, 1.0), path=path
    )


def _loss_terms(history: Any) -> list[str]:
    """The loss columns of a history (terms and total), not the bookkeeping ones."""
    skip = {"epoch", "lr", "seconds", "stage", "active_units", "val_loss"}
    return [
        c
        for c in history.columns
        if c not in skip
        and not c.startswith("kl_dim_")
        and not c.endswith("_weight")
        and np.issubdtype(np.asarray(history[c]).dtype, np.number)
    ]


def plot_history(
    history: Any, weights: dict[str, float] | None = None, *, path: str | os.PathLike | None = None
) -> Any:
    """Training curves: each loss term and the total per epoch, one panel each.

    Each panel's title gives the term's weight in the total (when ``weights`` is given) and
    says in red when the term *rose* from its first to its last epoch (a term the other
    terms are pushing up is worth knowing about). Axes are labelled; the y-axis is not forced
    to start at 0, so read the tick values.

    Parameters
    ----------
    history : pandas.DataFrame
        ``Stratifier.history_`` (one row per epoch).
    weights : dict of str to float, optional
        Term name -> weight (``Stratifier.objective_.weights``).
    """
    sns = require("seaborn", "figures", "figures")

    plt = _pyplot()
    terms = _loss_terms(history)
    figure, axes = plt.subplots(1, len(terms), figsize=(3.4 * len(terms), 3.2), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        values = np.asarray(history[term], dtype=float)
        sns.lineplot(history, x="epoch", y=term, marker="o", ax=ax)
        title = (
            term
            if term == "total" or not weights or term not in weights
            else (f"{term} (weight {weights[term]:.3g})")
        )
        rose = len(values) > 1 and values[-1] > values[0]
        if rose:
            title += f"\nROSE {values[0]:.3g} -> {values[-1]:.3g}"
        ax.set_title(title, color="tab:red" if rose else "black", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("term value" if ax is axes[0][0] else "")
    return _finish(figure, path)


def plot_scores(
    results: Any,
    *,
    metric: str = "acc",
    per_row: int = 4,
    path: str | os.PathLike | None = None,
) -> Any:
    """One bar per method and dataset: the mean of ``metric`` over seeds, with each seed's
    value drawn as a dot (the seed spread) and the majority-class rate as a dashed line.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of a benchmark ``results.csv`` (columns ``dataset``, ``method``, ``seed`` and
        ``metric``; ``majority_rate`` when present); rows where ``metric`` is NaN are left
        out.
    metric : str, default="acc"
    per_row : int, default=4
        Datasets (panels) per row of the figure.
    """
    sns = require("seaborn", "figures", "figures")

    plt = _pyplot()
    frame = results[["dataset", "method", "seed", metric]].dropna()
    datasets = list(dict.fromkeys(frame["dataset"]))
    if not datasets:
        raise ValueError(f"Expected at least one result with a {metric} value, got none.")
    n_cols = min(per_row, len(datasets))
    n_rows = -(-len(datasets) // n_cols)
    width = max(2.5, 0.4 * frame.groupby("dataset")["method"].nunique().max() + 1.2)
    figure, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, 4.4 * n_rows), squeeze=False
    )
    flat = list(axes.ravel())
    for ax in flat[len(datasets) :]:
        ax.axis("off")
    for i, (ax, dataset) in enumerate(zip(flat, datasets, strict=False)):
        part = frame[frame["dataset"] == dataset]
        order = list(dict.fromkeys(part["method"]))
        sns.barplot(part, x="method", y=metric, order=order, errorbar=None, color="#9ecae1", ax=ax)
        sns.stripplot(
            part, x="method", y=metric, order=order, color="#08306b", size=4, jitter=0.12, ax=ax
        )
        if (
            "majority_rate" in results
            and results.loc[results["dataset"] == dataset, "majority_rate"].notna().any()
        ):
            rate = results.loc[results["dataset"] == dataset, "majority_rate"].mean()
            ax.axhline(rate, color="grey", linestyle="--", linewidth=1)
            ax.text(
                len(order) - 0.5,
                rate,
                "majority class",
                ha="right",
                va="bottom",
                color="grey",
                fontsize=8,
            )
        ax.set_title(dataset)
        ax.set_xlabel("")
        ax.set_ylim(0, 1.0)
        ax.tick_params(axis="x", labelrotation=60)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_ylabel(f"{metric} (bar: mean; dots: seeds)" if i % n_cols == 0 else "")
    return _finish(figure, path)


def plot_label_efficiency(table: Any, *, path: str | os.PathLike | None = None) -> Any:
    """ACC against the share of training labels known, one panel per dataset: the guided
    strata and the supervised model trained on the same labels as lines (mean, band: sd
    over seeds), the label-free strata and the majority-class rate as horizontal lines.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per (dataset, family, percent): columns ``dataset``, ``family``
        (``"strata"`` or ``"supervised"``), ``percent`` (0 = label-free), ``mean``, ``sd``
        and ``majority_rate``.
    path : path-like, optional
        Save the figure there.

    Raises
    ------
    ValueError
        If ``table`` has no row with labels (percent > 0).
    """
    labelled = table[table["percent"] > 0]
    if labelled.empty:
        raise ValueError("Expected rows with a share of labels (percent > 0), got none.")
    plt = _pyplot()
    datasets = list(dict.fromkeys(table["dataset"]))
    figure, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4), squeeze=False)
    colours = {"strata": "#08306b", "supervised": "#cb181d"}
    names = {"strata": "stratify, guided strata", "supervised": "supervised ResNet-18"}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = table[table["dataset"] == dataset]
        for family, colour in colours.items():
            line = part[(part["family"] == family) & (part["percent"] > 0)]
            line = line.sort_values("percent")
            if line.empty:
                continue
            ax.plot(line["percent"], line["mean"], marker="o", color=colour, label=names[family])
            ax.fill_between(
                line["percent"],
                line["mean"] - line["sd"],
                line["mean"] + line["sd"],
                color=colour,
                alpha=0.2,
            )
        free = part[(part["family"] == "strata") & (part["percent"] == 0)]
        if not free.empty:
            ax.axhline(
                float(free["mean"].iloc[0]),
                color=colours["strata"],
                linestyle="--",
                linewidth=1,
                label="label-free strata",
            )
        ax.axhline(
            float(part["majority_rate"].mean()),
            color="grey",
            linestyle=":",
            linewidth=1,
            label="majority class",
        )
        ax.set(xscale="log", xlabel="training labels known (%)", ylabel="ACC", title=dataset)
        ax.legend(fontsize=7)
    return _finish(figure, path)


#: What the criteria of ``n_clusters="auto"`` measure, for the y-axis.
_CRITERIA = {
    "bic": "BIC of the Gaussian mixture (lower is better)",
    "silhouette": "silhouette (higher is better)",
    "dbcv": "DBCV validity (higher is better)",
}


def plot_k_selection(selection: Any, *, path: str | os.PathLike | None = None) -> Any:
    """The criterion of each candidate number of strata, the chosen one marked.

    Parameters
    ----------
    selection : pandas.DataFrame or fitted Stratifier / StrataClusterer
        ``cluster_selection_`` of a fit with ``n_clusters="auto"`` (columns ``k``,
        ``criterion``, ``score``, ``selected``), or the fitted estimator holding it.
    path : path-like, optional
        Save the figure there.

    Raises
    ------
    ValueError
        If the estimator chose no k (it was fitted with an int ``n_clusters``).
    """
    table = getattr(selection, "cluster_selection_", selection)
    if not hasattr(table, "columns") or not {"k", "criterion", "score", "selected"} <= set(
        table.columns
    ):
        raise ValueError(
            "Expected a cluster_selection_ table (a fit with n_clusters='auto'), got "
            f"{type(selection).__name__} without one."
        )
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(5.0, 3.4))
    ax.plot(table["k"], table["score"], marker="o", color="#08306b")
    chosen = table[table["selected"]].iloc[0]
    ax.plot(
        [chosen["k"]],
        [chosen["score"]],
        marker="o",
        markersize=12,
        fillstyle="none",
        color="#cb181d",
    )
    ax.annotate(
        f"chosen k = {int(chosen['k'])}",
        (chosen["k"], chosen["score"]),
        textcoords="offset points",
        xytext=(8, 8),
        color="#cb181d",
    )
    criterion = str(table["criterion"].iloc[0])
    ax.set_xlabel("number of strata k")
    ax.set_ylabel(_CRITERIA.get(criterion, criterion))
    ax.set_xticks(table["k"])
    figure.tight_layout()
    return _finish(figure, path)


def plot_contingency(y_true: Any, labels: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Heatmap of strata against true labels: each cell the fraction of a label's samples
    that fall in a stratum (rows sum to 1), annotated with the counts.

    Parameters
    ----------
    y_true : array of shape (N,)
    labels : array of shape (N,)
        Strata (``-1`` = noise, its own column).
    """
    import pandas as pd

    sns = require("seaborn", "figures", "figures")

    plt = _pyplot()
    counts = pd.crosstab(
        pd.Series(np.asarray(y_true), name="true label"),
        pd.Series(np.asarray(labels), name="stratum"),
    )
    fractions = counts.div(counts.sum(axis=1), axis=0)
    figure, ax = plt.subplots(figsize=(1.0 + 0.6 * counts.shape[1], 0.8 + 0.5 * counts.shape[0]))
    sns.heatmap(
        fractions,
        annot=counts.to_numpy(),
        fmt="d",
        cmap="Blues",
        vmin=0,
        vmax=1,
        cbar_kws={"label": "fraction of the label's samples"},
        ax=ax,
    )
    ax.set_title("strata vs true labels")
    return _finish(figure, path)


def plot_survival(result: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Kaplan-Meier curves per stratum with their 95 % bands, the log-rank p in the title.

    Parameters
    ----------
    result : stratify.analysis.survival.SurvivalResult
    """
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6, 4))
    for stratum, curve in result.curves.groupby("stratum"):
        n = int(result.summary.loc[stratum, "n"])
        line = ax.step(
            curve["time"], curve["survival"], where="post", label=f"stratum {stratum} (n={n})"
        )
        ax.fill_between(
            curve["time"],
            curve["lower"],
            curve["upper"],
            step="post",
            alpha=0.2,
            color=line[0].get_color(),
        )
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Kaplan-Meier per stratum (log-rank p = {result.logrank['p_value']:.3g})")
    ax.legend(frameon=False)
    return _finish(figure, path)


def plot_strata_sizes(labels: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Bar chart of the number of samples per stratum (``-1`` = noise)."""
    plt = _pyplot()
    strata, counts = np.unique(np.asarray(labels), return_counts=True)
    figure, ax = plt.subplots(figsize=(1.5 + 0.6 * len(strata), 3))
    ax.bar([("noise" if k == -1 else str(k)) for k in strata], counts, color="#4c72b0")
    for x, count in enumerate(counts):
        ax.text(x, count, str(count), ha="center", va="bottom")
    ax.set_xlabel("stratum")
    ax.set_ylabel("samples")
    return _finish(figure, path)
