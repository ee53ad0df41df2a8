"""ResNet trunks for small medical images: torchvision's ResNet-18 / ResNet-50 (R3D-18 for
volumes) with a small-image stem and no classifier, and local pretrained weights.

A trunk maps images ``(N, C, H, W)`` or volumes ``(N, C, D, H, W)`` to features ``(N, F)``;
it is the encoder of :class:`~lab.baselines.SupervisedBaseline` and can be any
:class:`~stratify.Stratifier`'s ``encoder``. Weights are read from a local file only
(``torch.load(..., weights_only=True)``); nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from stratify._validation import check_in_range, check_option

__all__ = ["ARCHS", "STEMS", "load_weights", "resnet18_trunk", "resnet_trunk"]

#: Trunk architectures by name: torchvision builders for 2D images and 3D volumes (None: no
#: 3D variant in torchvision).
ARCHS: dict[str, tuple[str, str | None]] = {
    "resnet18": ("resnet18", "r3d_18"),
    "resnet50": ("resnet50", None),
}
#: Input stems for small images. ``"small"``: a 3x3(x3) convolution with ``stem_stride``,
#: then a stride-2 max-pooling (at 28 px the first stage sees 14 x 14, or 7 x 7 with
#: ``stem_stride=2``). ``"medmnist"``: the MedMNIST v2 set-up for 28 px inputs (Yang et al.
#: 2023; their public ``experiments`` code): inputs normalised to [-1, 1], a 3x3(x3)
#: stride-1 convolution, no max-pooling (the first stage sees 28 x 28, CIFAR-style).
STEMS = ("small", "medmnist")


class _Normalize(nn.Module):
    """``(x - 0.5) / 0.5``: MedMNIST's ``Normalize(mean=.5, std=.5)`` of [0, 1] inputs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 - 1.0


