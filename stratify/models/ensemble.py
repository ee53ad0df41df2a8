"""An ensemble of independently trained autoencoders, read as one network.

Networks trained from different seeds on the same images learn latent spaces that
separate the same patients in different ways, and a clustering of any one of them
inherits the accidents of its seed. :class:`Ensemble` holds ``m`` such networks: its
latent of an image is the concatenation of the members' latents, ``m`` equal column
blocks (N, m * latent_dim), which :class:`~stratify.cluster.StrataClusterer` reads block by
block (``blocks=m``: each block normalised alike; the consensus backend draws each of its
runs on one network, so its co-association pools the evidence of every network).

Generation goes through the first member's decoder: :meth:`Ensemble.decode` reads the first
block of a latent, so a stratum's latents, drawn in the whole space, decode as the first
network sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from stratify.models.autoencoder import Autoencoder

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """``m`` autoencoders of the same architecture whose latents are concatenated.

    Parameters
    ----------
    members : sequence of Autoencoder
        At least two networks with the same ``latent_dim`` and the same kind (AE or VAE).

    Attributes
    ----------
    members : torch.nn.ModuleList
    member_dim : int
        ``latent_dim`` of one member.
    latent_dim : int
        ``m * member_dim``, the width of :meth:`encode`'s output.
    variational : bool
    """

    def __init__(self, members: Sequence[Autoencoder]) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(
                f"Expected at least 2 networks in an Ensemble, got {len(members)} (one network "
                "is used as it is)."
            )
        dims = {int(m.latent_dim) for m in members}
        kinds = {bool(m.variational) for m in members}
        if len(dims) != 1 or len(kinds) != 1:
            raise ValueError(
                "Expected ensemble members of one latent_dim and one kind (AE or VAE), got "
                f"latent_dim {sorted(dims)} and variational {sorted(kinds)}."
            )
        self.members = nn.ModuleList(members)
        self.member_dim = dims.pop()
        self.latent_dim = self.member_dim * len(members)
        self.variational = kinds.pop()

    def __len__(self) -> int:
        return len(self.members)

    def networks(self) -> list[Autoencoder]:
        """The member networks, in training order."""
        return [cast(Autoencoder, member) for member in self.members]

    @property
    def has_decoder(self) -> bool:
        """Whether the first member (the one :meth:`decode` uses) has a decoder."""
        return self.networks()[0].has_decoder

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Every member's posterior mean (and log-variance), concatenated.

        Parameters
        ----------
        x : Tensor, shape (N, C, *S)

        Returns
        -------
        mu : Tensor, shape (N, m * member_dim)
        logvar : Tensor of the same shape, or None for AEs
        """
        parts = [member.encode(x) for member in self.networks()]
        mu = torch.cat([p[0] for p in parts], dim=1)
        logvars = [p[1] for p in parts if p[1] is not None]
        return mu, (torch.cat(logvars, dim=1) if self.variational else None)

    def decode(self, z: Tensor) -> Tensor:
        """Image logits from the first block of ``z`` (N, m * member_dim) through the first
        member's decoder: (N, C, *S).
        """
        return self.networks()[0].decode(z[:, : self.member_dim])
