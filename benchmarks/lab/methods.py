"""The benchmark's methods, each a named entry in one registry (:data:`METHODS`).

A method fits on a dataset's training split (without labels, except the supervised
baseline) and returns strata (or predicted classes) for the scored samples, with the latents
the representation probes read. Methods that differ only in the clustering backend share one
trained network per (dataset, seed): the runner keeps the last fitted Stratifiers in a small
cache, and :meth:`stratify.Stratifier.recluster` re-clusters their latents.

========================  ====================================================================
method                    what it is
========================  ====================================================================
``pca-kmeans``            pixel PCA (50 components) + k-means
``ae-kmeans``             autoencoder (BCE reconstruction), k-means on its latents
``vae-kmeans``            variational autoencoder (ELBO), k-means
``simclr-kmeans``         contrastive encoder only (NT-Xent on two augmented views), k-means
``default``               ``Stratifier()`` with every setting default (the one "default" here:
                          AE + NT-Xent, epochs "auto", the spectral consensus); the
                          ``default-*`` rows recluster its network with other backends
``ae-simclr-kmeans``      autoencoder + NT-Xent (the Ferrante et al. setup) on the committed
                          rows' older budget, k-means
``vae-simclr-kmeans``     VAE + NT-Xent, k-means
``vae-simclr-gmm``        VAE + NT-Xent, GMM on the normalised latents (it reclusters the
                          network of ``vae-simclr-kmeans``, which trains identically); VAE
                          rows also score their per-stratum samples (stratum fidelity,
                          diversity)
``ae-simclr-gmm``,        the ``ae-simclr`` network's latents clustered by a Gaussian mixture,
``ae-simclr-hdbscan``     by HDBSCAN (noise counts as an error in ACC)
``ae-simclr+yaware``      + y-Aware InfoNCE on the dataset's continuous column (cohort: age;
                          slices: position)
``ae-simclr+clinical``    + clinically-labelled contrastive (cohort: weak label and site)
``ae-simclr+wsp``         + weakly-supervised positional (slices: weak label x position)
``guided-1pct``,          the default recipe told the classes of a stratified 1 % / 10 % of
``guided-10pct``          train (``y`` = -1 for the rest): SupCon on them, the strata
                          anchored by them (``StrataClusterer``'s ``anchoring="auto"``)
``resnet18-medmnist-1pct``, the MedMNIST v2 protocol (ResNet-18 (28) from scratch) trained on
``resnet18-medmnist-10pct`` the labelled images of ``guided-1pct`` / ``guided-10pct`` (the same
                          stratified, seeded subset of train) and selected on the same share of
                          val (a researcher who bought 1 % of the labels has no fully labelled
                          val split either): the supervised answer to the same budget
``resnet18-supervised``   torchvision ResNet-18 trained with the labels on train, early-stopped
                          on val (3D: its 3D variant); trained from scratch unless a local
                          weights file is given
========================  ====================================================================
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lab.datasets import BenchmarkData
from stratify.data._files import md5sum

__all__ = ["METHODS", "Method", "MethodResult", "Settings"]


@dataclass(frozen=True)
class Settings:
    """How long and how big the methods train, for one run.

    Attributes
    ----------
    epochs : int
        Epochs of the deep unsupervised methods.
    batch_size : int
    supervised_epochs : int
        Maximum epochs of the supervised baseline (early stopping may end it sooner).
    supervised_weights : str or None
        Local file of pretrained trunk weights for the supervised baseline (never downloaded).
    device : str
    verbose : bool
        Training progress bars.
    model_cache : str or None
        Folder of saved fitted Stratifiers (``<dataset>-<seed>-<digest>.pt``, the digest of
        the data, seed and every training parameter): a deep method loads its network from
        there when present and saves it there after training. Clustering parameters are not
        part of the digest; a loaded model is clustered with the method's own. Delete the
        folder after changing training code.
    checkpoints : str or None
        Folder for the supervised protocol rows' training checkpoints (one subfolder per
        dataset, row and seed, written after every epoch): a row stopped part-way resumes at
        its last epoch on the next start, and its subfolder is removed once the row is done.
    """

    epochs: int = 20
    batch_size: int = 256
    supervised_epochs: int = 20
    supervised_weights: str | None = None
    device: str = "auto"
    verbose: bool = False
    model_cache: str | None = None
    checkpoints: str | None = None


@dataclass
class MethodResult:
    """What one method produced on one dataset and seed.

    Attributes
    ----------
    train_labels : numpy.ndarray of int, shape (N_train,)
        Strata of the training samples (``-1`` = noise).
    test_labels : numpy.ndarray of int, shape (N_test,)
        Strata (or predicted classes, supervised) of the scored samples.
    train_embedding, test_embedding : numpy.ndarray of shape (N, D) or None
        Latents for the kNN and linear probes (None: no probe).
    n_clusters : int
        Strata found (classes, supervised).
    model : object or None
        The fitted estimator (figures read it).
    extra : dict
        Method-specific scores (supervised: ``auc``, ``from_scratch``).
    """

    train_labels: np.ndarray
    test_labels: np.ndarray
    train_embedding: np.ndarray | None
    test_embedding: np.ndarray | None
    n_clusters: int
    model: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registry entry.

    Attributes
    ----------
    name : str
    kind : {"unsupervised", "supervised"}
    description : str
    run : callable
        ``run(data, seed, settings) -> MethodResult``.
    applies : callable
        ``applies(data, settings) -> None`` when the method can run on ``data`` with these
        settings, else the reason.
    """

    name: str
    kind: str
    description: str
    run: Callable[[BenchmarkData, int, Settings], MethodResult]
    applies: Callable[[BenchmarkData, Settings], str | None] = lambda data, settings: None


