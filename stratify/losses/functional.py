"""Pure functions for the losses: contrastive weights and losses, reconstruction, KL, ELBO.

No state, no argument validation beyond what the maths needs: the ``nn.Module`` terms in
:mod:`stratify.losses.contrastive` and :mod:`stratify.losses.reconstruction` validate and call
these. Every function is device- and dtype-agnostic (helper tensors are built on the input's
device and dtype) and works in float32 and float64.

Conventions for the contrastive functions: two views ``z1``, ``z2`` of shape (N, P) are stacked
into 2N embeddings ``z = [z1; z2]`` (row ``a`` and row ``a + N`` are the two views of sample
``a``), L2-normalised, and compared by cosine similarity over a temperature ``tau``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "bce_reconstruction",
    "confident_cross_entropy",
    "contrastive_weights",
    "elbo",
    "equality_matrix",
    "kernel_contrastive_loss",
    "kl_normal",
    "kl_per_dimension",
    "mse_reconstruction",
    "neighbour_consistency",
    "nt_xent",
    "size_divergence",
    "supcon",
]

#: ``eps`` of ``F.normalize``: an all-zero embedding stays zero (similarity 0) instead of NaN.
NORMALIZE_EPS = 1e-12


def contrastive_weights(kernel_matrix: Tensor) -> Tensor:
    """Per-anchor weights over the 2N embeddings from a sample-level kernel matrix.

    For the 2N embeddings (two views of N samples), the raw weight of candidate ``b`` for
    anchor ``a`` is the kernel value of their samples, ``K[a mod N, b mod N]``, except that

    - the anchor's own other view (``b = a +- N``) always has weight 1 (a normalised kernel
      gives 1 there anyway; this also holds when the sample's metadata is missing);
    - NaN entries of ``kernel_matrix`` (missing metadata for either sample) count as 0, so a
      sample with missing metadata has its own other view as its only positive, and is no
      positive of anyone else;
    - the anchor itself (``b = a``) has weight 0.

    Each row is then divided by its sum (>= 1), so that ``sum_{b != a} w_ab = 1``.

    Parameters
    ----------
    kernel_matrix : Tensor, shape (N, N)
        Non-negative kernel values between samples (NaN = unknown). Not differentiated.

    Returns
    -------
    Tensor, shape (2N, 2N)
        Row-normalised weights with a zero diagonal, same dtype and device as the input.
    """
    n = kernel_matrix.shape[0]
    k = torch.nan_to_num(kernel_matrix.detach(), nan=0.0).clamp_min(0.0)
    w = k.repeat(2, 2)
    idx = torch.arange(2 * n, device=k.device)
    w[idx, (idx + n) % (2 * n)] = 1.0
    w[idx, idx] = 0.0
    return w / w.sum(dim=1, keepdim=True)


def kernel_contrastive_loss(
    z1: Tensor, z2: Tensor, weights: Tensor, temperature: float, anchors: Tensor | None = None
) -> Tensor:
    """General weighted contrastive loss over two views.

    With ``z`` the 2N L2-normalised embeddings and ``s_ab = z_a . z_b / tau``::

        L = -(1 / 2N) sum_a sum_{b != a} w_ab log( exp(s_ab) / sum_{c != a} exp(s_ac) )

    The anchor itself is removed from the candidates (the off-diagonal entries are gathered
    into a (2N, 2N - 1) matrix; no ``-inf`` fill), and the log-softmax subtracts the row
    maximum, so the value and gradient are finite for any temperature and batch size. With
    N = 1 the only candidate is the other view and the loss is 0.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, P)
        The two views (not necessarily normalised; an all-zero row is allowed).
    weights : Tensor, shape (2N, 2N)
        Non-negative weights ``w_ab``; the diagonal is ignored and each row is normalised to
        sum to 1 here (an all-zero row contributes 0). See :func:`contrastive_weights`.
    temperature : float
        ``tau`` > 0.
    anchors : Tensor of int64, shape (A,), optional
        Rows of the 2N embeddings that act as anchors (every row by default); the loss is
        then the mean over these anchors only, each still compared with all 2N - 1 others.
        A distributed fit passes the rows of this rank's samples (both views).

    Returns
    -------
    Tensor, shape ()
        The loss.
    """
    z = F.normalize(torch.cat([z1, z2], dim=0), p=2.0, dim=1, eps=NORMALIZE_EPS)
    m = z.shape[0]
    weights = weights.detach().to(device=z.device, dtype=z.dtype)
    if anchors is None:
        sim = (z @ z.T) / temperature
        off = ~torch.eye(m, dtype=torch.bool, device=z.device)
    else:
        anchors = anchors.to(z.device)
        sim = (z[anchors] @ z.T) / temperature
        weights = weights[anchors]
        off = torch.ones_like(sim, dtype=torch.bool)
        off[torch.arange(anchors.shape[0], device=z.device), anchors] = False
    rows = sim.shape[0]
    sim = sim[off].view(rows, m - 1)
    w = weights[off].view(rows, m - 1)
    w = w / w.sum(dim=1, keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    log_prob = torch.log_softmax(sim, dim=1)
    return -(w * log_prob).sum() / rows


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent / InfoNCE loss of SimCLR (Chen et al. 2020).

    ``w_ab = 1`` only for ``b`` the other view of ``a``::

        L = -(1 / 2N) sum_a log( exp(s_{a,a'}) / sum_{c != a} exp(s_ac) )

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, P)
        The two views.
    temperature : float
        ``tau`` > 0.

    Returns
    -------
    Tensor, shape ()
    """
    n = z1.shape[0]
    kernel = torch.zeros(n, n, dtype=z1.dtype, device=z1.device)
    return kernel_contrastive_loss(z1, z2, contrastive_weights(kernel), temperature)


