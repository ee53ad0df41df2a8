"""Reference methods the benchmark compares stratify with.

- :func:`~stratify.analysis.baseline.pixel_pca_kmeans` (in the product): the pixel floor.
- :class:`SupervisedBaseline`: a torchvision ResNet-18 or ResNet-50 (for volumes R3D-18)
  with a stem for small images (:mod:`lab.resnet`), or any encoder module
  (stratify's own self-supervised trunk), trained or fine-tuned with the labels;
  :func:`medmnist_protocol` sets it up as in MedMNIST v2. It is trained by the one training
  loop (:func:`stratify.training.train`): the network is an
  :class:`~stratify.models.Autoencoder` whose encoder is the trunk and whose ``mu`` head, of
  size ``n_classes``, is the linear classifier, with the
  :class:`~stratify.losses.CrossEntropy` term.

Pretrained weights are read from a local file only (``torch.load(..., weights_only=True)``);
nothing is ever downloaded.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils.validation import check_is_fitted
from torch import nn

from lab.resnet import ARCHS, STEMS, load_weights, resnet18_trunk, resnet_trunk
from stratify._atomic import atomic_write
from stratify._random import seed_from
from stratify._validation import check_array_images, check_option
from stratify.analysis.metrics import auc_score
from stratify.losses import CrossEntropy, Objective
from stratify.models import Autoencoder, build_model
from stratify.training import TrainConfig, embed, train
from stratify.training.checkpoint import CHECKPOINT_NAME, fingerprint, fingerprinted

__all__ = [
    "ARCHS",
    "MEDMNIST_PROTOCOL",
    "STEMS",
    "SupervisedBaseline",
    "auc_score",
    "medmnist_protocol",
    "resnet18_trunk",
    "resnet_trunk",
]


def _label_column(y: Any) -> np.ndarray:
    """Labels as given, with MedMNIST's (N, 1) column flattened to (N,)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        raise ValueError(
            f"Expected one class label per image, got multi-label indicators of shape "
            f"{y.shape} (e.g. ChestMNIST); the supervised baseline is a single-label "
            "classifier."
        )
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


