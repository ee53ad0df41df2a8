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

__all__ = [
    "plot_contingency",
    "plot_history",
    "plot_image_grid",
    "plot_latent_space",
    "plot_scores",
    "save_figure",
]


def _pyplot() -> Any:
    import matplotlib

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


def plot_latent_space(
    embedding: np.ndarray,
    labels: np.ndarray,
    truth: np.ndarray | None = None,
    *,
    random_state: int = 0,
    path: str | os.PathLike | None = None,
) -> Any:
    """The latents in 2D (PCA), coloured by stratum and, when given, by the true label.

    Parameters
    ----------
    embedding : numpy.ndarray, shape (N, D)
    labels : numpy.ndarray, shape (N,)
        Strata (``-1`` = noise).
    truth : numpy.ndarray, shape (N,), optional
        A reference labelling (true strata, a clinical label) for a second panel.
    """
    import pandas as pd
    import seaborn as sns
    from sklearn.decomposition import PCA

    plt = _pyplot()
    coords = PCA(2, random_state=random_state).fit_transform(np.asarray(embedding, float))
    panels = [("stratum", labels)] + ([("true label", truth)] if truth is not None else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], panels, strict=True):
        frame = pd.DataFrame({"PC 1": coords[:, 0], "PC 2": coords[:, 1],
                              name: pd.Categorical(np.asarray(values))})
        sns.scatterplot(frame, x="PC 1", y="PC 2", hue=name, s=12, linewidth=0, ax=ax,
                        palette="tab10")
        ax.set_title(f"latent space (PCA), coloured by {name}")
    return _finish(figure, path)


def plot_image_grid(
    rows: dict[str, np.ndarray], *, path: str | os.PathLike | None = None
) -> Any:
    """A grid of images: one row per key (e.g. one row of samples per stratum).

    Parameters
    ----------
    rows : dict of str to numpy.ndarray of shape (M, C, H, W) or (M, H, W)
        Grey-level images are drawn in grey; 3-channel images in colour; volumes should be
        sliced first. Values are scaled per image to the full grey range.
    """
    plt = _pyplot()
    n_cols = max(len(images) for images in rows.values())
    figure, axes = plt.subplots(len(rows), n_cols, figsize=(1.3 * n_cols, 1.5 * len(rows)),
                                squeeze=False)
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
            span = image.max() - image.min()
            image = (image - image.min()) / span if span > 0 else np.zeros_like(image)
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center")
    return _finish(figure, path)


def plot_history(history: Any, *, path: str | os.PathLike | None = None) -> Any:
    """Training curves: each loss term and the total per epoch (one panel each)."""
    import seaborn as sns

    plt = _pyplot()
    skip = {"epoch", "lr", "seconds"}
    terms = [c for c in history.columns if c not in skip]
    figure, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 3), squeeze=False)
    for ax, term in zip(axes[0], terms, strict=True):
        sns.lineplot(history, x="epoch", y=term, marker="o", ax=ax)
        ax.set_title(term)
        ax.set_ylabel("")
    return _finish(figure, path)


def plot_scores(
    results: Any, *, metric: str = "acc", per_row: int = 4,
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
    import seaborn as sns

    plt = _pyplot()
    frame = results[["dataset", "method", "seed", metric]].dropna()
    datasets = list(dict.fromkeys(frame["dataset"]))
    if not datasets:
        raise ValueError(f"Expected at least one result with a {metric} value, got none.")
    n_cols = min(per_row, len(datasets))
    n_rows = -(-len(datasets) // n_cols)
    width = max(2.5, 0.4 * frame.groupby("dataset")["method"].nunique().max() + 1.2)
    figure, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, 4.4 * n_rows),
                                squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[len(datasets):]:
        ax.axis("off")
    for i, (ax, dataset) in enumerate(zip(flat, datasets, strict=False)):
        part = frame[frame["dataset"] == dataset]
        order = list(dict.fromkeys(part["method"]))
        sns.barplot(part, x="method", y=metric, order=order, errorbar=None, color="#9ecae1",
                    ax=ax)
        sns.stripplot(part, x="method", y=metric, order=order, color="#08306b", size=4,
                      jitter=0.12, ax=ax)
        if "majority_rate" in results and results.loc[results["dataset"] == dataset,
                                                      "majority_rate"].notna().any():
            rate = results.loc[results["dataset"] == dataset, "majority_rate"].mean()
            ax.axhline(rate, color="grey", linestyle="--", linewidth=1)
            ax.text(len(order) - 0.5, rate, "majority class", ha="right", va="bottom",
                    color="grey", fontsize=8)
        ax.set_title(dataset)
        ax.set_xlabel("")
        ax.set_ylim(0, 1.0)
        ax.tick_params(axis="x", labelrotation=60)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
        ax.set_ylabel(f"{metric} (bar: mean; dots: seeds)" if i % n_cols == 0 else "")
    return _finish(figure, path)


def plot_contingency(
    y_true: Any, labels: Any, *, path: str | os.PathLike | None = None
) -> Any:
    """Heatmap of strata against true labels: each cell the fraction of a label's samples
    that fall in a stratum (rows sum to 1), annotated with the counts.

    Parameters
    ----------
    y_true : array of shape (N,)
    labels : array of shape (N,)
        Strata (``-1`` = noise, its own column).
    """
    import pandas as pd
    import seaborn as sns

    plt = _pyplot()
    counts = pd.crosstab(pd.Series(np.asarray(y_true), name="true label"),
                         pd.Series(np.asarray(labels), name="stratum"))
    fractions = counts.div(counts.sum(axis=1), axis=0)
    figure, ax = plt.subplots(figsize=(1.0 + 0.6 * counts.shape[1], 0.8 + 0.5 * counts.shape[0]))
    sns.heatmap(fractions, annot=counts.to_numpy(), fmt="d", cmap="Blues", vmin=0, vmax=1,
                cbar_kws={"label": "fraction of the label's samples"}, ax=ax)
    ax.set_title("strata vs true labels")
    return _finish(figure, path)
