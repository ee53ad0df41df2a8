"""The Stratifier's building blocks: its inputs as the network takes them, and the network,
objective, augmentation, training settings and clusterer its parameters describe.

:class:`StratifierParts` is mixed into :class:`~stratify.Stratifier`, so that ``estimator.py``
holds the orchestration (``fit`` as a story) and this module what each step is built from;
:mod:`stratify.io` rebuilds a saved estimator with the same methods.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from stratify._random import member_seeds
from stratify.cluster import StrataClusterer
from stratify.cluster.seeded import check_partial_labels, marks_unknown
from stratify.data.augment import AugmentParams, TwoViewAugment
from stratify.data.layout import from_channel_first, to_channel_first
from stratify.data.scaling import IntensityScaler
from stratify.data.vector_augment import VectorAugment
from stratify.losses import LABELS, Objective, SupCon, build_objective
from stratify.losses.registry import regularizer_from_spec
from stratify.models import Autoencoder, build_model
from stratify.models.ensemble import Ensemble
from stratify.models.mlp import MLPDecoder, MLPEncoder
from stratify.training import TrainConfig, train
from stratify.training.checkpoint import CHECKPOINT_NAME
from stratify.training.config import DEFAULT_NETWORKS, auto_epochs, config_from

__all__ = ["StratifierParts"]


class StratifierParts:
    """Inputs and components of a :class:`~stratify.Stratifier`, from its parameters."""

    # the Stratifier's parameters this mixin reads (documented there)
    n_clusters: int | str
    model: str
    latent_dim: int
    width: int
    depth: int | None
    encoder: Any
    decoder: Any
    reconstruction: str | None
    beta: float
    kl_warmup: float
    contrastive: str | None
    temperature: float
    contrastive_weight: float
    regularizers: Any
    augmentation: Any
    clusterer: Any
    manifold: str | None
    epochs: int | str
    batch_size: int | str
    lr: float
    train_config: Any
    image_shape: Any
    device: str
    verbose: bool
    # set by the estimator's fit (or load), read here
    model_: Autoencoder | Ensemble
    objective_: Objective
    _fingerprint: Callable[..., str]

    # ------------------------------------------------------------------ input handling
    def _images(self, X: Any, *, reset: bool) -> np.ndarray:
        """Any accepted input -> (N, C, *S), uint8 or float32 scaled to [0, 1]
        (:mod:`stratify.data.layout`, :class:`~stratify.data.scaling.IntensityScaler`).
        """
        if reset:
            X, input_ndim = to_channel_first(
                X, self.image_shape, vectors=self.image_shape is None, min_samples=2
            )
            if len(X) < 2:
                raise ValueError(f"Expected at least 2 samples to fit strata, got {len(X)} sample.")
            self.image_shape_ = tuple(int(s) for s in X.shape[1:])
            self.n_features_in_ = int(np.prod(self.image_shape_))
            self._input_ndim = input_ndim
            self.scaler_ = IntensityScaler().fit(X)
            return self.scaler_.transform(X)
        X, _ = to_channel_first(
            X, self.image_shape_, vectors=self.image_shape is None, n_features=self.n_features_in_
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

    def _check_images(self, X: Any) -> np.ndarray:
        """New images as the network takes them: (M, C, *S), checked against the fitted
        image shape and intensity scale (uint8 kept, floats rescaled to [0, 1]).
        """
        check_is_fitted(self)
        return self._images(X, reset=False)

    def _to_input_layout(self, images: np.ndarray) -> np.ndarray:
        """Decoded images (M, C, *S) in [0, 1] -> the dtype range and layout of the fitted
        inputs (uint8 0-255 or the float range seen in ``fit``; (M, H, W) or (M, F) if the
        inputs had that layout).
        """
        return from_channel_first(self.scaler_.inverse_transform(images), self._input_ndim)

    # ------------------------------------------------------------------------- building
    def _build_network(self, seed: int) -> Autoencoder | Ensemble:
        """The untrained network for ``image_shape_``, initialised from ``seed``: one
        autoencoder, or an :class:`~stratify.models.ensemble.Ensemble` of ``networks`` of
        them (``train_config``), the first initialised from ``seed`` itself.
        """
        seeds = member_seeds(seed, self._train_config().networks)
        members = [self._build_member(s) for s in seeds]
        return members[0] if len(members) == 1 else Ensemble(members)

    def _build_member(self, seed: int) -> Autoencoder:
        """One untrained autoencoder for ``image_shape_``, initialised from ``seed``."""
        with torch.random.fork_rng(devices=[]):  # initial weights without touching global RNG
            torch.manual_seed(seed)
            encoder, decoder = copy.deepcopy(self.encoder), copy.deepcopy(self.decoder)
            if encoder is None and self._input_ndim == 2 and self.image_shape is None:
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

    def _train_member(
        self,
        member: Autoencoder,
        position: tuple[int, int],
        images: np.ndarray,
        columns: dict,
        labels: np.ndarray | None,
        seed: int,
    ) -> Any:
        """Train network ``index`` of ``count`` (``position``; the one loop,
        :func:`stratify.training.train`); with several networks each keeps its checkpoints
        in ``network<index>`` of ``checkpoint_dir``.
        """
        index, count = position
        config = self._train_config(len(images))
        checkpoint = config.checkpoint_dir
        if checkpoint is not None and count > 1:
            checkpoint = Path(checkpoint) / f"network{index}"
            config = dataclasses.replace(config, checkpoint_dir=checkpoint)
        resume_from = (
            checkpoint
            if checkpoint is not None
            and config.resume
            and (Path(checkpoint) / CHECKPOINT_NAME).is_file()
            else None
        )
        digest = None
        if checkpoint is not None:
            digest = self._fingerprint(images, columns, labels) + f"/network{index}"
        return train(
            member,
            self.objective_,
            images,
            config=config,
            metadata=columns or None,
            labels=labels,
            augment=self._build_augment(),
            random_state=seed,
            resume_from=resume_from,
            fingerprint=digest,
        )

    def _known_labels(self, y: Any, n: int) -> np.ndarray | None:
        """The few known labels of ``y`` (N,) int with -1 unknown, checked; None without
        any (no ``y``, no -1 in it, all -1, or ``contrastive="supcon"``, whose term reads
        ``y`` itself).
        """
        if not marks_unknown(y) or self.contrastive == "supcon":
            return None
        known = check_partial_labels(y, n, self.n_clusters)
        if not (known >= 0).any():
            return None
        if self.contrastive != "simclr":
            raise ValueError(
                "Known labels in y enter as supervised-contrastive positives in place of "
                "NT-Xent: expected contrastive='simclr' with them, got "
                f"contrastive={self.contrastive!r}."
            )
        return known

    def _build_objective(self, labelled: bool = False) -> Objective:
        """The loss terms; ``labelled``: few known labels, so NT-Xent becomes SupCon on them."""
        regularizers = {
            name: regularizer_from_spec(name, spec, self.temperature)
            for name, spec in (self.regularizers or {}).items()
        }
        contrastive: Any = self.contrastive
        if contrastive == "supcon" or (labelled and contrastive == "simclr"):
            contrastive = SupCon(LABELS, temperature=self.temperature)
            contrastive.watch_positives = not labelled  # few labels: lone anchors expected
        return build_objective(
            reconstruction=self.reconstruction,
            beta=self.beta if self.model == "vae" else 0.0,
            elements_per_sample=self.n_features_in_,
            kl_warmup=self.kl_warmup,
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
        return (
            VectorAugment()
            if self._input_ndim == 2 and self.image_shape is None
            else TwoViewAugment()
        )

    def _train_config(self, n_samples: int = 1) -> TrainConfig:
        """The representation stage's settings for ``n_samples`` training images (which
        ``epochs="auto"`` reads).
        """
        shape = getattr(self, "image_shape_", None)
        size = None
        if shape is not None and not (self._input_ndim == 2 and self.image_shape is None):
            size = int(np.prod(shape))
        options = {
            "epochs": auto_epochs(n_samples, size) if self.epochs == "auto" else self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "device": self.device,
            "progress": bool(self.verbose),
        }
        overrides = {"networks": DEFAULT_NETWORKS, **dict(self.train_config or {})}
        return config_from(options, overrides, type(self).__name__)

    def _new_clusterer(self, seed: int) -> StrataClusterer:
        """The clusterer of the strata: the clustering space's one owner."""
        model = getattr(self, "model_", None)
        return StrataClusterer(
            self.clusterer,
            self.n_clusters,
            normalize=True,
            blocks=len(model) if isinstance(model, Ensemble) else 1,
            manifold=self.manifold,
            random_state=seed,
        )