# ----------------------------------------------------------------------------- pixels
def _pca_kmeans(data: BenchmarkData, seed: int, settings: Settings) -> MethodResult:
    from stratify.analysis.baseline import pixel_pca_kmeans

    test = None if data.transductive else data.test.images
    train_labels, test_labels, train_z, test_z = pixel_pca_kmeans(
        data.train.images, data.n_classes, test, random_state=seed
    )
    if data.transductive or test_labels is None:
        test_labels, test_z = train_labels, train_z
    return MethodResult(train_labels, test_labels, train_z, test_z, len(np.unique(train_labels)))


# ------------------------------------------------------------------------ deep methods
_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_SIZE = 2


def clear_cache() -> None:
    """Forget the trained networks kept for clusterer variants."""
    _CACHE.clear()


#: Stratifier parameters that decide the strata but not the trained network.
_CLUSTERING_PARAMS = ("n_clusters", "clusterer", "manifold")


def cache_file(
    folder: str, data: BenchmarkData, seed: int, model: Any, labelled: str | None = None
) -> Path:
    """Where ``--model-cache`` keeps the network of the unfitted Stratifier ``model`` trained
    on ``data.train`` with ``seed`` (``labelled``: the digest of the known labels, if any).

    The name's digest covers the data, the seed and every training parameter, not the
    clustering ones (a loaded model is reclustered).
    """
    from stratify.training.config import auto_epochs

    training = {
        k: v
        for k, v in model.get_params().items()
        if k not in (*_CLUSTERING_PARAMS, "device", "verbose")
    }
    digest = hashlib.blake2b(
        json.dumps(
            [
                data.name,
                len(data.train),
                int(np.asarray(data.train.images).sum() % 2**31),
                seed,
                training,
                auto_epochs(len(data.train)),
            ]
            + ([] if labelled is None else [labelled]),
            sort_keys=True,
            default=str,
        ).encode(),
        digest_size=8,
    ).hexdigest()
    return Path(folder) / f"{data.name}-{seed}-{digest}.pt"


