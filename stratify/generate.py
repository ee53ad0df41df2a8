"""Generation through a fitted Stratifier's decoder: samples, augmentations, interpolations.

:func:`generation_quality` measures what the samples are worth: whether samples drawn for a
stratum are put back in it (stratum fidelity) and how varied they are against real images of
that stratum (diversity).

Every function returns images in the layout and intensity range of the data the estimator was
fitted on: uint8 in [0, 255] for uint8 input, floats in the training data's range otherwise,
flattened (M, F) when the input was flattened, (M, H, W) when it had no channel axis.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import check_is_fitted

from stratify._validation import check_in_range
from stratify.analysis import metrics
from stratify.training import embed

if TYPE_CHECKING:
    from stratify.models.autoencoder import Autoencoder

__all__ = [
    "GenerativeMixin",
    "decode",
    "generation_quality",
    "interpolate",
    "perturb",
    "reconstruct",
    "sample",
]


def _require_decoder(estimator: Any) -> Autoencoder:
    check_is_fitted(estimator)
    model = estimator.model_
    if not model.has_decoder:
        raise ValueError(
            "This Stratifier's model has no decoder (a custom encoder was given), so it cannot "
            "generate images. Fit with the default encoder and a reconstruction term."
        )
    return model


def _generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


@torch.no_grad()
def decode(estimator: Any, latents: Any, batch_size: int = 256) -> np.ndarray:
    """Decode latents (M, latent_dim) into images (see the module docstring for the layout)."""
    model = _require_decoder(estimator)
    latents = np.asarray(latents, dtype=np.float32)
    if latents.ndim != 2 or latents.shape[1] != model.latent_dim:
        raise ValueError(
            f"Expected latents of shape (M, {model.latent_dim}), got shape {latents.shape}."
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        parts = [
            torch.sigmoid(model.decode(torch.from_numpy(latents[i : i + batch_size]).to(device)))
            .cpu()
            .numpy()
            for i in range(0, len(latents), batch_size)
        ]
    finally:
        model.train(was_training)
    return estimator._to_input_layout(
        np.concatenate(parts) if parts else np.empty((0, *estimator.image_shape_), np.float32)
    )


def _posterior(estimator: Any, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Means and standard deviations (None for an AE) of q(z | x), in batches."""
    model = _require_decoder(estimator)
    mu, logvar = embed(
        model, estimator._check_images(X), batch_size=estimator._embed_batch_size, logvar=True
    )
    return mu, (None if logvar is None else np.exp(0.5 * logvar))


