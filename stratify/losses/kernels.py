"""Kernels on per-sample metadata: the priors that weight positives in contrastive terms.

A kernel reads named metadata columns and returns an (N, N) matrix of similarities between
samples, in [0, 1], with ``K[i, i] = 1`` (a "normalised" kernel) and NaN where either sample
has a missing value (NaN) in a column the kernel uses. Kernels compose:

- ``k1 * k2`` is a :class:`ProductKernel` (both must hold: e.g. same weak label AND close
  slice position; NaN in either makes the pair unknown);
- ``k1 + k2`` is a :class:`SumKernel`, the mean of its parts (so it stays normalised; the
  contrastive weights are normalised per anchor, so only relative values matter).

To write a new kernel, subclass :class:`Kernel` and implement :meth:`Kernel.compute`, which
receives the stacked columns as a float64 tensor of shape (N, d); the base class gathers the
columns, checks them and writes NaN for missing samples. Column name ``"labels"``
(:data:`LABELS`) refers to the ``labels`` input of the training batch, not to metadata.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stratify._validation import require_columns
from stratify.losses._checks import check_choice, check_columns, check_floats_per_column

__all__ = [
    "KERNELS",
    "LABELS",
    "EpanechnikovKernel",
    "EqualityKernel",
    "GaussianKernel",
    "Kernel",
    "LaplacianKernel",
    "ProductKernel",
    "SumKernel",
    "make_kernel",
    "silverman_bandwidth",
]

#: Reserved column name: a kernel on ``"labels"`` reads the batch's ``labels`` input.
LABELS = "labels"


def _as_column(values: Any, name: str) -> Tensor:
    col = torch.as_tensor(values)
    if col.ndim != 1:
        raise ValueError(
            f"Expected metadata column {name!r} to have shape (N,), got {tuple(col.shape)}."
        )
    return col.detach().to(torch.float64)


class Kernel:
    """Base class: a similarity between samples computed from named metadata columns.

    Parameters
    ----------
    columns : str or sequence of str
        The metadata column(s) the kernel reads; several columns form a vector.

    Notes
    -----
    Subclasses implement :meth:`compute`. Kernels are plain objects (not modules): they hold
    no trainable parameters and are evaluated on detached float64 copies of the metadata.
    """

    #: Whether the kernel compares the columns' values as numbers (a distance), so category
    #: codes must not reach it. A new kernel is a distance unless it says otherwise.
    distance: bool = True

    def __init__(self, columns: str | Sequence[str]) -> None:
        self.columns: tuple[str, ...] = check_columns(columns, "columns", type(self).__name__)

    def distance_columns(self) -> set[str]:
        """The columns this kernel needs as numbers (see :attr:`distance`)."""
        return set(self.columns) if self.distance else set()

    def compute(self, values: Tensor) -> Tensor:
        """Kernel matrix from the stacked columns.

        Parameters
        ----------
        values : Tensor, shape (N, d), float64
            Column ``j`` is metadata column ``self.columns[j]``. Rows of samples with a missing
            value may hold anything here; they are overwritten with NaN afterwards.

        Returns
        -------
        Tensor, shape (N, N)
            Values in [0, 1], 1 on the diagonal.
        """
        raise NotImplementedError

    def fit(self, metadata: Mapping[str, Any]) -> Kernel:
        """Learn data-dependent state (e.g. quantile bin edges) from the full metadata.

        The base kernel has none and returns ``self``.
        """
        return self

    def gather(self, metadata: Mapping[str, Any]) -> Tensor:
        """Stack this kernel's columns into a float64 tensor of shape (N, d)."""
        require_columns(
            self.columns, metadata, name="metadata", reader=type(self).__name__, error=KeyError
        )
        cols = [_as_column(metadata[c], c) for c in self.columns]
        n = cols[0].shape[0]
        for c, col in zip(self.columns, cols, strict=True):
            if col.shape[0] != n:
                raise ValueError(
                    f"Expected every metadata column to have {n} values, got {col.shape[0]} "
                    f"for {c!r}."
                )
        return torch.stack(cols, dim=1)

    def __call__(self, metadata: Mapping[str, Any]) -> Tensor:
        """Kernel matrix between the samples of a batch.

        Parameters
        ----------
        metadata : mapping of str to Tensor of shape (N,)
            Must contain every name in ``columns`` (NaN = missing).

        Returns
        -------
        Tensor, shape (N, N), float64
            ``K[i, j]`` in [0, 1]; NaN where sample i or j has a NaN in one of the columns.
        """
        values = self.gather(metadata)
        k = self.compute(values)
        missing = torch.isnan(values).any(dim=1)
        unknown = missing[:, None] | missing[None, :]
        return torch.where(unknown, torch.full_like(k, float("nan")), k)

    def __mul__(self, other: Kernel) -> ProductKernel:
        if not isinstance(other, Kernel):
            return NotImplemented
        return ProductKernel([self, other])

    def __add__(self, other: Kernel) -> SumKernel:
        if not isinstance(other, Kernel):
            return NotImplemented
        return SumKernel([self, other])

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.endswith("_"))
        return f"{type(self).__name__}({params})"


