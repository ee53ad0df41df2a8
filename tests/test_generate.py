"""Generation through the decoder: layouts, dtypes, reproducibility and exact identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.data import make_cohort
from stratify.estimator import Stratifier

TINY = {"latent_dim": 8, "width": 4, "epochs": 2, "batch_size": 32}


@pytest.fixture(scope="module", params=["ae", "vae"])
def fitted(request):
    images, _, _ = make_cohort(96, random_state=0)
    return Stratifier(3, model=request.param, random_state=0, **TINY).fit(images), images


def test_sample_shapes_dtype_and_reproducibility(fitted):
    est, _ = fitted
    images = est.sample(5, random_state=1)
    assert images.shape == (5, 1, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, est.sample(5, random_state=1))
    assert not np.array_equal(images, est.sample(5, random_state=2))
    for k in range(est.n_clusters_):
        assert est.sample(2, cluster=k, random_state=0).shape == (2, 1, 28, 28)


def test_stratum_samples_come_from_the_stratum_latents(fitted):
    """AE: a Gaussian fitted to the stratum's latents."""
    est, _ = fitted
    if est.model == "vae":
        pytest.skip("a VAE samples its aggregate posterior (next test)")
    k = int(np.bincount(est.labels_).argmax())
    latents = est.embedding_[est.labels_ == k].astype(np.float64)
    rng = np.random.default_rng(3)
    mean, cov = latents.mean(axis=0), np.cov(latents, rowvar=False) + 1e-6 * np.eye(8)
    expected = rng.multivariate_normal(mean, cov, size=4, method="eigh")
    from stratify.generate import decode

    np.testing.assert_array_equal(est.sample(4, cluster=k, random_state=3), decode(est, expected))


def test_vae_stratum_samples_come_from_the_stratum_aggregate_posterior(fitted):
    est, images = fitted
    if est.model != "vae":
        pytest.skip("VAE only")
    from stratify.generate import _posterior, decode

    mu, sigma = _posterior(est, images)  # the training images: embedding_ and embedding_std_
    np.testing.assert_allclose(est.embedding_std_, sigma, rtol=1e-5)
    k = int(np.bincount(est.labels_).argmax())
    members = np.flatnonzero(est.labels_ == k)
    rng = np.random.default_rng(3)
    picked = members[rng.integers(len(members), size=4)]
    expected = mu[picked].astype(np.float64) + sigma[picked] * rng.standard_normal((4, 8))
    np.testing.assert_array_equal(est.sample(4, cluster=k, random_state=3), decode(est, expected))


def test_augment_with_zero_scale_is_reconstruction(fitted):
    est, images = fitted
    generated, source = est.perturb(images[:3], n_per_sample=2, scale=0.0, random_state=0)
    assert generated.shape == (6, 1, 28, 28)
    np.testing.assert_array_equal(source, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(generated, est.reconstruct(images[:3])[source])
    noisy, _ = est.perturb(images[:3], n_per_sample=2, scale=1.0, random_state=0)
    assert not np.array_equal(noisy, generated)


def test_interpolation_ends_at_the_reconstructions(fitted):
    est, images = fitted
    path = est.interpolate(images[0], images[1], steps=5)
    assert path.shape == (5, 1, 28, 28)
    ends = est.reconstruct(images[:2])
    np.testing.assert_array_equal(path[0], ends[0])
    np.testing.assert_array_equal(path[-1], ends[1])


def test_reconstruct_decodes_the_latent_mean(fitted):
    est, images = fitted
    with torch.no_grad():
        logits = est.model_.decode(torch.from_numpy(est.transform(images[:4])))
    expected = np.rint(torch.sigmoid(logits).numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(est.reconstruct(images[:4]), expected)


def test_output_follows_the_input_layout_and_range():
    images, _, _ = make_cohort(64, random_state=0)
    flat = images.reshape(64, -1).astype(np.float32) / 255.0 * 2.0 - 1.0
    est = Stratifier(2, image_shape=(1, 28, 28), random_state=0, **TINY).fit(flat)
    out = est.sample(3, random_state=0)
    assert out.shape == (3, 784) and out.dtype == np.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    plain = Stratifier(2, random_state=0, **TINY).fit(images[:, 0])
    assert plain.reconstruct(images[:2, 0]).shape == (2, 28, 28)


def test_errors():
    images, _, _ = make_cohort(32, random_state=0)
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8))
    est = Stratifier(2, encoder=encoder, reconstruction=None, random_state=0, **TINY)
    est.fit(images)
    with pytest.raises(ValueError, match=r"has no decoder .*cannot generate"):
        est.sample(2)
    plain = Stratifier(2, random_state=0, **TINY).fit(images)
    with pytest.raises(ValueError, match=r"cluster among the fitted strata \[0, 1\], got 5"):
        plain.sample(2, cluster=5)
    with pytest.raises(ValueError, match=r"'n' parameter of sample .*Got 0"):
        plain.sample(0)
    with pytest.raises(ValueError, match=r"'steps' parameter of interpolate .*Got 1"):
        plain.interpolate(images[0], images[1], steps=1)


def test_stratum_samples_come_from_the_gmm_component_on_raw_latents():
    # a model saved by 0.1 with normalize=False: its clustering is a GMM of the raw latents
    from stratify import StrataClusterer

    images, _, _ = make_cohort(96, random_state=0)
    est = Stratifier(3, model="vae", clusterer="gmm", random_state=0, **TINY).fit(images)
    est.clusterer_ = StrataClusterer("gmm", 3, normalize=False, random_state=0).fit(est.embedding_)
    gmm = est.clusterer_.estimator_
    k = 1
    rng = np.random.default_rng(5)
    cov = gmm.covariances_[k] + 1e-6 * np.eye(8)
    expected = rng.multivariate_normal(gmm.means_[k], cov, size=4, method="eigh")
    from stratify.generate import decode

    np.testing.assert_array_equal(est.sample(4, cluster=k, random_state=5), decode(est, expected))


def test_generation_quality_table(fitted):
    est, images = fitted
    table = est.generation_quality(images, n_per_stratum=20, random_state=0)
    strata = sorted(set(est.predict(images).tolist()))
    assert table["stratum"].tolist() == strata
    assert list(table.columns) == [
        "stratum",
        "n_real",
        "fidelity",
        "reconstruction_fidelity",
        "diversity_samples",
        "diversity_real",
        "diversity_ratio",
    ]
    assert table["n_real"].tolist() == [int((est.predict(images) == k).sum()) for k in strata]
    assert table[["fidelity", "reconstruction_fidelity"]].stack().between(0, 1).all()
    assert 0 <= table.attrs["fidelity"] <= 1 and 0 <= table.attrs["reconstruction_fidelity"] <= 1
    np.testing.assert_allclose(
        table["diversity_ratio"], table["diversity_samples"] / table["diversity_real"]
    )
    again = est.generation_quality(images, n_per_stratum=20, random_state=0)
    assert again.equals(table)


def test_generation_quality_needs_two_strata_in_x(fitted):
    est, images = fitted
    one = images[est.predict(images) == est.predict(images[:1])[0]][:5]
    with pytest.raises(ValueError, match=r"at least 2 images in each of at least 2 strata"):
        est.generation_quality(one, n_per_stratum=5)
