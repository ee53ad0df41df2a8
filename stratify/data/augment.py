"""Batched two-view augmentation for contrastive learning, for 2D images and 3D volumes.

Every sample of a batch gets its own random parameters, drawn from one
``torch.Generator`` (so views are reproducible), and all samples are transformed together:

* geometry: one composed affine matrix per sample (random resized crop, rotation,
  translation, flips) applied with a single ``F.affine_grid`` + ``F.grid_sample`` call;
* intensity: contrast (around each image's mean), brightness, gamma, the same for every
  channel (no colour jitter, so grey-level images stay grey-level);
* Gaussian blur (per-sample sigma, separable grouped convolution), Gaussian noise (per-sample
  standard deviation) and cutout (one box per sample, filled with 0).

Steps are applied in that order; a disabled step is skipped entirely, so
``AugmentParams.disabled()`` returns the input unchanged. Inputs are floats in [0, 1] and
outputs are clipped to [0, 1].

Defaults suit medical images: flips are off (anatomy has a side), crops keep most of the
image and rotations are small.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stratify._validation import check_in_range, check_option

__all__ = ["AugmentParams", "TwoViewAugment", "augment_batch"]

# Columns of the per-sample uniform draws (one (N, _K) block per view, fixed layout so that
# enabling one step never changes the random numbers of another).
_SCALE, _RATIO, _CX, _ROT, _T, _FLIP, _CONTRAST, _BRIGHT, _GAMMA = 0, 1, 2, 5, 8, 11, 14, 15, 16
_BLUR_P, _BLUR_S, _NOISE, _CUT_P, _CUT_SIZE, _CUT_POS = 17, 18, 19, 20, 21, 24
_K = 27


def _check_pair(value, name: str, low: float, high: float = math.inf) -> None:
    if value is None:
        return
    ok = isinstance(value, tuple) and len(value) == 2
    if ok:
        for v in value:
            check_in_range(v, name, "AugmentParams", low=low, high=high)
    if not ok or value[0] > value[1]:
        raise ValueError(
            f"The '{name}' parameter of AugmentParams must be None or a (low, high) tuple with "
            f"{low} <= low <= high <= {high}. Got {value!r} instead."
        )


@dataclass(frozen=True)
class AugmentParams:
    """Parameters of the batched augmentation (one random draw per sample and view).

    Parameters
    ----------
    crop_scale : (float, float) or None, default=(0.7, 1.0)
        Range of the crop's area (volume in 3D) as a fraction of the image, resized back to
        the full size. ``None`` disables cropping.
    crop_ratio : (float, float), default=(3/4, 4/3)
        Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    rotation : float, default=10.0
        Maximum rotation in degrees, uniform in ``[-rotation, rotation]`` (about each axis in
        3D).
    translation : float, default=0.05
        Maximum shift as a fraction of the side, per axis.
    hflip, vflip, dflip : float, default=0.0
        Probabilities of flipping the width, height and depth (3D) axes. Off by default:
        anatomy has a side.
    brightness : float, default=0.1
        Additive shift uniform in ``[-brightness, brightness]``.
    contrast : float, default=0.2
        Factor uniform in ``[1 - contrast, 1 + contrast]`` around each image's mean.
    gamma : (float, float) or None, default=(0.8, 1.25)
        Range of the gamma exponent (log-uniform); ``None`` disables it.
    blur_prob : float, default=0.3
        Probability of a Gaussian blur.
    blur_sigma : (float, float), default=(0.1, 1.0)
        Range of the blur's standard deviation in pixels.
    noise_std : float, default=0.02
        Gaussian noise with a standard deviation uniform in ``[0, noise_std]`` per sample.
    cutout_prob : float, default=0.25
        Probability of erasing one box (set to 0).
    cutout_size : (float, float), default=(0.1, 0.3)
        Range of the box's side as a fraction of each image side.
    padding_mode : {"border", "zeros", "reflection"}, default="border"
        How ``grid_sample`` fills pixels sampled outside the image.
    """

    crop_scale: tuple[float, float] | None = (0.7, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 10.0
    translation: float = 0.05
    hflip: float = 0.0
    vflip: float = 0.0
    dflip: float = 0.0
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: tuple[float, float] | None = (0.8, 1.25)
    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    noise_std: float = 0.02
    cutout_prob: float = 0.25
    cutout_size: tuple[float, float] = (0.1, 0.3)
    padding_mode: str = "border"

    def __post_init__(self) -> None:
        _check_pair(self.crop_scale, "crop_scale", 1e-3, 1.0)
        _check_pair(self.crop_ratio, "crop_ratio", 1e-3)
        _check_pair(self.gamma, "gamma", 1e-3)
        _check_pair(self.blur_sigma, "blur_sigma", 1e-3, 10.0)
        _check_pair(self.cutout_size, "cutout_size", 0.0, 1.0)
        check_in_range(self.rotation, "rotation", "AugmentParams", low=0, high=180)
        check_in_range(self.translation, "translation", "AugmentParams", low=0, high=1)
        for name in ("hflip", "vflip", "dflip", "blur_prob", "cutout_prob", "contrast"):
            check_in_range(getattr(self, name), name, "AugmentParams", low=0, high=1)
        check_in_range(self.brightness, "brightness", "AugmentParams", low=0, high=1)
        check_in_range(self.noise_std, "noise_std", "AugmentParams", low=0, high=1)
        check_option(
            self.padding_mode, "padding_mode", "AugmentParams", {"border", "zeros", "reflection"}
        )

    @classmethod
    def disabled(cls) -> AugmentParams:
        """Parameters with every step switched off (the augmentation is the identity)."""
        off: dict[str, Any] = {f.name: 0.0 for f in fields(cls) if isinstance(f.default, float)}
        return cls(**off, crop_scale=None, gamma=None)

    @property
    def has_geometry(self) -> bool:
        """Whether any geometric transform (flip, rotation, crop, shift) is on."""
        crop = self.crop_scale is not None and self.crop_scale != (1.0, 1.0)
        flips = self.hflip > 0 or self.vflip > 0 or self.dflip > 0
        return crop or flips or self.rotation > 0 or self.translation > 0


def _rotation(angles: Tensor, ndim: int) -> Tensor:
    """Rotation matrices ``(N, ndim, ndim)`` from angles in radians ``(N, 3)``."""
    c, s = torch.cos(angles), torch.sin(angles)
    n = angles.shape[0]
    if ndim == 2:
        return torch.stack([c[:, 0], -s[:, 0], s[:, 0], c[:, 0]], 1).view(n, 2, 2)
    one, zero = torch.ones_like(c[:, 0]), torch.zeros_like(c[:, 0])
    rx = torch.stack([one, zero, zero, zero, c[:, 0], -s[:, 0], zero, s[:, 0], c[:, 0]], 1)
    ry = torch.stack([c[:, 1], zero, s[:, 1], zero, one, zero, -s[:, 1], zero, c[:, 1]], 1)
    rz = torch.stack([c[:, 2], -s[:, 2], zero, s[:, 2], c[:, 2], zero, zero, zero, one], 1)
    return rz.view(n, 3, 3) @ ry.view(n, 3, 3) @ rx.view(n, 3, 3)


def _affine(u: Tensor, spatial: tuple[int, ...], p: AugmentParams) -> Tensor:
    """Per-sample affine matrices ``(N, ndim, ndim + 1)`` mapping output to input coordinates.

    ``p_in = centre + shift + D^-1 R D diag(crop * flip) p_out`` in normalised coordinates
    (axis order x=width, y=height, z=depth), ``D`` the image sides, so rotations are rigid in
    pixel space even for non-square images.
    """
    ndim = len(spatial)
    sides = torch.tensor(spatial[::-1], dtype=u.dtype)  # (W, H[, D]) in x, y, z order
    if p.crop_scale is not None:
        lo, hi = p.crop_scale
        side = (lo + (hi - lo) * u[:, _SCALE]) ** (1.0 / ndim)
        lr0, lr1 = math.log(p.crop_ratio[0]), math.log(p.crop_ratio[1])
        ratio = torch.exp(lr0 + (lr1 - lr0) * u[:, _RATIO]).sqrt()
        crop = side[:, None].repeat(1, ndim)
        crop[:, 0] = crop[:, 0] * ratio
        crop[:, 1] = crop[:, 1] / ratio
        crop = crop.clamp(max=1.0)
    else:
        crop = torch.ones(u.shape[0], ndim, dtype=u.dtype)
    centre = (2 * u[:, _CX : _CX + ndim] - 1) * (1 - crop)
    shift = (2 * u[:, _T : _T + ndim] - 1) * 2 * p.translation
    flip_prob = torch.tensor([p.hflip, p.vflip, p.dflip][:ndim], dtype=u.dtype)
    flip = torch.where(u[:, _FLIP : _FLIP + ndim] < flip_prob, -1.0, 1.0)
    angles = (2 * u[:, _ROT : _ROT + 3] - 1) * math.radians(p.rotation)
    rot = _rotation(angles, ndim)
    rot = rot * sides[None, None, :] / sides[None, :, None]  # D^-1 R D
    linear = rot * (crop * flip)[:, None, :]
    return torch.cat([linear, (centre + shift)[:, :, None]], dim=2)


def _base_grid(spatial: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Tensor:
    """Pixel-centre coordinates ``(prod(S), ndim + 1)`` in x, y[, z] order plus a 1 column."""
    axes = [(2 * torch.arange(s, device=device, dtype=dtype) + 1) / s - 1 for s in spatial]
    mesh = torch.meshgrid(*axes, indexing="ij")  # each (*S), axis order (D,) H, W
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x (width) first
    return torch.stack([*coords, torch.ones_like(coords[0])], dim=1)


def _warp(x: Tensor, theta: Tensor, padding_mode: str) -> Tensor:
    """``grid_sample`` with per-sample affine ``theta`` (N, ndim, ndim + 1).

    Same result as ``F.affine_grid`` (align_corners=False), but the grid is built with one
    batched matrix product in an (N, ndim, P) layout, several times faster on CPU.
    ``"border"`` is done by clamping the coordinates to the outer pixel centres and sampling
    with zero padding (identical for bilinear interpolation, and faster).
    """
    n, _, *spatial = x.shape
    ndim = len(spatial)
    base = _base_grid(tuple(spatial), x.device, x.dtype)[:, :ndim].T  # (ndim, P)
    # (n, ndim, P): theta[:, :, :ndim] @ base + theta[:, :, ndim], one component per row
    coords = torch.baddbmm(theta[:, :, ndim:], theta[:, :, :ndim], base.expand(n, -1, -1))
    if padding_mode == "border":
        for i, side in enumerate(spatial[::-1]):  # x, y[, z] order
            coords[:, i].clamp_(-1 + 1 / side, 1 - 1 / side)
    grid = coords.transpose(1, 2).unflatten(1, tuple(spatial))  # (n, *S, ndim), a view
    mode = "zeros" if padding_mode == "border" else padding_mode
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=mode, align_corners=False)


def _intensity(x: Tensor, u: Tensor, p: AugmentParams) -> Tensor:
    """Contrast around each image's mean and brightness as one affine map, then gamma."""
    view = (-1,) + (1,) * (x.ndim - 1)
    if p.contrast > 0 or p.brightness > 0:
        factor = (1 + p.contrast * (2 * u[:, _CONTRAST] - 1)).view(view)
        shift = (p.brightness * (2 * u[:, _BRIGHT] - 1)).view(view)
        if p.contrast > 0:
            mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
            shift = shift + mean * (1 - factor)
        x = torch.addcmul(shift, x, factor)
    if p.gamma is not None:
        g0, g1 = math.log(p.gamma[0]), math.log(p.gamma[1])
        gamma = torch.exp(g0 + (g1 - g0) * u[:, _GAMMA]).view(view)
        x = x.clamp(0, 1).pow(gamma)
    return x