def _stem(dims: int, in_channels: int, stem: str, stride: int) -> nn.Module:
    conv, norm, pool = (
        (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
        if dims == 2
        else (nn.Conv3d, nn.BatchNorm3d, nn.MaxPool3d)
    )
    layers = [
        conv(in_channels, 64, 3, stride=stride, padding=1, bias=False),
        norm(64),
        nn.ReLU(inplace=True),
    ]
    if stem == "medmnist":
        return nn.Sequential(_Normalize(), *layers)
    return nn.Sequential(*layers, pool(3, stride=2, padding=1))


def resnet_trunk(
    image_shape: Sequence[int],
    *,
    arch: str = "resnet18",
    stem: str = "small",
    weights: str | os.PathLike | None = None,
    stem_stride: int = 1,
) -> tuple[nn.Module, list[str], dict[str, str]]:
    """A torchvision ResNet trunk (2D, or R3D-18 for volumes) with a stem for small images.

    The 7x7 stride-2 stem and max-pooling (2D) or the 3x7x7 stem (3D) are replaced by the
    ``stem`` (see :data:`STEMS`) with ``C`` input channels; the final ``fc`` is removed, so
    the trunk maps ``(N, C, H, W)`` or ``(N, C, D, H, W)`` to ``(N, F)`` (F = 512 for
    ResNet-18 / R3D-18, 2048 for ResNet-50).

    Parameters
    ----------
    image_shape : tuple of int
        ``(C, H, W)`` or ``(C, D, H, W)``.
    arch : {"resnet18", "resnet50"}, default="resnet18"
        ResNet-50 has no 3D variant here.
    stem : {"small", "medmnist"}, default="small"
    weights : path, optional
        A local state dict of the torchvision network (``resnet18``, ``resnet50`` or
        ``video.r3d_18``), e.g. ImageNet weights saved with ``torch.save(model.state_dict(),
        path)``, or a trunk saved by
        :meth:`lab.baselines.SupervisedBaseline.save_trunk`. Loaded with
        ``weights_only=True`` into the trunk with its new stem; every tensor whose name and
        shape match is copied, the others are reported (ImageNet's 7x7 stem and ``fc`` never
        match; a stratify trunk's stem does when the channels agree). Nothing is downloaded.
    stem_stride : int, default=1
        Stride of the stem convolution (2 halves the cost of every later layer on a CPU).

    Returns
    -------
    trunk : nn.Module
        The torchvision network itself, its ``fc`` an identity.
    loaded : list of str
        Names of the tensors copied from ``weights`` (empty without weights).
    skipped : dict of str to str
        Tensors of ``weights`` not copied, each with the reason (not in the network, another
        shape, or replaced by the new stem / removed with ``fc``).
    """
    import torchvision

    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (3, 4):
        raise ValueError(
            f"Expected image_shape (C, H, W) or (C, D, H, W), got {tuple(image_shape)}."
        )
    check_option(arch, "arch", "resnet_trunk", set(ARCHS))
    check_option(stem, "stem", "resnet_trunk", set(STEMS))
    stride = check_in_range(stem_stride, "stem_stride", "resnet_trunk", kind=int, low=1)
    name_2d, name_3d = ARCHS[arch]
    if len(shape) == 3:
        net = getattr(torchvision.models, name_2d)(weights=None)
    elif name_3d is None:
        raise ValueError(
            f"Expected a 2D image_shape for arch={arch!r} (torchvision has no 3D "
            f"{arch}), got the volume shape {shape}; use arch='resnet18'."
        )
    else:
        net = getattr(torchvision.models.video, name_3d)(weights=None)
    new_stem = _stem(len(shape) - 1, shape[0], stem, stride)
    if len(shape) == 3:
        net.conv1, net.bn1, net.relu, net.maxpool = (
            new_stem,
            nn.Identity(),
            nn.Identity(),
            (nn.Identity()),
        )
    else:
        net.stem = new_stem
    net.fc = nn.Identity()
    if weights is None:
        return net, [], {}
    # Loaded into the network as built, so a trunk saved by stratify with the same stem
    # (SupervisedBaseline.save_trunk) loads whole. The stem loads all or nothing: ImageNet's
    # 7x7 stem and fc never fit, and a stem whose convolution is not loaded keeps its own
    # normalisation too.
    prefix = "conv1." if len(shape) == 3 else "stem."
    state = _read_state(weights)
    own = net.state_dict()
    stem_fits = all(
        isinstance(state.get(name), torch.Tensor) and state[name].shape == value.shape
        for name, value in own.items()
        if name.startswith(prefix)
    )

    def keep_out(name: str) -> str | None:
        if name.startswith(("conv1.", "bn1.", "stem.")) and (
            not stem_fits or not name.startswith(prefix)
        ):
            return "replaced by the small-image stem"
        if name.startswith("fc."):
            return "removed with fc (the classifier head is new)"
        return None

    loaded, skipped = _load_state(net, state, weights, keep_out)
    return net, loaded, skipped


def resnet18_trunk(
    image_shape: Sequence[int], *, weights: str | os.PathLike | None = None, stem_stride: int = 1
) -> tuple[nn.Module, list[str]]:
    """:func:`resnet_trunk` with ``arch="resnet18"``, ``stem="small"``: (trunk, loaded)."""
    trunk, loaded, _ = resnet_trunk(image_shape, weights=weights, stem_stride=stem_stride)
    return trunk, loaded


def _read_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict (name -> tensor) saved at ``path``; a ``{"state_dict": ...}`` wrapper
    (checkpoint files) is unwrapped.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Expected a local weights file (nothing is downloaded), got a missing path: {path}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"Could not read weights from {path} as a torch state dict: {error}"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(
            f"Expected a state dict (name -> tensor) in {path}, got {type(state).__name__}."
        )
    return state


def _load_state(
    net: nn.Module,
    state: Mapping[str, Any],
    path: str | os.PathLike,
    keep_out: Callable[[str], str | None] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Copy the tensors of ``state`` that match ``net`` by name and shape (and that
    ``keep_out`` does not exclude with a reason); return their names and the others with the
    reason.
    """
    own = net.state_dict()
    matched, skipped = {}, {}
    for name, value in state.items():
        reason = keep_out(name) if keep_out is not None else None
        if reason is not None:
            skipped[name] = reason
        elif name not in own or not isinstance(value, torch.Tensor):
            skipped[name] = f"not in {type(net).__name__}"
        elif value.shape != own[name].shape:
            skipped[name] = (
                f"shape {tuple(value.shape)} in the file, {tuple(own[name].shape)} in the network"
            )
        else:
            matched[name] = value
    if not matched:
        raise ValueError(
            f"No tensor of {path} matches the {type(net).__name__} layout (names and shapes); "
            "expected a torchvision resnet18 / resnet50 (2D) or r3d_18 (3D) state dict."
        )
    net.load_state_dict(matched, strict=False)
    return sorted(matched), skipped


def load_weights(net: nn.Module, path: str | os.PathLike) -> tuple[list[str], dict[str, str]]:
    """Copy the tensors of the state dict at ``path`` that match ``net`` by name and shape;
    return their names and the others with the reason.
    """
    return _load_state(net, _read_state(path), path)
