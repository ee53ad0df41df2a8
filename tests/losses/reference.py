"""Independent reference implementations in plain Python (float64, loops, math.exp / log).

Written from the formulas in the papers and the docstrings of stratify.losses, not from the
library code: no torch, no vectorisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

KernelFn = Callable[[int, int], float]  # (sample i, sample j) -> kernel value or NaN


def _normalize(v: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in v))
    return [x / max(norm, 1e-12) for x in v]


def _dot(u: Sequence[float], v: Sequence[float]) -> float:
    return sum(a * b for a, b in zip(u, v, strict=True))


def contrastive(z1: np.ndarray, z2: np.ndarray, kernel: KernelFn, tau: float) -> float:
    """L = -(1/2N) sum_a sum_{b != a} w_ab log(exp(s_ab) / sum_{c != a} exp(s_ac)).

    Raw weight: 1 for the anchor's other view; kernel(i, j) for other candidates, NaN -> 0.
    Rows normalised to sum to 1.
    """
    n = len(z1)
    z = [_normalize(row) for row in np.concatenate([z1, z2]).astype(float).tolist()]
    m = 2 * n
    total = 0.0
    for a in range(m):
        raw = {}
        for b in range(m):
            if b == a:
                continue
            if b % n == a % n:
                raw[b] = 1.0
            else:
                k = kernel(a % n, b % n)
                raw[b] = 0.0 if math.isnan(k) else k
        row_sum = sum(raw.values())
        denom = sum(math.exp(_dot(z[a], z[c]) / tau) for c in range(m) if c != a)
        for b, w in raw.items():
            if w != 0.0:
                s_ab = _dot(z[a], z[b]) / tau
                total -= (w / row_sum) * (s_ab - math.log(denom))
    return total / m


def _vec(values: np.ndarray, i: int) -> list[float]:
    return [float(v) for v in np.atleast_1d(values[i])]


def _has_nan(*vs: list[float]) -> bool:
    return any(math.isnan(x) for v in vs for x in v)


def none_kernel() -> KernelFn:
    return lambda i, j: 0.0


def equality_kernel(labels: np.ndarray) -> KernelFn:
    """labels: (N,) or (N, d)."""

    def k(i: int, j: int) -> float:
        a, b = _vec(labels, i), _vec(labels, j)
        if _has_nan(a, b):
            return math.nan
        return 1.0 if a == b else 0.0

    return k


def radial_kernel(values: np.ndarray, sigma: Sequence[float], name: str) -> KernelFn:
    """values: (N,) or (N, d); sigma: one per column."""

    def k(i: int, j: int) -> float:
        a, b = _vec(values, i), _vec(values, j)
        if _has_nan(a, b):
            return math.nan
        u = [(x - y) / s for x, y, s in zip(a, b, sigma, strict=True)]
        if name == "gaussian":
            return math.exp(-0.5 * sum(t * t for t in u))
        if name == "laplacian":
            return math.exp(-sum(abs(t) for t in u))
        if name == "epanechnikov":
            return max(0.0, 1.0 - sum(t * t for t in u))
        raise ValueError(name)

    return k


def product_kernel(*kernels: KernelFn) -> KernelFn:
    def k(i: int, j: int) -> float:
        out = 1.0
        for kk in kernels:
            out *= kk(i, j)
        return out

    return k


def bin_codes(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin k holds edges[k-1] < v <= edges[k]; NaN stays NaN."""
    out = []
    for v in values.tolist():
        out.append(math.nan if math.isnan(v) else float(sum(1 for e in edges if e < v)))
    return np.array(out)
