"""Autoencoder and variational autoencoder modules, the projection head and ``build_model``.

The latent used downstream (clustering, generation, ``embed``) is always the mean ``mu``
returned by :meth:`Autoencoder.encode`; for an AE it is the deterministic code, for a VAE the
posterior mean (never a random sample).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stratify._validation import check_in_range, check_option
from stratify.models.conv import ConvDecoder, ConvEncoder, _check_shape

__all__ = ["Autoencoder", "ProjectionHead", "build_model", "infer_feature_dim"]


class ProjectionHead(nn.Module):
    """Two-layer MLP ``Linear -> ReLU -> Linear`` used by the contrastive terms.

    Parameters
    ----------
    in_dim : int
        Input size (the latent dimension ``D``).
    out_dim : int
        Output size ``P``.
    hidden_dim : int, optional
        Hidden size; defaults to ``max(in_dim, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden = hidden_dim or max(in_dim, out_dim)
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)
        )

    def forward(self, h: Tensor) -> Tensor:
        """Map ``(N, in_dim)`` to ``(N, out_dim)`` (not normalised; the loss normalises)."""
        return self.net(h)


def infer_feature_dim(encoder: nn.Module, image_shape: Sequence[int]) -> int:
    """Length ``F`` of an encoder's output, from one dummy forward under ``no_grad``.

    The encoder is run in eval mode on a zero batch of two images of shape ``image_shape``
    and its train/eval mode is restored afterwards.

    Raises
    ------
    ValueError
        If the output is not a 2-dimensional ``(N, F)`` tensor.
    """
    was_training = encoder.training
    param = next(encoder.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        encoder.eval()
        with torch.no_grad():
            out = encoder(torch.zeros(2, *image_shape, device=device))
    finally:
        encoder.train(was_training)
    if not isinstance(out, Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            "Expected the encoder to map images (N, C, *S) to features (N, F), got "
            f"{shape} for a batch of shape {(2, *image_shape)}. Add a flatten or pooling "
            "layer at the end of the encoder."
        )
    return int(out.shape[1])


class Autoencoder(nn.Module):
    """Encoder, latent heads, optional decoder and projection head.

    Parameters
    ----------
    encoder : nn.Module
        Maps images ``(N, C, *S)`` to features ``(N, F)``.
    feature_dim : int
        ``F``.
    latent_dim : int
        ``D``, the size of ``mu``.
    variational : bool, default=False
        Add a log-variance head (VAE). For an AE ``logvar`` is ``None``.
    decoder : nn.Module, optional
        Maps latents ``(N, D)`` to image logits ``(N, C, *S)``; ``None`` means no decoder
        (``has_decoder`` is False and :meth:`decode` raises).
    projection_dim : int, default=64
        ``P``, output size of the projection head.

    Notes
    -----
    ``forward`` returns a dict with ``"mu"``, ``"logvar"`` (``None`` for an AE), and, when
    there is a decoder, ``"recon"``: logits decoded from ``mu`` in eval mode, or from a
    reparameterised sample in train mode for a VAE.
    """

    def __init__(
        self,
        encoder: nn.Module,
        feature_dim: int,
        latent_dim: int,
        *,
        variational: bool = False,
        decoder: nn.Module | None = None,
        projection_dim: int = 64,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.variational = bool(variational)
        self.latent_dim = int(latent_dim)
        self.projection_dim = int(projection_dim)
        self.mu_head = nn.Linear(feature_dim, latent_dim)
        self.logvar_head = nn.Linear(feature_dim, latent_dim) if variational else None
        self.decoder = decoder
        self.projector = ProjectionHead(latent_dim, projection_dim)

    @property
    def has_decoder(self) -> bool:
        """Whether :meth:`decode` is available."""
        return self.decoder is not None

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Encode images ``(N, C, *S)`` into ``mu`` ``(N, D)`` and ``logvar`` ``(N, D)`` or None."""
        h = self.encoder(x)
        logvar = self.logvar_head(h) if self.logvar_head is not None else None
        return self.mu_head(h), logvar

    def decode(self, z: Tensor) -> Tensor:
        """Decode latents ``(N, D)`` into logits ``(N, C, *S)`` (apply a sigmoid for images)."""
        if self.decoder is None:
            raise RuntimeError(
                "This model has no decoder (a custom encoder was given without a decoder); "
                "pass decoder=... to build_model or drop the reconstruction terms."
            )
        return self.decoder(z)

    def project(self, mu: Tensor) -> Tensor:
        """Projection head for contrastive terms: ``(N, D) -> (N, P)``."""
        return self.projector(mu)

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Sample ``z = mu + exp(logvar / 2) * eps``; returns ``mu`` when ``logvar`` is None.

        ``eps`` is drawn from ``generator`` (on its own device, then moved) when given,
        otherwise from ``torch.randn_like`` (global RNG).
        """
        if logvar is None:
            return mu
        if generator is None:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=generator, device=generator.device)
            eps = eps.to(device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_draw(
        self, mu: Tensor, logvar: Tensor | None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Decode one draw ``z ~ N(mu, exp(logvar))`` (``mu`` itself when ``logvar`` is None):
        logits ``(N, C, *S)`` from ``mu``, ``logvar`` ``(N, D)``. The training step and
        :meth:`forward` both decode through here.
        """
        return self.decode(self.reparameterize(mu, logvar, generator))

    def forward(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> dict[str, Tensor | None]:
        """Encode (and decode when possible) a batch ``(N, C, *S)``; see the class notes for
        the keys. In training mode a VAE decodes a draw from ``generator`` (the global RNG
        when None), in eval mode the mean.
        """
        mu, logvar = self.encode(x)
        out: dict[str, Tensor | None] = {"mu": mu, "logvar": logvar}
        if self.decoder is not None:
            out["recon"] = self.decode_draw(mu, logvar if self.training else None, generator)
        return out


def build_model(
    kind: str = "ae",
    image_shape: Sequence[int] = (1, 28, 28),
    *,
    latent_dim: int = 32,
    width: int = 16,
    depth: int | None = None,
    n_blocks: int = 0,
    norm: str = "batch",
    projection_dim: int = 64,
    encoder: nn.Module | None = None,
    decoder: nn.Module | None = None,
) -> Autoencoder:
    """Build an AE or VAE for 2D images or 3D volumes.

    Parameters
    ----------
    kind : {"ae", "vae"}, default="ae"
        Deterministic autoencoder or variational autoencoder (mean + log-variance heads).
    image_shape : tuple of int, default=(1, 28, 28)
        ``(C, H, W)`` or ``(C, D, H, W)``.
    latent_dim : int, default=32
        ``D``; the latent used downstream is ``mu`` (N, D).
    width : int, default=16
        Channels of the first convolution of the default :class:`ConvEncoder` /
        :class:`ConvDecoder` (doubling at each halving, capped at ``8 * width``).
    depth : int, optional
        Number of halvings; ``None`` chooses it from the size (every side must be divisible
        by ``2**depth``, see :mod:`stratify.models.conv`).
    n_blocks : int, default=0
        Residual blocks per stage (0: a plain 3-convolution CNN at 28 px, fast on CPU).
    norm : {"batch", "none"}, default="batch"
        Batch normalisation after every convolution, or none (faster on CPU).
    projection_dim : int, default=64
        ``P``, output size of the projection head.
    encoder : nn.Module, optional
        Your own encoder mapping images ``(N, C, *S)`` to features ``(N, F)``. ``F`` is
        inferred with one dummy forward under ``no_grad``. Without ``decoder`` the model has
        no decoder (``has_decoder`` False; use contrastive terms only).
    decoder : nn.Module, optional
        Your own decoder mapping ``(N, D)`` to logits ``(N, C, *S)``; only with ``encoder``.

    Returns
    -------
    model : Autoencoder
    """
    kind = check_option(kind, "kind", "build_model", {"ae", "vae"})
    image_shape = _check_shape(image_shape)
    latent_dim = check_in_range(latent_dim, "latent_dim", "build_model", kind=int, low=1)
    projection_dim = check_in_range(
        projection_dim, "projection_dim", "build_model", kind=int, low=1
    )
    if encoder is None:
        if decoder is not None:
            raise ValueError("Expected decoder only together with a custom encoder, got none.")
        conv = ConvEncoder(image_shape, depth=depth, width=width, n_blocks=n_blocks, norm=norm)
        decoder = ConvDecoder(
            image_shape, latent_dim, depth=conv.depth, width=width, n_blocks=n_blocks, norm=norm
        )
        encoder = conv
        feature_dim = encoder.out_features
    else:
        if not isinstance(encoder, nn.Module):
            raise TypeError(
                f"Expected encoder to be a torch nn.Module, got {type(encoder).__name__}."
            )
        feature_dim = infer_feature_dim(encoder, image_shape)
    return Autoencoder(
        encoder,
        feature_dim,
        latent_dim,
        variational=kind == "vae",
        decoder=decoder,
        projection_dim=projection_dim,
    )