def _blur_matrix(sigma: Tensor, side: int, radius: int) -> Tensor:
    """Per-sample banded matrices ``(n, side, side)``: Gaussian blur with replicate padding."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigma.dtype, device=sigma.device)
    kernel = torch.exp(-(offsets[None] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = kernel / kernel.sum(1, keepdim=True)  # (n, k)
    cols = (torch.arange(side, device=sigma.device)[:, None] + offsets.long()[None]).clamp(
        0, side - 1
    )  # (side, k): input index read by output row i for each tap
    out = torch.zeros(sigma.shape[0], side, side, dtype=sigma.dtype, device=sigma.device)
    n_taps = offsets.shape[0]
    index = cols[None].expand(sigma.shape[0], side, n_taps)
    return out.scatter_add_(2, index, kernel[:, None, :].expand(-1, side, -1))


def _blur(x: Tensor, sigma: Tensor) -> Tensor:
    """Separable Gaussian blur, one sigma per sample; ``x`` (n, C, *S), ``sigma`` (n,).

    Each axis is one batched matrix product with a banded matrix (faster on CPU than a
    grouped convolution with one group per sample).
    """
    n, _, *spatial = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    ndim = len(spatial)
    for axis, side in enumerate(spatial):
        mat = _blur_matrix(sigma, side, radius)  # (n, side, side)
        h = x.movedim(2 + axis, -1)  # (n, ..., side)
        moved = h.shape
        h = h.reshape(n, -1, side) @ mat.transpose(1, 2)
        x = h.view(moved).movedim(-1, 2 + axis)
    return x.contiguous() if ndim else x


def _cutout(x: Tensor, u: Tensor, p: AugmentParams) -> Tensor:
    """Zero one box per selected sample (product of per-axis 0/1 profiles)."""
    spatial = x.shape[2:]
    ndim = len(spatial)
    lo, hi = p.cutout_size
    size = lo + (hi - lo) * u[:, _CUT_SIZE : _CUT_SIZE + ndim]  # fraction of each side
    start = u[:, _CUT_POS : _CUT_POS + ndim] * (1 - size)
    box = (u[:, _CUT_P] < p.cutout_prob).to(x.dtype).view(-1, *[1] * ndim)
    for axis, side in enumerate(spatial):
        pos = (torch.arange(side, device=x.device, dtype=x.dtype) + 0.5) / side
        inside = (pos[None] >= start[:, axis, None]) & (pos[None] < (start + size)[:, axis, None])
        shape = [x.shape[0]] + [1] * ndim
        shape[1 + axis] = side
        box = box * inside.to(x.dtype).view(shape)
    return x * (1 - box)[:, None]


def augment_batch(
    x: Tensor, params: AugmentParams | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Augment a batch with independent random parameters per sample (one view).

    Parameters
    ----------
    x : Tensor of shape (N, C, H, W) or (N, C, D, H, W)
        Floating-point images in [0, 1], on any device.
    params : AugmentParams, optional
        Defaults to ``AugmentParams()``.
    generator : torch.Generator, optional
        CPU generator for every random draw (results are reproducible given its state);
        ``None`` uses the global RNG.

    Returns
    -------
    view : Tensor, same shape, dtype and device as ``x``, values in [0, 1].
    """
    params = AugmentParams() if params is None else params
    if not isinstance(x, Tensor) or x.ndim not in (4, 5) or not x.is_floating_point():
        got = f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x)
        raise ValueError(
            f"Expected a floating-point tensor (N, C, H, W) or (N, C, D, H, W), got {got}."
        )
    n, spatial = x.shape[0], tuple(x.shape[2:])
    u = torch.rand(n, _K, generator=generator, dtype=torch.float32)
    if params.has_geometry:
        theta = _affine(u, spatial, params).to(device=x.device, dtype=x.dtype)
        x = _warp(x, theta, params.padding_mode)
    u = u.to(device=x.device, dtype=x.dtype)
    x = _intensity(x, u, params)
    if params.blur_prob > 0:
        # every sample goes through the (cheap) banded matrix products; unselected samples
        # get a vanishing sigma, i.e. an exact identity kernel
        s0, s1 = params.blur_sigma
        sigma = torch.where(u[:, _BLUR_P] < params.blur_prob, s0 + (s1 - s0) * u[:, _BLUR_S], 1e-3)
        x = _blur(x, sigma)
    if params.noise_std > 0:
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32)
        std = (params.noise_std * u[:, _NOISE]).view(-1, *[1] * (x.ndim - 1))
        x = torch.addcmul(x, noise.to(device=x.device, dtype=x.dtype), std)
    if params.cutout_prob > 0:
        x = _cutout(x, u, params)
    return x.clamp(0, 1)


