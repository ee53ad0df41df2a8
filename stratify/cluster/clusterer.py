"""The clustering space with one owner: normalise -> whiten -> manifold -> backend.

:class:`StrataClusterer` takes latents, L2-normalises them (``normalize``), PCA-whitens them
(``whiten``, :mod:`~stratify.cluster.whitening`) or places them on a manifold (``manifold``,
:mod:`~stratify.cluster.manifold`), and clusters that space with a named backend
(:mod:`~stratify.cluster.backends`). ``predict``, ``predict_proba``, ``score``,
``transform_space`` and ``stratum_gaussian`` all go through the same chain, so every method
speaks of the same space:

===================  ===============  =============================  ===========
backend              ``"auto"`` k by  ``predict`` on new samples     fitted on
===================  ===============  =============================  ===========
``"kmeans"``         silhouette       nearest centre (its predict)   all samples
``"gmm"``            BIC (lowest)     highest posterior (its own)    <= 20,000
``"hdbscan"``        DBCV (highest)   ``approximate_predict``; -1    <= 20,000
                                      marks noise
``"agglomerative"``  silhouette       nearest centroid of the strata <= 10,000
``"spectral"``       silhouette       nearest centroid of the strata <= 5,000
``"head"``,          silhouette       the head's argmax              <= 50,000
``"head-sized"``
``"consensus-        silhouette       mean stratum shares of the 10  <= 5,000
spectral"``                           nearest training samples
(default),
``"eac"``
an instance          silhouette       its ``predict`` if any, else   all samples
                                      nearest centroid
===================  ===============  =============================  ===========

"fitted on" is the large-N path (``fit_samples``): beyond that many samples the backend is
fitted on a seeded subsample and the other samples are assigned by the ``predict`` rule, so
clustering 100,000 latents costs the fit on the subsample plus a linear assignment.

With a manifold step every rule above works on the manifold coordinates: new latents are
first placed on the manifold, the silhouette is computed there, and ``cluster_centers_`` live
there. HDBSCAN with an int ``n_clusters`` uses hdbscan's flat-clustering API (the cluster tree
cut to give that many strata; samples may still be noise).

The fitted state is saved as arrays and plain values (:meth:`StrataClusterer.state` and
:meth:`StrataClusterer.from_state`): the clustering is refitted from them and checked
against the stored labels, never unpickled.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.metrics import silhouette_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from stratify._constraints import BOOL, NONE, Interval, Keys, Options, Satisfies, validate_params
from stratify._random import draw_seeds
from stratify._validation import check_in_range
from stratify.cluster import selection
from stratify.cluster.backends import (
    BACKENDS,
    REMOVED_BACKENDS,
    Backend,
    distance_memberships,
    instance_backend,
    nearest,
    pooled_variance,
)
from stratify.cluster.consensus import block_width
from stratify.cluster.manifold import ManifoldEmbedding
from stratify.cluster.novelty import NoveltyScore
from stratify.cluster.seeded import (
    SeededGMM,
    check_partial_labels,
    marks_unknown,
)
from stratify.cluster.spreading import SpreadStrata
from stratify.cluster.whitening import Whitening, whitens

__all__ = ["MANIFOLDS", "StrataClusterer"]

#: The manifold settings besides None.
MANIFOLDS = ("umap", "auto")
#: The ways known labels anchor the strata (the ``anchoring`` parameter).
ANCHORINGS = ("auto", "spread", "gmm")
#: Label spreading's neighbours, alpha and class mass normalisation when it anchors the
#: strata: the candidate chosen on MedMNIST's val splits by ``benchmarks/anchoring.py``'s
#: declared rule (``benchmarks/results/anchoring.md``).
SPREAD_NEIGHBORS, SPREAD_ALPHA, SPREAD_CLASS_MASS = 20, 0.2, False


def _is_clusterer(value: Any) -> bool:
    return not isinstance(value, str) and hasattr(value, "fit")


class StrataClusterer(ClusterMixin, BaseEstimator):
    """Cluster latents into strata with a chosen backend, and assign new samples.

    Parameters
    ----------
    method : str or estimator, default="kmeans"
        A key of :data:`~stratify.cluster.BACKENDS` ("kmeans", "gmm", "hdbscan", "head",
        "eac", "consensus-spectral", and any you register), or a scikit-learn clusterer
        instance (cloned in
        ``fit``; its own settings are used as given, ``n_clusters`` is ignored for it).
    n_clusters : int or "auto", default=3
        Number of strata. ``"auto"`` picks it from ``k_range`` by the backend's
        criterion (silhouette, BIC or DBCV); HDBSCAN's candidates are its flat clusterings
        with k strata. With a manifold step, k is chosen on the latents and then used on
        every space (the criteria computed on UMAP coordinates chose badly,
        ``benchmarks/choose_k.py``).
    k_range : tuple of int, default=(2, 10)
        Inclusive range of candidate k for ``"auto"``.
    min_cluster_size : int or None, default=None
        HDBSCAN's smallest stratum; None uses ``max(5, N // 100)`` (N: the samples it is
        fitted on). Its ``min_samples`` is ``min(min_cluster_size, 10)``. HDBSCAN is
        density-based: on raw contrastive latents it marks much as noise (a warning says so
        above 50 %); on the manifold step (``manifold="umap"``) it is the N2D recipe.
    normalize : bool, default=False
        L2-normalise the latents first (every method below works on the normalised
        latents; the geometry contrastive training shapes).
    blocks : int, default=1
        The latents' columns are this many equal blocks, one per network of an ensemble
        (:class:`~stratify.Stratifier` with ``train_config={"networks": m}``): ``normalize``
        scales each block to length ``1 / sqrt(blocks)`` (each network weighs the same; the
        whole vector has unit length), and the consensus backend draws each of its runs on
        one block (:class:`~stratify.cluster.consensus.ConsensusStrata`).
    manifold : {"umap", "auto"} or None, default=None
        "umap" clusters the manifold coordinates of the latents (N2D) instead of the latents.
        "auto" keeps the more stable of the two spaces (:func:`~stratify.cluster.selection.
        most_stable`), recorded in ``manifold_selection_``.
    manifold_dim : int, default=10
        Dimension of the manifold (capped at the latent dimension).
    n_neighbors : int, default=15
        UMAP's neighbourhood size (and that of the placement rule for new samples).
    fit_samples : int, "auto" or None, default="auto"
        The large-N path. With more samples than this, the backend is fitted on a seeded
        random subsample of this size (``n_clusters="auto"`` is chosen there too) and the
        other samples are assigned by its out-of-sample rule (the ``predict`` of the table
        above), so the cost stops growing with N beyond the assignment. ``"auto"``: the
        backend's own size (the table); None: every sample whatever N. Assigned samples get
        HDBSCAN's approximate-prediction strength as ``probabilities_`` and NaN as
        ``outlier_scores_``; ``fit_rows_`` lists the fitted ones.
    whiten : bool or "auto", default=False
        PCA-whiten the latents before the backend clusters them (:class:`~stratify.cluster.
        Whitening`, fitted on the samples the backend is fitted on; new latents are whitened
        the same way). Not applied to the manifold coordinates. ``"auto"``: whiten when the
        backend is fitted on at least ``WHITEN_SAMPLES_PER_DIMENSION`` (10) x D samples per
        stratum.
    anchoring : {"auto", "spread", "gmm"}, default="auto"
        How known labels in ``fit`` anchor the strata: ``"spread"``, label spreading on the
        k-NN graph (:class:`~stratify.cluster.spreading.SpreadStrata` with
        ``SPREAD_NEIGHBORS``, ``SPREAD_ALPHA``, ``SPREAD_CLASS_MASS``; one stratum per
        class); ``"gmm"``, the seeded Gaussian mixture
        (:class:`~stratify.cluster.seeded.SeededGMM`; strata beyond the known classes
        allowed). ``"auto"``: spreading when there are as many strata as known classes, the
        mixture when more are asked (chosen on MedMNIST's val splits:
        ``benchmarks/results/anchoring.md``). Ignored without known labels.
    random_state : int, RandomState instance or None, default=None
        Seed of the randomised backends (k-means, GMM, spectral), of UMAP, of the
        subsample of ``fit_samples`` and of the silhouette subsample.

    Attributes
    ----------
    estimator_ : estimator
        The fitted backend.
    whitening_ : Whitening or None
        The whitening of the latents the strata were found in (None: not whitened, or the
        strata were found on the manifold).
    manifold_ : ManifoldEmbedding
        With ``manifold``: the fitted manifold step.
    uses_manifold_ : bool
        Whether the strata were found on the manifold (new samples are then placed on it).
    manifold_selection_ : pandas.DataFrame
        With ``manifold="auto"``: one row per candidate space (``manifold``, ``stability``,
        the ``seed`` of its medoid run, ``selected``).
    labels_ : numpy.ndarray of int, shape (N,)
        Stratum of each training sample; ``-1`` is HDBSCAN noise.
    n_clusters_ : int
        Number of strata found (noise excluded).
    cluster_centers_ : numpy.ndarray, shape (n_clusters_, D')
        Mean of each stratum in the clustered space (the manifold's when there is one, the
        whitened latents' with ``whiten``).
    distance_variance_ : float
        Pooled per-dimension variance of the clustered samples around their stratum's
        centre, the scale of the distance memberships of ``predict_proba``.
    probabilities_ : numpy.ndarray, shape (N,)
        Membership strength of each training sample (GMM: the highest posterior; HDBSCAN:
        its ``probabilities_``); absent for the other backends.
    outlier_scores_ : numpy.ndarray, shape (N,)
        HDBSCAN's GLOSH outlier scores; HDBSCAN only.
    cluster_selection_ : pandas.DataFrame
        With ``n_clusters="auto"``: one row per candidate k (``k``, ``criterion``, ``score``,
        ``selected``).
    fit_rows_ : numpy.ndarray of int or None
        Indices of the samples the backend was fitted on (None: every sample).
    anchors_ : numpy.ndarray of int, shape (N,)
        With known labels in ``fit``: each training sample's class, -1 where unknown.
    stratum_classes_ : numpy.ndarray of int, shape (n_clusters_,)
        With known labels: the class each stratum holds (stratum ``c`` holds class ``c``),
        -1 for a stratum no labelled patient is in.
    novelty_ : NoveltyScore
        The out-of-distribution score of new latents (:mod:`~stratify.cluster.novelty`):
        mean distance to the 10 nearest training latents, flagged above the 0.99 training
        quantile (``novelty_.threshold_``); see :meth:`novelty_score` and :meth:`is_novel`.
    n_features_in_ : int
        Latent dimension seen in ``fit``.
    """

    _parameter_constraints: ClassVar[dict[str, list]] = {
        "method": [
            Keys(BACKENDS, removed=REMOVED_BACKENDS),
            Satisfies(_is_clusterer, "a clusterer with a fit method", bad=(object(),)),
        ],
        "n_clusters": [Interval(int, 1, closed="left"), Options({"auto"})],
        "k_range": [
            Satisfies(
                lambda v: isinstance(v, (tuple, list)) and len(v) == 2,
                "a pair (low, high)",
                bad=(3, (2, 3, 4)),
            )
        ],
        "min_cluster_size": [Interval(int, 2, closed="left"), NONE],
        "normalize": [BOOL],
        "blocks": [Interval(int, 1, closed="left")],
        "manifold": [Options(set(MANIFOLDS)), NONE],
        "manifold_dim": [Interval(int, 1, closed="left")],
        "n_neighbors": [Interval(int, 2, closed="left")],
        "fit_samples": [Interval(int, 2, closed="left"), Options({"auto"}), NONE],
        "whiten": [Options({True, False, "auto"})],
        "anchoring": [Options(set(ANCHORINGS))],
    }

    def __init__(
        self,
        method: str | BaseEstimator = "kmeans",
        n_clusters: int | str = 3,
        *,
        k_range: tuple[int, int] = (2, 10),
        min_cluster_size: int | None = None,
        normalize: bool = False,
        blocks: int = 1,
        manifold: str | None = None,
        manifold_dim: int = 10,
        n_neighbors: int = 15,
        fit_samples: int | str | None = "auto",
        whiten: bool | str = False,
        anchoring: str = "auto",
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.min_cluster_size = min_cluster_size
        self.normalize = normalize
        self.blocks = blocks
        self.manifold = manifold
        self.manifold_dim = manifold_dim
        self.n_neighbors = n_neighbors
        self.fit_samples = fit_samples
        self.whiten = whiten
        self.anchoring = anchoring
        self.random_state = random_state

    # ------------------------------------------------------------------------------ fit
    def _validate_params(self) -> None:
        validate_params(self, self._parameter_constraints)
        owner = type(self).__name__
        low, high = self.k_range
        check_in_range(low, "k_range[0]", owner, kind=int, low=2)
        check_in_range(high, "k_range[1]", owner, kind=int, low=low)

    @property
    def backend(self) -> Backend:
        """The :class:`~stratify.cluster.Backend` of ``method`` (the Gaussian mixture's when
        known labels anchor the strata, whatever ``method``).
        """
        if self.__dict__.get("anchors_") is not None:
            return BACKENDS["gmm"]
        if isinstance(self.method, str):
            return BACKENDS[self.method]
        return instance_backend(self.method)

    def _options(self) -> dict[str, Any]:
        return {"min_cluster_size": self.min_cluster_size, "blocks": self.blocks}

    def _latents(self, X: Any, *, reset: bool) -> np.ndarray:
        """Checked latents (N, D) as float64, L2-normalised with ``normalize``."""
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            ensure_min_samples=2 if reset else 1,
            reset=reset,
        )
        X = np.asarray(X, dtype=np.float64)
        block_width(X, self.blocks)
        if self.normalize:
            parts = X.reshape(len(X), self.blocks, -1)
            norms = np.maximum(np.linalg.norm(parts, axis=2, keepdims=True), 1e-12)
            X = (parts / norms / np.sqrt(self.blocks)).reshape(len(X), -1)
        return X

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        manifold_embedding: np.ndarray | None = None,
        manifold_selection: pd.DataFrame | None = None,
    ) -> StrataClusterer:
        """Cluster the latents ``X`` of shape (N, D), anchored by the known labels in ``y``.

        Parameters
        ----------
        X : array-like of shape (N, D)
        y : array-like of int, shape (N,), optional
            Known classes 0..C-1, ``-1`` where unknown (``sklearn.semi_supervised``'s
            convention; checked by :func:`~stratify.cluster.seeded.check_partial_labels`).
            A ``y`` without any ``-1`` is ignored, as a clusterer's ``y`` is by
            scikit-learn's convention. With any known label the space is chosen as without
            labels (by Gaussian mixtures), and in it the strata are found by a
            :class:`~stratify.cluster.seeded.SeededGMM`, whatever ``method`` names: the
            labelled patients of class ``c`` are all in stratum ``c``; strata
            ``C..n_clusters-1`` hold only unlabelled ones.
            All ``-1`` (or None): the label-free fit, unchanged.
        manifold_embedding : numpy.ndarray of shape (N, manifold_dim), optional
            The manifold coordinates of ``X`` from an earlier fit (a loaded model), so that
            UMAP is not run again: with ``manifold="umap"``, or with "auto" and
            ``manifold_selection``.
        manifold_selection : pandas.DataFrame, optional
            With ``manifold="auto"``: the ``manifold_selection_`` of an earlier fit of these
            latents (a loaded model). Only its selected run is fitted again, with its seed
            (and ``manifold_embedding`` when it chose the manifold), so the strata do not
            depend on recomputing every candidate (UMAP's neighbour search can differ with
            the number of threads).

        Returns
        -------
        self : StrataClusterer
        """
        self._validate_params()
        X = self._latents(X, reset=True)
        anchors = check_partial_labels(y, len(X), self.n_clusters) if marks_unknown(y) else None
        if anchors is not None and not (anchors >= 0).any():
            anchors = None  # nothing known: the label-free fit, bit for bit
        seed = draw_seeds(self.random_state)
        for attribute in self._OPTIONAL:
            self.__dict__.pop(attribute, None)  # refitting forgets the previous fit
        if anchors is not None:  # from here on the backend is the Gaussian mixture's
            self.anchors_ = anchors
        if isinstance(self.n_clusters, int) and self.n_clusters > len(X):
            raise ValueError(
                f"Expected at least n_clusters={self.n_clusters} samples, got {len(X)} samples."
            )

        k, table = self._k_on_latents(X, seed)
        if self.manifold == "auto" and manifold_selection is not None:
            chosen = self._selected_run(X, manifold_selection, manifold_embedding, k)
            self.manifold_selection_ = manifold_selection.reset_index(drop=True)
        elif self.manifold == "auto":
            chosen, self.manifold_selection_ = self._most_stable(X, seed, k)
        elif self.manifold == "umap":
            chosen = self._fit_on_manifold(X, seed, k, manifold_embedding)
        else:
            chosen = self._fit_space(X, seed, False)
        self.__dict__.update(chosen)
        if table is not None:
            self.cluster_selection_ = table
        if anchors is not None:
            self._anchor(X, anchors, seed)
        self.novelty_ = NoveltyScore().fit(X, seed)
        return self

    def _anchor(self, X: np.ndarray, anchors: np.ndarray, seed: int) -> None:
        """Refit the strata in the chosen space, anchored by the known labels (label
        spreading or seeded EM, by ``anchoring``); set the class attributes.
        """
        space = self.transform_space(X)
        k = int(self.__dict__["n_clusters_"] if self.n_clusters == "auto" else self.n_clusters)
        n_classes = int(anchors.max()) + 1
        k = max(k, n_classes)
        spread = self.anchoring == "spread" or (self.anchoring == "auto" and k == n_classes)
        if spread and k > n_classes:
            raise ValueError(
                f"Expected anchoring='gmm' or 'auto' for more strata (n_clusters={k}) than "
                f"known classes ({n_classes}): label spreading gives one stratum per class, "
                "got anchoring='spread'."
            )
        anchored: Any = (
            SpreadStrata(SPREAD_NEIGHBORS, alpha=SPREAD_ALPHA, class_mass=SPREAD_CLASS_MASS).fit(
                space, anchors
            )
            if spread
            else SeededGMM(k, random_state=seed).fit(space, anchors)
        )
        labels = anchored.labels_
        clusters = np.arange(anchored.n_components)
        self.estimator_, self.labels_, self.fit_rows_ = anchored, labels, None
        self.n_clusters_, self._cluster_ids = anchored.n_components, clusters
        self.cluster_centers_ = np.stack(
            [
                space[labels == c].mean(axis=0) if (labels == c).any() else anchored.means_[c]
                for c in clusters
            ]
        )
        self.distance_variance_ = pooled_variance(space, labels, self.cluster_centers_, clusters)
        strength = self.backend.probabilities
        assert strength is not None  # the "gmm" backend's
        self.probabilities_ = strength(anchored, space)
        self.stratum_classes_ = np.where(clusters < n_classes, clusters, -1)

    #: Fitted attributes that only some fits have.
    _OPTIONAL = (
        "anchors_",
        "stratum_classes_",
        "probabilities_",
        "outlier_scores_",
        "cluster_selection_",
        "manifold_",
        "manifold_selection_",
        "whitening_",
    )

    def _n_max(self) -> int:
        """The largest number of strata asked for (the top of ``k_range`` with "auto")."""
        return self.k_range[1] if self.n_clusters == "auto" else int(self.n_clusters)

    def _k_on_latents(self, X: np.ndarray, seed: int) -> tuple[int | None, pd.DataFrame | None]:
        """With a manifold step and ``n_clusters="auto"``: k chosen on the latents (as the
        backend is fitted there, whitened by the same rule), used for every space; None
        otherwise; with the candidates' table.
        """
        if self.n_clusters != "auto" or self.manifold is None or not isinstance(self.method, str):
            return None, None
        rows = self._fit_rows(len(X), seed)
        sample = X if rows is None else X[rows]
        if whitens(self.whiten, len(sample), X.shape[1], self._n_max()):
            sample = Whitening().fit(sample).transform(sample)
        return selection.select_k(sample, self.backend, self.k_range, seed, self._options())

    def _selected_run(
        self, X: np.ndarray, table: pd.DataFrame, embedding: np.ndarray | None, k: int | None
    ) -> dict[str, Any]:
        """The run a ``manifold_selection_`` table selected, fitted again."""
        selected = table[table["selected"].astype(bool)]
        if len(selected) != 1 or (embedding is None and selected["manifold"].iloc[0] == "umap"):
            raise ValueError(
                "Expected a manifold_selection table with one selected row (and the "
                "manifold_embedding when it selected 'umap'), got "
                f"{len(selected)} selected row(s) and "
                f"{'no' if embedding is None else 'an'} embedding."
            )
        run_seed = int(selected["seed"].iloc[0])
        if selected["manifold"].iloc[0] == "none":
            return self._fit_space(X, run_seed, False, k)
        return self._fit_on_manifold(X, run_seed, k, embedding)

    def _fit_on_manifold(
        self, X: np.ndarray, seed: int, k: int | None, embedding: np.ndarray | None = None
    ) -> dict[str, Any]:
        """UMAP of ``X`` seeded with ``seed`` (or its given ``embedding``), then the backend
        on it; the fitted attributes, ``manifold_`` included.
        """
        manifold = ManifoldEmbedding(self.manifold_dim, self.n_neighbors, random_state=seed).fit(
            X, embedding=embedding
        )
        return {**self._fit_space(manifold.embedding_, seed, True, k), "manifold_": manifold}

    def _most_stable(
        self, X: np.ndarray, seed: int, k: int | None
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """``manifold="auto"``: the strata of the more stable space, and the table."""

        def fit_run(on_manifold: bool, run_seed: int) -> dict[str, Any]:
            if on_manifold:
                return self._fit_on_manifold(X, run_seed, k)
            return self._fit_space(X, run_seed, False, k)

        return selection.most_stable(fit_run, seed)

    def _fit_rows(self, n: int, seed: int) -> np.ndarray | None:
        """The seeded subsample the backend is fitted on (None: every sample)."""
        cap = self.backend.fit_samples if self.fit_samples == "auto" else self.fit_samples
        if cap is None or n <= int(cap):
            return None
        return np.sort(np.random.default_rng(seed).choice(n, size=int(cap), replace=False))

    def _fit_space(
        self, space: np.ndarray, seed: int, on_manifold: bool, k: int | None = None
    ) -> dict[str, Any]:
        """Fit the backend on ``space`` (latents or manifold) with ``k`` strata (None: the
        ``n_clusters`` parameter); the fitted attributes.
        """
        backend = self.backend
        rows = self._fit_rows(len(space), seed)
        n_fitted = len(space) if rows is None else len(rows)
        whitening = None
        if not on_manifold and whitens(self.whiten, n_fitted, space.shape[1], self._n_max()):
            whitening = Whitening().fit(space if rows is None else space[rows])
            space = whitening.transform(space)
        sample = space if rows is None else space[rows]
        fitted: dict[str, Any] = {
            "uses_manifold_": on_manifold,
            "fit_rows_": rows,
            "whitening_": whitening,
        }
        setting: int | str = self.n_clusters if k is None else k
        chosen: int | None = None  # None: a clusterer object with its own settings
        if setting == "auto" and isinstance(self.method, str):
            chosen, fitted["cluster_selection_"] = selection.select_k(
                sample, backend, self.k_range, seed, self._options()
            )
        elif setting != "auto":
            chosen = int(setting)
        estimator, sample_labels = backend.fit(sample, chosen, seed, self._options())
        clusters = np.unique(sample_labels[sample_labels != -1])
        centers = (
            np.stack([sample[sample_labels == c].mean(axis=0) for c in clusters])
            if len(clusters)
            else np.empty((0, space.shape[1]))
        )
        labels, rest = sample_labels, None
        if rows is not None:  # the large-N path: assign the others as new samples
            rest = np.ones(len(space), dtype=bool)
            rest[rows] = False
            labels = np.empty(len(space), dtype=np.int64)
            labels[rows] = sample_labels
            labels[rest] = (
                backend.predict(estimator, space[rest])
                if backend.predict is not None
                else nearest(space[rest], centers, clusters)
            )
        fitted.update(
            estimator_=estimator,
            labels_=labels,
            n_clusters_=len(clusters),
            _cluster_ids=clusters,
            cluster_centers_=centers,
            distance_variance_=pooled_variance(sample, sample_labels, centers, clusters),
        )
        if backend.probabilities is not None:
            strength = backend.probabilities(estimator, sample)
            if rest is not None:
                full = np.empty(len(space))
                full[rows] = strength
                full[rest] = (backend.strength or backend.probabilities)(estimator, space[rest])
                strength = full
            fitted["probabilities_"] = strength
        if backend.noise_warning is not None and not on_manifold:
            noise = float((labels < 0).mean())
            if noise > backend.noise_warning:
                warnings.warn(
                    f"{self.method} marked {noise:.0%} of the latents as noise: density-based "
                    "clustering finds little density structure in raw contrastive latents. "
                    "Cluster them on a manifold (manifold='umap', N2D) or use another "
                    "clusterer.",
                    UserWarning,
                    stacklevel=3,
                )
        if backend.outlier_scores is not None:
            scores = backend.outlier_scores(estimator)
            if rest is not None:
                full = np.full(len(space), np.nan)
                full[rows] = scores
                scores = full
            fitted["outlier_scores_"] = scores
        return fitted

    # -------------------------------------------------------------------------- predict
    def transform_space(self, X: Any) -> np.ndarray:
        """The coordinates in which new latents (M, D) are clustered.

        Returns
        -------
        numpy.ndarray, shape (M, D), (M, R) or (M, manifold_dim)
            ``X`` (normalised with ``normalize``; whitened, R <= D components, with
            ``whiten``), or its placement on the manifold.
        """
        check_is_fitted(self)
        X = self._latents(X, reset=False)
        if self.uses_manifold_:
            return self.manifold_.transform(X)
        return X if self.whitening_ is None else self.whitening_.transform(X)

    def _assign(self, space: np.ndarray) -> np.ndarray:
        if self.backend.predict is None:
            return nearest(space, self.cluster_centers_, self._cluster_ids)
        return self.backend.predict(self.estimator_, space)

    def predict(self, X: Any) -> np.ndarray:
        """Assign new latents (M, D) to the fitted strata; see the module's table for the rule.

        Returns
        -------
        numpy.ndarray of int, shape (M,)
            Stratum of each sample; ``-1`` (HDBSCAN only) marks noise.
        """
        return self._assign(self.transform_space(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_) of new latents.

        GMM: its posteriors. HDBSCAN: its membership vectors (rows need not sum to one: a
        likely-noise sample has small memberships everywhere). Every other backend (k-means,
        agglomerative, spectral, an instance without ``predict_proba``): memberships by
        distance to the strata's centres, the posterior of equal-weight isotropic Gaussians
        at ``cluster_centers_`` with the strata's pooled per-dimension variance
        ``distance_variance_`` (:func:`~stratify.cluster.backends.distance_memberships`);
        rows sum to one and the argmax is the nearest centre.
        """
        check_is_fitted(self)
        space = self.transform_space(X)
        if self.backend.predict_proba is not None:
            return self.backend.predict_proba(self.estimator_, space)
        return distance_memberships(space, self.cluster_centers_, self.distance_variance_)

    def novelty_score(self, X: Any) -> np.ndarray:
        """Out-of-distribution score (M,) of new latents (M, D): their mean distance to the
        nearest training latents (higher = less like the training set).
        """
        check_is_fitted(self)
        return self.novelty_.score(self._latents(X, reset=False))

    def is_novel(self, X: Any) -> np.ndarray:
        """Whether each new latent (M, D) is out of distribution: bool (M,), a score above
        the 0.99 quantile of the training latents' own (about 1 % of typical patients).
        """
        check_is_fitted(self)
        return self.novelty_.flag(self._latents(X, reset=False))

    def score(self, X: Any, y: Any = None) -> float:
        """Mean silhouette of the strata ``predict`` assigns to ``X``, in ``transform_space(X)``.

        Higher is better (in [-1, 1]); NaN when fewer than two strata are assigned or every
        sample is in its own stratum. Noise (-1) is left out. ``y`` is ignored.
        """
        space = self.transform_space(X)
        labels = self._assign(space)
        kept = labels != -1
        if not 2 <= len(np.unique(labels[kept])) < kept.sum():
            return float("nan")
        return float(silhouette_score(space[kept], labels[kept]))

    # ----------------------------------------------------------------------- generation
    def _has_gaussians(self) -> bool:
        check_is_fitted(self)
        return self.backend.gaussian is not None and not self.uses_manifold_ and not self.normalize

    @available_if(_has_gaussians)
    def stratum_gaussian(self, cluster: int) -> tuple[np.ndarray, np.ndarray]:
        """The Gaussian of one stratum in the latent space (the mixture's component).

        Available when the backend fitted Gaussians (``"gmm"``) to the latents as they are:
        no normalisation and no manifold step. A component fitted on whitened latents is
        mapped back to the latents.

        Parameters
        ----------
        cluster : int
            A fitted stratum.

        Returns
        -------
        mean : numpy.ndarray of shape (D,)
        covariance : numpy.ndarray of shape (D, D)
        """
        if cluster not in self._cluster_ids:
            raise ValueError(
                f"Expected cluster among the fitted strata {self._cluster_ids.tolist()}, got "
                f"{cluster!r}."
            )
        gaussian = self.backend.gaussian
        assert gaussian is not None  # available_if
        mean, covariance = gaussian(self.estimator_, int(cluster))
        if self.whitening_ is not None:
            return self.whitening_.inverse_gaussian(mean, covariance)
        return mean, covariance

    # ---------------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        """The fitted state as arrays and plain values (what :meth:`from_state` reads).

        The training latents are not part of it (their owner stores them once); with them,
        ``from_state`` refits the same strata.

        Returns
        -------
        dict
            ``params`` (the parameters; ``method`` must be a backend name), ``labels``
            (N,) int64, ``manifold_embedding`` (N, manifold_dim) or None and
            ``manifold_selection`` (a dict of lists) or None.
        """
        check_is_fitted(self)
        if not isinstance(self.method, str):
            raise TypeError(
                "Expected a named backend to store the clustering as plain values, got a "
                f"{type(self.method).__name__} instance. Use joblib.dump for such an estimator."
            )
        manifold = getattr(self, "manifold_", None)
        table = getattr(self, "manifold_selection_", None)
        params = self.get_params(deep=False)
        params["k_range"] = [int(v) for v in params["k_range"]]
        anchors = getattr(self, "anchors_", None)
        return {
            "params": params,
            "labels": np.asarray(self.labels_, dtype=np.int64),
            "anchors": None if anchors is None else np.asarray(anchors, dtype=np.int64),
            "manifold_embedding": None if manifold is None else manifold.embedding_,
            "manifold_selection": None
            if table is None
            else {
                "manifold": [str(v) for v in table["manifold"]],
                "stability": [float(v) for v in table["stability"]],
                "seed": [int(v) for v in table["seed"]],
                "selected": [bool(v) for v in table["selected"]],
            },
        }

    @classmethod
    def from_state(cls, X: Any, state: dict[str, Any]) -> StrataClusterer:
        """Refit the clustering that :meth:`state` described on its training latents ``X``.

        Raises
        ------
        ValueError
            If the refit gives other labels than the stored ones (another scikit-learn,
            hdbscan or umap-learn version).
        """
        params = dict(state["params"])
        params["k_range"] = tuple(params["k_range"])
        params.setdefault("anchoring", "gmm")  # written before label spreading existed
        selection_table = state.get("manifold_selection")
        with warnings.catch_warnings():  # the labels warned when they were first fitted
            warnings.filterwarnings("ignore", message="Classes .* single labelled sample")
            clusterer = cls(**params).fit(
                X,
                state.get("anchors"),
                manifold_embedding=state.get("manifold_embedding"),
                manifold_selection=None
                if selection_table is None
                else pd.DataFrame(selection_table),
            )
        if not np.array_equal(clusterer.labels_, np.asarray(state["labels"])):
            raise ValueError(
                "Refitting the clustering on the stored latents gave other labels than the "
                "stored ones (different scikit-learn, hdbscan or umap-learn version?)."
            )
        return clusterer
