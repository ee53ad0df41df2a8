"""Reconstruction, KL and ELBO terms (thin modules around :mod:`stratify.losses.functional`)."""

from __future__ import annotations

from typing import Literal, cast

from torch import Tensor

from stratify.losses import functional as LF
from stratify.losses._base import LossTerm
from stratify.losses._checks import check_choice, check_float

__all__ = ["ELBO", "BCEReconstruction", "KLDivergence", "MSEReconstruction"]

_REDUCTIONS = ("mean", "sum")
_OUTPUTS = ("logits", "values")
Reduction = Literal["mean", "sum"]
Output = Literal["logits", "values"]


def _check_same_shape(recon: Tensor, x: Tensor) -> None:
    for name, t in (("recon", recon), ("x", x)):
        if not isinstance(t, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(t).__name__}.")
    if recon.shape != x.shape or recon.ndim < 2:
        raise ValueError(
            "Expected recon and x to have the same shape (N, C, *spatial), got "
            f"{tuple(recon.shape)} and {tuple(x.shape)}."
        )


def _check_posterior(mu: Tensor, logvar: Tensor) -> None:
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(t).__name__}.")
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(
            "Expected mu and logvar to have the same shape (N, D), got "
            f"{tuple(mu.shape)} and {tuple(logvar.shape)}."
        )


class MSEReconstruction(LossTerm):
    """Squared error per pixel/voxel, ``(sigmoid(recon) - x)^2`` (or ``(recon - x)^2``).

    Parameters
    ----------
    output : {"logits", "values"}, default="logits"
        What the decoder returns: "logits" (stratify's decoders; a sigmoid is applied) or
        "values" (compared as they are).
    reduction : {"mean", "sum"}, default="mean"
        "mean": average over all elements; "sum": sum per sample, averaged over the batch.

    Notes
    -----
    Inputs ``recon``, ``x``: (N, C, *spatial), ``x`` in [0, 1]. Returns a 0-dim tensor.
    """

    requires = frozenset({"recon", "x"})

    def __init__(self, output: str = "logits", reduction: str = "mean") -> None:
        super().__init__()
        self.output = cast(Output, check_choice(output, "output", type(self).__name__, _OUTPUTS))
        self.reduction = cast(
            Reduction, check_choice(reduction, "reduction", type(self).__name__, _REDUCTIONS)
        )

    def forward(self, recon: Tensor, x: Tensor) -> Tensor:
        """Loss of a batch; ``recon``, ``x`` of shape (N, C, *spatial). Returns shape ()."""
        _check_same_shape(recon, x)
        return LF.mse_reconstruction(recon, x, output=self.output, reduction=self.reduction)


class BCEReconstruction(LossTerm):
    """Binary cross-entropy with logits per pixel/voxel.

    ``-(x log sigmoid(r) + (1 - x) log(1 - sigmoid(r)))`` for decoder logits ``r``.

    Parameters
    ----------
    reduction : {"mean", "sum"}, default="mean"
        "mean": average over all elements; "sum": sum per sample, averaged over the batch.

    Notes
    -----
    Inputs ``recon`` (logits), ``x`` in [0, 1]: (N, C, *spatial). Returns a 0-dim tensor.
    """

    requires = frozenset({"recon", "x"})

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = cast(
            Reduction, check_choice(reduction, "reduction", type(self).__name__, _REDUCTIONS)
        )

    def forward(self, recon: Tensor, x: Tensor) -> Tensor:
        """Loss of a batch; ``recon``, ``x`` of shape (N, C, *spatial). Returns shape ()."""
        _check_same_shape(recon, x)
        return LF.bce_reconstruction(recon, x, reduction=self.reduction)


class KLDivergence(LossTerm):
    """KL divergence of the diagonal Gaussian posterior to N(0, I) (Kingma & Welling 2014).

    ``KL = sum_j max(free_bits, KL_j)``, ``KL_j = (1/N) sum_i 0.5 (mu_ij^2 + exp(logvar_ij)
    - 1 - logvar_ij)``: nats per sample. Its weight ``beta`` is the term's weight in the
    :class:`~stratify.losses.Objective` (divide it by the number of pixels when the
    reconstruction is a per-pixel mean, as :func:`~stratify.losses.build_objective` does).

    Parameters
    ----------
    free_bits : float, default=0.0
        Nats per latent dimension below which a dimension's batch-averaged KL is not
        penalised (Kingma et al. 2016, "free bits"); 0 gives the plain KL.

    Notes
    -----
    Inputs ``mu``, ``logvar``: (N, D). Returns a 0-dim tensor.
    """

    requires = frozenset({"mu", "logvar"})

    def __init__(self, free_bits: float = 0.0) -> None:
        super().__init__()
        self.free_bits = check_float(free_bits, "free_bits", type(self).__name__, closed=True)

    def forward(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """KL of a batch; ``mu``, ``logvar`` of shape (N, D). Returns shape ()."""
        _check_posterior(mu, logvar)
        return LF.kl_normal(mu, logvar, free_bits=self.free_bits)


class ELBO(LossTerm):
    """Negative (beta-)ELBO as one term: ``reconstruction + beta * KL``.

    Use it when a single logged value is wanted; otherwise put a reconstruction term and a
    :class:`KLDivergence` term with weight ``beta`` in the Objective (same total).

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL, in [0, inf).
    reconstruction : {"bce", "mse"}, default="bce"
    output : {"logits", "values"}, default="logits"
        For MSE only (BCE always takes logits).
    reduction : {"mean", "sum"}, default="sum"
        Of the reconstruction; "sum" gives the ELBO per sample (the KL is always per sample).

    Notes
    -----
    Inputs ``recon``, ``x``: (N, C, *spatial); ``mu``, ``logvar``: (N, D). Returns shape ().
    """

    requires = frozenset({"recon", "x", "mu", "logvar"})

    def __init__(
        self,
        beta: float = 1.0,
        reconstruction: str = "bce",
        output: str = "logits",
        reduction: str = "sum",
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.beta = check_float(beta, "beta", owner, closed=True)
        self.reconstruction = check_choice(reconstruction, "reconstruction", owner, ("bce", "mse"))
        self.output = cast(Output, check_choice(output, "output", owner, _OUTPUTS))
        self.reduction = cast(Reduction, check_choice(reduction, "reduction", owner, _REDUCTIONS))

    def forward(self, recon: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """Negative ELBO of a batch. Returns shape ()."""
        _check_same_shape(recon, x)
        _check_posterior(mu, logvar)
        return LF.elbo(
            recon,
            x,
            mu,
            logvar,
            beta=self.beta,
            reconstruction=self.reconstruction,  # type: ignore[arg-type]
            output=self.output,
            reduction=self.reduction,
        )
