"""Convolution building blocks shared by the 2D and 3D encoders and decoders."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ResidualBlock", "conv_layer", "down_block", "norm_layer", "up_block"]


def conv_layer(ndim: int, *args, **kwargs) -> nn.Module:
    """Return ``nn.Conv2d`` or ``nn.Conv3d`` for ``ndim`` spatial dimensions (2 or 3)."""
    return (nn.Conv2d if ndim == 2 else nn.Conv3d)(*args, **kwargs)


def norm_layer(ndim: int, channels: int, norm: str = "batch") -> nn.Module:
    """Batch normalisation for ``ndim`` spatial dimensions, or identity when ``norm="none"``."""
    if norm == "none":
        return nn.Identity()
    return (nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d)(channels)


class ResidualBlock(nn.Module):
    """``x + BN(conv3(ReLU(BN(conv3(x)))))`` followed by ReLU; keeps shape ``(N, C, *S)``."""

    def __init__(self, ndim: int, channels: int, norm: str = "batch") -> None:
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            conv_layer(ndim, channels, channels, 3, padding=1, bias=bias),
            norm_layer(ndim, channels, norm),
            nn.ReLU(inplace=True),
            conv_layer(ndim, channels, channels, 3, padding=1, bias=bias),
            norm_layer(ndim, channels, norm),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block to ``x`` (N, C, *S); same shape out."""
        return self.act(x + self.body(x))


def down_block(ndim: int, c_in: int, c_out: int, n_blocks: int, norm: str) -> nn.Sequential:
    """Strided 3x3 convolution halving every spatial side, then ``n_blocks`` residual blocks."""
    layers: list[nn.Module] = [
        conv_layer(ndim, c_in, c_out, 3, stride=2, padding=1, bias=norm == "none"),
        norm_layer(ndim, c_out, norm),
        nn.ReLU(inplace=True),
    ]
    layers += [ResidualBlock(ndim, c_out, norm) for _ in range(n_blocks)]
    return nn.Sequential(*layers)


def up_block(ndim: int, c_in: int, c_out: int, n_blocks: int, norm: str) -> nn.Sequential:
    """``n_blocks`` residual blocks, then a transposed convolution doubling every side."""
    transpose = nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d
    layers: list[nn.Module] = [ResidualBlock(ndim, c_in, norm) for _ in range(n_blocks)]
    layers += [
        transpose(c_in, c_out, 4, stride=2, padding=1, bias=norm == "none"),
        norm_layer(ndim, c_out, norm),
        nn.ReLU(inplace=True),
    ]
    return nn.Sequential(*layers)
