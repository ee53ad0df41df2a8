"""Pure functions: per-anchor weights, reconstruction, KL and ELBO against hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stratify.losses import functional as LF

NAN = float("nan")


def _random_kernel(n, rng):
    k = torch.tensor(rng.uniform(0, 1, size=(n, n)))
    k = (k + k.T) / 2
    k.fill_diagonal_(1.0)
    return k


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_weight_rows_sum_to_one_with_zero_diagonal(n):
    rng = np.random.default_rng(n)
    k = _random_kernel(n, rng)
    if n > 2:
        k[1, :] = NAN
        k[:, 1] = NAN
    w = LF.contrastive_weights(k)
    assert w.shape == (2 * n, 2 * n)
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2 * n, dtype=w.dtype))
    torch.testing.assert_close(torch.diagonal(w), torch.zeros(2 * n, dtype=w.dtype))
    assert torch.isfinite(w).all() and (w >= 0).all()
    # the other view of every anchor is a positive
    idx = torch.arange(2 * n)
    assert (w[idx, (idx + n) % (2 * n)] > 0).all()


def test_weights_follow_the_kernel_of_the_samples():
    k = torch.tensor([[1.0, 0.5, 0.0], [0.5, 1.0, 0.25], [0.0, 0.25, 1.0]])
    w = LF.contrastive_weights(k)
    # anchor 0 (view 1 of sample 0): candidates 1, 2 (view 1), 3, 4, 5 (view 2)
    raw = torch.tensor([0.0, 0.5, 0.0, 1.0, 0.5, 0.0])
    torch.testing.assert_close(w[0], raw / raw.sum())
    # anchor 4 (view 2 of sample 1)
    raw = torch.tensor([0.5, 1.0, 0.25, 0.5, 0.0, 0.25])
    torch.testing.assert_close(w[4], raw / raw.sum())


def test_missing_metadata_leaves_only_the_other_view():
    k = torch.tensor([[1.0, NAN, 0.3], [NAN, NAN, NAN], [0.3, NAN, 1.0]])
    w = LF.contrastive_weights(k)
    n = 3
    for a in (1, 1 + n):  # both views of sample 1
        expected = torch.zeros(2 * n, dtype=w.dtype)
        expected[(a + n) % (2 * n)] = 1.0
        torch.testing.assert_close(w[a], expected)
    # and sample 1 is no positive of the others
    assert (w[[0, 2, 3, 5]][:, [1, 4]] == 0).all()


def _sigmoid(r):
    return 1.0 / (1.0 + np.exp(-r))


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(4, 2, 3, 5))
    r = rng.normal(0, 2, size=(4, 2, 3, 5))
    return x, r


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_against_formula(images, reduction):
    x, r = images
    per = -(x * np.log(_sigmoid(r)) + (1 - x) * np.log(1 - _sigmoid(r)))
    expected = per.mean() if reduction == "mean" else per.reshape(4, -1).sum(1).mean()
    got = LF.bce_reconstruction(torch.tensor(r), torch.tensor(x), reduction=reduction)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("output", ["logits", "values"])
def test_mse_against_formula(images, output, reduction):
    x, r = images
    pred = _sigmoid(r) if output == "logits" else r
    per = (pred - x) ** 2
    expected = per.mean() if reduction == "mean" else per.reshape(4, -1).sum(1).mean()
    got = LF.mse_reconstruction(
        torch.tensor(r), torch.tensor(x), output=output, reduction=reduction
    )
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


def test_kl_against_formula():
    rng = np.random.default_rng(1)
    mu, logvar = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    expected = 0.0
    for i in range(6):
        for j in range(3):
            var = math.exp(logvar[i, j])
            # KL(N(mu, var) || N(0, 1)) = 0.5 (var + mu^2 - 1 - log var)
            expected += 0.5 * (var + mu[i, j] ** 2 - 1.0 - logvar[i, j])
    got = LF.kl_normal(torch.tensor(mu), torch.tensor(logvar))
    np.testing.assert_allclose(got.item(), expected / 6, rtol=1e-12)
    zero = LF.kl_normal(torch.zeros(2, 3), torch.zeros(2, 3))
    assert zero.item() == 0.0


def test_elbo_is_reconstruction_plus_beta_kl(images):
    x, r = (torch.tensor(a) for a in images)
    mu, logvar = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    got = LF.elbo(r, x, mu, logvar, beta=0.3, reconstruction="mse", reduction="sum")
    expected = LF.mse_reconstruction(r, x, reduction="sum") + 0.3 * LF.kl_normal(mu, logvar)
    torch.testing.assert_close(got, expected)


def test_reconstruction_and_kl_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 3, 3, dtype=torch.float64, generator=gen)
    r = torch.randn(2, 1, 3, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    mu = torch.randn(2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    lv = torch.randn(2, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: LF.bce_reconstruction(a, x), (r,))
    assert torch.autograd.gradcheck(lambda a: LF.mse_reconstruction(a, x), (r,))
    assert torch.autograd.gradcheck(lambda a, b: LF.elbo(a, x, a.new_zeros(2, 3) + b, b), (r, lv))
    assert torch.autograd.gradcheck(LF.kl_normal, (mu, lv))


def test_supcon_and_nt_xent_functions_agree_with_the_general_form():
    gen = torch.Generator().manual_seed(3)
    z1 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    z2 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0])
    same = (labels[:, None] == labels[None, :]).double()
    torch.testing.assert_close(
        LF.supcon(z1, z2, labels, 0.2),
        LF.kernel_contrastive_loss(z1, z2, LF.contrastive_weights(same), 0.2),
    )
    torch.testing.assert_close(
        LF.nt_xent(z1, z2, 0.2),
        LF.kernel_contrastive_loss(z1, z2, LF.contrastive_weights(torch.eye(5)), 0.2),
    )
