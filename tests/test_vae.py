"""The VAE core: no posterior collapse on real images, diagnostics in history_ and the model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from stratify import Stratifier
from stratify.analysis import metrics
from stratify.data import load_medmnist, make_cohort
from stratify.generate import _posterior
from stratify.training import ACTIVE_UNIT_THRESHOLD

LATENT_DIM = 16


@pytest.fixture(scope="module")
def pneumonia(medmnist_root):
    """400 training and 300 test PneumoniaMNIST images (both classes in each)."""
    train = load_medmnist("pneumoniamnist", "train", root=medmnist_root, download=False)
    test = load_medmnist("pneumoniamnist", "test", root=medmnist_root, download=False)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train.images), 400, replace=False)
    held = rng.choice(len(test.images), 300, replace=False)
    return (
        train.images[pick],
        train.labels[pick].ravel(),
        test.images[held],
        test.labels[held].ravel(),
    )


def _fit_default_vae(images, **params):
    settings = {"epochs": 6, "batch_size": 64, "latent_dim": LATENT_DIM, "random_state": 0}
    return Stratifier(2, model="vae", **{**settings, **params}).fit(images)


def test_default_vae_does_not_collapse_on_real_images(pneumonia):
    """Fails on the old objective (per-pixel reconstruction with a per-sample KL)."""
    train_x, train_y, test_x, test_y = pneumonia
    vae = _fit_default_vae(train_x)
    assert vae.active_units_ > LATENT_DIM // 2
    probe = metrics.linear_probe_accuracy(vae.embedding_, train_y, vae.transform(test_x), test_y)
    assert probe > metrics.majority_rate(test_y) + 0.1


def test_the_old_kl_weighting_is_detected_as_collapse(pneumonia):
    """The old objective is beta = P (784) in today's units: few active units remain."""
    train_x, _, _, _ = pneumonia
    collapsed = _fit_default_vae(train_x, beta=784.0, contrastive=None)
    assert collapsed.active_units_ <= LATENT_DIM // 2


@pytest.fixture(scope="module")
def cohort_vae():
    images = make_cohort(96, random_state=0).images
    vae = Stratifier(
        3, model="vae", latent_dim=6, width=4, epochs=3, batch_size=32, kl_warmup=2, random_state=0
    ).fit(images)
    return vae, images


def test_history_records_kl_per_dimension_active_units_and_the_warmup(cohort_vae):
    vae, _ = cohort_vae
    history = vae.history_
    dims = [f"kl_dim_{j}" for j in range(6)]
    assert set(dims) <= set(history.columns)
    # the logged KL is the epoch's mean per-sample KL = the sum of the per-dimension means
    np.testing.assert_allclose(history[dims].sum(axis=1), history["kl"], rtol=1e-5)
    assert history["active_units"].between(0, 6).all()
    # linear warm-up over 2 epochs, full weight beta / P (= 1 / 784) from then on
    np.testing.assert_allclose(history["kl_weight"], [0.5 / 784, 1 / 784, 1 / 784])


def test_fitted_posterior_summary_matches_a_naive_computation(cohort_vae):
    vae, images = cohort_vae
    mu, sigma = _posterior(vae, images)
    expected = np.zeros(6)
    for i in range(len(images)):
        for j in range(6):
            var = float(sigma[i, j]) ** 2
            expected[j] += 0.5 * (mu[i, j] ** 2 + var - 1.0 - np.log(var)) / len(images)
    np.testing.assert_allclose(vae.kl_per_dim_, expected, rtol=1e-4, atol=1e-7)
    variances = [np.var(mu[:, j].astype(np.float64)) for j in range(6)]
    assert vae.active_units_ == sum(v > ACTIVE_UNIT_THRESHOLD for v in variances)


def test_posterior_summary_survives_save_and_load(cohort_vae, tmp_path):
    vae, _ = cohort_vae
    loaded = Stratifier.load(vae.save(tmp_path / "vae.pt"))
    np.testing.assert_array_equal(loaded.kl_per_dim_, vae.kl_per_dim_)
    np.testing.assert_array_equal(loaded.embedding_std_, vae.embedding_std_)
    assert loaded.active_units_ == vae.active_units_


def test_an_autoencoder_has_no_posterior_summary():
    images = make_cohort(64, random_state=0).images
    ae = Stratifier(2, latent_dim=4, width=4, epochs=1, batch_size=32, random_state=0)
    ae.fit(images)
    assert not hasattr(ae, "kl_per_dim_") and not hasattr(ae, "active_units_")
    assert not hasattr(ae, "embedding_std_")
    assert not any(c.startswith("kl_dim_") or c == "kl_weight" for c in ae.history_.columns)


@pytest.mark.parametrize(("param", "value"), [("kl_warmup", -1.0), ("beta", -0.5)])
def test_vae_parameters_are_checked_before_training(param, value):
    images = make_cohort(32, random_state=0).images
    with pytest.raises(ValueError, match=rf"'{param}' parameter of Stratifier"):
        Stratifier(2, model="vae", epochs=50, **{param: value}).fit(images)


def test_refitting_as_an_autoencoder_forgets_the_posterior_summary(cohort_vae):
    vae, images = cohort_vae
    refit = clone(vae).set_params(model="ae", epochs=1).fit(images)
    assert not any(hasattr(refit, a) for a in ("embedding_std_", "kl_per_dim_", "active_units_"))
    refit.__dict__.update(embedding_std_=1, kl_per_dim_=1, active_units_=1)  # stale from a VAE fit
    refit.fit(images)
    assert not any(hasattr(refit, a) for a in ("embedding_std_", "kl_per_dim_", "active_units_"))