def fitted_stratifier(
    data: BenchmarkData,
    seed: int,
    settings: Settings,
    params: dict[str, Any],
    known: np.ndarray | None = None,
) -> Any:
    """A Stratifier fitted on ``data.train`` with ``params`` (and the few ``known`` labels,
    -1 unknown), shared across clusterers (in memory, and on disk with
    ``settings.model_cache``).
    """
    from stratify import Stratifier

    labelled = None if known is None else hashlib.md5(np.asarray(known).tobytes()).hexdigest()
    key = json.dumps(
        [data.name, len(data.train), seed, settings.epochs, settings.batch_size, params]
        + ([] if labelled is None else [labelled]),
        sort_keys=True,
        default=str,
    )
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    options = {"epochs": settings.epochs, "batch_size": settings.batch_size, **params}
    model = Stratifier(
        data.n_classes,
        device=settings.device,
        random_state=seed,
        verbose=settings.verbose,
        **options,
    )
    path = (
        None
        if settings.model_cache is None
        else cache_file(settings.model_cache, data, seed, model, labelled)
    )
    if path is not None and path.is_file():
        stored = Stratifier.load(path)
        wanted = {k: model.get_params()[k] for k in _CLUSTERING_PARAMS}
        stored.set_params(device=settings.device, verbose=settings.verbose)
        if any(stored.get_params()[k] != wanted[k] for k in _CLUSTERING_PARAMS):
            stored = stored.recluster(
                wanted["clusterer"],
                wanted["n_clusters"],
                manifold=wanted["manifold"],
            )
        model = stored
    else:
        model.fit(data.train.images, known, metadata=data.train.metadata)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            model.save(path)
    _CACHE[key] = model
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return model


def _deep(
    params: Mapping[str, Any],
    clusterer: str | None = None,
    manifold: str | None = "keep",
    regularizer: str | None = None,
    whiten: bool | str | None = None,
) -> Callable[[BenchmarkData, int, Settings], MethodResult]:
    """A method that fits a Stratifier with ``params`` (the network is shared by every method
    with the same ``params``; ``epochs`` / ``batch_size`` there override the profile's) and
    reclusters it with ``clusterer`` / ``manifold`` when given. The research clusterings
    the product does not offer (``whiten``, ``manifold="auto"``) are a
    :class:`~stratify.cluster.StrataClusterer` of the fitted latents (:func:`_research`).
    """

    def run(data: BenchmarkData, seed: int, settings: Settings) -> MethodResult:
        options = dict(params)
        if regularizer is not None:
            options["regularizers"] = {regularizer: dict(data.regularizers[regularizer])}
        model = fitted_stratifier(data, seed, settings, options)
        test_z = model.embedding_ if data.transductive else model.transform(data.test.images)
        if whiten is not None or manifold == "auto":
            train_labels, test_labels = _research(model, test_z, seed, clusterer, manifold, whiten)
            return MethodResult(
                train_labels, test_labels, model.embedding_, test_z, model.n_clusters_, model
            )
        if clusterer is not None or manifold != "keep":
            model = model.recluster(clusterer, manifold=manifold)
        if data.transductive:
            test_labels = model.labels_
        else:
            test_labels = model.predict(data.test.images)
        extra = _generation_scores(model, data, seed) if model.model == "vae" else {}
        return MethodResult(
            model.labels_,
            test_labels,
            model.embedding_,
            test_z,
            model.n_clusters_,
            model,
            extra=extra,
        )

    return run