class SupervisedBaseline(ClassifierMixin, BaseEstimator):
    """A ResNet trained with labels: the supervised baseline, from scratch or by transfer.

    Trains on ``(X, y)`` with cross-entropy through :func:`stratify.training.train`. The
    trunk is a torchvision ResNet with a small-image stem (:func:`resnet_trunk`), optionally
    initialised from a local weights file, or any encoder module (e.g. a fitted
    Stratifier's ``model_.encoder``: stratify's own self-supervised trunk, fine-tuned).
    Without ``weights`` and with a named ``arch`` the network is trained from scratch
    (``from_scratch_``). :func:`medmnist_protocol` returns the MedMNIST v2 set-up.

    Parameters
    ----------
    epochs : int, default=20
        Epochs (the maximum with ``select="val_loss"`` and early stopping).
    batch_size : int, default=128
    lr : float, default=1e-3
        Peak learning rate.
    weight_decay : float, default=1e-4
    patience : int or None, default=5
        Early-stopping patience in epochs (``select="val_loss"``, with validation data).
    weights : path, optional
        Local trunk weights (see :func:`resnet_trunk`); tensors that do not match are listed
        in ``skipped_weights_``.
    stem_stride : int, default=1
    arch : {"resnet18", "resnet50"} or torch.nn.Module, default="resnet18"
        A module is deep-copied and fine-tuned as the trunk: it maps ``(N, C, *S)`` to
        ``(N, F)``.
    stem : {"small", "medmnist"}, default="small"
        See :data:`STEMS` (named ``arch`` only).
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
    scheduler : {"cosine", "multistep", "none"}, default="cosine"
        ``"multistep"``: x0.1 at 50 % and 75 % of the epochs.
    warmup_epochs : float, default=1.0
    select : {"val_loss", "val_auc"}, default="val_loss"
        With validation data: ``"val_loss"`` early-stops on the validation loss (``patience``)
        and keeps the best weights; ``"val_auc"`` trains every epoch and keeps the weights of
        the epoch with the highest validation AUC (MedMNIST's model selection).
    device : str, default="auto"
    random_state : int, optional
    verbose : bool, default=False
        Progress bar.
    checkpoint_dir : path, optional
        Folder for the training checkpoint (``last.pt``: weights, optimiser, schedule, random
        states, history and the best epoch so far, written atomically after every epoch), so
        that a fit stopped part-way (an interruption, a crash) can go on with ``resume``.
        Without ``resume`` a folder that already holds a checkpoint is refused.
    resume : bool, default=False
        Continue the fit whose checkpoint is in ``checkpoint_dir`` (start afresh when there
        is none yet). Only the same fit resumes: images, labels, validation data, trunk and
        every other parameter but ``verbose``, ``device`` and ``checkpoint_dir`` (checked by
        a fingerprint). On a CPU the resumed fit ends with the weights of an uninterrupted one.

    Attributes
    ----------
    model_ : Autoencoder
        Trunk + linear head (``mu_head``, ``n_classes`` outputs); no decoder.
    classes_ : numpy.ndarray, shape (n_classes,)
    history_ : pandas.DataFrame
        The training loop's history (``cross_entropy``, ``val_loss``, ``val_score`` = the
        validation AUC with ``select="val_auc"``, ``lr``, ...).
    best_epoch_ : int or None
    resumed_epochs_ : int
        Epochs restored from the checkpoint in ``checkpoint_dir`` (trained by an earlier,
        interrupted fit; their time is in ``history_["seconds"]``); 0 for a fresh fit.
    from_scratch_ : bool
    loaded_weights_ : list of str
    skipped_weights_ : dict of str to str
        Tensors of ``weights`` that were not loaded, with the reason.
    n_features_in_ : int
    image_shape_ : tuple of int
    """

    def __init__(
        self,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int | None = 5,
        weights: str | os.PathLike | None = None,
        stem_stride: int = 1,
        arch: str | nn.Module = "resnet18",
        stem: str = "small",
        optimizer: str = "adamw",
        scheduler: str = "cosine",
        warmup_epochs: float = 1.0,
        select: str = "val_loss",
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.weights = weights
        self.stem_stride = stem_stride
        self.arch = arch
        self.stem = stem
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.warmup_epochs = warmup_epochs
        self.select = select
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume

    def _codes(self, y: Any, n: int, name: str) -> np.ndarray:
        y = _label_column(y)
        if y.shape != (n,):
            raise ValueError(
                f"Expected {name} of shape ({n},) (one label per image), got shape {y.shape}."
            )
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"Expected {name} among the training classes "
                f"{self.classes_.tolist()}, got {np.unique(y[unknown]).tolist()}."
            )
        return np.searchsorted(self.classes_, y).astype(np.float32)

    def _config(self, selects: bool) -> TrainConfig:
        """The training configuration (validated before any data work)."""
        owner = type(self).__name__
        check_option(self.select, "select", owner, {"val_loss", "val_auc"})
        if not isinstance(self.arch, nn.Module):
            check_option(self.arch, "arch", owner, set(ARCHS))
        check_option(self.stem, "stem", owner, set(STEMS))
        check_option(self.resume, "resume", owner, {True, False})
        if self.resume and self.checkpoint_dir is None:
            raise ValueError(
                f"Expected a checkpoint_dir with resume=True in {owner}, got checkpoint_dir=None."
            )
        by_loss = selects and self.select == "val_loss"
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            warmup_epochs=self.warmup_epochs,
            patience=self.patience if by_loss else None,
            restore_best=selects,
            device=self.device,
            progress=bool(self.verbose),
            checkpoint_dir=self.checkpoint_dir,
        )

    def _trunk(self) -> nn.Module:
        if isinstance(self.arch, nn.Module):
            trunk = copy.deepcopy(self.arch)
            self.loaded_weights_, self.skipped_weights_ = (
                load_weights(trunk, self.weights) if self.weights is not None else ([], {})
            )
            return trunk
        trunk, self.loaded_weights_, self.skipped_weights_ = resnet_trunk(
            self.image_shape_,
            arch=self.arch,
            stem=self.stem,
            weights=self.weights,
            stem_stride=self.stem_stride,
        )
        return trunk

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> SupervisedBaseline:
        """Train on labelled images.

        Parameters
        ----------
        X : array of shape (N, C, H, W) or (N, C, D, H, W)
            uint8 or floats in [0, 1].
        y : array of shape (N,) or (N, 1)
            Class labels.
        X_val, y_val : arrays, optional
            Validation split for model selection (both or neither).

        Returns
        -------
        self
        """
        if (X_val is None) != (y_val is None):
            raise ValueError(
                "Expected X_val and y_val together (both or neither), got only "
                f"{'X_val' if y_val is None else 'y_val'}."
            )
        config = self._config(selects=X_val is not None)
        X = check_array_images(X)
        self.classes_ = np.unique(_label_column(y))
        if len(self.classes_) < 2:
            raise ValueError(f"Expected at least 2 classes in y, got {self.classes_.tolist()}.")
        codes = self._codes(y, len(X), "y")
        self.image_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        val: dict[str, Any] = {}
        if X_val is not None:
            X_val = check_array_images(X_val, name="X_val")
            if X_val.shape[1:] != X.shape[1:]:
                raise ValueError(
                    f"Expected X_val of image shape {X.shape[1:]}, got {X_val.shape[1:]}."
                )
            val_codes = self._codes(y_val, len(X_val), "y_val")
            val = {"val_images": X_val, "val_labels": val_codes}
            if self.select == "val_auc":
                val["val_score"] = lambda model: auc_score(
                    val_codes.astype(np.int64), _probabilities(model, X_val)
                )
        seed = seed_from(self.random_state)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; global RNG untouched
            torch.manual_seed(seed)
            self.model_ = build_model(
                "ae", self.image_shape_, latent_dim=len(self.classes_), encoder=self._trunk()
            )
        self.from_scratch_ = not self.loaded_weights_ and not isinstance(self.arch, nn.Module)
        resume_from, digest = None, None
        if self.checkpoint_dir is not None:
            digest = self._fingerprint(X, codes, val)
            if self.resume and (Path(self.checkpoint_dir) / CHECKPOINT_NAME).is_file():
                resume_from = self.checkpoint_dir
        result = train(
            self.model_,
            Objective({"cross_entropy": CrossEntropy()}),
            X,
            labels=codes,
            config=config,
            random_state=seed,
            resume_from=resume_from,
            fingerprint=digest,
            **val,
        )
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        self.resumed_epochs_ = result.resumed_epochs
        return self

    #: Parameters a resumed fit may change.
    _NOT_FINGERPRINTED = frozenset(
        {"resume", "verbose", "device", "checkpoint_dir", "arch", "weights"}
    )

    def _fingerprint(self, X: np.ndarray, codes: np.ndarray, val: Mapping[str, Any]) -> str:
        """Digest of the data, the parameters and the starting trunk (its initial weights:
        a module ``arch`` or a ``weights`` file count by content, not by name).
        """
        params = fingerprinted(self.get_params(deep=False), self._NOT_FINGERPRINTED)
        params["arch"] = self.arch if isinstance(self.arch, str) else type(self.arch).__name__
        arrays = [("labels", codes)]
        if val:
            arrays += [("val_images", val["val_images"]), ("val_labels", val["val_labels"])]
        arrays += [
            (f"trunk.{name}", value.detach().cpu().numpy())
            for name, value in self.model_.encoder.state_dict().items()
        ]
        return fingerprint(params, X, arrays)

    def save_trunk(self, path: str | os.PathLike) -> Path:
        """Save the trained trunk's state dict (torchvision names, no classifier head), the
        file another baseline's ``weights`` takes: a local pretrained source for transfer.

        Written atomically (a failed write leaves any earlier file in place). With the same
        ``arch`` and ``stem`` it loads whole, the stem included when the channels agree.

        Parameters
        ----------
        path : path-like

        Returns
        -------
        pathlib.Path
        """
        check_is_fitted(self)
        state = {
            name: value.detach().cpu().clone()
            for name, value in self.model_.encoder.state_dict().items()
        }
        return atomic_write(path, lambda tmp: torch.save(state, tmp))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        X = check_array_images(X)
        if X.shape[1:] != self.image_shape_:
            raise ValueError(f"Expected images of shape {self.image_shape_}, got {X.shape[1:]}.")
        return _probabilities(self.model_, X)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes, shape (N,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Test accuracy, balanced accuracy and AUC (binary; one-vs-rest macro average for
        more classes).

        Returns
        -------
        dict
            ``{"acc": float, "bacc": float, "auc": float}``; AUC is NaN when ``y`` holds a
            single class.
        """
        proba = self.predict_proba(X)
        codes = self._codes(y, len(proba), "y").astype(np.int64)
        predicted = np.argmax(proba, axis=1)
        return {
            "acc": float(np.mean(predicted == codes)),
            "bacc": float(balanced_accuracy_score(codes, predicted)),
            "auc": auc_score(codes, proba),
        }


def _probabilities(model: Autoencoder, X: np.ndarray) -> np.ndarray:
    logits = torch.from_numpy(embed(model, X, batch_size=256))
    return torch.softmax(logits.double(), dim=1).numpy()


#: The MedMNIST v2 training protocol (Yang et al. 2023, "MedMNIST v2", Sci. Data 10:41, and
#: the authors' public ``MedMNIST/experiments`` scripts): cross-entropy, Adam at 1e-3 without
#: weight decay, batch 128 (32 for 3D), 100 epochs, learning rate x0.1 at epochs 50 and 75,
#: no augmentation, the model of the epoch with the best validation AUC; the ResNet (28) has
#: a 3x3 stride-1 stem without max-pooling and inputs normalised to [-1, 1].
MEDMNIST_PROTOCOL: dict[str, Any] = {
    "epochs": 100,
    "batch_size": 128,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "patience": None,
    "stem": "medmnist",
    "optimizer": "adam",
    "scheduler": "multistep",
    "warmup_epochs": 0.0,
    "select": "val_auc",
}
MEDMNIST_3D_BATCH = 32


def medmnist_protocol(
    arch: str | nn.Module = "resnet18", *, volumes: bool = False, **overrides: Any
) -> SupervisedBaseline:
    """A :class:`SupervisedBaseline` set up as in MedMNIST v2 (:data:`MEDMNIST_PROTOCOL`).

    Parameters
    ----------
    arch : {"resnet18", "resnet50"} or torch.nn.Module, default="resnet18"
    volumes : bool, default=False
        3D inputs: batch 32 (R3D-18 trunk with the same stem).
    **overrides
        Any other :class:`SupervisedBaseline` parameter (``weights``, ``device``,
        ``random_state``, ...). A shorter ``epochs`` keeps the milestones at 50 % and 75 %:
        name such a run "short", it is not the protocol.

    Returns
    -------
    SupervisedBaseline
    """
    params = {**MEDMNIST_PROTOCOL, "arch": arch}
    if volumes:
        params["batch_size"] = MEDMNIST_3D_BATCH
    return SupervisedBaseline(**{**params, **overrides})