def silverman_bandwidth(values: Any) -> float:
    """Silverman's rule of thumb for a kernel bandwidth on one column.

    ``h = 0.9 * min(sd, IQR / 1.349) * n^(-1/5)`` over the finite values (Silverman 1986,
    eq. 3.31); when that is 0 (more than half the values equal), the larger of ``sd`` and
    ``IQR / 1.349`` replaces the minimum, and a constant column gets 1 (any bandwidth gives
    the same kernel there).

    Parameters
    ----------
    values : array-like of shape (n,)
        NaN (missing) values are ignored.

    Returns
    -------
    float
        ``h`` > 0.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return 1.0
    sd = float(x.std(ddof=1))
    q75, q25 = np.percentile(x, [75, 25])
    iqr = float(q75 - q25) / 1.349
    spread = min(sd, iqr) if min(sd, iqr) > 0 else max(sd, iqr)
    if spread <= 0:
        return 1.0
    return 0.9 * spread * len(x) ** (-0.2)


class _BandwidthKernel(Kernel):
    """A radial kernel of ``u = (y_i - y_j) / sigma`` with one bandwidth per column.

    ``bandwidth="auto"`` chooses each column's by :func:`silverman_bandwidth` on the training
    metadata in :meth:`fit` (recorded in ``bandwidth_``).
    """

    def __init__(
        self, columns: str | Sequence[str], bandwidth: float | Sequence[float] | str = 1.0
    ) -> None:
        super().__init__(columns)
        self.bandwidth: tuple[float, ...] | str
        if isinstance(bandwidth, str) and bandwidth == "auto":
            self.bandwidth = "auto"
        else:
            self.bandwidth = check_floats_per_column(
                bandwidth, "bandwidth", type(self).__name__, len(self.columns)
            )
            self.bandwidth_ = self.bandwidth

    def fit(self, metadata: Mapping[str, Any]) -> Kernel:
        """With ``bandwidth="auto"``: Silverman's rule per column on the training metadata."""
        if self.bandwidth == "auto":
            missing = [c for c in self.columns if c not in metadata]
            if missing:
                raise ValueError(
                    f"Expected the training metadata to hold {missing} to choose the "
                    f"bandwidth of {type(self).__name__}, got columns {sorted(metadata)}."
                )
            self.bandwidth_ = tuple(
                silverman_bandwidth(np.asarray(metadata[c], dtype=float)) for c in self.columns
            )
        return self

    def _scaled_differences(self, values: Tensor) -> Tensor:
        bandwidth = getattr(self, "bandwidth_", None)
        if bandwidth is None:
            raise RuntimeError(
                f"{type(self).__name__}(bandwidth='auto') has no bandwidth yet: call "
                "fit(metadata) with the training metadata first (the training loop does)."
            )
        bw = torch.tensor(bandwidth, dtype=values.dtype, device=values.device)
        return (values[:, None, :] - values[None, :, :]) / bw  # (N, N, d)

    def compute(self, values: Tensor) -> Tensor:
        return self.profile(self._scaled_differences(values))

    def profile(self, u: Tensor) -> Tensor:
        """Kernel value of the scaled differences ``u`` of shape (N, N, d)."""
        raise NotImplementedError


class GaussianKernel(_BandwidthKernel):
    """Gaussian (RBF) kernel ``K = exp(-||u||^2 / 2)``, ``u_j = (y_aj - y_bj) / sigma_j``.

    Parameters
    ----------
    columns : str or sequence of str
        Metadata column(s); several columns form a vector.
    bandwidth : float, sequence of float or "auto", default=1.0
        ``sigma`` > 0, one for all columns or one per column; ``"auto"``: Silverman's rule
        per column on the training metadata (:func:`silverman_bandwidth`, in :meth:`fit`).
    """

    def profile(self, u: Tensor) -> Tensor:
        """``exp(-||u||^2 / 2)`` over the last axis of scaled differences ``u`` (..., C)."""
        return torch.exp(-0.5 * u.pow(2).sum(dim=-1))