def equality_matrix(labels: Tensor) -> Tensor:
    """``K[i, j] = 1[labels_i == labels_j]`` (all columns equal), NaN where a label is NaN.

    Parameters
    ----------
    labels : Tensor, shape (N,) or (N, d)

    Returns
    -------
    Tensor, shape (N, N), dtype of ``labels`` if floating, else float64.
    """
    dtype = labels.dtype if torch.is_floating_point(labels) else torch.float64
    lab = labels.detach().to(dtype).reshape(labels.shape[0], -1)
    eq = (lab[:, None, :] == lab[None, :, :]).all(dim=-1).to(dtype)
    missing = torch.isnan(lab).any(dim=1)
    nan = torch.full_like(eq, float("nan"))
    return torch.where(missing[:, None] | missing[None, :], nan, eq)


def supcon(z1: Tensor, z2: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, "L_out": mean over positives).

    ``w_ab`` is uniform over the candidates whose sample has the anchor's label (both views
    of every such sample, the anchor's other view included). A sample with a NaN label has
    its own other view as its only positive and is no positive of another sample.

    Parameters
    ----------
    z1, z2 : Tensor, shape (N, P)
        The two views.
    labels : Tensor, shape (N,) or (N, d)
        Label codes (float, NaN = missing); with d columns, labels are equal when all are.
    temperature : float
        ``tau`` > 0.

    Returns
    -------
    Tensor, shape ()
    """
    weights = contrastive_weights(equality_matrix(labels.to(z1.device)))
    return kernel_contrastive_loss(z1, z2, weights, temperature)


def kl_per_dimension(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL divergence of a diagonal Gaussian to N(0, I) per latent dimension, averaged over N.

    ``KL_j = (1/N) sum_i 0.5 (mu_ij^2 + exp(logvar_ij) - 1 - logvar_ij)``.

    Parameters
    ----------
    mu, logvar : Tensor, shape (N, D)
        Posterior mean and log-variance.

    Returns
    -------
    Tensor, shape (D,)
    """
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(dim=0)


def kl_normal(mu: Tensor, logvar: Tensor, free_bits: float = 0.0) -> Tensor:
    """KL divergence of a diagonal Gaussian to N(0, I), summed over D, averaged over N.

    ``KL = sum_j max(free_bits, KL_j)`` with ``KL_j`` from :func:`kl_per_dimension`; with
    ``free_bits=0`` this is ``(1/N) sum_i 0.5 sum_j (mu_ij^2 + exp(logvar_ij) - 1 -
    logvar_ij)`` (Kingma & Welling 2014). A positive ``free_bits`` (nats per dimension,
    Kingma et al. 2016) stops the KL of a dimension from being pushed below it, so the
    optimiser gains nothing by collapsing that dimension onto the prior.

    Parameters
    ----------
    mu, logvar : Tensor, shape (N, D)
        Posterior mean and log-variance.
    free_bits : float, default=0.0
        ``lambda >= 0`` in nats per latent dimension (of the batch-averaged KL).

    Returns
    -------
    Tensor, shape ()
    """
    per_dim = kl_per_dimension(mu, logvar)
    if free_bits > 0:
        per_dim = per_dim.clamp(min=free_bits)
    return per_dim.sum()


