"""Two-view augmentation for feature vectors: per-sample Gaussian noise and feature masking."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stratify._validation import check_in_range

__all__ = ["VectorAugment"]


@dataclass(frozen=True)
class VectorAugment:
    """Make two views of a batch of vectors ``(N, F, ...)`` with values in [0, 1].

    Each view adds ``N(0, noise^2)`` to every value and sets each value to 0 with
    probability ``drop``, with independent draws per sample and per view from the
    generator; the result is clipped to [0, 1].

    Parameters
    ----------
    noise : float, default=0.05
    drop : float, default=0.1
    """

    noise: float = 0.05
    drop: float = 0.1

    def __post_init__(self) -> None:
        check_in_range(self.noise, "noise", "VectorAugment", low=0)
        check_in_range(self.drop, "drop", "VectorAugment", low=0, high=1, closed="left")

    def _view(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
        keep = torch.rand(x.shape, generator=generator, device="cpu").to(x) >= self.drop
        return ((x + self.noise * noise) * keep).clamp(0.0, 1.0)

    def __call__(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return two views ``(v1, v2)``, each of the shape of ``x``."""
        return self._view(x, generator), self._view(x, generator)