class TwoViewAugment:
    """Make two independently augmented views of a batch.

    Parameters
    ----------
    params : AugmentParams, optional
        Parameters of the built-in batched augmentation; defaults to ``AugmentParams()``.
    transform : callable, optional
        Your own per-image pipeline (e.g. ``torchvision.transforms.v2.Compose``), applied to
        each image ``(C, *S)`` separately instead of the built-in augmentation. It draws from
        torch's global RNG, so each call runs inside ``torch.random.fork_rng`` seeded from
        ``generator``: views are reproducible and the global RNG state is left untouched.

    Examples
    --------
    >>> aug = TwoViewAugment()
    >>> v1, v2 = aug(torch.rand(8, 1, 28, 28), torch.Generator().manual_seed(0))
    """

    def __init__(
        self,
        params: AugmentParams | None = None,
        *,
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if params is not None and transform is not None:
            raise ValueError("Expected either params or transform, got both.")
        if params is not None and not isinstance(params, AugmentParams):
            raise TypeError(f"Expected params to be AugmentParams, got {type(params).__name__}.")
        if transform is not None and not callable(transform):
            raise TypeError(f"Expected transform to be callable, got {type(transform).__name__}.")
        self.params = AugmentParams() if params is None and transform is None else params
        self.transform = transform

    def __call__(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return two views ``(v1, v2)`` of ``x`` ``(N, C, *S)``, each of the same shape."""
        if self.transform is None:
            # one call on the doubled batch: every row still gets its own parameters, and the
            # fixed per-call cost is paid once
            both = augment_batch(torch.cat([x, x]), self.params, generator)
            return both[: x.shape[0]], both[x.shape[0] :]
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            v1 = torch.stack([self.transform(img) for img in x])
            v2 = torch.stack([self.transform(img) for img in x])
        return v1, v2

    def __repr__(self) -> str:
        inner = repr(self.transform) if self.transform is not None else repr(self.params)
        return f"TwoViewAugment({inner})"