def _research(
    model: Any,
    test_z: np.ndarray,
    seed: int,
    clusterer: str | None,
    manifold: str | None,
    whiten: bool | str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Strata of a fitted Stratifier's latents by a research clustering (whitening, the
    ``manifold="auto"`` choice), through the public :class:`~stratify.cluster.StrataClusterer`
    on ``embedding_``; returns the training and the ``test_z`` strata.
    """
    from stratify.cluster import StrataClusterer

    strata = StrataClusterer(
        clusterer or model.clusterer,
        model.n_clusters,
        normalize=True,
        manifold=None if manifold == "keep" else manifold,
        whiten=whiten,
        random_state=seed,
    ).fit(model.embedding_)
    return strata.labels_, strata.predict(test_z)


def _guided(fraction: float) -> Callable[[BenchmarkData, int, Settings], MethodResult]:
    """The default recipe told the classes of a stratified, seeded ``fraction`` of the
    training images (the priors protocol's subsets, :func:`~lab.priors.
    label_subset`), -1 for the others; k = number of classes.
    """

    def run(data: BenchmarkData, seed: int, settings: Settings) -> MethodResult:
        from lab.priors import label_subset

        labels = np.asarray(data.train.labels, dtype=np.int64)
        known = np.full(len(labels), -1, dtype=np.int64)
        picked = label_subset(labels, fraction, seed)
        known[picked] = labels[picked]
        model = fitted_stratifier(data, seed, settings, dict(DEFAULT_PARAMS), known=known)
        if data.transductive:
            test_labels, test_z = model.labels_, model.embedding_
        else:
            test_z = model.transform(data.test.images)
            test_labels = model.predict(data.test.images)
        return MethodResult(
            model.labels_, test_labels, model.embedding_, test_z, model.n_clusters_, model
        )

    return run


#: Samples drawn per stratum to score a VAE's generation.
GENERATION_SAMPLES = 200


def _generation_scores(model: Any, data: BenchmarkData, seed: int) -> dict[str, float]:
    """Stratum fidelity (of samples and of reconstructions) and diversity ratio of the model's
    samples against the scored images.
    """
    quality = model.generation_quality(
        data.test.images, n_per_stratum=GENERATION_SAMPLES, random_state=seed
    )
    return {
        "fidelity": quality.attrs["fidelity"],
        "reconstruction_fidelity": quality.attrs["reconstruction_fidelity"],
        "diversity_ratio": quality.attrs["diversity_ratio"],
    }


def _needs(regularizer: str) -> Callable[[BenchmarkData, Settings], str | None]:
    def applies(data: BenchmarkData, settings: Settings) -> str | None:
        if regularizer in data.regularizers:
            return None
        return f"{data.name} has no metadata for the {regularizer} regularizer"

    return applies


# ------------------------------------------------------------------------- supervised
#: Stride of the baseline's stem convolution: 2 puts its first residual stage at 7 x 7 (7^3)
#: for 28-px inputs, which keeps the CPU grid within its time budget (stride 1 costs ~3.5x).
SUPERVISED_STEM_STRIDE = 2


def _supervised(data: BenchmarkData, seed: int, settings: Settings) -> MethodResult:
    from lab.baselines import SupervisedBaseline

    model = SupervisedBaseline(
        epochs=settings.supervised_epochs,
        weights=settings.supervised_weights,
        stem_stride=SUPERVISED_STEM_STRIDE,
        device=settings.device,
        random_state=seed,
        verbose=settings.verbose,
    )
    val = data.val
    model.fit(
        data.train.images,
        data.train.labels,
        X_val=None if val is None else val.images,
        y_val=None if val is None else val.labels,
    )
    return _classified(model, data)


def _classified(model: Any, data: BenchmarkData) -> MethodResult:
    """A fitted classifier's predictions and test scores (plain accuracy, no matching)."""
    scores = model.evaluate(data.test.images, data.test.labels)
    return MethodResult(
        model.predict(data.train.images),
        model.predict(data.test.images),
        None,
        None,
        len(model.classes_),
        model,
        extra={**scores, "from_scratch": model.from_scratch_},
    )


#: Epochs of the ``-short`` MedMNIST-protocol rows (the schedule keeps its drops at 50 % and
#: 75 %); every other protocol setting is the paper's.
SHORT_PROTOCOL_EPOCHS = 20


def _protocol(
    arch: str, *, short: bool = False, trunk: str = "scratch", fraction: float = 1.0
) -> Callable[[BenchmarkData, int, Settings], MethodResult]:
    """The MedMNIST v2 protocol (:func:`lab.baselines.medmnist_protocol`) with a trunk
    from scratch, from the ``--weights`` file, or stratify's own encoder pretrained on the
    training images without labels (the default Stratifier's network) and fine-tuned.
    ``fraction`` < 1 trains on the guided rows' stratified, seeded share of train
    (:func:`~lab.priors.label_subset`) and selects on the same share of val.
    """

    def run(data: BenchmarkData, seed: int, settings: Settings) -> MethodResult:
        from lab.baselines import MEDMNIST_PROTOCOL, medmnist_protocol
        from lab.priors import label_subset

        network: Any = arch
        if trunk == "stratify":
            network = fitted_stratifier(data, seed, settings, _AE_SIMCLR).model_.encoder
        share = "" if fraction >= 1 else f"-{round(fraction * 100)}pct"
        folder = (
            None
            if settings.checkpoints is None
            else Path(settings.checkpoints)
            / (f"{data.name}-{arch}-{trunk}{'-short' if short else ''}{share}-seed{seed}")
        )
        model = medmnist_protocol(
            network,
            volumes=data.train.images.ndim == 5,
            epochs=SHORT_PROTOCOL_EPOCHS if short else MEDMNIST_PROTOCOL["epochs"],
            weights=settings.supervised_weights if trunk == "file" else None,
            device=settings.device,
            random_state=seed,
            verbose=settings.verbose,
            checkpoint_dir=folder,
            resume=folder is not None,
        )
        if data.val is None:
            raise ValueError(f"Expected a validation split for {data.name!r}, got none.")
        train = label_subset(data.train.labels, fraction, seed)
        val = label_subset(data.val.labels, fraction, seed)
        model.fit(
            data.train.images[train],
            np.asarray(data.train.labels)[train],
            X_val=data.val.images[val],
            y_val=np.asarray(data.val.labels)[val],
        )
        if folder is not None:
            shutil.rmtree(folder)  # the row is done; its progress is no longer needed
        result = _classified(model, data)
        if model.weights is not None:
            result.extra["weights"] = _weights_source(model)
        return result

    return run


def _weights_source(model: Any) -> str:
    """Which file a transfer row started from and how much of it loaded (results column
    ``weights``): name, MD5 prefix, tensors loaded and skipped.
    """
    path = Path(model.weights)
    return (
        f"{path.name} (md5 {md5sum(path)[:12]}; {len(model.loaded_weights_)} tensors "
        f"loaded, {len(model.skipped_weights_)} skipped)"
    )


def _protocol_applies(
    trunk: str = "scratch", arch: str = "resnet18"
) -> Callable[[BenchmarkData, Settings], str | None]:
    def applies(data: BenchmarkData, settings: Settings) -> str | None:
        reason = _has_split(data, settings)
        if reason is None and data.val is None:
            reason = f"{data.name} has no validation split for the protocol's model selection"
        if reason is None and arch == "resnet50" and data.train.images.ndim == 5:
            reason = "torchvision has no 3D ResNet-50"
        if reason is None and trunk == "file" and not settings.supervised_weights:
            reason = "no --weights file was given (nothing is downloaded)"
        return reason

    return applies


def _has_split(data: BenchmarkData, settings: Settings) -> str | None:
    if data.transductive:
        return f"{data.name} has no train/test split to train a supervised model on"
    if data.train.groups is not None:
        return "slices: the supervised baseline runs on the volumes (the 3D flag itself)"
    return None


# --------------------------------------------------------------------------- registry
#: The recipe of the committed rows before the manifold step: AE + NT-Xent, latents clustered
#: directly (k-means unless the method names another backend).
_RAW: dict[str, Any] = {"manifold": None, "clusterer": "kmeans"}
#: The default Stratifier's network (AE + NT-Xent) at the profile's epochs (the rows committed
#: before the epochs rule); its rows recluster one fit of it. Their clustering does not whiten
#: (as when they were run).
_AE_SIMCLR: dict[str, Any] = {"model": "ae"}
#: The default recipe: every Stratifier default, its epochs rule and automatic batch included
#: (the profile's epochs do not apply). Its variants recluster the same fit.
DEFAULT_PARAMS: dict[str, Any] = {"epochs": "auto", "batch_size": "auto"}
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("pca-kmeans", "unsupervised", "pixel PCA(50) + k-means", _pca_kmeans),
        Method(
            "default",
            "unsupervised",
            "the default Stratifier, every setting default: AE + NT-Xent, epochs 'auto' "
            "(51,200 samples), the spectral consensus of 20 Gaussian mixtures on the "
            "normalised latents (clusterer='consensus-spectral')",
            _deep(DEFAULT_PARAMS),
        ),
        *(
            Method(
                f"guided-{percent}pct",
                "unsupervised",
                f"the default recipe with the classes of a stratified {percent} % of the "
                "training images known (y = -1 for the rest): SupCon on them in training, "
                "the strata anchored by them (anchoring='auto'); k = number of classes",
                _guided(percent / 100),
            )
            for percent in (1, 10)
        ),
        Method(
            "default-latent-gmm",
            "unsupervised",
            "the default recipe's network, GMM on the normalised latents (no manifold "
            "step), whitened when N >= 10 x latent_dim x k (whiten='auto')",
            _deep(DEFAULT_PARAMS, clusterer="gmm", manifold=None, whiten="auto"),
        ),
        Method(
            "default-raw-gmm",
            "unsupervised",
            "the default recipe's network, GMM on the latents never whitened",
            _deep(DEFAULT_PARAMS, clusterer="gmm", manifold=None),
        ),
        Method(
            "default-white-gmm",
            "unsupervised",
            "the default recipe's network, GMM on the latents always whitened",
            _deep(DEFAULT_PARAMS, clusterer="gmm", manifold=None, whiten=True),
        ),
        Method(
            "default-umap-gmm",
            "unsupervised",
            "the default recipe's network, manifold step (UMAP) + GMM",
            _deep(DEFAULT_PARAMS, clusterer="gmm", manifold="umap"),
        ),
        Method(
            "default-auto-gmm",
            "unsupervised",
            "the default recipe's network, GMM on the latents or on the manifold, whichever "
            "gives the more stable strata over 3 seeded runs",
            _deep(DEFAULT_PARAMS, clusterer="gmm", manifold="auto"),
        ),
        *(
            Method(
                f"default-{backend}",
                "unsupervised",
                f"the default recipe's network, the {backend!r} clustering backend on the "
                "normalised latents: SCAN-style heads (neighbour consistency, "
                + ("uniform size prior" if backend == "head" else "sizes from a GMM")
                + ", self-labelling), the lowest-loss head kept",
                _deep(DEFAULT_PARAMS, clusterer=backend, manifold=None),
            )
            for backend in ("head", "head-sized")
        ),
        *(
            Method(
                f"default-{backend}",
                "unsupervised",
                "the default recipe's network, evidence accumulation on the normalised "
                f"latents: the co-association of 20 {runs} runs (k_r in [k, 3k]) cut by "
                f"{cut}",
                _deep(DEFAULT_PARAMS, clusterer=backend, manifold=None),
            )
            for backend, runs, cut in (
                ("consensus", "Gaussian-mixture", "average linkage"),
                ("consensus-spectral", "Gaussian-mixture", "a normalised cut"),
                ("consensus-kmeans", "k-means", "average linkage"),
            )
        ),
        Method(
            "ae-kmeans",
            "unsupervised",
            "autoencoder + k-means",
            _deep({"model": "ae", "contrastive": None, **_RAW}),
        ),
        Method(
            "vae-kmeans",
            "unsupervised",
            "VAE + k-means",
            _deep({"model": "vae", "contrastive": None, **_RAW}),
        ),
        Method(
            "simclr-kmeans",
            "unsupervised",
            "contrastive (NT-Xent) encoder + k-means",
            _deep({"model": "ae", "reconstruction": None, **_RAW}),
        ),
        Method(
            "ae-simclr-kmeans",
            "unsupervised",
            "AE + NT-Xent (Ferrante et al.) + k-means",
            _deep(_AE_SIMCLR, clusterer="kmeans", manifold=None),
        ),
        Method(
            "vae-simclr-kmeans",
            "unsupervised",
            "VAE + NT-Xent + k-means",
            _deep({"model": "vae", **_RAW}),
        ),
        Method(
            "vae-simclr-gmm",
            "unsupervised",
            "the default VAE: VAE + NT-Xent + GMM",
            _deep({"model": "vae", **_RAW}, clusterer="gmm", manifold=None),
        ),
        Method(
            "ae-simclr-gmm",
            "unsupervised",
            "AE + NT-Xent + Gaussian mixture",
            _deep(_AE_SIMCLR, clusterer="gmm", manifold=None),
        ),
        Method(
            "ae-simclr-hdbscan",
            "unsupervised",
            "AE + NT-Xent + HDBSCAN cut at k (noise = error)",
            _deep(_AE_SIMCLR, clusterer="hdbscan", manifold=None),
        ),
        Method(
            "ae-simclr-umap-kmeans",
            "unsupervised",
            "AE + NT-Xent, manifold step (UMAP) + k-means",
            _deep(_AE_SIMCLR, clusterer="kmeans", manifold="umap"),
        ),
        Method(
            "ae-simclr-umap-gmm",
            "unsupervised",
            "AE + NT-Xent, manifold step (UMAP) + GMM",
            _deep(_AE_SIMCLR, clusterer="gmm", manifold="umap"),
        ),
        Method(
            "ae-simclr-umap-hdbscan",
            "unsupervised",
            "AE + NT-Xent, manifold step (UMAP) + HDBSCAN cut at k (noise = error)",
            _deep(_AE_SIMCLR, clusterer="hdbscan", manifold="umap"),
        ),
        Method(
            "ae-simclr-auto-gmm",
            "unsupervised",
            "AE + NT-Xent, GMM with or without the manifold step, whichever has the higher "
            "silhouette on the latents",
            _deep(_AE_SIMCLR, clusterer="gmm", manifold="auto"),
        ),
        *(
            Method(
                f"ae-simclr+{name}",
                "unsupervised",
                f"AE + NT-Xent + {title} + k-means",
                _deep({"model": "ae", **_RAW}, regularizer=name),
                _needs(name),
            )
            for name, title in (
                ("yaware", "y-Aware InfoNCE"),
                ("clinical", "clinical contrastive"),
                ("wsp", "WSP contrastive"),
            )
        ),
        Method(
            "resnet18-supervised",
            "supervised",
            "ResNet-18 trained with labels (3D variant for volumes)",
            _supervised,
            _has_split,
        ),
        *(
            Method(
                f"{arch}-medmnist{suffix}",
                "supervised",
                f"{title} from scratch, the MedMNIST v2 protocol"
                + (f" shortened to {SHORT_PROTOCOL_EPOCHS} epochs" if suffix else ""),
                _protocol(arch, short=bool(suffix)),
                _protocol_applies(arch=arch),
            )
            for arch, title in (("resnet18", "ResNet-18 (28)"), ("resnet50", "ResNet-50 (28)"))
            for suffix in ("", "-short")
        ),
        *(
            Method(
                f"resnet18-medmnist-{percent}pct",
                "supervised",
                f"ResNet-18 (28) from scratch, the MedMNIST v2 protocol on the {percent} % of "
                "labels the guided rows know",
                _protocol("resnet18", fraction=percent / 100),
                _protocol_applies(),
            )
            for percent in (1, 10)
        ),
        Method(
            "resnet18-transfer",
            "supervised",
            "ResNet-18 (28) initialised from the --weights file, fine-tuned with the "
            "MedMNIST v2 protocol",
            _protocol("resnet18", trunk="file"),
            _protocol_applies("file"),
        ),
        Method(
            "ae-simclr-finetune",
            "supervised",
            "the default Stratifier's encoder, pretrained without labels, fine-tuned with "
            "the MedMNIST v2 protocol",
            _protocol("resnet18", trunk="stratify"),
            _protocol_applies("stratify"),
        ),
    )
}
