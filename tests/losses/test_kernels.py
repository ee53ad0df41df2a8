"""Kernels against plain-Python formulas; composition, missing values, binning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.losses import (
    EpanechnikovKernel,
    EqualityKernel,
    GaussianKernel,
    LaplacianKernel,
    ProductKernel,
    SumKernel,
    make_kernel,
)
from tests.losses import reference as ref

NAN = float("nan")


@pytest.fixture
def meta():
    rng = np.random.default_rng(0)
    return {
        "age": rng.uniform(20, 80, 7),
        "bmi": rng.normal(25, 4, 7),
        "site": rng.integers(0, 3, 7).astype(float),
    }


def _matrix(fn, n):
    return np.array([[fn(i, j) for j in range(n)] for i in range(n)])


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (GaussianKernel, "gaussian"),
        (LaplacianKernel, "laplacian"),
        (EpanechnikovKernel, "epanechnikov"),
    ],
)
def test_bandwidth_kernels_against_formula(meta, cls, name):
    y = np.stack([meta["age"], meta["bmi"]], axis=1)
    k = cls(["age", "bmi"], bandwidth=[30.0, 5.0])(meta)
    assert k.shape == (7, 7) and k.dtype == torch.float64
    expected = _matrix(ref.radial_kernel(y, [30.0, 5.0], name), 7)
    np.testing.assert_allclose(k.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(np.diag(k.numpy()), 1.0)
    assert ((k >= 0) & (k <= 1)).all()
    same = make_kernel(name, ["age", "bmi"], [30.0, 5.0])(meta)
    torch.testing.assert_close(same, k)


def test_missing_values_give_nan_rows_and_columns(meta):
    meta["age"][2] = NAN
    for kernel in (GaussianKernel("age"), EqualityKernel("age"), EpanechnikovKernel("age")):
        k = kernel(meta)
        assert torch.isnan(k[2]).all() and torch.isnan(k[:, 2]).all()
        keep = [i for i in range(7) if i != 2]
        assert torch.isfinite(k[keep][:, keep]).all()


def test_product_and_sum(meta):
    g, e = GaussianKernel("age", 10.0), EqualityKernel("site")
    prod, total = g * e, g + e
    assert isinstance(prod, ProductKernel) and isinstance(total, SumKernel)
    assert prod.columns == ("age", "site") and total.columns == ("age", "site")
    kg = _matrix(ref.radial_kernel(meta["age"], [10.0], "gaussian"), 7)
    ke = _matrix(ref.equality_kernel(meta["site"]), 7)
    np.testing.assert_allclose(prod(meta).numpy(), kg * ke)
    np.testing.assert_allclose(total(meta).numpy(), (kg + ke) / 2)
    # nested products flatten
    assert len((g * e * GaussianKernel("bmi")).kernels) == 3


def test_equality_on_several_columns_needs_all_equal():
    meta = {"a": np.array([0.0, 0.0, 1.0]), "b": np.array([1.0, 2.0, 2.0])}
    k = EqualityKernel(["a", "b"])(meta)
    torch.testing.assert_close(k, torch.eye(3, dtype=torch.float64))
    k = EqualityKernel("a")(meta)
    assert k[0, 1] == 1 and k[0, 2] == 0


def test_binning_with_edges_and_quantiles():
    ages = np.array([18.0, 40.0, 40.5, 61.0, NAN, 90.0])
    kernel = EqualityKernel("age", bins=[40.0, 60.0])
    codes = ref.bin_codes(ages, [40.0, 60.0])  # [0, 0, 1, 2, nan, 2]
    k = kernel({"age": ages})
    expected = _matrix(ref.equality_kernel(codes), 6)
    np.testing.assert_array_equal(k.numpy(), expected)
    quantile = EqualityKernel("age", bins=3)
    with pytest.raises(RuntimeError, match="must be fitted first"):
        quantile({"age": ages})
    rng = np.random.default_rng(0)
    full = rng.uniform(0, 100, 500)
    quantile.fit({"age": full})
    np.testing.assert_allclose(quantile.edges_.numpy(), np.quantile(full, [1 / 3, 2 / 3]))


def test_missing_column_is_a_key_error(meta):
    with pytest.raises(KeyError, match="'weight'"):
        GaussianKernel("weight")(meta)