class LaplacianKernel(_BandwidthKernel):
    """Laplacian kernel ``K = exp(-||u||_1)``, ``u_j = (y_aj - y_bj) / sigma_j``.

    The L1 norm (as in scikit-learn's ``laplacian_kernel``) makes it a product of per-column
    Laplacian kernels. Parameters as in :class:`GaussianKernel`.
    """

    def profile(self, u: Tensor) -> Tensor:
        """``exp(-||u||_1)`` over the last axis of scaled differences ``u`` (..., C)."""
        return torch.exp(-u.abs().sum(dim=-1))


class EpanechnikovKernel(_BandwidthKernel):
    """Epanechnikov kernel ``K = max(0, 1 - ||u||^2)``, ``u_j = (y_aj - y_bj) / sigma_j``.

    Normalised so that ``K(0) = 1`` (the density constant 3/4 is dropped; only ratios of
    weights matter). Compact support: pairs farther than ``sigma`` get weight 0.
    Parameters as in :class:`GaussianKernel`.
    """

    def profile(self, u: Tensor) -> Tensor:
        """``max(0, 1 - ||u||^2)`` over the last axis of scaled differences ``u`` (..., C)."""
        return (1.0 - u.pow(2).sum(dim=-1)).clamp_min(0.0)


class EqualityKernel(Kernel):
    """Equality mask ``K = 1[y_a == y_b]`` on categorical codes (all columns equal).

    Continuous columns can be binned first: ``bins`` gives the bin edges (values are coded by
    :func:`torch.bucketize`, ``right=False``: bin ``k`` holds ``edges[k-1] < y <= edges[k]``), or
    an int ``q`` for ``q`` quantile bins whose edges are computed once by :meth:`fit` on the
    full training metadata (per-batch quantiles would move from batch to batch).

    Parameters
    ----------
    columns : str or sequence of str
        Metadata column(s) holding codes (floats; NaN = missing).
    bins : None, int >= 2, or sequence of float, default=None
        Binning of a single continuous column; ``None`` compares the raw codes.

    Attributes
    ----------
    edges_ : Tensor of shape (n_edges,) or None
        The bin edges in use (set from ``bins`` or by :meth:`fit`).
    """

    distance = False  # codes of categories (or of bins) are compared for equality only

    def __init__(
        self, columns: str | Sequence[str], bins: int | Sequence[float] | None = None
    ) -> None:
        super().__init__(columns)
        owner = type(self).__name__
        self.bins = bins
        self.edges_: Tensor | None = None
        if bins is None:
            return
        if len(self.columns) != 1:
            raise ValueError(
                f"The 'bins' parameter of {owner} applies to one column; got columns "
                f"{self.columns}. Use one EqualityKernel per column and multiply them."
            )
        if isinstance(bins, bool) or not isinstance(bins, int | Sequence | np.ndarray):
            raise TypeError(
                f"The 'bins' parameter of {owner} must be None, an int in the range [2, inf) "
                f"or an increasing sequence of floats. Got {bins!r} instead."
            )
        if isinstance(bins, int):
            if bins < 2:
                raise ValueError(
                    f"The 'bins' parameter of {owner} must be None, an int in the range "
                    f"[2, inf) or an increasing sequence of floats. Got {bins!r} instead."
                )
            return
        edges = torch.as_tensor(np.asarray(bins, dtype=np.float64))
        if (
            edges.ndim != 1
            or edges.numel() == 0
            or not bool(torch.isfinite(edges).all())
            or not bool((edges[1:] > edges[:-1]).all())
        ):
            raise ValueError(
                f"The 'bins' parameter of {owner} must be None, an int in the range [2, inf) "
                f"or an increasing sequence of floats. Got {bins!r} instead."
            )
        self.edges_ = edges

    def fit(self, metadata: Mapping[str, Any]) -> EqualityKernel:
        """Compute quantile bin edges from the full metadata when ``bins`` is an int.

        Parameters
        ----------
        metadata : mapping of str to array-like of shape (n_samples,)
            The whole training metadata (NaN ignored).
        """
        if isinstance(self.bins, int):
            values = self.gather(metadata)[:, 0]
            values = values[~torch.isnan(values)]
            if values.numel() == 0:
                raise ValueError(
                    f"Cannot compute quantile bins for column {self.columns[0]!r}: every value "
                    "is NaN."
                )
            q = torch.linspace(0, 1, self.bins + 1, dtype=values.dtype, device=values.device)[1:-1]
            self.edges_ = torch.unique(torch.quantile(values, q))
        return self

    def codes(self, values: Tensor) -> Tensor:
        """Bin codes of ``values`` (N, d) (unchanged when ``bins`` is None; NaN kept)."""
        if self.bins is None:
            return values
        if self.edges_ is None:
            raise RuntimeError(
                f"{type(self).__name__} on {self.columns[0]!r} uses bins={self.bins} quantile "
                "bins and must be fitted first: call fit(metadata) on the kernel, the term or "
                "the Objective with the full training metadata, or pass explicit bin edges."
            )
        edges = self.edges_.to(device=values.device, dtype=values.dtype)
        codes = torch.bucketize(values.contiguous(), edges).to(values.dtype)
        return torch.where(torch.isnan(values), values, codes)

    def compute(self, values: Tensor) -> Tensor:
        """Pairwise equality (N, N) of the binned codes of ``values`` (N, C)."""
        codes = self.codes(values)
        return (codes[:, None, :] == codes[None, :, :]).all(dim=-1).to(values.dtype)


