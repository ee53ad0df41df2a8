"""Small residual convolutional encoder and its mirror decoder, for 2D images and 3D volumes.

Spatial-size rule
-----------------
The encoder halves every spatial side ``depth`` times with strided convolutions and the
decoder doubles it back, so every side must be divisible by ``2**depth``. With
``depth=None`` the depth is chosen from the size: the largest ``n`` in ``1..5`` such that
every side is divisible by ``2**n`` and ``side / 2**n >= 4`` (28 -> 2, 16 -> 2, 64 -> 4,
128 -> 5). Sizes that cannot be halved once that way (odd sides, sides below 8) raise a
``ValueError`` that says how to fix the input (pad or resize). No interpolation is ever
used, so the decoder output has exactly the input's shape.

Memory layout
-------------
:func:`use_layout` holds the two modules' convolution weights channels-last on the CPU,
where oneDNN then runs every convolution without converting layouts (the default training step
1.4x faster at 28 px to 2.0x at 64^3, ``benchmarks/results/layout.md``), and in PyTorch's
default layout on other devices. The values are the same up to float rounding; a fit's strata
can still move where the network holds them weakly, as they do with the seed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stratify._validation import check_in_range, check_option
from stratify.models.blocks import conv_layer, down_block, norm_layer, up_block

__all__ = ["ConvDecoder", "ConvEncoder", "choose_depth", "use_layout"]

_MAX_DEPTH = 5
_MIN_BASE = 4


def choose_depth(spatial: Sequence[int], depth: int | None = None) -> int:
    """Return the number of halvings for a spatial shape, validating an explicit ``depth``.

    Parameters
    ----------
    spatial : sequence of int
        Spatial sides, ``(H, W)`` or ``(D, H, W)``.
    depth : int, optional
        Requested number of halvings; ``None`` picks it from the size (see module docstring).

    Returns
    -------
    depth : int

    Raises
    ------
    ValueError
        If ``depth`` does not divide every side, or no depth >= 1 fits the size.
    """
    spatial = tuple(int(s) for s in spatial)
    if depth is not None:
        depth = check_in_range(depth, "depth", "ConvEncoder", kind=int, low=1, high=_MAX_DEPTH)
        if any(s % 2**depth for s in spatial):
            raise ValueError(
                f"Expected every spatial side of {spatial} to be divisible by 2**depth = "
                f"{2**depth} (depth={depth}); use depth=None to choose it from the size, or "
                "pad/resize the images."
            )
        return depth
    fits = [
        n
        for n in range(1, _MAX_DEPTH + 1)
        if all(s % 2**n == 0 and s // 2**n >= _MIN_BASE for s in spatial)
    ]
    if not fits:
        raise ValueError(
            f"Expected spatial sides that are even and at least {2 * _MIN_BASE}, got {spatial}."
            " Pad or resize the images (e.g. to 28, 32 or 64 pixels a side)."
        )
    return max(fits)


def _channels(width: int, depth: int) -> list[int]:
    """Channels after the stem and after each down stage (doubling, capped at 8 * width)."""
    return [min(width * 2**i, 8 * width) for i in range(depth + 1)]


class ConvEncoder(nn.Module):
    """Residual CNN mapping images ``(N, C, *S)`` to flat features ``(N, F)``.

    A 3x3 stem convolution to ``width`` channels, then ``depth`` stages, each a strided
    convolution (halving every side, doubling channels up to ``8 * width``) followed by
    ``n_blocks`` residual blocks; the final feature map is flattened.

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` for 2D images or ``(C, D, H, W)`` for 3D volumes.
    width : int, default=16
        Channels of the stem.
    depth : int, optional
        Number of halvings; ``None`` chooses it from the size (module docstring).
    n_blocks : int, default=0
        Residual blocks after each strided convolution (0 keeps the default network a small,
        fast 3-convolution CNN on CPU; 1 or more makes it a residual network).
    norm : {"batch", "none"}, default="batch"
        Batch normalisation after every convolution, or none (about 20 % faster on CPU).

    Attributes
    ----------
    out_features : int
        ``F``, the length of the flattened feature vector.
    base_shape : tuple of int
        ``(C_last, *S / 2**depth)``, the shape of the final feature map.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        *,
        width: int = 16,
        depth: int | None = None,
        n_blocks: int = 0,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        in_channels, *spatial = _check_shape(image_shape)
        norm = check_option(norm, "norm", "ConvEncoder", {"batch", "none"})
        width = check_in_range(width, "width", "ConvEncoder", kind=int, low=1)
        n_blocks = check_in_range(n_blocks, "n_blocks", "ConvEncoder", kind=int, low=0)
        ndim = len(spatial)
        self.depth = choose_depth(spatial, depth)
        self.ndim = ndim
        chans = _channels(width, self.depth)
        layers: list[nn.Module] = [
            conv_layer(ndim, in_channels, chans[0], 3, padding=1, bias=norm == "none"),
            norm_layer(ndim, chans[0], norm),
            nn.ReLU(inplace=True),
        ]
        layers += [
            down_block(ndim, chans[i], chans[i + 1], n_blocks, norm) for i in range(self.depth)
        ]
        self.features = nn.Sequential(*layers)
        self.base_shape = (chans[-1], *(s // 2**self.depth for s in spatial))
        self.out_features = math.prod(self.base_shape)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``x`` of shape ``(N, C, *S)`` to features of shape ``(N, F)``."""
        return torch.flatten(self.features(x), 1)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: latent ``(N, D)`` to image logits ``(N, C, *S)``.

    A linear layer to the encoder's final feature map, then ``depth`` stages (``n_blocks``
    residual blocks, then a transposed convolution doubling every side), then a 3x3
    convolution to ``C`` channels. The output is logits (no final sigmoid).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(C, D, H, W)`` of the images to reconstruct.
    latent_dim : int
        ``D``.
    width, depth, n_blocks, norm
        As for :class:`ConvEncoder`.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        latent_dim: int,
        *,
        width: int = 16,
        depth: int | None = None,
        n_blocks: int = 0,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        out_channels, *spatial = _check_shape(image_shape)
        norm = check_option(norm, "norm", "ConvDecoder", {"batch", "none"})
        latent_dim = check_in_range(latent_dim, "latent_dim", "ConvDecoder", kind=int, low=1)
        width = check_in_range(width, "width", "ConvDecoder", kind=int, low=1)
        n_blocks = check_in_range(n_blocks, "n_blocks", "ConvDecoder", kind=int, low=0)
        ndim = len(spatial)
        self.depth = choose_depth(spatial, depth)
        self.ndim = ndim
        chans = _channels(width, self.depth)
        self.base_shape = (chans[-1], *(s // 2**self.depth for s in spatial))
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, math.prod(self.base_shape)), nn.ReLU(inplace=True)
        )
        ups = [
            up_block(ndim, chans[i + 1], chans[i], n_blocks, norm)
            for i in reversed(range(self.depth))
        ]
        self.body = nn.Sequential(*ups)
        self.head = conv_layer(ndim, chans[0], out_channels, 3, padding=1)

    def forward(self, z: Tensor) -> Tensor:
        """Map latents ``(N, D)`` to logits ``(N, C, *S)``."""
        h = self.fc(z).view(z.shape[0], *self.base_shape)
        return self.head(self.body(h))


def use_layout(model: nn.Module, device: torch.device) -> None:
    """Hold every :class:`ConvEncoder` and :class:`ConvDecoder` in ``model`` in the memory
    layout fastest on ``device``, in place (see the module docstring).

    Channels-last (``channels_last_3d`` for volumes) on the CPU, PyTorch's default
    contiguous layout elsewhere. Other modules, e.g. your own encoder, are left as they are
    (a channels-last activation would break their ``view`` calls). Call it before the
    optimizer is built: the parameters keep their identity but not their strides.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~stratify.models.Autoencoder`, an ensemble of them, or any module.
    device : torch.device
        Where ``model`` runs.
    """
    for module in model.modules():
        if isinstance(module, ConvEncoder | ConvDecoder):
            if device.type != "cpu":
                layout = torch.contiguous_format
            else:
                layout = torch.channels_last if module.ndim == 2 else torch.channels_last_3d
            module.to(memory_format=layout)


def _check_shape(image_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(image_shape)
    ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in shape)
    if len(shape) not in (3, 4) or not ok or min(shape) < 1:
        raise ValueError(
            f"Expected image_shape (C, H, W) or (C, D, H, W) of positive ints, got {image_shape!r}."
        )
    return tuple(int(s) for s in shape)
