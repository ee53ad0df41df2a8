"""The Stratifier: learn a separable latent space from images, then cluster it into strata.

``fit`` reads as a story: validate the parameters, images and metadata -> build the model and
the objective -> train (the one loop in :mod:`stratify.training`) -> embed -> cluster (the
clustering space and its owner, :mod:`stratify.cluster`) -> set the fitted attributes.
Persistence lives in :mod:`stratify.io`, input layouts and intensities in :mod:`stratify.data`.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from stratify import distributed, io
from stratify._constraints import validate_params
from stratify._params import (
    STRATIFIER_CONSTRAINTS,
    NamesRemovedParameters,
    check_parameter_rules,
)
from stratify._parts import StratifierParts
from stratify._random import draw_seeds, member_seeds
from stratify._validation import check_strata_fit
from stratify.analysis.report import StrataReportMixin
from stratify.cluster.backends import DEFAULT_BACKEND
from stratify.data.ids import align_metadata, check_ids
from stratify.data.metadata import training_columns
from stratify.generate import GenerativeMixin
from stratify.losses import LABELS
from stratify.losses.functional import kl_per_dimension
from stratify.losses.registry import distance_columns
from stratify.models.ensemble import Ensemble
from stratify.training import ACTIVE_UNIT_THRESHOLD, embed, memory
from stratify.training.checkpoint import fingerprint, fingerprinted

__all__ = ["Stratifier"]


class Stratifier(
    NamesRemovedParameters,
    StratifierParts,
    GenerativeMixin,
    StrataReportMixin,
    ClusterMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Patient stratification: a contrastive (V)AE on images, clustered into strata.

    Parameters
    ----------
    n_clusters : int or "auto", default=3
        Number of strata; "auto" chooses it (silhouette, or BIC for "gmm"; on the latents,
        also when the strata are then found on the manifold) and keeps the candidates in
        ``cluster_selection_``.
    model : {"ae", "vae"}, default="ae"
        Deterministic or variational autoencoder. The latent used for clustering and
        generation is the posterior mean ``mu``.
    latent_dim : int, default=32
    width : int, default=16
        Channels of the first convolution of the default encoder (doubling per stage).
    depth : int or None, default=None
        Number of halvings of the default encoder; None chooses it from the image size.
    encoder : torch.nn.Module or None, default=None
        Your own encoder mapping images (N, C, *S) to features (N, F); deep-copied in ``fit``
        (yours is never modified). Without ``decoder`` it has no decoder: use
        ``reconstruction=None`` with it, and no generation is possible.
    decoder : torch.nn.Module or None, default=None
        Your own decoder mapping latents (N, latent_dim) to image logits (N, C, *S), with
        ``encoder``; deep-copied in ``fit``. With both, reconstruction and generation work
        as with the default networks.
    reconstruction : {"bce", "mse"} or None, default="bce"
    beta : float, default=1.0
        Weight of the KL in the VAE's negative beta-ELBO (``beta=1`` is the ELBO), taken per
        pixel or voxel like the reconstruction (:func:`stratify.losses.build_objective`).
    kl_warmup : float, default=5.0
        Epochs over which the KL weight rises linearly from 0 to ``beta`` (KL annealing;
        the history's ``kl_weight`` column); 0 for none. VAE only.
    contrastive : {"simclr", "supcon"} or None, default="simclr"
        The main contrastive term on two augmented views; "supcon" uses ``y``.
    temperature : float, default=0.2
    contrastive_weight : float, default=1.0
    regularizers : mapping or None, default=None
        Metadata-kernel terms by name: a :class:`~stratify.losses.LossTerm`, a ``(LossTerm,
        weight)`` pair or a spec such as ``{"kind": "yaware", "columns": "age", "sigma":
        10.0, "weight": 0.5}`` (kinds "yaware", "wsp", "clinical", "supcon":
        :mod:`stratify.losses.registry`). Columns refer to ``metadata`` (``"labels"``: ``y``).
    augmentation : AugmentParams, callable or None, default=None
        Two-view augmentation: None is :class:`~stratify.data.augment.TwoViewAugment`'s
        medical-image defaults (vectors: :class:`~stratify.data.vector_augment.VectorAugment`);
        a callable ``(x, generator) -> (view1, view2)`` replaces it.
    clusterer : str or estimator, default="consensus-spectral"
        A name of :data:`stratify.cluster.BACKENDS` or a scikit-learn clusterer
        (:class:`~stratify.cluster.StrataClusterer` says how each predicts), on the
        L2-normalised latents. The default, evidence accumulation over 20 seeded Gaussian
        mixtures cut by a normalised spectral cut (:mod:`stratify.cluster.consensus`), was
        chosen on validation data by a rule declared before the run, with the training
        budget (the documentation's benchmark pages); ``"eac"`` (Fred & Jain 2005: 200
        k-means runs cut by average linkage) gives strata that depend less on the clustering
        seed and follow the classes less often.
    manifold : {"umap"} or None, default=None
        The manifold step between latents and clusterer (N2D's UMAP to 10 dimensions,
        :mod:`stratify.cluster.manifold`); None clusters the latents themselves.
    epochs : int or "auto", default="auto"
        Training epochs (of each network); "auto": a budget in compute, about 51,200 samples
        of 28 x 28 values seen whatever the dataset size, larger samples counting
        ``sqrt(values / 784)`` each (:func:`stratify.training.config.auto_epochs`: a 64^3
        volume fit sees 2,800 volumes); ``epochs_`` says how many ran.
    batch_size : int or "auto", default="auto"
        Samples per training step; "auto": as many as the memory budget holds, at most 256
        (:mod:`stratify.training.memory`; ``train_config={"memory_budget": bytes}``). The
        batch used is ``batch_size_``; embedding batches by the same budget.
    lr : float, default=1e-3
    train_config : mapping or None, default=None
        The other :class:`~stratify.training.TrainConfig` fields (scheduler, weight decay,
        early stopping, ``stop_agreement``, threads, ...). ``"networks": m`` trains ``m``
        independently seeded networks, ``epochs`` each, whose latents are concatenated and
        whose strata are a consensus across them (:mod:`stratify.models.ensemble`; default
        :data:`~stratify.training.config.DEFAULT_NETWORKS`). With ``"checkpoint_dir"`` the
        fit writes ``last.pt`` there after every epoch and refuses to start over one;
        ``"resume": True`` continues it (images, metadata and parameters must match; the
        result equals an uninterrupted fit with the same seed).
    image_shape : tuple of int or None, default=None
        ``(C, H, W)`` or ``(C, D, H, W)`` of one sample, for flattened images (N, F). Without
        it, flattened input is read as feature vectors (radiomics, embeddings) and gets an
        MLP encoder and decoder.
    device : str, default="auto"
        "auto" (CUDA when available), "cpu" or "cuda".
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, training and clustering (never the global RNGs).
    verbose : bool, default=False
        Show the training progress bar.

    Attributes
    ----------
    model_ : stratify.models.Autoencoder
        The trained network (in eval mode).
    objective_ : stratify.losses.Objective
    clusterer_ : StrataClusterer
    embedding_ : numpy.ndarray of float32, shape (N, latent_dim)
        Latent means of the training images.
    labels_ : numpy.ndarray of int, shape (N,)
        Stratum of each training sample (``-1`` = HDBSCAN noise).
    n_clusters_ : int
    ids_ : numpy.ndarray of str, shape (N,)
        The patient id of each training image (fitted with ``ids``).
    known_labels_ : numpy.ndarray of int, shape (N,) or None
        The few known labels ``fit`` was given (-1 unknown); None for a label-free fit.
    label_column_ : str or None
        The name of the labels ``fit`` read (``y.name`` of a pandas Series, or the CLI's
        ``--labels`` column); None without labels or without a name.
    stratum_classes_ : numpy.ndarray of int, shape (n_clusters_,)
        With known labels: the class each stratum holds (stratum ``c`` holds class ``c``;
        -1: a stratum no labelled image is in, a group the labels do not name).
    probabilities_ : numpy.ndarray, shape (N,)
        Membership strength (GMM, HDBSCAN only).
    outlier_scores_ : numpy.ndarray, shape (N,)
        HDBSCAN only.
    cluster_selection_ : pandas.DataFrame
        With ``n_clusters="auto"``.
    history_ : pandas.DataFrame
        One row per epoch: each loss term, the total, learning rate, seconds, ``stage``; for
        a VAE also ``kl_weight``, ``active_units`` and ``kl_dim_<j>``.
    embedding_std_ : numpy.ndarray of float32, shape (N, latent_dim)
        VAE only: posterior standard deviations of the training images.
    kl_per_dim_ : numpy.ndarray of float64, shape (latent_dim,)
        VAE only: KL(q(z_j | x) || N(0, 1)) of each latent dimension in nats, averaged over
        the training images with the final weights.
    active_units_ : int
        VAE only: latent dimensions whose posterior mean varies across the training images,
        Var_x(E[z_j | x]) > 0.01 (Burda et al. 2016); the rest have collapsed to the prior.
    fit_seconds_ : float
        Wall time of ``fit`` (a resumed fit: of its last part).
    batch_size_ : int
        The training batch used (what ``"auto"`` chose, or ``batch_size``).
    epochs_ : int
        The representation stage's epochs that ran (``stop_agreement`` or early stopping
        may end it before the budget).
    image_shape_ : tuple of int
        ``(C, *S)`` of one sample.
    n_features_in_ : int
        Number of values per sample (``prod(image_shape_)``).
    data_range_ : tuple of float
        Intensities mapped to [0, 1]: (0, 255) for uint8 input, else the training min and
        max; new images are mapped the same way (``scaler_``,
        :class:`~stratify.data.scaling.IntensityScaler`).
    """

    def __init__(
        self,
        n_clusters: int | str = 3,
        *,
        model: str = "ae",
        latent_dim: int = 32,
        width: int = 16,
        depth: int | None = None,
        encoder: torch.nn.Module | None = None,
        decoder: torch.nn.Module | None = None,
        reconstruction: str | None = "bce",
        beta: float = 1.0,
        kl_warmup: float = 5.0,
        contrastive: str | None = "simclr",
        temperature: float = 0.2,
        contrastive_weight: float = 1.0,
        regularizers: Mapping[str, Any] | None = None,
        augmentation: Any = None,
        clusterer: Any = DEFAULT_BACKEND,
        manifold: str | None = None,
        epochs: int | str = "auto",
        batch_size: int | str = "auto",
        lr: float = 1e-3,
        train_config: Mapping[str, Any] | None = None,
        image_shape: tuple[int, ...] | None = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.n_clusters = n_clusters
        self.model = model
        self.latent_dim = latent_dim
        self.width = width
        self.depth = depth
        self.encoder = encoder
        self.decoder = decoder
        self.reconstruction = reconstruction
        self.beta = beta
        self.kl_warmup = kl_warmup
        self.contrastive = contrastive
        self.temperature = temperature
        self.contrastive_weight = contrastive_weight
        self.regularizers = regularizers
        self.augmentation = augmentation
        self.clusterer = clusterer
        self.manifold = manifold
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.train_config = train_config
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    #: One constraint list per parameter (:mod:`stratify._params`), checked in ``fit``
    #: before any work by :func:`stratify._constraints.validate_params`.
    _parameter_constraints: ClassVar[dict[str, list]] = STRATIFIER_CONSTRAINTS

    def _validate_params(self) -> None:
        """The constraint table, then the rules that tie parameters together."""
        validate_params(self, self._parameter_constraints)
        self._train_config()
        check_parameter_rules(self)

    # ---------------------------------------------------------------------- public API
    def columns_in_training(self) -> dict[str, str]:
        """The metadata columns that entered training, each with its role: the columns a
        prior read (``"prior"``) and the column the labels came from (``"labels"``, known
        as ``label_column_``). The strata were pushed to follow them, so a difference across
        strata in such a column is expected, not a finding (the circularity that
        ``stratify describe`` and ``stratify report`` mark).

        Returns
        -------
        dict of str to str
        """
        check_is_fitted(self)
        roles = {c: "prior" for c in self.objective_.metadata_columns if c != LABELS}
        column = getattr(self, "label_column_", None)
        if column is not None:
            roles[column] = "labels"
        return roles

    def fit(
        self, X: Any, y: Any = None, *, metadata: pd.DataFrame | None = None, ids: Any = None
    ) -> Stratifier:
        """Train the model on the images and cluster their latents into strata.

        Parameters
        ----------
        X : array-like or torch Dataset
            uint8 or float images, (N, H, W), (N, C, H, W), (N, C, D, H, W), or (N, F) with
            ``image_shape``; a Dataset yielding images (or (image, ...) tuples).
        y : array-like of int, shape (N,), optional
            With ``contrastive="supcon"``: every image's label, read by that term. Otherwise
            **a few known labels**: classes 0..C-1 and ``-1`` where unknown
            (``sklearn.semi_supervised``'s convention; a ``y`` without any ``-1`` is
            ignored, as a clusterer's ``y`` is in scikit-learn). They enter training as
            supervised-contrastive positives (NT-Xent becomes SupCon on the known labels;
            an unlabelled image keeps its own other view as its only positive, as in NT-Xent)
            and anchor the strata in the chosen space (the labelled images of class ``c``
            are all in stratum ``c``): with ``n_clusters`` = C, label spreading on the
            latents' k-NN graph; with ``n_clusters`` > C, a seeded Gaussian mixture whose
            other strata no label names (``stratum_classes_`` -1)
            (:class:`~stratify.cluster.StrataClusterer`'s ``anchoring="auto"``); either
            replaces the ``clusterer`` backend. Needs ``contrastive="simclr"`` (the default). All
            ``-1``: the label-free fit, bit for bit. A pandas Series keeps its name as
            ``label_column_``, so :meth:`columns_in_training` marks that metadata column.
        metadata : pandas.DataFrame, optional
            One row per image, or with ``ids`` one row per patient indexed by id
            (:func:`stratify.data.ids.align_metadata`); must hold the columns the
            regularizers name.
        ids : array-like of str, shape (N,), optional
            The patient id of each image, kept as ``ids_``.

        Returns
        -------
        self : Stratifier
        """
        start = time.perf_counter()
        self._validate_params()
        images = self._images(X, reset=True)
        metadata = self._patients(ids, metadata, len(images))
        known = self._known_labels(y, len(images))
        self.objective_ = self._build_objective(labelled=known is not None)
        columns, labels = training_columns(
            metadata,
            y,
            len(images),
            needed=[c for c in self.objective_.metadata_columns if c != LABELS],
            distance=distance_columns(self.objective_),
            uses_labels=self.objective_.uses_labels and known is None,
        )
        if known is not None:  # SupCon reads NaN as unknown
            labels = np.where(known >= 0, known, np.nan).astype(np.float64)
        self.known_labels_ = known
        read = known is not None or self.objective_.uses_labels
        name = getattr(y, "name", None) if read else None
        self.label_column_ = name if isinstance(name, str) else None
        check_strata_fit(images, self.n_clusters)  # after the input checks, before training
        model_seed, train_seed, cluster_seed = draw_seeds(self.random_state, 3)
        self._model_seed, self._cluster_seed = model_seed, cluster_seed
        model = self._build_network(model_seed)
        members = model.networks() if isinstance(model, Ensemble) else [model]
        histories = []
        seeds = member_seeds(train_seed, len(members))
        for j, (member, seed) in enumerate(zip(members, seeds, strict=True)):
            if len(members) > 1:
                self._say(f"training network {j + 1} of {len(members)}")
            result = self._train_member(member, (j, len(members)), images, columns, labels, seed)
            history = result.history.assign(stage="representation")
            histories.append(history if len(members) == 1 else history.assign(network=j))
        self.model_ = model.eval()
        self.batch_size_ = result.batch_size
        self.history_ = pd.concat(histories, ignore_index=True)
        self.epochs_ = len(histories[0])
        self._say(f"embedding {len(images)} images")
        self._embed_training(images)
        name = self.clusterer if isinstance(self.clusterer, str) else type(self.clusterer).__name__
        space = "" if self.manifold is None else f", manifold {self.manifold}"
        self._say(f"clustering into {self.n_clusters} strata ({name}{space})")
        self._fit_clusterer()
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _patients(self, ids: Any, metadata: pd.DataFrame | None, n: int) -> pd.DataFrame | None:
        """Set ``ids_`` (or forget it) and join ``metadata`` to the images by id."""
        self.__dict__.pop("ids_", None)
        if ids is not None:
            self.ids_ = check_ids(ids, n)
            metadata = None if metadata is None else align_metadata(self.ids_, metadata)[0]
        return metadata

    def _fingerprint(self, images: np.ndarray, columns: dict, labels: np.ndarray | None) -> str:
        """A digest of the images, metadata columns, labels and the training parameters."""
        params = fingerprinted(self.get_params(deep=False), ("verbose", "device"))
        arrays = [(name, columns[name]) for name in sorted(columns)]
        if labels is not None:
            arrays.append(("labels", labels))
        return fingerprint(params, images, arrays)

    def _say(self, message: str) -> None:
        """One progress line on stderr when ``verbose`` (the steps after the training bar)."""
        if self.verbose and distributed.is_main_process():
            print(f"stratify: {message} ...", file=sys.stderr, flush=True)

    def recluster(
        self,
        clusterer: Any = None,
        n_clusters: int | str | None = None,
        *,
        manifold: str | None = "keep",
    ) -> Stratifier:
        """A copy with other strata from the same trained network (no retraining).

        The copy shares ``model_`` (do not train it further) and clusters ``embedding_``
        again with the given backend, number of strata and manifold step, seeded as ``fit``
        seeded the original; ``self`` is left unchanged. When the manifold step is kept, its
        coordinates are reused (UMAP does not run again).

        Parameters
        ----------
        clusterer : str or estimator, optional
            As the ``clusterer`` parameter; None keeps the current one.
        n_clusters : int or "auto", optional
            None keeps the current value.
        manifold : {"umap"}, None or "keep", default="keep"
            As the ``manifold`` parameter; "keep" keeps the current one.

        Returns
        -------
        Stratifier
            Fitted, with the new ``clusterer_``, ``labels_`` and ``n_clusters_``.
        """
        check_is_fitted(self)
        other = copy.copy(self)
        other.set_params(
            clusterer=self.clusterer if clusterer is None else clusterer,
            n_clusters=self.n_clusters if n_clusters is None else n_clusters,
            manifold=self.manifold if manifold == "keep" else manifold,
        )
        other._fit_clusterer(self.manifold_embedding_ if other.manifold == self.manifold else None)
        return other

    def _fit_clusterer(self, manifold_embedding: np.ndarray | None = None) -> None:
        """Cluster ``embedding_`` (the one place fit and recluster do it); given manifold
        coordinates of ``embedding_`` from an earlier fit are reused (UMAP does not rerun).
        """
        with warnings.catch_warnings():  # the labels' warnings were given by fit already
            warnings.filterwarnings("ignore", message="Classes .* single labelled sample")
            self.clusterer_ = self._new_clusterer(self._cluster_seed).fit(
                self.embedding_,
                getattr(self, "known_labels_", None),
                manifold_embedding=manifold_embedding,
            )
        self._set_cluster_attributes()

    @property
    def manifold_embedding_(self) -> np.ndarray | None:
        """Manifold coordinates (N, manifold_dim) of the training latents (None without)."""
        check_is_fitted(self)
        manifold = getattr(self.clusterer_, "manifold_", None)
        return None if manifold is None else manifold.embedding_

    def _set_cluster_attributes(self) -> None:
        """Mirror the clusterer's fitted strata as the estimator's own attributes."""
        self.labels_ = self.clusterer_.labels_
        self.n_clusters_ = self.clusterer_.n_clusters_
        optional = ("probabilities_", "outlier_scores_", "cluster_selection_", "stratum_classes_")
        for name in (*optional, "manifold_selection_"):
            if hasattr(self.clusterer_, name):
                setattr(self, name, getattr(self.clusterer_, name))
            else:
                self.__dict__.pop(name, None)

    @property
    def _embed_batch_size(self) -> int:
        """Images per embedding batch: as many as the memory budget holds (at most 1024)."""
        check_is_fitted(self)
        budget = (self.train_config or {}).get("memory_budget")
        device = next(self.model_.parameters()).device
        return memory.embed_batch_size(
            self.model_, self.image_shape_, budget or memory.default_budget(device)
        )

    def _embed_training(self, images: np.ndarray) -> None:
        """Set ``embedding_`` and, for a VAE, ``embedding_std_``, ``kl_per_dim_`` and
        ``active_units_``.
        """
        mu, logvar = embed(
            self.model_, images, batch_size=self._embed_batch_size, logvar=True, shard=True
        )
        self.embedding_ = mu
        for stale in ("embedding_std_", "kl_per_dim_", "active_units_"):
            self.__dict__.pop(stale, None)
        if logvar is None:
            return
        self.embedding_std_ = np.exp(0.5 * logvar).astype(np.float32)
        kl = kl_per_dimension(torch.from_numpy(mu).double(), torch.from_numpy(logvar).double())
        self._set_posterior_summary(kl.numpy())

    def _set_posterior_summary(self, kl_per_dim: np.ndarray) -> None:
        """Set ``kl_per_dim_`` as given and ``active_units_`` from ``embedding_`` (VAE)."""
        self.kl_per_dim_ = np.asarray(kl_per_dim, dtype=np.float64)
        variance = self.embedding_.astype(np.float64).var(axis=0)
        self.active_units_ = int((variance > ACTIVE_UNIT_THRESHOLD).sum())

    # ---------------------------------------------------- the clustering space, through it
    def transform(self, X: Any) -> np.ndarray:
        """Latent means of new images.

        Returns
        -------
        numpy.ndarray of float32, shape (M, latent_dim)
        """
        check_is_fitted(self)
        return embed(self.model_, self._images(X, reset=False), batch_size=self._embed_batch_size)

    def predict(self, X: Any) -> np.ndarray:
        """Assign new patients to the fitted strata (``-1`` = HDBSCAN noise).

        Returns
        -------
        numpy.ndarray of int, shape (M,)
        """
        latents = self.transform(X)
        return self.clusterer_.predict(latents)

    def clustered_space(self, X: Any = None) -> np.ndarray:
        """Coordinates in which the strata are defined (``clusterer_.transform_space``): the
        normalised (whitened) latents, or their manifold coordinates.

        Parameters
        ----------
        X : array-like, optional
            New images; None gives the training images' coordinates.

        Returns
        -------
        numpy.ndarray, shape (M, latent_dim) or (M, manifold_dim)
        """
        check_is_fitted(self)
        return self.clusterer_.transform_space(self.embedding_ if X is None else self.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_), for every backend (GMM posteriors, HDBSCAN
        membership vectors, else by distance to the strata's centres:
        :meth:`StrataClusterer.predict_proba`).
        """
        latents = self.transform(X)
        return self.clusterer_.predict_proba(latents)

    def novelty_score(self, X: Any) -> np.ndarray:
        """Out-of-distribution score of new images: the mean distance of each latent to its
        10 nearest training latents (:mod:`~stratify.cluster.novelty`); higher = less like
        the patients the strata were learned from.

        Returns
        -------
        numpy.ndarray of float, shape (M,)
        """
        return self.clusterer_.novelty_score(self.transform(X))

    def is_novel(self, X: Any) -> np.ndarray:
        """Flag new images whose :meth:`novelty_score` exceeds the 0.99 quantile of the
        training patients' own (left out of their neighbours): about 1 % of patients like
        the training set are flagged. Their stratum (``predict``) is an extrapolation.

        Returns
        -------
        numpy.ndarray of bool, shape (M,)
        """
        return self.clusterer_.is_novel(self.transform(X))

    def fit_predict(
        self, X: Any, y: Any = None, *, metadata: pd.DataFrame | None = None, ids: Any = None
    ) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X, y, metadata=metadata, ids=ids).labels_

    def score(self, X: Any, y: Any = None) -> float:
        """Mean silhouette of the strata ``predict(X)`` assigns, in ``clustered_space(X)``.

        Higher is better (in [-1, 1]); NaN when fewer than two strata are assigned or every
        sample is in its own stratum. ``y`` is ignored.
        """
        latents = self.transform(X)
        return self.clusterer_.score(latents)

    # --------------------------------------------------------------------- persistence
    def save(self, path: Any) -> Path:
        """Write the fitted estimator atomically in the safe format (:mod:`stratify.io`);
        return the path. A parameter holding a Python object (custom encoder, clusterer
        instance, loss terms, augmentation callable) is a TypeError: use ``joblib.dump``.
        """
        check_is_fitted(self)
        return io.save_stratifier(self, path)

    @classmethod
    def load(cls, path: Any) -> Stratifier:
        """Read an estimator written by :meth:`save`; it predicts exactly what the saved one did
        (the clustering is refitted on the stored latents and checked against the stored
        labels). FileNotFoundError without a file; ValueError for a truncated, corrupted,
        foreign or newer file, or a clustering that cannot be restored exactly.
        """
        return io.load_stratifier(cls, path)
