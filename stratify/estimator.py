"""The Stratifier: learn a separable latent space from images, then cluster it into strata.

``fit`` reads as a story: validate the parameters, images and metadata -> build the model and
the objective -> train (the one loop in :mod:`stratify.training`) -> embed -> cluster (the
clustering space and its owner, :mod:`stratify.cluster`) -> set the fitted attributes.
Persistence lives in :mod:`stratify.io`, input layouts and intensities in :mod:`stratify.data`.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, check_random_state

from stratify import distributed, generate, io, report
from stratify._constraints import (
    BOOL,
    NONE,
    Interval,
    Keys,
    Options,
    Satisfies,
    is_integer,
    is_mapping,
    module_instance,
    validate_params,
)
from stratify._random import draw_seeds
from stratify.cluster import BACKENDS, StrataClusterer
from stratify.data.augment import AugmentParams, TwoViewAugment
from stratify.data.layout import from_channel_first, to_channel_first
from stratify.data.metadata import training_columns
from stratify.data.scaling import IntensityScaler
from stratify.data.vector_augment import VectorAugment
from stratify.losses import LABELS, Objective, SelfTraining, SupCon, build_objective
from stratify.losses.functional import kl_per_dimension
from stratify.losses.registry import distance_columns, regularizer_from_spec
from stratify.models import build_model
from stratify.models.mlp import MLPDecoder, MLPEncoder
from stratify.training import ACTIVE_UNIT_THRESHOLD, TrainConfig, embed, memory, train
from stratify.training.checkpoint import CHECKPOINT_NAME, fingerprint
from stratify.training.config import auto_epochs

__all__ = ["Stratifier"]


def _is_random_state(value: Any) -> bool:
    try:
        check_random_state(value)
    except ValueError:
        return False
    return not isinstance(value, bool)


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) in (3, 4)
        and all(is_integer(v) and v >= 1 for v in value)
    )


def _is_augmentation(value: Any) -> bool:
    return isinstance(value, AugmentParams) or callable(value)


_POSITIVE_INT = [Interval(int, 1, closed="left")]
_NON_NEGATIVE = [Interval(float, 0, closed="left")]
_POSITIVE = [Interval(float, 0, closed="neither")]


class Stratifier(ClusterMixin, TransformerMixin, BaseEstimator):
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
        Weight of the KL in the VAE's negative beta-ELBO (ignored for ``model="ae"``):
        ``beta=1`` is the ELBO. The reconstruction is a per-pixel (per-voxel) mean and the
        KL gets the weight ``beta / P`` for P values per sample, so the pair is the ELBO per
        pixel: the same optimum, and on the scale of the contrastive term in 2D and 3D.
    kl_warmup : float, default=5.0
        Epochs over which the KL weight rises linearly from 0 to ``beta`` (KL annealing;
        the history's ``kl_weight`` column); 0 for none. VAE only.
    free_bits : float, default=0.0
        Nats per latent dimension under which the KL of a dimension is not penalised
        (Kingma et al. 2016); 0 for the plain ELBO. VAE only.
    contrastive : {"simclr", "supcon"} or None, default="simclr"
        The main contrastive term on two augmented views; "supcon" uses ``y``.
    temperature : float, default=0.2
    contrastive_weight : float, default=1.0
    regularizers : mapping or None, default=None
        Metadata-kernel terms by name, each a :class:`~stratify.losses.LossTerm`, a
        ``(LossTerm, weight)`` pair or a dict such as
        ``{"kind": "yaware", "columns": "age", "sigma": 10.0, "weight": 0.5}``,
        ``{"kind": "wsp", "label_column": "weak_label", "position_column": "position"}``,
        ``{"kind": "clinical", "columns": {"weak_label": 1.0, "site": 0.5}}`` or
        ``{"kind": "supcon", "column": "weak_label"}``. Column names refer to ``metadata``
        (``"labels"`` to ``y``).
    augmentation : AugmentParams, callable or None, default=None
        Two-view augmentation: None uses :class:`~stratify.data.augment.TwoViewAugment` with
        its medical-image defaults (feature vectors: noise and masking,
        :class:`~stratify.data.vector_augment.VectorAugment`), an ``AugmentParams``
        configures it, a callable ``(x, generator) -> (view1, view2)`` replaces it.
    clusterer : str or estimator, default="gmm"
        "kmeans", "gmm", "hdbscan", "agglomerative", "spectral" or a scikit-learn clusterer
        (see :class:`~stratify.cluster.StrataClusterer` for how each predicts).
    manifold : {"auto", "umap"} or None, default="auto"
        The manifold step between latents and clusterer (N2D: UMAP with ``min_dist=0`` to
        ``manifold_dim`` dimensions, then the clusterer). New patients are placed on the
        manifold by UMAP's fuzzy-neighbour rule (:mod:`stratify.cluster.manifold`). "auto"
        (the default) clusters the latents and the manifold three times each with different
        seeds and keeps the space whose strata agree best across the runs, its medoid run
        (:mod:`stratify.cluster.selection`; README, "The default recipe"). "umap" always
        uses it; None clusters the latents directly.
    manifold_dim : int, default=10
        Dimension of the manifold.
    self_training_epochs : int, default=0
        Epochs of the clustering-aware stage after representation learning: IDEC
        self-training (Student-t soft assignments to learnable centroids started from the
        first strata, pulled towards a sharpened target; Guo et al. 2017) trained with the
        other terms, then the strata are found again. 0 skips it.
    self_training_weight : float, default=1.0
        Weight of the self-training term in that stage.
    normalize : bool, default=True
        Cluster the L2-normalised latents (the geometry contrastive training shapes).
    whiten : bool or "auto", default="auto"
        PCA-whiten the (normalised) latents before clustering them
        (:class:`~stratify.cluster.Whitening`; new patients are whitened the same way). The
        manifold coordinates are never whitened. For the default GMM this changes only where
        its k-means initialisation starts. ``"auto"``: whiten when there are at least 10
        training images per latent dimension per stratum (N >= 10 x latent_dim x
        n_clusters; :mod:`stratify.cluster.whitening`).
    epochs : int or "auto", default="auto"
        Training epochs. ``"auto"``: ``ceil(256,000 / N)`` for N training images, i.e. about
        256,000 samples seen (1,000 steps of 256) whatever the dataset size
        (:func:`stratify.training.config.auto_epochs`); the number used is ``epochs_``.
    batch_size : int or "auto", default="auto"
        Samples per training step. ``"auto"``: as many as the memory budget holds, at most
        256 (256 for 28 px images; a handful of 64^3 volumes), measured on the network
        before the first batch (:mod:`stratify.training.memory`; set
        ``train_config={"memory_budget": bytes}`` to change the budget). The batch used is
        ``batch_size_``. Embedding (``transform``, ``predict``) batches by the same budget.
    lr : float, default=1e-3
    train_config : mapping or None, default=None
        Further :class:`~stratify.training.TrainConfig` fields (scheduler, weight decay,
        early stopping, checkpoints, threads, ...). With ``"checkpoint_dir"`` the
        representation stage writes ``last.pt`` there after every epoch (atomically); a fit
        refuses to start over an existing checkpoint (it would destroy that progress).
    resume : bool, default=False
        Continue the interrupted fit whose checkpoint is in ``train_config["checkpoint_dir"]``
        (start from scratch when there is none yet). The checkpoint must come from the same
        images, metadata and parameters (checked by a fingerprint; ``resume``, ``verbose``,
        ``device`` and the checkpoint / progress / thread settings may differ); the result
        equals an uninterrupted fit with the same seed. The self-training stage, when there
        is one, is short and always runs again.
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
    probabilities_ : numpy.ndarray, shape (N,)
        Membership strength (GMM, HDBSCAN only).
    outlier_scores_ : numpy.ndarray, shape (N,)
        HDBSCAN only.
    cluster_selection_ : pandas.DataFrame
        With ``n_clusters="auto"``.
    history_ : pandas.DataFrame
        One row per epoch: each loss term, the total, learning rate, seconds, ``stage``; for
        a VAE also ``kl_weight``, ``active_units`` and ``kl_dim_<j>`` (running estimates over
        the epoch's batches; see :func:`stratify.training.train`).
    embedding_std_ : numpy.ndarray of float32, shape (N, latent_dim)
        VAE only: posterior standard deviations of the training images (with ``embedding_``
        they give each stratum's aggregate posterior, which ``sample(cluster=k)`` draws from).
    kl_per_dim_ : numpy.ndarray of float64, shape (latent_dim,)
        VAE only: KL(q(z_j | x) || N(0, 1)) of each latent dimension in nats, averaged over
        the training images with the final weights.
    active_units_ : int
        VAE only: latent dimensions whose posterior mean varies across the training images,
        Var_x(E[z_j | x]) > 0.01 (Burda et al. 2016); the rest have collapsed to the prior.
    batch_size_ : int
        The training batch used (``batch_size``, or what ``"auto"`` chose for this network
        and memory budget).
    epochs_ : int
        The representation stage's epochs (``epochs``, or what ``"auto"`` chose for the
        number of training images; early stopping may end it sooner, see ``history_``).
    image_shape_ : tuple of int
        ``(C, *S)`` of one sample.
    n_features_in_ : int
        Number of values per sample (``prod(image_shape_)``).
    data_range_ : tuple of float
        Intensities mapped to [0, 1]: (0, 255) for uint8 input, else the training min and max
        (uint16 / 12-bit, floats). New images are mapped the same way, and refused when they
        cannot be on that scale (images rescaled to [0, 1] for a model fitted on a larger
        scale; a larger bit depth than in training); values slightly outside it are clipped
        with a warning (``scaler_``, :class:`~stratify.data.scaling.IntensityScaler`).
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
        free_bits: float = 0.0,
        contrastive: str | None = "simclr",
        temperature: float = 0.2,
        contrastive_weight: float = 1.0,
        regularizers: Mapping[str, Any] | None = None,
        augmentation: Any = None,
        clusterer: Any = "gmm",
        manifold: str | None = "auto",
        manifold_dim: int = 10,
        self_training_epochs: int = 0,
        self_training_weight: float = 1.0,
        normalize: bool = True,
        whiten: bool | str = "auto",
        epochs: int | str = "auto",
        batch_size: int | str = "auto",
        lr: float = 1e-3,
        train_config: Mapping[str, Any] | None = None,
        resume: bool = False,
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
        self.free_bits = free_bits
        self.contrastive = contrastive
        self.temperature = temperature
        self.contrastive_weight = contrastive_weight
        self.regularizers = regularizers
        self.augmentation = augmentation
        self.clusterer = clusterer
        self.manifold = manifold
        self.manifold_dim = manifold_dim
        self.self_training_epochs = self_training_epochs
        self.self_training_weight = self_training_weight
        self.normalize = normalize
        self.whiten = whiten
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.train_config = train_config
        self.resume = resume
        self.image_shape = image_shape
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    #: One constraint list per parameter, checked by :func:`stratify._constraints.
    #: validate_params` in ``fit`` before any work (the cross-parameter rules follow it).
    _parameter_constraints: ClassVar[dict[str, list]] = {
        "n_clusters": [Interval(int, 2, closed="left"), Options({"auto"})],
        "model": [Options({"ae", "vae"})],
        "latent_dim": _POSITIVE_INT,
        "width": _POSITIVE_INT,
        "depth": [*_POSITIVE_INT, NONE],
        "encoder": [module_instance("torch.nn.Module"), NONE],
        "decoder": [module_instance("torch.nn.Module"), NONE],
        "reconstruction": [Options({"bce", "mse"}), NONE],
        "beta": _NON_NEGATIVE,
        "kl_warmup": _NON_NEGATIVE,
        "free_bits": _NON_NEGATIVE,
        "contrastive": [Options({"simclr", "supcon"}), NONE],
        "temperature": _POSITIVE,
        "contrastive_weight": _NON_NEGATIVE,
        "regularizers": [Satisfies(is_mapping, "a mapping of names to terms", bad=([1],)), NONE],
        "augmentation": [
            Satisfies(_is_augmentation, "an AugmentParams or a callable", bad=(1,)),
            NONE,
        ],
        "clusterer": [
            Keys(BACKENDS),
            Satisfies(
                lambda v: not isinstance(v, str) and hasattr(v, "fit"),
                "a clusterer with a fit method",
                bad=(object(),),
            ),
        ],
        "manifold": [Options({"umap", "auto"}), NONE],
        "manifold_dim": _POSITIVE_INT,
        "self_training_epochs": [Interval(int, 0, closed="left")],
        "self_training_weight": _POSITIVE,
        "normalize": [BOOL],
        "whiten": [Options({True, False, "auto"})],
        "epochs": [*_POSITIVE_INT, Options({"auto"})],
        "batch_size": [*_POSITIVE_INT, Options({"auto"})],
        "lr": _POSITIVE,
        "train_config": [
            Satisfies(is_mapping, "a mapping of TrainConfig fields", bad=([1],)),
            NONE,
        ],
        "resume": [BOOL],
        "image_shape": [
            Satisfies(
                _is_shape,
                "a tuple (C, H, W) or (C, D, H, W) of positive ints",
                bad=((1, 28), (1, 0, 28)),
            ),
            NONE,
        ],
        "device": [Satisfies(lambda v: isinstance(v, str), "a str", bad=(0,))],
        "random_state": [
            Satisfies(_is_random_state, "an int, a numpy RandomState", bad=("seed", 1.5)),
            NONE,
        ],
        "verbose": [BOOL],
    }

    def _validate_params(self) -> None:
        """The constraint table, then the rules that tie parameters together."""
        validate_params(self, self._parameter_constraints)
        self._validate_train_config()
        if self.resume and not (self.train_config or {}).get("checkpoint_dir"):
            raise ValueError(
                "Expected train_config={'checkpoint_dir': ...} naming the checkpoint folder "
                "with resume=True, got no checkpoint_dir."
            )
        if self.decoder is not None and self.encoder is None:
            raise ValueError(
                "Expected decoder only together with a custom encoder, got decoder without encoder."
            )
        if self.encoder is not None and self.decoder is None and self.reconstruction is not None:
            raise ValueError(
                "Expected reconstruction=None with a custom encoder and no decoder, got "
                f"reconstruction={self.reconstruction!r}. Pass decoder= to reconstruct."
            )
        if self.reconstruction is None and self.contrastive is None and not self.regularizers:
            raise ValueError(
                "Expected at least one loss term, got reconstruction=None, contrastive=None "
                "and no regularizers."
            )

    def _validate_train_config(self) -> None:
        """``train_config`` and the training parameters make a valid TrainConfig."""
        owner = type(self).__name__
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(self.train_config or {}) - fields)
        if unknown:
            raise ValueError(
                f"The 'train_config' parameter of {owner} has unknown field(s) {unknown}; "
                f"TrainConfig fields are {sorted(fields)}."
            )
        try:
            self._train_config()
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"Invalid training settings of {owner} (train_config, device, ...): {error}"
            ) from None

    # ------------------------------------------------------------------ input handling
    @property
    def _vectors(self) -> bool:
        """Whether flattened input is feature vectors (no ``image_shape``)."""
        return self.image_shape is None

    def _images(self, X: Any, *, reset: bool) -> np.ndarray:
        """Any accepted input -> (N, C, *S), uint8 or float32 scaled to [0, 1]
        (:mod:`stratify.data.layout`, :class:`~stratify.data.scaling.IntensityScaler`).
        """
        if reset:
            X, input_ndim = to_channel_first(
                X, self.image_shape, vectors=self._vectors, min_samples=2
            )
            if len(X) < 2:
                raise ValueError(f"Expected at least 2 samples to fit strata, got {len(X)} sample.")
            self.image_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.image_shape_))
            self._input_ndim = input_ndim
            self.scaler_ = IntensityScaler().fit(X)
            return self.scaler_.transform(X)
        X, _ = to_channel_first(
            X, self.image_shape_, vectors=self._vectors, n_features=self.n_features_in_
        )
        if X.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Expected images of shape {self.image_shape_} per sample, as in fit, got "
                f"{tuple(X.shape[1:])}."
            )
        return self.scaler_.transform(X)

    @property
    def data_range_(self) -> tuple[float, float]:
        """Intensities mapped to [0, 1] (see the class docstring)."""
        check_is_fitted(self)
        return self.scaler_.data_range_

    def check_images(self, X: Any) -> np.ndarray:
        """New images as the network takes them: (M, C, *S), checked against the fitted
        image shape and intensity scale (uint8 kept, floats rescaled to [0, 1]).
        """
        check_is_fitted(self)
        return self._images(X, reset=False)

    def to_input_layout(self, images: np.ndarray) -> np.ndarray:
        """Decoded images (M, C, *S) in [0, 1] -> the dtype range and layout of the fitted
        inputs (uint8 0-255 or the float range seen in ``fit``; (M, H, W) or (M, F) if the
        inputs had that layout).
        """
        return from_channel_first(self.scaler_.inverse_transform(images), self._input_ndim)

    # ------------------------------------------------------------------------- building
    def _build_network(self, seed: int) -> torch.nn.Module:
        """The untrained network for ``image_shape_``, initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):  # initial weights without touching global RNG
            torch.manual_seed(seed)
            encoder, decoder = copy.deepcopy(self.encoder), copy.deepcopy(self.decoder)
            if encoder is None and self._input_ndim == 2 and self._vectors:
                hidden = max(32, 4 * self.width)
                encoder = MLPEncoder(self.n_features_in_, hidden)
                decoder = MLPDecoder(self.latent_dim, self.n_features_in_, hidden)
            return build_model(
                self.model,
                self.image_shape_,
                latent_dim=self.latent_dim,
                width=self.width,
                depth=self.depth,
                encoder=encoder,
                decoder=decoder,
            )

    def _build_objective(self) -> Objective:
        regularizers = {
            name: regularizer_from_spec(name, spec, self.temperature)
            for name, spec in (self.regularizers or {}).items()
        }
        contrastive: Any = self.contrastive
        if contrastive == "supcon":
            contrastive = SupCon(LABELS, temperature=self.temperature)
        return build_objective(
            reconstruction=self.reconstruction,
            beta=self.beta if self.model == "vae" else 0.0,
            elements_per_sample=self.n_features_in_,
            kl_warmup=self.kl_warmup,
            free_bits=self.free_bits,
            contrastive=contrastive,
            temperature=self.temperature,
            contrastive_weight=self.contrastive_weight,
            regularizers=regularizers or None,
        )

    def _build_augment(self) -> Any:
        if isinstance(self.augmentation, AugmentParams):
            return TwoViewAugment(self.augmentation)
        if self.augmentation is not None:
            return self.augmentation
        return VectorAugment() if self._input_ndim == 2 and self._vectors else TwoViewAugment()

    def _train_config(self, n_samples: int = 1) -> TrainConfig:
        """The representation stage's settings for ``n_samples`` training images (which
        ``epochs="auto"`` reads).
        """
        options = {
            "epochs": auto_epochs(n_samples) if self.epochs == "auto" else self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "device": self.device,
            "progress": bool(self.verbose),
        }
        options.update(dict(self.train_config or {}))
        return TrainConfig(**options)

    def _new_clusterer(self, seed: int) -> StrataClusterer:
        """The clusterer of the strata: the clustering space's one owner."""
        return StrataClusterer(
            self.clusterer,
            self.n_clusters,
            normalize=self.normalize,
            manifold=self.manifold,
            manifold_dim=self.manifold_dim,
            whiten=self.whiten,
            random_state=seed,
        )

    # ---------------------------------------------------------------------- public API
    def fit(self, X: Any, y: Any = None, *, metadata: pd.DataFrame | None = None) -> Stratifier:
        """Train the model on the images and cluster their latents into strata.

        Parameters
        ----------
        X : array-like or torch Dataset
            uint8 or float images, (N, H, W), (N, C, H, W), (N, C, D, H, W), or (N, F) with
            ``image_shape``; a Dataset yielding images (or (image, ...) tuples).
        y : array-like of shape (N,), optional
            Labels, used only by terms on ``"labels"`` (``contrastive="supcon"``).
        metadata : pandas.DataFrame, optional
            One row per image; must hold the columns the regularizers name.

        Returns
        -------
        self : Stratifier
        """
        self._validate_params()
        images = self._images(X, reset=True)
        self.objective_ = self._build_objective()
        columns, labels = training_columns(
            metadata,
            y,
            len(images),
            needed=[c for c in self.objective_.metadata_columns if c != LABELS],
            distance=distance_columns(self.objective_),
            uses_labels=self.objective_.uses_labels,
        )
        model_seed, train_seed, cluster_seed = draw_seeds(self.random_state, 3)

        self._model_seed = model_seed
        self._cluster_seed = cluster_seed
        model = self._build_network(model_seed)
        augment = self._build_augment()
        config = self._train_config(len(images))
        self.epochs_ = config.epochs
        checkpoint = config.checkpoint_dir
        resume_from = (
            checkpoint if self.resume and (Path(checkpoint) / CHECKPOINT_NAME).is_file() else None
        )
        result = train(
            model,
            self.objective_,
            images,
            config=config,
            metadata=columns or None,
            labels=labels,
            augment=augment,
            random_state=train_seed,
            resume_from=resume_from,
            fingerprint=None if checkpoint is None else self._fingerprint(images, columns, labels),
        )
        self.model_ = model.eval()
        self.batch_size_ = result.batch_size
        self.history_ = result.history.assign(stage="representation")
        self._say(f"embedding {len(images)} images")
        self._embed_training(images)
        self._say(f"clustering into {self.n_clusters} strata ({self._clustering_name()})")
        self._fit_clusterer()
        if self.self_training_epochs:
            self._self_train(images, columns, labels, augment, train_seed + 1)
        return self

    #: Parameters (and train_config fields) that may differ between a fit and its resumption.
    _NOT_FINGERPRINTED: ClassVar[frozenset] = frozenset({"resume", "verbose", "device"})
    _CONFIG_NOT_FINGERPRINTED: ClassVar[frozenset] = frozenset(
        {
            "checkpoint_dir",
            "checkpoint_every",
            "progress",
            "num_workers",
            "num_threads",
            "device",
        }
    )

    def _fingerprint(self, images: np.ndarray, columns: dict, labels: np.ndarray | None) -> str:
        """A digest of the images, metadata columns, labels and the training parameters."""
        params = {
            k: v for k, v in self.get_params(deep=False).items() if k not in self._NOT_FINGERPRINTED
        }
        params["train_config"] = {
            k: v
            for k, v in sorted(dict(self.train_config or {}).items())
            if k not in self._CONFIG_NOT_FINGERPRINTED
        }
        arrays = [(name, columns[name]) for name in sorted(columns)]
        if labels is not None:
            arrays.append(("labels", labels))
        return fingerprint(params, images, arrays)

    def _say(self, message: str) -> None:
        """One progress line on stderr when ``verbose`` (the steps after the training bar)."""
        if self.verbose and distributed.is_main_process():
            print(f"stratify: {message} ...", file=sys.stderr, flush=True)

    def _clustering_name(self) -> str:
        method = (
            self.clusterer if isinstance(self.clusterer, str) else type(self.clusterer).__name__
        )
        return method + ("" if self.manifold is None else f", manifold {self.manifold}")

    def _self_train(
        self, images: np.ndarray, columns: dict, labels: np.ndarray | None, augment: Any, seed: int
    ) -> None:
        """The clustering-aware stage: IDEC self-training from the first strata, then recluster.

        The centroids start at the mean latent of each first stratum; the objective's terms
        stay on (IDEC keeps the reconstruction), plus :class:`~stratify.losses.SelfTraining`
        with weight ``self_training_weight``; the same training loop runs for
        ``self_training_epochs`` at a tenth of ``lr``, constant.
        """
        kept = self.labels_ >= 0
        strata = np.unique(self.labels_[kept])
        if len(strata) < 2:
            raise ValueError(
                f"Expected at least 2 first strata to start self-training from, got "
                f"{len(strata)}. Set self_training_epochs=0 or choose another clusterer."
            )
        centroids = np.stack([self.embedding_[self.labels_ == c].mean(axis=0) for c in strata])
        term = SelfTraining(centroids, normalize=False)
        terms = {
            name: (t, self.objective_.weights[name]) for name, t in self.objective_.terms.items()
        }
        terms["self_training"] = (term, self.self_training_weight)
        config = dataclasses.replace(
            self._train_config(),
            epochs=self.self_training_epochs,
            lr=self.lr / 10,
            scheduler="none",
            warmup_epochs=0.0,
            checkpoint_dir=None,
            patience=None,
            val_fraction=0.0,
        )
        self._say(f"self-training for {self.self_training_epochs} epochs")
        result = train(
            self.model_,
            Objective(terms),
            images,
            config=config,
            metadata=columns or None,
            labels=labels,
            augment=augment,
            random_state=seed,
        )
        self.model_.eval()
        stage = result.history.assign(stage="self-training")
        stage["epoch"] += int(self.history_["epoch"].max())
        self.history_ = pd.concat([self.history_, stage], ignore_index=True)
        self._embed_training(images)
        self._fit_clusterer()

    def recluster(
        self,
        clusterer: Any = None,
        n_clusters: int | str | None = None,
        *,
        manifold: str | None = "keep",
        whiten: bool | str | None = None,
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
        whiten : bool or "auto", optional
            As the ``whiten`` parameter; None keeps the current one.

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
            whiten=self.whiten if whiten is None else whiten,
        )
        other._fit_clusterer(self.manifold_embedding_ if other.manifold == self.manifold else None)
        return other

    def _fit_clusterer(
        self,
        manifold_embedding: np.ndarray | None = None,
        manifold_selection: pd.DataFrame | None = None,
    ) -> None:
        """Cluster ``embedding_`` (the one place fit and recluster do it).

        ``manifold_embedding``: manifold coordinates of ``embedding_`` from an earlier fit, so
        that UMAP does not run again; ``manifold_selection``: that fit's choice of
        ``manifold="auto"``.
        """
        self.clusterer_ = self._new_clusterer(self._cluster_seed).fit(
            self.embedding_,
            manifold_embedding=manifold_embedding,
            manifold_selection=manifold_selection,
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
        for name in (
            "probabilities_",
            "outlier_scores_",
            "cluster_selection_",
            "manifold_selection_",
        ):
            if hasattr(self.clusterer_, name):
                setattr(self, name, getattr(self.clusterer_, name))
            else:
                self.__dict__.pop(name, None)

    @property
    def embed_batch_size_(self) -> int:
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
            self.model_, images, batch_size=self.embed_batch_size_, logvar=True, shard=True
        )
        self.embedding_ = mu
        for stale in ("embedding_std_", "kl_per_dim_", "active_units_"):
            self.__dict__.pop(stale, None)
        if logvar is None:
            return
        self.embedding_std_ = np.exp(0.5 * logvar).astype(np.float32)
        kl = kl_per_dimension(torch.from_numpy(mu).double(), torch.from_numpy(logvar).double())
        self.set_posterior_summary(kl.numpy())

    def set_posterior_summary(self, kl_per_dim: np.ndarray) -> None:
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
        return embed(self.model_, self._images(X, reset=False), batch_size=self.embed_batch_size_)

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

    def _clusterer_has_proba(self) -> bool:
        check_is_fitted(self)
        return hasattr(self.clusterer_, "predict_proba")

    @available_if(_clusterer_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_) for the GMM and HDBSCAN backends."""
        latents = self.transform(X)
        return self.clusterer_.predict_proba(latents)

    def fit_predict(
        self, X: Any, y: Any = None, *, metadata: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X, y, metadata=metadata).labels_

    def score(self, X: Any, y: Any = None) -> float:
        """Mean silhouette of the strata ``predict(X)`` assigns, in ``clustered_space(X)``.

        Higher is better (in [-1, 1]); NaN when fewer than two strata are assigned or every
        sample is in its own stratum. ``y`` is ignored.
        """
        latents = self.transform(X)
        return self.clusterer_.score(latents)

    # ------------------------------------------------------------- generation, reports, io
    def sample(self, n: int, cluster: int | None = None, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` synthetic images, from the prior or from stratum ``cluster``.

        See :func:`stratify.generate.sample`.
        """
        return generate.sample(self, n, cluster=cluster, random_state=random_state)

    def perturb(
        self, X: Any, n_per_sample: int = 1, scale: float = 0.5, random_state: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decoded perturbations of each image and the index of its source.

        See :func:`stratify.generate.perturb`.
        """
        return generate.perturb(self, X, n_per_sample, scale, random_state)

    def augment(self, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Deprecated alias of :meth:`perturb` (the name clashed with ``augmentation``)."""
        warnings.warn(
            "Stratifier.augment was renamed perturb (it clashed with the augmentation "
            "parameter); augment will be removed in a later release.",
            FutureWarning,
            stacklevel=2,
        )
        return self.perturb(*args, **kwargs)

    def generation_quality(
        self, X: Any, n_per_stratum: int = 100, random_state: Any = None
    ) -> pd.DataFrame:
        """Stratum fidelity and diversity of per-stratum samples against real images ``X``.

        See :func:`stratify.generate.generation_quality`.
        """
        return generate.generation_quality(self, X, n_per_stratum, random_state)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Decoded latent means of ``X``; see :func:`stratify.generate.reconstruct`."""
        return generate.reconstruct(self, X)

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> np.ndarray:
        """Images along the latent path from ``a`` to ``b``.

        See :func:`stratify.generate.interpolate`.
        """
        return generate.interpolate(self, a, b, steps)

    def describe(self, metadata: pd.DataFrame, **kwargs: Any) -> report.StrataProfile:
        """Per-stratum profile of the training metadata with tests across strata.

        See :func:`stratify.report.describe_strata`.
        """
        check_is_fitted(self)
        return report.describe_strata(self.labels_, metadata, **kwargs)

    def stability(
        self,
        X: Any,
        n_resamples: int = 10,
        fraction: float = 0.8,
        random_state: Any = None,
        **fit_params: Any,
    ) -> pd.DataFrame:
        """Refit on subsamples and compare the strata (adjusted Rand index per resample).

        See :func:`stratify.report.stability`.
        """
        return report.stability(
            self,
            X,
            n_resamples=n_resamples,
            fraction=fraction,
            random_state=random_state,
            **fit_params,
        )

    def save(self, path: Any) -> Path:
        """Write the fitted estimator atomically in the safe format (:mod:`stratify.io`).

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        TypeError
            When a parameter holds a Python object (custom encoder, clusterer instance, loss
            terms, augmentation callable): use ``joblib.dump`` for such an estimator.
        """
        check_is_fitted(self)
        return io.save_stratifier(self, path)

    @classmethod
    def load(cls, path: Any) -> Stratifier:
        """Read an estimator written by :meth:`save`; it predicts exactly what the saved one did.

        The clustering is refitted on the stored latents with the stored seed and checked
        against the stored labels.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If the file is truncated, corrupted, not a stratify file, from a newer format,
            or its clustering cannot be restored exactly.
        """
        return io.load_stratifier(cls, path)
