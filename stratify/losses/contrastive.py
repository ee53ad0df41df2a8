"""Contrastive terms over two views: one kernel-weighted term and its named special cases.

Every term computes, for the 2N L2-normalised embeddings ``z = [z1; z2]`` and
``s_ab = z_a . z_b / tau``::

    L = -(1 / 2N) sum_a sum_{b != a} w_ab log( exp(s_ab) / sum_{c != a} exp(s_ac) )

with ``w_ab`` proportional to a kernel on the samples' metadata, normalised per anchor row
(``sum_{b != a} w_ab = 1``), and the anchor's own other view always a positive (weight 1
before normalisation). See :func:`stratify.losses.functional.contrastive_weights`.

Missing metadata: if sample ``a`` has NaN in a column the kernel uses, its only positive is
its own other view and it is no positive of any other sample (for that kernel).

Distributed fits: inside the training loop of a distributed fit
(:func:`stratify.distributed.current` is set), ``z1``, ``z2``, the metadata and the labels of
every rank are gathered; the kernel and the weights are those of the global batch and the
term is the mean over this rank's anchors (both views of its samples).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from stratify import distributed
from stratify.losses import functional as LF
from stratify.losses._base import LossTerm
from stratify.losses._checks import (
    DEFAULT_TEMPERATURE,
    check_choice,
    check_columns,
    check_float,
    check_floats_per_column,
    check_n_samples,
    check_pair,
)
from stratify.losses.kernels import KERNELS, LABELS, EqualityKernel, Kernel, make_kernel

__all__ = [
    "ALONE_SHARE",
    "POSITIVE_CHECK_BATCHES",
    "ClinicalContrastive",
    "KernelContrastive",
    "NTXent",
    "SupCon",
    "WSPContrastive",
    "YAwareInfoNCE",
]

#: An anchor is alone when its own other view holds more than this share of its positives.
ALONE_SHARE = 0.95
#: Training batches observed before the lone-anchor check decides (and warns at most once).
POSITIVE_CHECK_BATCHES = 10


class KernelContrastive(LossTerm):
    """Contrastive loss with positives weighted by a metadata kernel.

    ``w_ab`` is proportional to ``K(y_a, y_b)`` for the samples' metadata ``y`` (both views of
    a sample share it) and to 1 for the anchor's other view; no kernel gives NT-Xent.

    Parameters
    ----------
    kernel : Kernel or None, default=None
        Prior similarity of samples (see :mod:`stratify.losses.kernels`). A kernel column named
        ``"labels"`` reads the ``labels`` input; other columns read ``metadata``.
    temperature : float, default=0.2
        ``tau`` in (0, inf).

    Attributes
    ----------
    requires : frozenset of str
        ``{"z1", "z2"}``, plus ``"metadata"`` and/or ``"labels"`` when the kernel reads them.
    columns : tuple of str
        The metadata columns read (``"labels"`` excluded).

    Notes
    -----
    Shapes: ``z1``, ``z2`` (N, P); every metadata column and ``labels`` (N,). Returns a 0-dim
    tensor. Finite value and gradient for N = 1 (loss 0), zero embeddings, no shared labels,
    identical metadata and temperatures from 0.01 to 10.
    """

    #: Whether :meth:`_watch_positives` warns; off where lone anchors are by design (few
    #: known labels: the unlabelled images have only their own other view).
    watch_positives = True

    def __init__(
        self, kernel: Kernel | None = None, temperature: float = DEFAULT_TEMPERATURE
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if kernel is not None and not isinstance(kernel, Kernel):
            raise TypeError(
                f"The 'kernel' parameter of {owner} must be a Kernel instance or None. "
                f"Got {kernel!r} instead."
            )
        self.temperature = check_float(temperature, "temperature", owner)
        self._set_kernel(kernel)

    def _set_kernel(self, kernel: Kernel | None) -> None:
        self.kernel = kernel
        read = kernel.columns if kernel is not None else ()
        self.columns = tuple(c for c in read if c != LABELS)
        requires = {"z1", "z2"}
        if LABELS in read:
            requires.add("labels")
        if self.columns:
            requires.add("metadata")
        self.requires = frozenset(requires)

    def _watch_positives(self, k: Tensor) -> None:
        """Warn once when most anchors get no positive beyond their own other view.

        An anchor is alone when its own other view holds more than :data:`ALONE_SHARE` of
        its positive weight (``1 / (1 + 2 sum_{b != a} K_ab)``, both views of every other
        sample; NaN = 0). After :data:`POSITIVE_CHECK_BATCHES` training batches, if the mean
        share of lone anchors exceeds one half, the prior is mostly idle: a warning gives
        the share and what to change.
        """
        shares = self.__dict__.setdefault("_alone_shares", [])
        if len(shares) >= POSITIVE_CHECK_BATCHES or not self.watch_positives:
            return
        with torch.no_grad():
            kk = torch.nan_to_num(k.detach().double(), nan=0.0).clamp_min(0.0)
            others = 2.0 * (kk.sum(dim=1) - kk.diagonal())
            shares.append(float(((1.0 / (1.0 + others)) > ALONE_SHARE).double().mean()))
        if len(shares) == POSITIVE_CHECK_BATCHES:
            share = sum(shares) / len(shares)
            if share > 0.5:
                warnings.warn(
                    f"{type(self).__name__}: {share:.0%} of the anchors had no positive "
                    f"beyond their own other view over the first {len(shares)} training "
                    "batches (their own view held more than 95 % of the positive weight), so "
                    "the metadata prior acts like NT-Xent. Widen the kernel (a larger sigma, "
                    "or sigma='auto'), use fewer bins, or a larger batch.",
                    UserWarning,
                    stacklevel=3,
                )

    @property
    def sigma_(self) -> tuple[float, ...] | None:
        """The bandwidth(s) in use (per column of the distance kernel; with ``sigma="auto"``
        the values Silverman's rule chose on the training metadata), or None.
        """
        found = [k for k in _leaves(self.kernel) if hasattr(k, "bandwidth_")]
        return tuple(v for k in found for v in k.bandwidth_) if found else None

    def fit(self, metadata: Mapping[str, Any]) -> KernelContrastive:
        """Fit the kernel's data-dependent state (e.g. quantile bins) on the full metadata.

        Parameters
        ----------
        metadata : mapping of str to array-like of shape (n_samples,)
            The training metadata; may hold ``"labels"`` for a kernel on labels.
        """
        if self.kernel is not None:
            self.kernel.fit(metadata)
        return self

    def kernel_matrix(
        self, n: int, metadata: Mapping[str, Any] | None, labels: Tensor | None
    ) -> Tensor | None:
        """Sample-level kernel matrix (N, N) for a batch, or None without a kernel."""
        if self.kernel is None:
            return None
        owner = type(self).__name__
        batch: dict[str, Any] = {}
        if self.columns:
            if metadata is None:
                raise ValueError(
                    f"Expected metadata with column(s) {list(self.columns)} for {owner}, got None."
                )
            batch.update(metadata)
        if "labels" in self.requires:
            if labels is None:
                raise ValueError(f"Expected labels of shape ({n},) for {owner}, got None.")
            batch[LABELS] = labels
        for c in self.kernel.columns:
            if c in batch:
                check_n_samples(torch.as_tensor(batch[c]), n, f"metadata column {c!r}")
        return self.kernel(batch)

    def forward(
        self,
        z1: Tensor,
        z2: Tensor,
        metadata: Mapping[str, Tensor] | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Loss of a batch.

        Parameters
        ----------
        z1, z2 : Tensor, shape (N, P)
            Projections of the two views (normalised here).
        metadata : dict of str to Tensor of shape (N,), optional
            Needed when ``"metadata" in requires``; NaN = missing.
        labels : Tensor, shape (N,), optional
            Needed when ``"labels" in requires``; NaN = missing.

        Returns
        -------
        Tensor, shape ()
        """
        check_pair(z1, z2)
        anchors = None
        if distributed.current() is not None:
            z1, z2, metadata, labels, anchors = _global_batch(z1, z2, metadata, labels)
        n = z1.shape[0]
        k = self.kernel_matrix(n, metadata, labels)
        if k is None:
            k = torch.zeros(n, n, dtype=z1.dtype, device=z1.device)
        elif self.training:
            self._watch_positives(k)
        weights = LF.contrastive_weights(k.to(device=z1.device, dtype=z1.dtype))
        return LF.kernel_contrastive_loss(z1, z2, weights, self.temperature, anchors)


def _is_auto(value: Any) -> bool:
    return isinstance(value, str) and value == "auto"


def _leaves(kernel: Kernel | None) -> list[Kernel]:
    if kernel is None:
        return []
    parts = getattr(kernel, "kernels", None)
    return [leaf for part in parts for leaf in _leaves(part)] if parts else [kernel]


def _global_batch(
    z1: Tensor, z2: Tensor, metadata: Mapping[str, Tensor] | None, labels: Tensor | None
) -> tuple[Tensor, Tensor, dict[str, Tensor] | None, Tensor | None, Tensor]:
    """The global batch of a distributed fit, and the anchor rows of this rank's samples.

    Embeddings are gathered with gradients flowing back to their ranks
    (:func:`stratify.distributed.gather`); metadata and labels without. The local anchors are
    this rank's rows of both views, so the term is the mean over the local anchors of the
    loss against all 2N embeddings of the global batch.
    """
    n_local = z1.shape[0]
    z1, offset = distributed.gather(z1)
    z2, _ = distributed.gather(z2)
    if metadata is not None:
        metadata = {c: distributed.gather(torch.as_tensor(v))[0] for c, v in metadata.items()}
    if labels is not None:
        labels = distributed.gather(labels)[0]
    local = torch.arange(offset, offset + n_local, device=z1.device)
    return z1, z2, metadata, labels, torch.cat([local, local + z1.shape[0]])


class NTXent(KernelContrastive):
    """NT-Xent / InfoNCE of SimCLR (Chen et al. 2020): the other view is the only positive.

    ``L = -(1/2N) sum_a log( exp(s_{a,a'}) / sum_{c != a} exp(s_ac) )``.

    Parameters
    ----------
    temperature : float, default=0.2
        ``tau`` in (0, inf).
    """

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE) -> None:
        super().__init__(kernel=None, temperature=temperature)


