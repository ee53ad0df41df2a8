"""The Stratifier: learn a separable latent space from images, then cluster it into strata.

``fit`` reads as a story: validate the images and metadata -> build the model and the
objective -> train (the one loop in :mod:`stratify.training`) -> embed -> cluster -> set the
fitted attributes.
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
from sklearn.metrics import silhouette_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state

from stratify import distributed, generate, io, report
from stratify._random import draw_seeds
from stratify._validation import (
    check_array_images,
    check_batch_size,
    check_count_or_auto,
    check_in_range,
    check_metadata,
    check_option,
    require_columns,
)
from stratify.cluster import BACKENDS as CLUSTER_BACKENDS
from stratify.cluster import StrataClusterer
from stratify.data.augment import AugmentParams, TwoViewAugment
from stratify.data.vector_augment import VectorAugment
from stratify.losses import (
    LABELS,
    Objective,
    SelfTraining,
    SupCon,
    build_objective,
)
from stratify.losses.functional import kl_per_dimension
from stratify.losses.registry import distance_columns, regularizer_from_spec
from stratify.models import build_model
from stratify.models.mlp import MLPDecoder, MLPEncoder
from stratify.training import ACTIVE_UNIT_THRESHOLD, TrainConfig, embed, memory, train
from stratify.training.checkpoint import CHECKPOINT_NAME, fingerprint
from stratify.training.config import auto_epochs

__all__ = ["Stratifier"]


def _encode_column(series: pd.Series) -> np.ndarray:
    """Metadata column -> float64 (N,): numbers as they are, categories as codes, NaN missing."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    codes, _ = pd.factorize(series, sort=True)
    return np.where(codes < 0, np.nan, codes).astype(np.float64)


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
        (yours is never modified). A custom encoder has no decoder, so use
        ``reconstruction=None`` with it and no generation is possible.
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
        manifold by UMAP's fuzzy-neighbour rule (:mod:`stratify.manifold`). "auto" (the
        default) clusters the latents and the manifold three times each with different seeds
        and keeps the space whose strata agree best across the runs (its medoid run; see
        :class:`~stratify.cluster.StrataClusterer`): the manifold step wins on the MNIST test
        set and loses badly on small cohorts, and the choice is made without labels (README,
        "The default recipe"). "umap" always uses it; None clusters the latents directly.
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
        n_clusters), below which whitening let chance structure steer the strata; chosen by
        measurement (README, "The default recipe").
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
        with a warning.
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

    # ------------------------------------------------------------------ input handling
    def _images(self, X: Any, *, reset: bool) -> np.ndarray:
        """Any accepted input -> (N, C, *S) array, uint8 or float32 scaled to [0, 1].

        Flattened input without ``image_shape`` is a set of feature vectors: it becomes
        (N, F, 1, 1) and gets an MLP encoder (see :mod:`stratify.models.mlp`).
        """
        if isinstance(X, torch.utils.data.Dataset) and not isinstance(X, torch.Tensor):
            items = [X[i] for i in range(len(X))]  # type: ignore[arg-type]
            items = [item[0] if isinstance(item, (tuple, list)) else item for item in items]
            X = torch.stack([torch.as_tensor(np.asarray(item)) for item in items])
        elif not isinstance(X, (np.ndarray, torch.Tensor)):
            # lists, sparse matrices, array-likes: scikit-learn's checks and messages
            X = check_array(X, allow_nd=True, dtype=None, ensure_all_finite=False)
        if getattr(X, "ndim", None) == 2 and self.image_shape is None:
            X = check_array(
                np.asarray(X) if isinstance(X, torch.Tensor) else X,
                dtype=[np.float64, np.float32, np.uint8],
                ensure_min_samples=2 if reset else 1,
            )
        if getattr(X, "ndim", None) == 1:
            raise ValueError(
                f"Expected a 2D or higher array, got a 1D array of shape {X.shape}. Reshape your "
                "data with X.reshape(1, -1) for one sample of features."
            )
        X = check_array_images(
            X, ndims=(2, 3, 4, 5), layout="(N, F), (N, H, W), (N, C, H, W) or (N, C, D, H, W)"
        )
        input_ndim = X.ndim
        if X.ndim == 2 and not reset and X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if X.ndim == 2:
            shape = self.image_shape if reset else self.image_shape_
            shape = (X.shape[1], 1, 1) if shape is None else tuple(int(s) for s in shape)
            if int(np.prod(shape)) != X.shape[1]:
                raise ValueError(
                    f"Expected {int(np.prod(shape))} values per sample for image_shape="
                    f"{shape}, got {X.shape[1]}."
                )
            X = X.reshape(len(X), *shape)
        elif X.ndim == 3:
            X = X[:, None]
        if reset:
            if len(X) < 2:
                raise ValueError(f"Expected at least 2 samples to fit strata, got {len(X)} sample.")
            self.image_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.image_shape_))
            self._input_ndim = input_ndim
            if X.dtype == np.uint8:
                self.data_range_ = (0.0, 255.0)
            else:
                low, high = float(X.min()), float(X.max())
                self.data_range_ = (low, high if high > low else low + 1.0)
        elif X.shape[1:] != self.image_shape_:
            raise ValueError(
                f"Expected images of shape {self.image_shape_} per sample, as in fit, got "
                f"{tuple(X.shape[1:])}."
            )
        else:
            self._check_scale(X)
        if X.dtype == np.uint8:
            return X
        low, high = self.data_range_
        return np.clip((X.astype(np.float32) - low) / (high - low), 0.0, 1.0)

    def _check_scale(self, X: np.ndarray) -> None:
        """Refuse new images that cannot be on the training intensity scale (``data_range_``).

        Two mistakes would otherwise give wrong strata without a word: images rescaled to
        [0, 1] handed to a model fitted on a larger scale (uint8 0-255, 12-bit, ...), and
        images on a larger scale (12-bit in uint16) handed to a model fitted on a smaller
        one. Values a little outside the training range (a brighter scan) are clipped with a
        warning that gives the numbers.
        """
        if (X.dtype == np.uint8 and self.data_range_ == (0.0, 255.0)) or X.size == 0:
            return
        low, high = self.data_range_
        span = high - low
        new_low, new_high = float(X.min()), float(X.max())
        trained = f"[{low:g}, {high:g}]" + (" (uint8)" if (low, high) == (0.0, 255.0) else "")
        got = f"{X.dtype} values in [{new_low:g}, {new_high:g}]"
        if high >= 2.0 and 0.0 < new_high <= 1.0 and new_low >= 0.0:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got {got}, which looks "
                f"like images rescaled to [0, 1]. Pass them on the training scale (e.g. "
                f"multiplied by {high:g}, or the original uint8 / integer images)."
            )
        if X.dtype == np.uint8 and high > 1.5 * 255:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got uint8 images, whose "
                "0-255 scale cannot be the training scale. Pass images with the training "
                "bit depth."
            )
        if new_high > high + span or new_low < low - span:
            raise ValueError(
                f"This model was fitted on intensities in {trained}; got {got}, which cannot "
                "be on the same scale (more than one training range outside it). Map them as "
                "the training images were mapped (same dtype and bit depth)."
            )
        if new_high > high + 0.05 * span or new_low < low - 0.05 * span:
            warnings.warn(
                f"New images have {got}, outside the training intensities {trained}; values "
                "outside are clipped to it. Check that they were mapped as the training "
                "images were.",
                UserWarning,
                stacklevel=3,
            )

    @property
    def _vectors(self) -> bool:
        """Whether the fitted input is feature vectors (flattened, no image_shape)."""
        return self._input_ndim == 2 and self.image_shape is None

    def _build_network(self, seed: int) -> torch.nn.Module:
        """The untrained network for ``image_shape_``, initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):  # initial weights without touching global RNG
            torch.manual_seed(seed)
            encoder, decoder = copy.deepcopy(self.encoder), None
            if encoder is None and self._vectors:
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

    def _metadata_columns(self, metadata: Any, n: int, y: Any) -> tuple[dict, np.ndarray | None]:
        """Check ``y`` and ``metadata`` against the N images (always, even when no term reads
        them) and return the metadata columns and label codes the objective reads."""
        needed = [c for c in self.objective_.metadata_columns if c != LABELS]
        labels = None
        if y is not None:
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:  # MedMNIST's (N, 1) label column
                y = y[:, 0]
            if y.shape != (n,):
                raise ValueError(
                    f"Expected y of shape ({n},), one label per image, got shape {y.shape}."
                )
        if metadata is not None:
            check_metadata(metadata, n)
        if self.objective_.uses_labels:
            if y is None:
                raise ValueError(
                    "Expected y: the objective has a term on 'labels' (supcon), got y=None."
                )
            labels = _encode_column(pd.Series(y))
        if not needed:
            return {}, labels
        if metadata is None:
            raise ValueError(
                f"Expected metadata with the columns {needed} that the regularizers use, got "
                "metadata=None."
            )
        require_columns(needed, metadata.columns, name="metadata", reader="the regularizers")
        for column in sorted(distance_columns(self.objective_)):
            series = metadata[column]
            if not pd.api.types.is_numeric_dtype(series) or isinstance(
                series.dtype, pd.CategoricalDtype
            ):
                raise TypeError(
                    f"Expected a numeric metadata column {column!r} for a distance kernel "
                    f"(y-Aware, WSP position), got dtype {series.dtype}. Use kind 'supcon' or "
                    "'clinical' (equality of values) for a categorical column."
                )
        return {c: _encode_column(metadata[c].reset_index(drop=True)) for c in needed}, labels

    # ------------------------------------------------------------------------- building
    #: Declarative constraints of the scalar parameters, all checked in ``fit`` before any
    #: work, with messages that name the Stratifier parameter: name -> (type, low, closed).
    _RANGES: ClassVar[dict[str, tuple[type, float, str]]] = {
        "latent_dim": (int, 1, "left"),
        "width": (int, 1, "left"),
        "temperature": (float, 0, "neither"),
        "beta": (float, 0, "left"),
        "kl_warmup": (float, 0, "left"),
        "free_bits": (float, 0, "left"),
        "contrastive_weight": (float, 0, "left"),
        "self_training_epochs": (int, 0, "left"),
        "self_training_weight": (float, 0, "neither"),
        "manifold_dim": (int, 1, "left"),
        "lr": (float, 0, "neither"),
    }
    #: Parameters with a fixed set of values.
    _OPTIONS: ClassVar[dict[str, set]] = {
        "model": {"ae", "vae"},
        "reconstruction": {"bce", "mse", None},
        "contrastive": {"simclr", "supcon", None},
        "manifold": {"umap", "auto", None},
        "resume": {True, False},
        "normalize": {True, False},
        "whiten": {True, False, "auto"},
        "verbose": {True, False},
    }

    def _validate_params(self) -> None:
        owner = type(self).__name__
        for name, options in self._OPTIONS.items():
            check_option(getattr(self, name), name, owner, options)
        for name, (kind, low, closed) in self._RANGES.items():
            check_in_range(getattr(self, name), name, owner, kind=kind, low=low, closed=closed)
        if self.depth is not None:
            check_in_range(self.depth, "depth", owner, kind=int, low=1)
        check_batch_size(self.batch_size, owner)
        check_count_or_auto(self.epochs, "epochs", owner)
        try:
            check_random_state(self.random_state)
        except ValueError:
            raise ValueError(
                f"The 'random_state' parameter of {owner} must be None, an int or a numpy "
                f"RandomState. Got {self.random_state!r} instead."
            ) from None
        if self.image_shape is not None and not (
            isinstance(self.image_shape, (tuple, list))
            and len(self.image_shape) in (3, 4)
            and all(isinstance(v, (int, np.integer)) and v >= 1 for v in self.image_shape)
        ):
            raise ValueError(
                f"The 'image_shape' parameter of {owner} must be None or a tuple (C, H, W) or "
                f"(C, D, H, W) of positive ints. Got {self.image_shape!r} instead."
            )
        self._validate_train_config(owner)
        if self.resume and not (self.train_config or {}).get("checkpoint_dir"):
            raise ValueError(
                "Expected train_config={'checkpoint_dir': ...} naming the checkpoint folder "
                "with resume=True, got no checkpoint_dir."
            )
        if self.n_clusters != "auto":
            check_in_range(self.n_clusters, "n_clusters", owner, kind=int, low=2)
        if isinstance(self.clusterer, str):
            check_option(self.clusterer, "clusterer", owner, set(CLUSTER_BACKENDS))
        if self.encoder is not None and not isinstance(self.encoder, torch.nn.Module):
            raise TypeError(
                f"The 'encoder' parameter of {owner} must be a torch.nn.Module or None. Got "
                f"{type(self.encoder).__name__} instead."
            )
        if self.encoder is not None and self.reconstruction is not None:
            raise ValueError(
                "Expected reconstruction=None with a custom encoder (it has no decoder), got "
                f"reconstruction={self.reconstruction!r}."
            )
        if self.reconstruction is None and self.contrastive is None and not self.regularizers:
            raise ValueError(
                "Expected at least one loss term, got reconstruction=None, contrastive=None "
                "and no regularizers."
            )
        if self.regularizers is not None and not isinstance(self.regularizers, Mapping):
            raise TypeError(
                f"The 'regularizers' parameter of {owner} must be a mapping of names to terms "
                f"or None. Got {type(self.regularizers).__name__} instead."
            )

    def _validate_train_config(self, owner: str) -> None:
        """``train_config`` and the training parameters make a valid TrainConfig."""
        config = self.train_config
        if config is not None and not isinstance(config, Mapping):
            raise TypeError(
                f"The 'train_config' parameter of {owner} must be a mapping of "
                f"TrainConfig fields or None. Got {type(config).__name__} instead."
            )
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(config or {}) - fields)
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

    def _build_objective(self) -> Any:
        regularizers = {
            name: regularizer_from_spec(name, spec, self.temperature)
            for name, spec in (self.regularizers or {}).items()
        }
        contrastive = self.contrastive
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
        if self.augmentation is None:
            return VectorAugment() if self._vectors else TwoViewAugment()
        if isinstance(self.augmentation, AugmentParams):
            return TwoViewAugment(self.augmentation)
        if callable(self.augmentation):
            return self.augmentation
        raise TypeError(
            "The 'augmentation' parameter of Stratifier must be None, an AugmentParams or a "
            f"callable. Got {type(self.augmentation).__name__} instead."
        )

    def _train_config(self, n_samples: int = 1) -> TrainConfig:
        """The representation stage's settings for ``n_samples`` training images (which
        ``epochs="auto"`` reads)."""
        options = {
            "epochs": auto_epochs(n_samples) if self.epochs == "auto" else self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "device": self.device,
            "progress": bool(self.verbose),
        }
        options.update(dict(self.train_config or {}))
        return TrainConfig(**options)

    def _latents_for_clustering(self, latents: np.ndarray) -> np.ndarray:
        latents = latents.astype(np.float64)
        if self.normalize:
            norms = np.linalg.norm(latents, axis=1, keepdims=True)
            latents = latents / np.maximum(norms, 1e-12)
        return latents

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
        columns, labels = self._metadata_columns(metadata, len(images), y)
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
        """Cluster ``embedding_`` (the one place fit, recluster and load do it).

        ``manifold_embedding``: manifold coordinates of ``embedding_`` from an earlier fit, so
        that UMAP does not run again; ``manifold_selection``: that fit's choice of
        ``manifold="auto"`` (load fits only the chosen run again).
        """
        self.clusterer_ = StrataClusterer(
            self.clusterer,
            self.n_clusters,
            manifold=self.manifold,
            manifold_dim=self.manifold_dim,
            whiten=self.whiten,
            random_state=self._cluster_seed,
        ).fit(
            self._latents_for_clustering(self.embedding_),
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

    def check_images(self, X: Any) -> np.ndarray:
        """New images as the network takes them: (M, C, *S), checked against the fitted
        image shape and intensity scale (uint8 kept, floats rescaled to [0, 1])."""
        check_is_fitted(self)
        return self._images(X, reset=False)

    def to_input_layout(self, images: np.ndarray) -> np.ndarray:
        """Decoded images (M, C, *S) in [0, 1] -> the dtype range and layout of the fitted
        inputs (uint8 0-255 or the float range seen in ``fit``; (M, H, W) or (M, F) if the
        inputs had that layout)."""
        low, high = self.data_range_
        if (low, high) == (0.0, 255.0):
            out = np.rint(images * 255).astype(np.uint8)
        else:
            out = (low + images * (high - low)).astype(np.float32)
        if self._input_ndim == 2:
            return out.reshape(len(out), -1)
        if self._input_ndim == 3:
            return out[:, 0]
        return out

    def _embed(self, images: np.ndarray) -> np.ndarray:
        return embed(self.model_, images, batch_size=self.embed_batch_size_)

    def _embed_training(self, images: np.ndarray) -> None:
        """Set ``embedding_`` and, for a VAE, ``embedding_std_``, ``kl_per_dim_`` and
        ``active_units_``."""
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
        self._set_posterior_summary(kl.numpy())

    def _set_posterior_summary(self, kl_per_dim: np.ndarray) -> None:
        """``kl_per_dim_`` as given; ``active_units_`` from the variance of ``embedding_``."""
        self.kl_per_dim_ = np.asarray(kl_per_dim, dtype=np.float64)
        variance = self.embedding_.astype(np.float64).var(axis=0)
        self.active_units_ = int((variance > ACTIVE_UNIT_THRESHOLD).sum())

    def transform(self, X: Any) -> np.ndarray:
        """Latent means of new images.

        Returns
        -------
        numpy.ndarray of float32, shape (M, latent_dim)
        """
        check_is_fitted(self)
        return self._embed(self._images(X, reset=False))

    def predict(self, X: Any) -> np.ndarray:
        """Assign new patients to the fitted strata (``-1`` = HDBSCAN noise).

        Returns
        -------
        numpy.ndarray of int, shape (M,)
        """
        check_is_fitted(self)
        return self.clusterer_.predict(self._latents_for_clustering(self.transform(X)))

    def clustered_space(self, X: Any = None) -> np.ndarray:
        """Coordinates in which the strata are defined: the (normalised) latents, or their
        manifold coordinates when the manifold step is used.

        Parameters
        ----------
        X : array-like, optional
            New images; None gives the training images' coordinates.

        Returns
        -------
        numpy.ndarray, shape (M, latent_dim) or (M, manifold_dim)
        """
        check_is_fitted(self)
        latents = self.embedding_ if X is None else self.transform(X)
        return self.clusterer_.transform_space(self._latents_for_clustering(latents))

    def _clusterer_has_proba(self) -> bool:
        check_is_fitted(self)
        return hasattr(self.clusterer_, "predict_proba")

    @available_if(_clusterer_has_proba)
    def predict_proba(self, X: Any) -> np.ndarray:
        """Soft memberships (M, n_clusters_) for the GMM and HDBSCAN backends."""
        return self.clusterer_.predict_proba(self._latents_for_clustering(self.transform(X)))

    def fit_predict(
        self, X: Any, y: Any = None, *, metadata: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X, y, metadata=metadata).labels_

    def score(self, X: Any, y: Any = None) -> float:
        """Mean silhouette of the strata assigned to ``X`` in the clustering space.

        Higher is better (in [-1, 1]); NaN when fewer than two strata are assigned or every
        sample is in its own stratum. ``y`` is ignored.
        """
        latents = self._latents_for_clustering(self.transform(X))
        labels = self.clusterer_.predict(latents)
        kept = labels != -1
        if not 2 <= len(np.unique(labels[kept])) < kept.sum():
            return float("nan")
        return float(silhouette_score(latents[kept], labels[kept]))

    # ------------------------------------------------------------- generation, reports, io
    def sample(self, n: int, cluster: int | None = None, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` synthetic images, from the prior or from stratum ``cluster``.

        See :func:`stratify.generate.sample`.
        """
        return generate.sample(self, n, cluster=cluster, random_state=random_state)

    def augment(
        self, X: Any, n_per_sample: int = 1, scale: float = 0.5, random_state: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decoded perturbations of each image and the index of its source.

        See :func:`stratify.generate.augment`.
        """
        return generate.augment(self, X, n_per_sample, scale, random_state)

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
        params = self.get_params(deep=False)
        if dataclasses.is_dataclass(params.get("augmentation")):
            params["augmentation"] = {"AugmentParams": dataclasses.asdict(params["augmentation"])}
        return io.write(path, params, self.model_.state_dict(), self._fitted_state())

    def _fitted_state(self) -> dict[str, Any]:
        """The fitted attributes as tensors and plain values (what :meth:`load` restores)."""

        def tensor(array: Any) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array))

        manifold = self.manifold_embedding_
        return {
            "image_shape_": list(self.image_shape_),
            "input_ndim": int(self._input_ndim),
            "data_range_": [float(v) for v in self.data_range_],
            "embedding_": tensor(self.embedding_),
            "labels_": tensor(np.asarray(self.labels_, dtype=np.int64)),
            "cluster_seed": int(self._cluster_seed),
            "manifold_embedding_": None if manifold is None else tensor(manifold),
            "manifold_selection_": None
            if not hasattr(self, "manifold_selection_")
            else {
                "manifold": [str(v) for v in self.manifold_selection_["manifold"]],
                "stability": [float(v) for v in self.manifold_selection_["stability"]],
                "seed": [int(v) for v in self.manifold_selection_["seed"]],
                "selected": [bool(v) for v in self.manifold_selection_["selected"]],
            },
            "model_seed": int(self._model_seed),
            "kl_per_dim_": tensor(self.kl_per_dim_) if hasattr(self, "kl_per_dim_") else None,
            "embedding_std_": tensor(self.embedding_std_)
            if hasattr(self, "embedding_std_")
            else None,
            "history_": {c: self.history_[c].tolist() for c in self.history_.columns},
            "batch_size_": int(getattr(self, "batch_size_", 0)),
            "epochs_": int(getattr(self, "epochs_", 0)),
        }

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
        params, model_state, fitted = io.read(path)
        # files from before the whiten parameter clustered the latents unwhitened
        params.setdefault("whiten", False)
        spec = params.get("augmentation")
        if isinstance(spec, dict) and "AugmentParams" in spec:
            fields = {
                k: tuple(v) if isinstance(v, list) else v for k, v in spec["AugmentParams"].items()
            }
            params["augmentation"] = AugmentParams(**fields)
        estimator = cls(**params)
        estimator._restore(model_state, fitted)
        if not np.array_equal(estimator.labels_, fitted["labels_"].numpy()):
            raise ValueError(
                f"Could not restore the clustering of {path} exactly: refitting on the stored "
                "latents gave other labels (different scikit-learn or hdbscan version?)."
            )
        return estimator

    def _restore(self, model_state: dict[str, Any], fitted: dict[str, Any]) -> None:
        """Set the fitted attributes from :meth:`_fitted_state`'s output and the weights."""
        self.image_shape_ = tuple(fitted["image_shape_"])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        self._input_ndim = fitted["input_ndim"]
        self.data_range_ = tuple(fitted["data_range_"])
        self.objective_ = self._build_objective()
        self._model_seed = fitted["model_seed"]
        model = self._build_network(self._model_seed)
        model.load_state_dict(model_state)
        self.model_ = model.eval()
        self.embedding_ = fitted["embedding_"].numpy()
        self.history_ = pd.DataFrame(fitted["history_"])
        self._cluster_seed = fitted["cluster_seed"]
        if fitted.get("batch_size_"):
            self.batch_size_ = int(fitted["batch_size_"])
        if fitted.get("epochs_"):
            self.epochs_ = int(fitted["epochs_"])
        if fitted.get("kl_per_dim_") is not None:
            self.embedding_std_ = fitted["embedding_std_"].numpy()
            self._set_posterior_summary(fitted["kl_per_dim_"].numpy())
        manifold = fitted.get("manifold_embedding_")
        selection = fitted.get("manifold_selection_")
        self._fit_clusterer(
            None if manifold is None else manifold.numpy(),
            None if selection is None else pd.DataFrame(selection),
        )