def _reduce(per_element: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_element.mean()
    return per_element.reshape(per_element.shape[0], -1).sum(dim=1).mean()


def mse_reconstruction(
    recon: Tensor,
    x: Tensor,
    output: Literal["logits", "values"] = "logits",
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Squared error per pixel/voxel: ``(sigmoid(recon) - x)^2`` (or ``(recon - x)^2``).

    Parameters
    ----------
    recon : Tensor, shape (N, C, *spatial)
        Decoder output: logits (``output="logits"``, a sigmoid is applied first) or values.
    x : Tensor, shape (N, C, *spatial)
        Target in [0, 1].
    output : {"logits", "values"}
    reduction : {"mean", "sum"}
        "mean": average over all elements (per pixel); "sum": sum over each sample's
        elements, averaged over the batch (per sample).

    Returns
    -------
    Tensor, shape ()
    """
    pred = torch.sigmoid(recon) if output == "logits" else recon
    return _reduce((pred - x).pow(2), reduction)


def bce_reconstruction(
    recon: Tensor, x: Tensor, reduction: Literal["mean", "sum"] = "mean"
) -> Tensor:
    """Binary cross-entropy with logits per pixel/voxel.

    ``-(x log sigmoid(r) + (1 - x) log(1 - sigmoid(r)))``, computed stably by
    ``binary_cross_entropy_with_logits`` (soft targets in [0, 1] allowed).

    Parameters
    ----------
    recon : Tensor, shape (N, C, *spatial)
        Decoder logits.
    x : Tensor, shape (N, C, *spatial)
        Target in [0, 1].
    reduction : {"mean", "sum"}
        As in :func:`mse_reconstruction`.

    Returns
    -------
    Tensor, shape ()
    """
    per_element = F.binary_cross_entropy_with_logits(recon, x.to(recon.dtype), reduction="none")
    return _reduce(per_element, reduction)


def elbo(
    recon: Tensor,
    x: Tensor,
    mu: Tensor,
    logvar: Tensor,
    beta: float = 1.0,
    reconstruction: Literal["bce", "mse"] = "bce",
    output: Literal["logits", "values"] = "logits",
    reduction: Literal["mean", "sum"] = "sum",
) -> Tensor:
    """Negative (beta-)ELBO: ``reconstruction(recon, x) + beta * KL(q(z|x) || N(0, I))``.

    With ``reconstruction="bce"`` and ``reduction="sum"`` this is the negative ELBO of a
    Bernoulli decoder in nats per sample (Kingma & Welling 2014). With ``reduction="mean"``
    the reconstruction is per element while the KL stays per sample, which rescales beta.

    Parameters
    ----------
    recon, x : Tensor, shape (N, C, *spatial)
        Decoder output (logits, or values for MSE with ``output="values"``) and target.
    mu, logvar : Tensor, shape (N, D)
    beta : float
    reconstruction : {"bce", "mse"}
    output : {"logits", "values"}
        Only for MSE; BCE always takes logits.
    reduction : {"mean", "sum"}

    Returns
    -------
    Tensor, shape ()
    """
    if reconstruction == "bce":
        rec = bce_reconstruction(recon, x, reduction=reduction)
    else:
        rec = mse_reconstruction(recon, x, output=output, reduction=reduction)
    return rec + beta * kl_normal(mu, logvar)


def student_t_assignments(z: Tensor, centroids: Tensor, alpha: float = 1.0) -> Tensor:
    """Soft assignments of DEC / IDEC: a Student-t kernel between latents and centroids.

    ``q_ij = (1 + ||z_i - c_j||^2 / alpha)^(-(alpha + 1) / 2)``, normalised over ``j``
    (Xie et al. 2016; Guo et al. 2017).

    Parameters
    ----------
    z : Tensor, shape (N, D)
    centroids : Tensor, shape (K, D)
    alpha : float, default=1.0
        Degrees of freedom of the Student-t kernel.

    Returns
    -------
    Tensor, shape (N, K)
        Rows sum to 1.
    """
    squared = (z[:, None, :] - centroids[None, :, :]).pow(2).sum(dim=-1)
    # log-space for stability: log q = -(alpha + 1) / 2 * log1p(d^2 / alpha), then softmax
    logits = -(alpha + 1) / 2 * torch.log1p(squared / alpha)
    return torch.softmax(logits, dim=1)


def sharpened_target(q: Tensor, balance: float = 1.0) -> Tensor:
    """Target distribution of self-training: ``p_ij ∝ q_ij^2 / f_j^balance``.

    ``f_j = sum_i q_ij`` is the soft size of cluster ``j`` in the batch. ``balance=1`` is the
    DEC target (it shrinks large clusters, which suits balanced classes); ``balance=0`` only
    sharpens and keeps the cluster proportions (imbalanced classes).

    Parameters
    ----------
    q : Tensor, shape (N, K)
        Soft assignments (rows sum to 1).
    balance : float, default=1.0
        In [0, 1].

    Returns
    -------
    Tensor, shape (N, K)
        Rows sum to 1; computed without gradient (a fixed target).
    """
    q = q.detach()
    weight = q.pow(2) / q.sum(dim=0, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny).pow(balance)
    return weight / weight.sum(dim=1, keepdim=True)


def self_training_loss(
    z: Tensor, centroids: Tensor, alpha: float = 1.0, balance: float = 1.0
) -> Tensor:
    """``KL(P || Q)`` averaged over the batch, ``Q`` Student-t assignments, ``P`` their target.

    Parameters
    ----------
    z : Tensor, shape (N, D)
    centroids : Tensor, shape (K, D)
    alpha, balance : float
        See :func:`student_t_assignments` and :func:`sharpened_target`.

    Returns
    -------
    Tensor, shape ()
        ``(1/N) sum_i sum_j p_ij (log p_ij - log q_ij)``; gradients flow to ``z`` and
        ``centroids`` through ``q`` only.
    """
    q = student_t_assignments(z, centroids, alpha)
    p = sharpened_target(q, balance)
    tiny = torch.finfo(q.dtype).tiny
    return (p * (p.clamp_min(tiny).log() - q.clamp_min(tiny).log())).sum(dim=1).mean()


def neighbour_consistency(p: Tensor, p_neighbours: Tensor) -> Tensor:
    """SCAN's consistency term: ``-(1/(N M)) sum_i sum_m log <p_i, p_im>``.

    Parameters
    ----------
    p : Tensor, shape (*H, N, K)
        Soft assignments of the anchors (rows sum to 1), for each of the leading heads.
    p_neighbours : Tensor, shape (*H, N, M, K)
        Soft assignments of each anchor's M nearest neighbours.

    Returns
    -------
    Tensor, shape (*H,)
        0 when every anchor and its neighbours are assigned to one stratum with certainty.
    """
    dots = (p.unsqueeze(-2) * p_neighbours).sum(dim=-1)
    return -dots.clamp_min(torch.finfo(p.dtype).tiny).log().mean(dim=(-2, -1))


def size_divergence(p: Tensor, prior: Tensor) -> Tensor:
    """``KL(mean_i p_i || prior)``: how far the strata's expected sizes are from ``prior``.

    With a uniform prior this is ``log K - H(mean_i p_i)``, SCAN's entropy term up to a
    constant.

    Parameters
    ----------
    p : Tensor, shape (*H, N, K)
    prior : Tensor, shape (K,) or (*H, K)
        Positive, sums to 1.

    Returns
    -------
    Tensor, shape (*H,)
    """
    mean = p.mean(dim=-2)
    return (mean * (mean.clamp_min(torch.finfo(p.dtype).tiny).log() - prior.log())).sum(dim=-1)


def confident_cross_entropy(p: Tensor, logits: Tensor, threshold: float) -> Tensor:
    """Self-labelling: cross-entropy of ``logits`` towards the confident anchors' argmax.

    Anchors whose largest assignment reaches ``threshold`` give their argmax as a pseudo
    label; each class's confident anchors weigh ``1 / (K_seen * count)`` so that every class
    seen counts equally (SCAN's class-balanced self-labelling). Without a confident anchor
    the term is 0.

    Parameters
    ----------
    p : Tensor, shape (*H, N, K)
        Anchor assignments (used without gradient).
    logits : Tensor, shape (*H, N, M, K)
        Logits of the views that learn the pseudo labels (M per anchor).
    threshold : float
        In (0, 1].

    Returns
    -------
    Tensor, shape (*H,)
    """
    confidence, target = p.detach().max(dim=-1)
    mask = (confidence >= threshold).to(logits.dtype)  # (*H, N)
    counts = (F.one_hot(target, p.shape[-1]).to(logits.dtype) * mask[..., None]).sum(
        dim=-2
    )  # (*H, K)
    seen = (counts > 0).sum(dim=-1, keepdim=True).clamp_min(1).to(logits.dtype)
    per_class = torch.where(counts > 0, 1.0 / (seen * counts.clamp_min(1)), 0.0)
    weight = mask * per_class.gather(-1, target)  # (*H, N)
    log_p = logits.log_softmax(dim=-1)
    index = target[..., None, None].expand(*target.shape, logits.shape[-2], 1)
    picked = log_p.gather(-1, index).squeeze(-1)  # (*H, N, M)
    return -(weight[..., None] * picked).sum(dim=(-2, -1)) / logits.shape[-2]