class SupCon(KernelContrastive):
    """Supervised contrastive loss (Khosla et al. 2020), the "L_out" form.

    ``w_ab`` is uniform over the candidates of the anchor's class (both views of every
    same-label sample, the other view included): the log-probability is averaged over the
    positives. A sample with a NaN label has its own other view as its only positive; a
    batch where no sample shares a label gives NT-Xent.

    Parameters
    ----------
    column : str or sequence of str, default="labels"
        ``"labels"`` reads the ``labels`` input; another name reads that metadata column
        (several names: equal when all are equal).
    temperature : float, default=0.2
        ``tau`` in (0, inf).
    bins : None, int or sequence of float, default=None
        Bin a continuous column first: explicit edges, or an int for quantile bins computed by
        :meth:`fit` on the full metadata (see :class:`~stratify.losses.EqualityKernel`).
    """

    def __init__(
        self,
        column: str | Sequence[str] = LABELS,
        temperature: float = DEFAULT_TEMPERATURE,
        bins: int | Sequence[float] | None = None,
    ) -> None:
        owner = type(self).__name__
        columns = check_columns(column, "column", owner)
        super().__init__(kernel=None, temperature=temperature)
        self.column = column
        self.bins = bins
        self._set_kernel(EqualityKernel(columns, bins=bins))