class _CompositeKernel(Kernel):
    def __init__(self, kernels: Sequence[Kernel]) -> None:
        owner = type(self).__name__
        kernels = list(kernels)
        if not kernels or not all(isinstance(k, Kernel) for k in kernels):
            raise TypeError(
                f"The 'kernels' parameter of {owner} must be a non-empty sequence of Kernel "
                f"instances. Got {kernels!r} instead."
            )
        flat: list[Kernel] = []
        for k in kernels:  # (k1 * k2) * k3 -> one product of three
            flat.extend(
                k.kernels if isinstance(k, _CompositeKernel) and type(k) is type(self) else [k]
            )
        self.kernels: list[Kernel] = flat
        self.columns = tuple(dict.fromkeys(c for k in flat for c in k.columns))

    def distance_columns(self) -> set[str]:
        return set().union(*(k.distance_columns() for k in self.kernels))

    def fit(self, metadata: Mapping[str, Any]) -> Kernel:
        for k in self.kernels:
            k.fit(metadata)
        return self

    #: How two parts' matrices combine (elementwise).
    _combine: Callable[[Tensor, Tensor], Tensor]

    def _fold(self, metadata: Mapping[str, Any]) -> Tensor:
        """The parts' matrices combined left to right."""
        return functools.reduce(type(self)._combine, (k(metadata) for k in self.kernels))


class ProductKernel(_CompositeKernel):
    """Product of kernels, ``K = prod_m K_m`` (NaN if any part is NaN).

    Parameters
    ----------
    kernels : sequence of Kernel
    """

    _combine = staticmethod(operator.mul)

    def __call__(self, metadata: Mapping[str, Any]) -> Tensor:
        """Elementwise product (N, N) of the parts' kernels."""
        return self._fold(metadata)


class SumKernel(_CompositeKernel):
    """Mean of kernels, ``K = (1/M) sum_m K_m`` (NaN if any part is NaN).

    The mean (rather than the plain sum) keeps the kernel normalised (``K[i, i] = 1``), which
    keeps the anchor's other view at the same weight as a sample with identical metadata.

    Parameters
    ----------
    kernels : sequence of Kernel
    """

    _combine = staticmethod(operator.add)

    def __call__(self, metadata: Mapping[str, Any]) -> Tensor:
        """Mean (N, N) of the parts' kernels."""
        return self._fold(metadata) / len(self.kernels)


#: Kernel names accepted by the terms' ``kernel`` parameter.
KERNELS: dict[str, type[_BandwidthKernel]] = {
    "gaussian": GaussianKernel,
    "laplacian": LaplacianKernel,
    "epanechnikov": EpanechnikovKernel,
}


def make_kernel(
    name: str, columns: str | Sequence[str], bandwidth: float | Sequence[float] | str = 1.0
) -> Kernel:
    """Build a bandwidth kernel by name (one of :data:`KERNELS`).

    Parameters
    ----------
    name : {"gaussian", "laplacian", "epanechnikov"}
    columns : str or sequence of str
    bandwidth : float, sequence of float or "auto"

    Returns
    -------
    Kernel
    """
    check_choice(name, "kernel", "make_kernel", KERNELS)
    return KERNELS[name](columns, bandwidth)
