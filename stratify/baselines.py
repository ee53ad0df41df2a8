"""Reference methods the benchmark compares stratify with.

- :func:`pixel_pca_kmeans`: k-means on the first principal components of the raw pixels, the
  floor any learned representation must beat.
- :class:`SupervisedBaseline`: a torchvision ResNet-18 (for volumes its 3D variant, R3D-18)
  with a stem for small images, trained with the labels. It is trained by the one training
  loop (:func:`stratify.training.train`): the network is an :class:`~stratify.models.Autoencoder`
  whose encoder is the ResNet trunk and whose ``mu`` head, of size ``n_classes``, is the linear
  classifier, with the :class:`~stratify.losses.CrossEntropy` term.

Pretrained weights are read from a local file only (``torch.load(..., weights_only=True)``);
nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.utils.validation import check_is_fitted
from torch import nn

from stratify._random import seed_from
from stratify._validation import check_array_images, check_in_range
from stratify.losses import CrossEntropy, Objective
from stratify.models import build_model
from stratify.training import TrainConfig, embed, train

__all__ = ["SupervisedBaseline", "pixel_pca_kmeans", "resnet18_trunk"]


# ----------------------------------------------------------------------------- pixels
def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1).astype(np.float32) / (
        255.0 if images.dtype == np.uint8 else 1.0
    )


def pixel_pca_kmeans(
    train_images: Any,
    n_clusters: int,
    test_images: Any = None,
    *,
    n_components: int = 50,
    random_state: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
    """k-means on the principal components of the raw pixels.

    Parameters
    ----------
    train_images : array of shape (N, C, H, W) or (N, C, D, H, W)
        uint8 (scaled by 1/255) or floats.
    n_clusters : int
        k.
    test_images : array of shape (M, ...), optional
        Assigned to the nearest training centroid after the training PCA projection.
    n_components : int, default=50
        Capped at ``min(N, pixels)``.
    random_state : int, optional

    Returns
    -------
    train_labels : numpy.ndarray of int, shape (N,)
    test_labels : numpy.ndarray of int, shape (M,) or None
    train_embedding : numpy.ndarray of float32, shape (N, n_components)
    test_embedding : numpy.ndarray of float32, shape (M, n_components) or None
    """
    train = check_array_images(train_images, name="train_images")
    n_clusters = check_in_range(n_clusters, "n_clusters", "pixel_pca_kmeans", kind=int, low=1)
    if n_clusters > len(train):
        raise ValueError(
            f"Expected n_clusters <= the number of training images ({len(train)}), got "
            f"{n_clusters}."
        )
    flat = _flat(train)
    components = min(int(n_components), *flat.shape)
    pca = PCA(components, random_state=random_state).fit(flat)
    train_z = pca.transform(flat).astype(np.float32)
    kmeans = KMeans(n_clusters, n_init=10, random_state=random_state).fit(train_z)
    if test_images is None:
        return kmeans.labels_.astype(np.int64), None, train_z, None
    test = check_array_images(test_images, name="test_images")
    if test.shape[1:] != train.shape[1:]:
        raise ValueError(
            f"Expected test_images of the training image shape {train.shape[1:]}, got "
            f"{test.shape[1:]}."
        )
    test_z = pca.transform(_flat(test)).astype(np.float32)
    return kmeans.labels_.astype(np.int64), kmeans.predict(test_z).astype(np.int64), train_z, test_z


# ---------------------------------------------------------------------------- ResNet-18
def _small_stem_2d(in_channels: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
    )


def _small_stem_3d(in_channels: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(in_channels, 64, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm3d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(3, stride=2, padding=1),
    )


def resnet18_trunk(
    image_shape: Sequence[int], *, weights: str | os.PathLike | None = None, stem_stride: int = 1
) -> tuple[nn.Module, list[str]]:
    """ResNet-18 (2D) or R3D-18 (3D) trunk with a stem for small images.

    The 7x7 stride-2 stem (2D) or 3x7x7 stem (3D) is replaced by a 3x3(x3) convolution with
    ``stem_stride`` and ``C`` input channels, followed by a stride-2 max-pooling (ResNet's
    own in 2D, an added one in 3D); the final ``fc`` is removed, so the trunk maps
    ``(N, C, H, W)`` or ``(N, C, D, H, W)`` to ``(N, 512)``. At 28 px the first residual
    stage sees 14 x 14 with ``stem_stride=1`` and 7 x 7 with ``stem_stride=2`` (the
    benchmark's CPU setting; 7^3 for volumes).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(C, D, H, W)``.
    weights : path, optional
        A local state dict of ``torchvision.models.resnet18`` (or ``video.r3d_18``), e.g.
        ImageNet weights saved with ``torch.save(model.state_dict(), path)``. Loaded with
        ``weights_only=True``; every tensor whose name and shape match is copied (the new stem
        and the classifier never match). Nothing is downloaded.
    stem_stride : int, default=1
        Stride of the stem convolution (2 halves the cost of every later layer on a CPU).

    Returns
    -------
    trunk : nn.Module
        The torchvision network itself, its ``fc`` an identity.
    loaded : list of str
        Names of the tensors copied from ``weights`` (empty without weights).
    """
    import torchvision

    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"Expected image_shape (C, H, W) or (C, D, H, W), got {tuple(image_shape)}."
        )
    stride = check_in_range(stem_stride, "stem_stride", "resnet18_trunk", kind=int, low=1)
    if len(shape) == 3:
        net = torchvision.models.resnet18(weights=None)
        stem_out = _small_stem_2d(shape[0], stride)
    else:
        net = torchvision.models.video.r3d_18(weights=None)
        stem_out = _small_stem_3d(shape[0], stride)
    loaded = _load_weights(net, weights) if weights is not None else []
    if len(shape) == 3:
        net.conv1, net.bn1, net.relu = stem_out[0], stem_out[1], stem_out[2]
    else:
        net.stem = stem_out
    net.fc = nn.Identity()
    replaced = ("conv1.", "bn1.", "stem.", "fc.")
    return net, [name for name in loaded if not name.startswith(replaced)]


def _load_weights(net: nn.Module, path: str | os.PathLike) -> list[str]:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Expected a local weights file (nothing is downloaded), got a missing path: {path}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"Could not read weights from {path} as a torch state dict: {error}"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"Expected a state dict (name -> tensor) in {path}, got "
                         f"{type(state).__name__}.")
    own = net.state_dict()
    matched = {k: v for k, v in state.items()
               if k in own and isinstance(v, torch.Tensor) and v.shape == own[k].shape}
    if not matched:
        raise ValueError(
            f"No tensor of {path} matches the {type(net).__name__} layout (names and shapes); "
            "expected a torchvision resnet18 (2D) or r3d_18 (3D) state dict."
        )
    net.load_state_dict(matched, strict=False)
    return sorted(matched)


def _label_column(y: Any) -> np.ndarray:
    """Labels as given, with MedMNIST's (N, 1) column flattened to (N,)."""
    y = np.asarray(y)
    return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y


class SupervisedBaseline(ClassifierMixin, BaseEstimator):
    """ResNet-18 (2D) or R3D-18 (3D) trained with labels: the supervised transfer baseline.

    Trains on ``(X, y)`` with cross-entropy through :func:`stratify.training.train`; with
    validation data the fit is early-stopped on the validation loss and the best weights are
    kept. Without ``weights`` the network is trained from scratch (``from_scratch_``).

    Parameters
    ----------
    epochs : int, default=20
        Maximum epochs.
    batch_size : int, default=128
    lr : float, default=1e-3
        Peak learning rate (AdamW, cosine schedule with one warm-up epoch).
    weight_decay : float, default=1e-4
    patience : int, default=5
        Early-stopping patience in epochs (used only with validation data).
    weights : path, optional
        Local trunk weights (see :func:`resnet18_trunk`).
    stem_stride : int, default=1
    device : str, default="auto"
    random_state : int, optional
    verbose : bool, default=False
        Progress bar.

    Attributes
    ----------
    model_ : Autoencoder
        Trunk + linear head (``mu_head``, ``n_classes`` outputs); no decoder.
    classes_ : numpy.ndarray, shape (n_classes,)
    history_ : pandas.DataFrame
        The training loop's history (``cross_entropy``, ``val_loss``, ...).
    best_epoch_ : int or None
    from_scratch_ : bool
    loaded_weights_ : list of str
    n_features_in_ : int
    image_shape_ : tuple of int
    """

    def __init__(
        self,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        patience: int = 5,
        weights: str | os.PathLike | None = None,
        stem_stride: int = 1,
        device: str = "auto",
        random_state: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.weights = weights
        self.stem_stride = stem_stride
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _codes(self, y: Any, n: int, name: str) -> np.ndarray:
        y = _label_column(y)
        if y.shape != (n,):
            raise ValueError(f"Expected {name} of shape ({n},) (one label per image), got "
                             f"shape {y.shape}.")
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(f"Expected {name} among the training classes "
                             f"{self.classes_.tolist()}, got {np.unique(y[unknown]).tolist()}.")
        return np.searchsorted(self.classes_, y).astype(np.float32)

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> SupervisedBaseline:
        """Train on labelled images.

        Parameters
        ----------
        X : array of shape (N, C, H, W) or (N, C, D, H, W)
            uint8 or floats in [0, 1].
        y : array of shape (N,) or (N, 1)
            Class labels.
        X_val, y_val : arrays, optional
            Validation split for early stopping (both or neither).

        Returns
        -------
        self
        """
        X = check_array_images(X)
        if (X_val is None) != (y_val is None):
            raise ValueError("Expected X_val and y_val together (both or neither), got only "
                             f"{'X_val' if y_val is None else 'y_val'}.")
        self.classes_ = np.unique(_label_column(y))
        if len(self.classes_) < 2:
            raise ValueError(f"Expected at least 2 classes in y, got {self.classes_.tolist()}.")
        codes = self._codes(y, len(X), "y")
        self.image_shape_ = tuple(int(s) for s in X.shape[1:])
        self.n_features_in_ = int(np.prod(self.image_shape_))
        val = {}
        if X_val is not None:
            X_val = check_array_images(X_val, name="X_val")
            if X_val.shape[1:] != X.shape[1:]:
                raise ValueError(f"Expected X_val of image shape {X.shape[1:]}, got "
                                 f"{X_val.shape[1:]}.")
            val = {"val_images": X_val, "val_labels": self._codes(y_val, len(X_val), "y_val")}
        seed = seed_from(self.random_state)
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; global RNG untouched
            torch.manual_seed(seed)
            trunk, self.loaded_weights_ = resnet18_trunk(
                self.image_shape_, weights=self.weights, stem_stride=self.stem_stride
            )
            self.model_ = build_model("ae", self.image_shape_, latent_dim=len(self.classes_),
                                      encoder=trunk)
        self.from_scratch_ = not self.loaded_weights_
        config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, optimizer="adamw", warmup_epochs=1.0,
            patience=self.patience if val else None, device=self.device,
            progress=bool(self.verbose),
        )
        result = train(self.model_, Objective({"cross_entropy": CrossEntropy()}), X,
                       labels=codes, config=config, random_state=seed, **val)
        self.history_ = result.history
        self.best_epoch_ = result.best_epoch
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (N, n_classes), columns in ``classes_`` order."""
        check_is_fitted(self)
        X = check_array_images(X)
        if X.shape[1:] != self.image_shape_:
            raise ValueError(f"Expected images of shape {self.image_shape_}, got "
                             f"{X.shape[1:]}.")
        logits = torch.from_numpy(embed(self.model_, X, batch_size=256))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes, shape (N,)."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def evaluate(self, X: Any, y: Any) -> dict[str, float]:
        """Test accuracy and AUC (binary; one-vs-rest macro average for more classes).

        Returns
        -------
        dict
            ``{"acc": float, "auc": float}``; AUC is NaN when ``y`` holds a single class.
        """
        proba = self.predict_proba(X)
        codes = self._codes(y, len(proba), "y").astype(np.int64)
        acc = float(np.mean(np.argmax(proba, axis=1) == codes))
        present = np.unique(codes)
        if len(present) < 2:
            auc = float("nan")
        elif proba.shape[1] == 2:
            auc = float(roc_auc_score(codes, proba[:, 1]))
        else:
            auc = float(roc_auc_score(codes, proba, multi_class="ovr", average="macro",
                                      labels=np.arange(proba.shape[1])))
        return {"acc": acc, "auc": auc}
