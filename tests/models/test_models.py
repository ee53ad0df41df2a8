"""Shapes, spatial-size rule, custom encoders and validation of stratify.models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stratify.models import (
    Autoencoder,
    ConvDecoder,
    ConvEncoder,
    build_model,
    choose_depth,
    infer_feature_dim,
)
from stratify.models.conv import use_layout

SHAPES_2D = [(c, s, s) for c in (1, 3) for s in (16, 28, 64)] + [(1, 128, 128), (3, 128, 128)]
SHAPES_3D = [(1, 28, 28, 28), (1, 64, 64, 64)]


def _tiny(kind, shape, **kw):
    small = max(shape[1:]) >= 64 or len(shape) == 4
    width = 2 if small else 4
    return build_model(kind, shape, latent_dim=5, width=width, projection_dim=7, **kw)


@pytest.mark.parametrize("kind", ["ae", "vae"])
@pytest.mark.parametrize("shape", SHAPES_2D + SHAPES_3D, ids=str)
def test_shapes(kind, shape):
    model = _tiny(kind, shape).eval()
    n = 1 if (len(shape) == 4 or shape[1] >= 64) else 2
    x = torch.rand(n, *shape)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        recon = model.decode(mu)
        z = model.project(mu)
        out = model(x)
    assert mu.shape == (n, 5)
    assert (logvar is None) == (kind == "ae")
    if kind == "vae":
        assert logvar.shape == (n, 5)
    assert recon.shape == x.shape
    assert z.shape == (n, 7)
    assert set(out) == {"mu", "logvar", "recon"}
    assert model.has_decoder and model.latent_dim == 5


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_residual_blocks_and_rectangular_images(norm):
    model = build_model("ae", (2, 16, 32), latent_dim=3, width=4, n_blocks=1, norm=norm).eval()
    x = torch.rand(2, 2, 16, 32)
    with torch.no_grad():
        assert model.decode(model.encode(x)[0]).shape == x.shape
    has_bn = any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert has_bn == (norm == "batch")


@pytest.mark.parametrize(
    ("spatial", "depth"),
    [((28, 28), 2), ((16, 16), 2), ((64, 64), 4), ((128, 128), 5), ((28, 28, 28), 2)],
)
def test_depth_rule(spatial, depth):
    assert choose_depth(spatial) == depth


@pytest.mark.parametrize("shape", [(1, 27, 27), (1, 6, 6), (1, 15, 16)])
def test_sizes_that_cannot_be_halved_raise(shape):
    with pytest.raises(ValueError, match="even and at least 8"):
        build_model("ae", shape)


def test_explicit_depth_must_divide_the_size():
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 8"):
        ConvEncoder((1, 28, 28), depth=3)
    assert ConvEncoder((1, 28, 28), depth=1).base_shape == (32, 14, 14)


def test_validation_messages():
    with pytest.raises(ValueError, match="The 'kind' parameter of build_model must be a str"):
        build_model("gan")
    with pytest.raises(ValueError, match="The 'latent_dim' parameter of build_model"):
        build_model("ae", latent_dim=0)
    with pytest.raises(TypeError, match="The 'width' parameter of ConvEncoder"):
        build_model("ae", width=2.5)
    with pytest.raises(ValueError, match="The 'norm' parameter of ConvEncoder"):
        build_model("ae", norm="layer")
    with pytest.raises(ValueError, match="Expected image_shape"):
        build_model("ae", (28, 28))
    with pytest.raises(TypeError, match=r"nn\.Module"):
        build_model("ae", encoder="resnet")


def test_custom_encoder_without_decoder():
    encoder = nn.Sequential(nn.Conv2d(1, 3, 3, stride=2), nn.Flatten())
    model = build_model("ae", (1, 16, 16), latent_dim=4, encoder=encoder)
    assert infer_feature_dim(encoder, (1, 16, 16)) == 3 * 7 * 7
    assert not model.has_decoder
    assert model.encode(torch.rand(3, 1, 16, 16))[0].shape == (3, 4)
    with pytest.raises(RuntimeError, match="no decoder"):
        model.decode(torch.zeros(1, 4))
    assert "recon" not in model(torch.rand(2, 1, 16, 16))


def test_custom_encoder_and_decoder():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    decoder = nn.Sequential(nn.Linear(4, 64), nn.Unflatten(1, (1, 8, 8)))
    model = build_model("vae", (1, 8, 8), latent_dim=4, encoder=encoder, decoder=decoder)
    assert model.has_decoder
    assert model(torch.rand(2, 1, 8, 8))["recon"].shape == (2, 1, 8, 8)


def test_feature_inference_restores_mode_and_rejects_maps():
    encoder = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    encoder.train()
    with pytest.raises(ValueError, match="features \\(N, F\\)"):
        infer_feature_dim(encoder, (1, 8, 8))
    assert encoder.training


def test_decoder_without_encoder_is_rejected():
    with pytest.raises(ValueError, match="decoder only together"):
        build_model("ae", decoder=nn.Identity())


def test_reparameterize_uses_the_generator():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    a = Autoencoder.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    b = Autoencoder.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.abs().sum() > 0
    assert Autoencoder.reparameterize(mu, None) is mu


def test_decoder_standalone_outputs_logits():
    decoder = ConvDecoder((1, 28, 28), 6, width=4)
    out = decoder(torch.randn(2, 6))
    assert out.shape == (2, 1, 28, 28)
    assert (out < 0).any() or (out > 1).any()  # no sigmoid


def test_forward_decodes_a_draw_from_the_given_generator_in_training_and_the_mean_in_eval():
    model = build_model("vae", (1, 16, 16), latent_dim=3, width=4, norm="none")
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
        by_hand = model.decode(mu + torch.exp(0.5 * logvar) * eps)
        out = model(x, torch.Generator().manual_seed(3))
        assert torch.allclose(out["recon"], by_hand, atol=1e-6)
        assert not torch.allclose(out["recon"], model.decode(mu), atol=1e-4)
        model.eval()
        assert torch.allclose(model(x)["recon"], model.decode(mu), atol=1e-6)
        assert torch.allclose(model.decode_draw(mu, None), model.decode(mu))


def _conv_weights(model):
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((3, 16, 16), torch.channels_last), ((1, 16, 16, 16), torch.channels_last_3d)],
    ids=["2d", "3d"],
)
def test_use_layout_is_channels_last_on_cpu_and_the_same_function(shape, layout):
    torch.manual_seed(0)
    plain = build_model("vae", shape, latent_dim=5, width=4)
    fast = build_model("vae", shape, latent_dim=5, width=4)
    fast.load_state_dict(plain.state_dict())
    use_layout(fast, torch.device("cpu"))
    weights = _conv_weights(fast.encoder) + _conv_weights(fast.decoder)
    assert weights and all(w.is_contiguous(memory_format=layout) for w in weights)
    assert not all(w.is_contiguous() for w in weights)
    x = torch.rand(6, *shape)
    (mu_a, logvar_a), (mu_b, logvar_b) = plain.encode(x), fast.encode(x)
    assert torch.allclose(mu_a, mu_b, atol=1e-5) and torch.allclose(logvar_a, logvar_b, atol=1e-5)
    recon_a, recon_b = plain.decode(mu_a), fast.decode(mu_b)
    assert recon_b.shape == (6, *shape) and torch.allclose(recon_a, recon_b, atol=1e-5)
    (recon_a.sum() + mu_a.sum()).backward()
    (recon_b.sum() + mu_b.sum()).backward()
    for a, b in zip(_conv_weights(plain), _conv_weights(fast), strict=True):
        scale = float(a.grad.abs().max())  # float sums in another order: rounding only
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-4 * scale)
    use_layout(fast, torch.device("cuda"))  # elsewhere: back to the default layout
    assert all(w.is_contiguous() for w in _conv_weights(fast))


def test_use_layout_leaves_a_custom_encoder_alone():
    class Flat(nn.Module):  # its view needs contiguous activations
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(x).view(x.shape[0], -1)

    model = build_model("ae", (1, 8, 8), latent_dim=3, encoder=Flat())
    use_layout(model, torch.device("cpu"))
    assert model.encoder.conv.weight.is_contiguous()
    assert model.encode(torch.rand(2, 1, 8, 8))[0].shape == (2, 3)
