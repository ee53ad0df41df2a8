"""Generation through a fitted Stratifier's decoder: samples, augmentations, interpolations.

Every function returns images in the layout and intensity range of the data the estimator was
fitted on: uint8 in [0, 255] for uint8 input, floats in the training data's range otherwise,
flattened (M, F) when the input was flattened, (M, H, W) when it had no channel axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from stratify._validation import check_in_range

__all__ = ["augment", "decode", "interpolate", "reconstruct", "sample"]


def _require_decoder(estimator: Any) -> torch.nn.Module:
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


def _to_output(estimator: Any, probabilities: np.ndarray) -> np.ndarray:
    """(M, C, *S) values in [0, 1] -> the input's dtype range and layout."""
    low, high = estimator.data_range_
    if (low, high) == (0.0, 255.0):
        images = np.rint(probabilities * 255).astype(np.uint8)
    else:
        images = (low + probabilities * (high - low)).astype(np.float32)
    if estimator._input_ndim == 2:
        return images.reshape(len(images), -1)
    if estimator._input_ndim == 3:
        return images[:, 0]
    return images


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
            torch.sigmoid(model.decode(torch.from_numpy(latents[i:i + batch_size]).to(device)))
            .cpu().numpy()
            for i in range(0, len(latents), batch_size)
        ]
    finally:
        model.train(was_training)
    return _to_output(estimator, np.concatenate(parts) if parts else
                      np.empty((0, *estimator.image_shape_), np.float32))


def _posterior(estimator: Any, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Means and standard deviations (None for an AE) of q(z | x), in batches."""
    model = _require_decoder(estimator)
    images = estimator._images(X, reset=False)
    device = next(model.parameters()).device
    mus, sigmas = [], []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(images), 256):
            batch = torch.from_numpy(np.ascontiguousarray(images[i:i + 256])).to(device)
            batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
            mu, logvar = model.encode(batch)
            mus.append(mu.cpu().numpy())
            if logvar is not None:
                sigmas.append(torch.exp(0.5 * logvar).cpu().numpy())
    return np.concatenate(mus), (np.concatenate(sigmas) if sigmas else None)


def sample(
    estimator: Any, n: int, cluster: int | None = None, random_state: Any = None
) -> np.ndarray:
    """Draw ``n`` synthetic images.

    Without ``cluster``: from the prior N(0, I) for a VAE, from a Gaussian fitted to all
    training latents for an AE. With ``cluster=k``: from a Gaussian (mean and covariance)
    fitted to the training latents of stratum ``k``.

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
    if cluster is not None:
        strata = sorted(int(k) for k in np.unique(estimator.labels_) if k != -1)
        if cluster not in strata:
            raise ValueError(f"Expected cluster among the fitted strata {strata}, got {cluster!r}.")
        latents = latents[estimator.labels_ == cluster]
    mean = latents.mean(axis=0)
    cov = np.cov(latents, rowvar=False) if len(latents) > 1 else np.zeros((dim, dim))
    cov = np.atleast_2d(cov) + 1e-6 * np.eye(dim)
    return decode(estimator, rng.multivariate_normal(mean, cov, size=n, method="eigh"))


def augment(
    estimator: Any,
    X: Any,
    n_per_sample: int = 1,
    scale: float = 0.5,
    random_state: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded perturbations around each input's latent, for data augmentation.

    A VAE draws ``z = mu + scale * sigma * eps`` from each input's posterior; an AE uses
    ``z = mu + scale * s * eps`` with ``s`` the per-dimension standard deviation of the
    training latents. ``eps ~ N(0, I)``.

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