class YAwareInfoNCE(KernelContrastive):
    """y-Aware InfoNCE (Dufumier et al. 2021): positives weighted by a kernel on metadata.

    ``w_ab`` proportional to ``K((y_a - y_b) / sigma)`` for continuous metadata ``y`` (a vector
    when several columns are given, with one bandwidth per column). As ``sigma -> 0`` (with
    distinct values) it becomes NT-Xent; as ``sigma -> inf`` all candidates weigh the same.

    Parameters
    ----------
    columns : str or sequence of str
        Metadata column(s) ``y``.
    sigma : float, sequence of float or "auto", default=1.0
        Bandwidth(s) in (0, inf), one for all columns or one per column; ``"auto"``:
        Silverman's rule per column on the training metadata, chosen in :meth:`fit` and
        recorded in ``sigma_`` (:func:`~stratify.losses.kernels.silverman_bandwidth`).
    kernel : {"gaussian", "laplacian", "epanechnikov"}, default="gaussian"
        See :class:`~stratify.losses.GaussianKernel` and siblings.
    temperature : float, default=0.2
        ``tau`` in (0, inf).

    Notes
    -----
    Weights are normalised per anchor row, as in the paper's formula. The authors' reference
    code (``weights /= weights.sum(axis=1)`` on a NumPy (2N, 2N) array) broadcasts the row
    sums along the last axis, i.e. divides ``w_ab`` by the sum of row ``b``; it also averages
    over N rather than 2N anchors, so its values are twice ours for a constant row sum.
    """

    def __init__(
        self,
        columns: str | Sequence[str],
        sigma: float | Sequence[float] = 1.0,
        kernel: str = "gaussian",
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> None:
        owner = type(self).__name__
        cols = check_columns(columns, "columns", owner)
        bandwidth = (
            sigma if _is_auto(sigma) else check_floats_per_column(sigma, "sigma", owner, len(cols))
        )
        check_choice(kernel, "kernel", owner, KERNELS)
        super().__init__(kernel=make_kernel(kernel, cols, bandwidth), temperature=temperature)
        self.sigma = sigma
        self.kernel_name = kernel


class WSPContrastive(KernelContrastive):
    """Weakly-supervised positional contrastive loss (Sarfati et al. 2023).

    ``w_ab`` proportional to ``1[l_a = l_b] * K((d_a - d_b) / sigma)`` with ``l`` a weak
    (volume-level, possibly noisy) label and ``d`` the slice position in [0, 1]. With a single
    weak label it is y-Aware InfoNCE on the position.

    Parameters
    ----------
    label_column : str, default="labels"
        The weak label: ``"labels"`` reads the ``labels`` input, another name a metadata column.
    position_column : str, default="position"
        Metadata column of slice positions (as written by ``stratify.data.volumes``).
    sigma : float or "auto", default=0.1
        Bandwidth on the position, in (0, inf), or ``"auto"`` (Silverman's rule on the
        training positions, recorded in ``sigma_``).
    kernel : {"gaussian", "laplacian", "epanechnikov"}, default="gaussian"
    temperature : float, default=0.2
        ``tau`` in (0, inf).
    """

    def __init__(
        self,
        label_column: str = LABELS,
        position_column: str = "position",
        sigma: float = 0.1,
        kernel: str = "gaussian",
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(label_column, str) or not isinstance(position_column, str):
            raise TypeError(
                f"The 'label_column' and 'position_column' parameters of {owner} must be str. "
                f"Got {label_column!r} and {position_column!r} instead."
            )
        sigma = sigma if _is_auto(sigma) else check_float(sigma, "sigma", owner)
        check_choice(kernel, "kernel", owner, KERNELS)
        prior = EqualityKernel(label_column) * make_kernel(kernel, position_column, sigma)
        super().__init__(kernel=prior, temperature=temperature)
        self.label_column = label_column
        self.position_column = position_column
        self.sigma = sigma
        self.kernel_name = kernel


class ClinicalContrastive(LossTerm):
    """Clinically-labelled contrastive loss (Kokilepersaud et al. 2023).

    ``L = sum_m alpha_m SupCon(column_m)``: one supervised contrastive term per clinical
    column, each treating equal (binned) values as the same class.

    Parameters
    ----------
    columns : mapping of str to float, or sequence of str
        Column name -> weight ``alpha_m`` >= 0 (a sequence gives every column weight 1).
    bins : mapping of str to (int or sequence of float), optional
        Binning of continuous columns: explicit edges (recommended), or an int for quantile
        bins computed once by :meth:`fit` on the full training metadata (quantiles of each
        batch would give noisy, batch-dependent classes, so they are not computed per batch).
        Columns not listed are used as categorical codes.
    temperature : float, default=0.2
        ``tau`` in (0, inf).

    Attributes
    ----------
    terms : nn.ModuleList of SupCon
        One per column, in order; ``alphas`` holds their weights.
    """

    def __init__(
        self,
        columns: Mapping[str, float] | Sequence[str],
        bins: Mapping[str, int | Sequence[float]] | None = None,
        temperature: float = DEFAULT_TEMPERATURE,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        if isinstance(columns, Mapping):
            names = check_columns(list(columns), "columns", owner)
            alphas = tuple(
                check_float(columns[c], f"columns[{c!r}]", owner, closed=True) for c in names
            )
        else:
            names = check_columns(columns, "columns", owner)
            alphas = (1.0,) * len(names)
        bins = dict(bins or {})
        unknown = sorted(set(bins) - set(names))
        if unknown:
            raise ValueError(
                f"The 'bins' parameter of {owner} must only name columns in 'columns' "
                f"{list(names)}. Got {unknown} instead."
            )
        self.temperature = check_float(temperature, "temperature", owner)
        self.alphas = alphas
        terms = [SupCon(c, temperature=temperature, bins=bins.get(c)) for c in names]
        self.terms = nn.ModuleList(terms)
        self.columns = tuple(c for c in names if c != LABELS)
        self.requires = frozenset().union(*(t.requires for t in terms))

    def fit(self, metadata: Mapping[str, Any]) -> ClinicalContrastive:
        """Compute quantile bin edges (for int ``bins``) from the full training metadata."""
        for t in self.terms:
            cast(SupCon, t).fit(metadata)
        return self

    def forward(
        self,
        z1: Tensor,
        z2: Tensor,
        metadata: Mapping[str, Tensor] | None = None,
        labels: Tensor | None = None,
    ) -> Tensor:
        """Weighted sum of the per-column SupCon losses.

        Parameters
        ----------
        z1, z2 : Tensor, shape (N, P)
        metadata : dict of str to Tensor of shape (N,), optional
        labels : Tensor, shape (N,), optional
            Only if a column is named ``"labels"``.

        Returns
        -------
        Tensor, shape ()
        """
        check_pair(z1, z2)
        total = z1.new_zeros(())
        for alpha, term in zip(self.alphas, self.terms, strict=True):
            total = total + alpha * term(z1, z2, metadata=metadata, labels=labels)
        return total