def _stratum_gaussian(estimator: Any, cluster: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean (D,) and covariance (D, D) of the stratum's Gaussian in the latent space, when the
    clusterer fitted one there (:meth:`~stratify.cluster.StrataClusterer.stratum_gaussian`);
    None otherwise.
    """
    clusterer = estimator.clusterer_
    if not hasattr(clusterer, "stratum_gaussian"):
        return None
    return clusterer.stratum_gaussian(cluster)


def _strata(estimator: Any) -> list[int]:
    return sorted(int(k) for k in np.unique(estimator.labels_) if k != -1)


def sample(
    estimator: Any, n: int, cluster: int | None = None, random_state: Any = None
) -> np.ndarray:
    """Draw ``n`` synthetic images.

    Without ``cluster``: from the prior N(0, I) for a VAE, from a Gaussian fitted to all
    training latents for an AE. With ``cluster=k``, from stratum ``k``'s latent
    distribution:

    * the fitted GMM component, when the mixture was fitted on the latents as they are
      (``clusterer="gmm"``, ``normalize=False``, no manifold step);
    * otherwise, for a VAE, the stratum's aggregate posterior: a training patient of the
      stratum drawn at random, then ``z ~ q(z | x) = N(mu, sigma^2)`` of that patient
      (``embedding_``, ``embedding_std_``). This is the VAE's own distribution of the
      stratum's latents; a Gaussian fitted to them would put mass in neighbouring strata
      whenever a stratum is not an ellipsoid (strata found on normalised latents, by k-means
      or HDBSCAN, rarely are);
    * otherwise (an AE), a Gaussian (mean and covariance) fitted to the stratum's training
      latents.

    Returns
    -------
    numpy.ndarray, shape (n, ...)
        Images in the input's layout and intensity range.
    """
    check_in_range(n, "n", "sample", kind=int, low=1)
    model = _require_decoder(estimator)
    rng = _generator(random_state)
    dim = model.latent_dim
    if cluster is None and model.variational:
        return decode(estimator, rng.standard_normal((n, dim)))
    latents = estimator.embedding_.astype(np.float64)
    component = None
    if cluster is not None:
        strata = _strata(estimator)
        if cluster not in strata:
            raise ValueError(f"Expected cluster among the fitted strata {strata}, got {cluster!r}.")
        component = _stratum_gaussian(estimator, cluster)
        members = np.flatnonzero(estimator.labels_ == cluster)
        if component is None and model.variational:
            picked = members[rng.integers(len(members), size=n)]
            spread = estimator.embedding_std_[picked].astype(np.float64)
            return decode(estimator, latents[picked] + spread * rng.standard_normal((n, dim)))
        latents = latents[members]
    if component is None:
        cov = np.cov(latents, rowvar=False) if len(latents) > 1 else np.zeros((dim, dim))
        component = latents.mean(axis=0), np.atleast_2d(cov)
    mean, cov = component
    cov = cov + 1e-6 * np.eye(dim)
    return decode(estimator, rng.multivariate_normal(mean, cov, size=n, method="eigh"))


def perturb(
    estimator: Any,
    X: Any,
    n_per_sample: int = 1,
    scale: float = 0.5,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded perturbations around each input's latent, for data augmentation.

    A VAE draws ``z = mu + scale * sigma * eps`` around each input's posterior
    q(z | x) = N(mu, sigma^2): ``scale=1`` is a draw from the posterior itself, ``scale=0``
    the reconstruction, the default 0.5 a draw from the posterior narrowed by half. An AE has
    no posterior, so it uses the latent neighbourhood ``z = mu + scale * s * eps`` with ``s``
    the per-dimension standard deviation of the training latents (``scale=1``: as far as a
    typical patient is from the mean). ``eps ~ N(0, I)``.

    Returns
    -------
    images : numpy.ndarray, shape (N * n_per_sample, ...)
    source : numpy.ndarray of int, shape (N * n_per_sample,)
        Index of the input each image was made from, so labels can follow.
    """
    check_in_range(n_per_sample, "n_per_sample", "augment", kind=int, low=1)
    scale = check_in_range(scale, "scale", "augment", low=0)
    mu, sigma = _posterior(estimator, X)
    if sigma is None:
        sigma = np.broadcast_to(estimator.embedding_.std(axis=0), mu.shape)
    source = np.repeat(np.arange(len(mu)), n_per_sample)
    eps = _generator(random_state).standard_normal((len(source), mu.shape[1]))
    return decode(estimator, mu[source] + scale * sigma[source] * eps), source


def reconstruct(estimator: Any, X: Any) -> np.ndarray:
    """Decode each input's latent mean: images of the same shape as ``X``."""
    mu, _ = _posterior(estimator, X)
    return decode(estimator, mu)


def interpolate(estimator: Any, a: Any, b: Any, steps: int = 8) -> np.ndarray:
    """Images along the straight latent path from image ``a`` to image ``b``.

    Parameters
    ----------
    a, b : array-like
        One image each, in the layout ``fit`` accepted for one sample (e.g. (C, H, W)).
    steps : int, default=8
        Number of images, the first decoding ``a`` and the last decoding ``b``.

    Returns
    -------
    numpy.ndarray, shape (steps, ...)
    """
    steps = check_in_range(steps, "steps", "interpolate", kind=int, low=2)
    pair = np.stack([np.asarray(a), np.asarray(b)])
    mu, _ = _posterior(estimator, pair)
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return decode(estimator, (1 - t) * mu[0] + t * mu[1])


def _unit_images(estimator: Any, images: Any) -> np.ndarray:
    """Images in any accepted layout -> float (N, C, *S) in [0, 1] (the network's scale)."""
    array = estimator._check_images(images)
    return array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array


def generation_quality(
    estimator: Any, X: Any, n_per_stratum: int = 100, random_state: Any = None
) -> pd.DataFrame:
    """Stratum fidelity and diversity of per-stratum samples, against real images ``X``.

    The real images are assigned to strata with ``predict``. For every stratum, ``n`` images
    are drawn with :func:`sample` (``cluster=k``) and encoded again; a linear classifier
    trained on the real images' coordinates in the clustered space (the normalised latents,
    or the manifold's coordinates: where the strata are defined) and their strata says which
    stratum each sample falls in (:func:`stratify.analysis.metrics.stratum_fidelity`). The same
    classifier applied to the *reconstructions* of the real images gives the
    reconstruction fidelity: the ceiling that the decoder's blur leaves to any sample.
    Diversity is the mean pairwise Euclidean distance (on [0, 1] intensities) between the
    samples, beside the same for up to ``n`` real images of the stratum: a ratio near 1
    means the samples vary as much as the patients do, near 0 that they are copies of one
    image.

    Parameters
    ----------
    estimator : Stratifier
        Fitted, with a decoder.
    X : array-like
        Real images in a layout ``fit`` accepts (the training or a test split).
    n_per_stratum : int, default=100
        Samples drawn per stratum (and real images used for its diversity).
    random_state : int, numpy Generator or None, default=None

    Returns
    -------
    pandas.DataFrame
        One row per stratum: ``stratum``, ``n_real``, ``fidelity``,
        ``reconstruction_fidelity``, ``diversity_samples``, ``diversity_real``,
        ``diversity_ratio``; ``attrs`` holds the overall ``fidelity`` and
        ``reconstruction_fidelity`` (shares of all samples / reconstructions) and the mean
        ``diversity_ratio``.

    Raises
    ------
    ValueError
        If fewer than two strata hold two images of ``X`` each.
    """
    n = check_in_range(n_per_stratum, "n_per_stratum", "generation_quality", kind=int, low=2)
    _require_decoder(estimator)
    rng = _generator(random_state)
    real = estimator.clustered_space(X)
    real_strata = estimator.predict(X)
    real_images = _unit_images(estimator, X)
    strata = [k for k in _strata(estimator) if (real_strata == k).sum() >= 2]
    if len(strata) < 2:
        found, counts = np.unique(real_strata, return_counts=True)
        raise ValueError(
            "Expected X to hold at least 2 images in each of at least 2 strata, got strata "
            f"{found.tolist()} with counts {counts.tolist()}."
        )
    rows, drawn, wanted = [], [], []
    for k in strata:
        images = sample(estimator, n, cluster=k, random_state=rng)
        drawn.append(estimator.clustered_space(images))
        wanted.append(np.full(n, k))
        members = np.flatnonzero(real_strata == k)
        shown = rng.choice(members, size=min(n, len(members)), replace=False)
        rows.append(
            {
                "stratum": k,
                "n_real": len(members),
                "diversity_samples": metrics.mean_pairwise_distance(
                    _unit_images(estimator, images)
                ),
                "diversity_real": metrics.mean_pairwise_distance(real_images[np.sort(shown)]),
            }
        )
    overall, per_stratum = metrics.stratum_fidelity(
        real, real_strata, np.concatenate(drawn), np.concatenate(wanted)
    )
    kept = np.isin(real_strata, strata)
    rebuilt = estimator.clustered_space(reconstruct(estimator, X))
    rec_overall, rec_per_stratum = metrics.stratum_fidelity(
        real, real_strata, rebuilt[kept], real_strata[kept]
    )
    table = pd.DataFrame(rows)
    table.insert(2, "fidelity", [per_stratum[k] for k in strata])
    table.insert(3, "reconstruction_fidelity", [rec_per_stratum[k] for k in strata])
    table["diversity_ratio"] = table["diversity_samples"] / table["diversity_real"]
    table.attrs["fidelity"] = overall
    table.attrs["reconstruction_fidelity"] = rec_overall
    table.attrs["diversity_ratio"] = float(table["diversity_ratio"].mean())
    return table


class GenerativeMixin:
    """The generation methods of a fitted :class:`~stratify.Stratifier` (this module's
    functions, as methods).
    """

    def sample(self, n: int, cluster: int | None = None, random_state: Any = None) -> np.ndarray:
        """Draw ``n`` synthetic images, from the prior or from stratum ``cluster``.

        See :func:`stratify.generate.sample`.
        """
        return sample(self, n, cluster=cluster, random_state=random_state)

    def perturb(
        self, X: Any, n_per_sample: int = 1, scale: float = 0.5, random_state: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decoded perturbations of each image and the index of its source.

        See :func:`stratify.generate.perturb`.
        """
        return perturb(self, X, n_per_sample, scale, random_state)

    def generation_quality(
        self, X: Any, n_per_stratum: int = 100, random_state: Any = None
    ) -> pd.DataFrame:
        """Stratum fidelity and diversity of per-stratum samples against real images ``X``.

        See :func:`stratify.generate.generation_quality`.
        """
        return generation_quality(self, X, n_per_stratum, random_state)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Decoded latent means of ``X``; see :func:`stratify.generate.reconstruct`."""
        return reconstruct(self, X)

    def interpolate(self, a: Any, b: Any, steps: int = 8) -> np.ndarray:
        """Images along the latent path from ``a`` to ``b``.

        See :func:`stratify.generate.interpolate`.
        """
        return interpolate(self, a, b, steps)
