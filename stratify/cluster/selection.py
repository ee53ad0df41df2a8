"""Choices made without labels: the number of strata and the space they are found in.

* :func:`select_k`: ``n_clusters="auto"`` fits every candidate k of a range and keeps the one
  the backend's :class:`~stratify.cluster.backends.Criterion` prefers.
* :func:`most_stable`: ``manifold="auto"`` clusters each candidate space (the latents, the
  manifold) ``STABILITY_RUNS`` times with different seeds and keeps the space whose
  partitions agree best (mean pairwise adjusted Rand index), with its medoid run. The
  manifold step separates thin, curved clusters but can split a cluster along a nuisance and
  merge the pieces differently from run to run; a mixture on raw latents whose clusters are
  not ellipsoids lands in a different local optimum from run to run. Stability tells the two
  failures apart without labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from stratify._random import draw_seeds
from stratify.cluster.backends import Backend, UnreachableK

__all__ = ["STABILITY_RUNS", "most_stable", "select_k"]

#: Seeded runs per candidate space of ``manifold="auto"`` (stability = their mean pairwise ARI).
STABILITY_RUNS = 3


def select_k(
    X: np.ndarray,
    backend: Backend,
    k_range: tuple[int, int],
    seed: int,
    options: dict[str, Any],
) -> tuple[int, pd.DataFrame]:
    """The candidate k the backend's criterion prefers, and the table of candidates.

    Parameters
    ----------
    X : numpy.ndarray of shape (N, D)
    backend : Backend
    k_range : (int, int)
        Inclusive range of candidates; the upper end is capped at N - 1.
    seed : int
    options : dict
        The clusterer's settings passed to ``backend.fit``.

    Returns
    -------
    k : int
    table : pandas.DataFrame
        One row per candidate: ``k``, ``criterion``, ``score`` (NaN where the backend
        cannot give k strata), ``selected``.
    """
    low, high = k_range
    high = min(high, len(X) - 1)
    if high < low:
        raise ValueError(
            f"Expected more samples than the smallest candidate k ({low}) to choose "
            f"n_clusters automatically, got {len(X)} samples."
        )
    criterion, rows = backend.criterion, []
    for k in range(low, high + 1):
        try:
            estimator, labels = backend.fit(X, k, seed, options)
        except UnreachableK:  # not a candidate (e.g. no cut of HDBSCAN's tree gives k)
            rows.append({"k": k, "criterion": criterion.name, "score": np.nan})
            continue
        score = criterion.score(X, labels, estimator, seed)
        rows.append({"k": k, "criterion": criterion.name, "score": score})
    table = pd.DataFrame(rows)
    scores = table["score"]
    if scores.isna().all():
        raise ValueError(
            f"Expected at least one candidate k in {tuple(k_range)} that the "
            f"{criterion.name} criterion can score, got none: no candidate could be "
            "fitted (see the backend's message for a single k)."
        )
    best = criterion.best(scores)
    table["selected"] = table.index == best
    return int(table.loc[best, "k"]), table


def most_stable(
    fit_run: Callable[[bool, int], dict[str, Any]], seed: int
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The medoid run of the more stable space, and the table of both spaces.

    Parameters
    ----------
    fit_run : callable
        ``fit_run(on_manifold, seed) -> fitted`` clusters the latents (False) or a manifold
        computed with ``seed`` (True); ``fitted["labels_"]`` holds the partition.
    seed : int
        Seeds the ``STABILITY_RUNS`` runs of each space.

    Returns
    -------
    fitted : dict
        The kept run.
    table : pandas.DataFrame
        One row per space: ``manifold`` ("none", "umap"), ``stability`` (mean pairwise ARI
        of its runs), ``seed`` of its medoid run (highest summed ARI to the others),
        ``selected`` (the more stable space; the latents on a tie).
    """
    from sklearn.metrics import adjusted_rand_score

    seeds = draw_seeds(seed, STABILITY_RUNS)
    rows, runs = [], {}
    for on in (False, True):
        fits = [fit_run(on, run_seed) for run_seed in seeds]
        agreement = np.array(
            [[adjusted_rand_score(a["labels_"], b["labels_"]) for b in fits] for a in fits]
        )
        medoid = int(np.argmax(agreement.sum(axis=1)))
        n = len(fits)
        rows.append(
            {
                "manifold": "umap" if on else "none",
                "stability": float((agreement.sum() - n) / (n * (n - 1))),
                "seed": int(seeds[medoid]),
            }
        )
        runs[on] = fits[medoid]
    table = pd.DataFrame(rows)
    on = bool(table.loc[1, "stability"] > table.loc[0, "stability"])
    table["selected"] = [not on, on]
    return runs[on], table
