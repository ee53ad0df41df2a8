"""Supervised classification term: cross-entropy of the latent head read as class logits.

With ``build_model(..., latent_dim=n_classes)`` the model's ``mu`` head is a linear classifier
on the encoder's features, so the one training loop (:func:`stratify.training.train`) trains
a supervised baseline with ``Objective({"cross_entropy": CrossEntropy()})``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stratify.losses._base import LossTerm

__all__ = ["CrossEntropy", "cross_entropy"]


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the labelled samples; samples with a NaN label are ignored.

    ``L = -(1 / |S|) sum_{i in S} log softmax(logits_i)[y_i]`` over the set ``S`` of samples
    whose label is not NaN; ``L = 0`` when ``S`` is empty (gradient zero, finite).

    Parameters
    ----------
    logits : Tensor, shape (N, K)
        Unnormalised class scores.
    labels : Tensor, shape (N,)
        Class codes in ``{0, ..., K - 1}`` as floats (NaN = unlabelled) or integers. Codes
        of unlabelled samples are not read.

    Returns
    -------
    Tensor, shape ()
        Float32 under autocast, otherwise the dtype of ``logits``.

    Notes
    -----
    No argument validation and no host synchronisation: :class:`CrossEntropy` validates.
    """
    labels = labels.to(logits.device)
    if labels.is_floating_point():
        labelled = ~torch.isnan(labels)
        codes = torch.where(labelled, labels, torch.zeros_like(labels)).long()
    else:
        labelled = torch.ones_like(labels, dtype=torch.bool)
        codes = labels.long()
    per_sample = F.cross_entropy(logits, codes, reduction="none")
    # ``where`` (not a product with the mask) so that ignored rows never reach the sum.
    per_sample = torch.where(labelled, per_sample, torch.zeros_like(per_sample))
    return per_sample.sum() / labelled.sum().clamp_min(1).to(per_sample.dtype)


class CrossEntropy(LossTerm):
    """Cross-entropy of class logits ``mu`` against integer labels (NaN labels ignored).

    The term reads the encoder's ``mu`` head as logits, so the model must be built with
    ``latent_dim`` equal to the number of classes. The loop passes labels as float32 codes
    (``0.0, 1.0, ...``; NaN = missing); they are converted to ``long``. The value is the mean
    over the labelled samples of the batch, and 0 (with a zero, finite gradient) for a batch
    without any labelled sample.

    Attributes
    ----------
    requires : frozenset of str
        ``{"mu", "labels"}``.

    Notes
    -----
    Inputs ``mu``: (N, K) floats; ``labels``: (N,) float codes with NaN for missing, or
    integer codes. Returns a 0-dim tensor.

    Examples
    --------
    >>> import torch
    >>> from stratify.losses import CrossEntropy, Objective
    >>> objective = Objective({"cross_entropy": CrossEntropy()})
    >>> mu = torch.zeros(3, 2)
    >>> total, values = objective({"mu": mu, "labels": torch.tensor([0.0, 1.0, float("nan")])})
    >>> round(float(total), 4)  # log(2)
    0.6931
    """

    requires = frozenset({"mu", "labels"})

    def forward(self, mu: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy of a batch; ``mu`` (N, K), ``labels`` (N,). Returns shape ()."""
        _check_inputs(mu, labels)
        return cross_entropy(mu, labels)


def _check_inputs(mu: Tensor, labels: Tensor) -> None:
    for name, t in (("mu", mu), ("labels", labels)):
        if not isinstance(t, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(t).__name__}.")
    if mu.ndim != 2 or mu.shape[1] < 1 or not torch.is_floating_point(mu):
        raise ValueError(
            "Expected mu to be floating-point class logits of shape (N, K) with K >= 1, got "
            f"shape {tuple(mu.shape)} and dtype {mu.dtype}."
        )
    if labels.ndim != 1 or labels.shape[0] != mu.shape[0]:
        raise ValueError(
            f"Expected labels of shape ({mu.shape[0]},) (one code per row of mu), got shape "
            f"{tuple(labels.shape)}. Multi-label targets are not supported."
        )
    if labels.dtype == torch.bool or not (labels.is_floating_point() or _is_integer(labels)):
        raise TypeError(f"Expected labels as float or integer codes, got dtype {labels.dtype}.")
    n_classes = mu.shape[1]
    known = ~torch.isnan(labels) if labels.is_floating_point() else torch.ones_like(labels).bool()
    values = labels[known]
    bad = (values < 0) | (values >= n_classes)
    if labels.is_floating_point():
        bad |= values != torch.round(values)
    if bool(bad.any()):  # one host sync per batch: an out-of-range code fails clearly
        examples = values[bad][:5].tolist()
        raise ValueError(
            f"Expected label codes in {{0, ..., {n_classes - 1}}} (K = {n_classes} columns of "
            f"mu) or NaN, got {examples}."
        )


def _is_integer(t: Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
