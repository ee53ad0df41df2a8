"""MLP encoder and decoder for feature vectors (radiomics, precomputed embeddings).

Vectors travel through the library as ``(N, F, 1, 1)`` "images" of ``F`` channels, so the
training loop, the objective and the estimator treat them like any other input.
"""

from __future__ import annotations

from torch import Tensor, nn

from stratify._validation import check_in_range

__all__ = ["MLPDecoder", "MLPEncoder"]


class MLPEncoder(nn.Module):
    """Features ``(N, F, 1, 1)`` (or ``(N, F)``) -> hidden features ``(N, hidden)``.

    Parameters
    ----------
    n_features : int
        ``F``.
    hidden : int, default=64
        Width of the two hidden layers.
    """

    def __init__(self, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        check_in_range(n_features, "n_features", "MLPEncoder", kind=int, low=1)
        check_in_range(hidden, "hidden", "MLPEncoder", kind=int, low=1)
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(n_features, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Features (N, hidden) of vectors ``x`` (N, F, 1, 1) or (N, F)."""
        return self.net(x)


class MLPDecoder(nn.Module):
    """Latents ``(N, D)`` -> logits ``(N, F, 1, 1)``."""

    def __init__(self, latent_dim: int, n_features: int, hidden: int = 64) -> None:
        super().__init__()
        check_in_range(latent_dim, "latent_dim", "MLPDecoder", kind=int, low=1)
        check_in_range(n_features, "n_features", "MLPDecoder", kind=int, low=1)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, n_features),
            nn.Unflatten(1, (n_features, 1, 1)),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Logits (N, F, 1, 1) of latents ``z`` (N, D)."""
        return self.net(z)
