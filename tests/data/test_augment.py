"""Batched two-view augmentation: determinism, per-sample randomness, identity, correctness."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from stratify.data.augment import (
    AugmentParams,
    TwoViewAugment,
    _affine,
    _blur,
    _warp,
    augment_batch,
)

OFF = AugmentParams.disabled()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images():
    return torch.rand(6, 1, 16, 16, generator=_gen(123))


def test_same_seed_same_views(images):
    a1, a2 = TwoViewAugment()(images, _gen(5))
    b1, b2 = TwoViewAugment()(images, _gen(5))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    c1, _ = TwoViewAugment()(images, _gen(6))
    assert not torch.equal(a1, c1)
    assert not torch.equal(a1, a2)


def test_every_sample_gets_its_own_parameters():
    x = torch.rand(1, 1, 16, 16, generator=_gen(1)).repeat(4, 1, 1, 1)
    for params in (AugmentParams(), dataclasses.replace(OFF, crop_scale=(0.3, 0.6))):
        view = augment_batch(x, params, _gen(2))
        for i in range(1, 4):
            assert not torch.allclose(view[0], view[i])


@pytest.mark.parametrize("shape", [(3, 1, 16, 16), (2, 3, 16, 24), (2, 1, 8, 8, 8)])
def test_identity_when_everything_is_disabled(shape):
    x = torch.rand(shape)
    v1, v2 = TwoViewAugment(OFF)(x, _gen())
    assert torch.equal(v1, x) and torch.equal(v2, x)


@pytest.mark.parametrize("shape", [(4, 1, 16, 16), (3, 3, 28, 28), (2, 1, 8, 12, 16)])
def test_output_shape_dtype_and_range(shape):
    params = AugmentParams(hflip=0.5, vflip=0.5, dflip=0.5, blur_prob=1.0, cutout_prob=1.0)
    x = torch.rand(shape, dtype=torch.float64)
    view = augment_batch(x, params, _gen())
    assert view.shape == x.shape and view.dtype == x.dtype
    assert view.min() >= 0 and view.max() <= 1


def test_flip_only_is_an_exact_mirror(images):
    flipped = augment_batch(images, dataclasses.replace(OFF, hflip=1.0), _gen())
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-5, rtol=0)
    flipped = augment_batch(images, dataclasses.replace(OFF, vflip=1.0), _gen())
    torch.testing.assert_close(flipped, images.flip(-2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", [(5, 1, 28, 28), (3, 2, 16, 24), (2, 1, 8, 12, 16)])
@pytest.mark.parametrize("mode", ["border", "zeros", "reflection"])
def test_warp_matches_affine_grid(shape, mode):
    x = torch.rand(shape, generator=_gen(3))
    u = torch.rand(shape[0], 27, generator=_gen(4))
    theta = _affine(u, tuple(shape[2:]), AugmentParams(rotation=30.0, hflip=0.5))
    grid = F.affine_grid(theta, list(shape), align_corners=False)
    expected = F.grid_sample(x, grid, padding_mode=mode, align_corners=False)
    torch.testing.assert_close(_warp(x, theta, mode), expected, atol=1e-5, rtol=0)


def test_rotation_by_90_degrees_on_a_square_image():
    x = torch.rand(1, 1, 8, 8, generator=_gen(9))
    u = torch.full((1, 27), 0.5)
    u[0, 5] = 1.0  # rotation column at its maximum
    theta = _affine(u, (8, 8), dataclasses.replace(OFF, rotation=90.0))
    out = _warp(x, theta, "zeros")
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5, rtol=0)


def test_blur_matches_a_convolution_with_replicate_padding():
    x = torch.rand(3, 2, 20, 20, generator=_gen(7))
    sigma = torch.tensor([0.5, 1.0, 2.0])
    out = _blur(x, sigma)
    radius = math.ceil(3 * 2.0)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    for i in range(3):
        k = torch.exp(-(offsets**2) / (2 * sigma[i] ** 2))
        k = k / k.sum()
        h = F.pad(x[i : i + 1], (radius,) * 4, mode="replicate")
        h = F.conv2d(h, k.view(1, 1, 1, -1).repeat(2, 1, 1, 1), groups=2)
        h = F.conv2d(h, k.view(1, 1, -1, 1).repeat(2, 1, 1, 1), groups=2)
        torch.testing.assert_close(out[i : i + 1], h, atol=1e-5, rtol=0)


def test_cutout_erases_one_box():
    x = torch.full((4, 1, 16, 16), 0.5)
    params = dataclasses.replace(OFF, cutout_prob=1.0, cutout_size=(0.25, 0.25))
    view = augment_batch(x, params, _gen())
    zeros = (view == 0).flatten(1).sum(1)
    assert torch.all(zeros == 16)  # a 4 x 4 box in every sample
    assert torch.all(view[view != 0] == 0.5)


def test_intensity_is_the_same_for_every_channel():
    x = torch.rand(1, 1, 16, 16).repeat(3, 3, 1, 1)
    params = dataclasses.replace(OFF, brightness=0.2, contrast=0.3, gamma=(0.7, 1.4))
    view = augment_batch(x, params, _gen())
    assert torch.equal(view[:, 0], view[:, 1]) and torch.equal(view[:, 0], view[:, 2])


def test_user_torchvision_pipeline_is_per_sample_and_reproducible():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    pipeline = v2.Compose([v2.RandomResizedCrop(16, scale=(0.3, 0.6), antialias=True)])
    x = torch.rand(1, 1, 16, 16).repeat(4, 1, 1, 1)
    before = torch.get_rng_state()
    aug = TwoViewAugment(transform=pipeline)
    a1, a2 = aug(x, _gen(3))
    b1, _ = aug(x, _gen(3))
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    assert torch.equal(a1, b1) and not torch.equal(a1, a2)
    assert not torch.equal(a1[0], a1[1])


def test_parameter_validation():
    with pytest.raises(ValueError, match="The 'crop_scale' parameter of AugmentParams"):
        AugmentParams(crop_scale=(0.9, 0.5))
    with pytest.raises(ValueError, match="The 'rotation' parameter of AugmentParams must be"):
        AugmentParams(rotation=-1.0)
    with pytest.raises(ValueError, match="The 'padding_mode' parameter of AugmentParams"):
        AugmentParams(padding_mode="wrap")
    with pytest.raises(ValueError, match="either params or transform"):
        TwoViewAugment(AugmentParams(), transform=lambda t: t)
    with pytest.raises(ValueError, match="floating-point tensor"):
        augment_batch(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(dataclasses.FrozenInstanceError):
        AugmentParams().rotation = 3.0  # type: ignore[misc]


def test_defaults_suit_medical_images():
    params = AugmentParams()
    assert params.hflip == params.vflip == params.dflip == 0.0
