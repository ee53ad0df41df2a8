"""Contrastive terms against the plain-Python reference: values, gradients, limits, invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.losses import (
    ClinicalContrastive,
    Kernel,
    KernelContrastive,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
)
from tests.losses.cases import CASE_NAMES, make_batch, make_case, to_inputs

SIZES = (1, 2, 5, 16)
DTYPES = (torch.float32, torch.float64)
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-5}, torch.float64: {"rtol": 1e-9, "atol": 1e-10}}
GRAD_TOL = {
    torch.float32: {"rtol": 1e-3, "atol": 1e-4},
    torch.float64: {"rtol": 1e-6, "atol": 1e-8},
}


def _evaluate(term, z1, z2, inputs):
    return term.evaluate({"z1": z1, "z2": z2, **inputs})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_value_and_gradient_match_reference(name, n, dtype):
    rng = np.random.default_rng(1000 * n + CASE_NAMES.index(name))
    case = make_case(name, n, rng)
    z1 = torch.tensor(rng.normal(size=(n, 6)), dtype=dtype, requires_grad=True)
    z2 = torch.tensor(rng.normal(size=(n, 6)), dtype=dtype, requires_grad=True)
    loss = _evaluate(case.term, z1, z2, case.inputs)
    assert loss.shape == () and loss.dtype == dtype

    # the point where the library was evaluated, in float64
    a1, a2 = z1.detach().double().numpy(), z2.detach().double().numpy()
    expected = case.reference(a1, a2)
    np.testing.assert_allclose(loss.item(), expected, **TOL[dtype])

    # directional derivatives: autograd vs central finite differences of the reference
    loss.backward()
    g1, g2 = z1.grad.double().numpy(), z2.grad.double().numpy()
    h = 1e-6
    for _ in range(2):
        v1, v2 = rng.normal(size=a1.shape), rng.normal(size=a2.shape)
        fd = case.reference(a1 + h * v1, a2 + h * v2) - case.reference(a1 - h * v1, a2 - h * v2)
        fd /= 2 * h
        np.testing.assert_allclose(np.sum(g1 * v1) + np.sum(g2 * v2), fd, **GRAD_TOL[dtype])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_gradcheck(name):
    rng = np.random.default_rng(7)
    case = make_case(name, 3, rng)
    z1 = torch.tensor(rng.normal(size=(3, 4)), dtype=torch.float64, requires_grad=True)
    z2 = torch.tensor(rng.normal(size=(3, 4)), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: _evaluate(case.term, a, b, case.inputs), (z1, z2))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_invariant_to_permuting_the_batch_and_swapping_views(name):
    rng = np.random.default_rng(11)
    n = 7
    case = make_case(name, n, rng)
    z1 = torch.tensor(rng.normal(size=(n, 5)))
    z2 = torch.tensor(rng.normal(size=(n, 5)))
    perm = torch.as_tensor(rng.permutation(n))
    permuted = {}
    if "labels" in case.inputs:
        permuted["labels"] = case.inputs["labels"][perm]
    if "metadata" in case.inputs:
        permuted["metadata"] = {k: v[perm] for k, v in case.inputs["metadata"].items()}
    base = _evaluate(case.term, z1, z2, case.inputs)
    torch.testing.assert_close(_evaluate(case.term, z1[perm], z2[perm], permuted), base)
    torch.testing.assert_close(_evaluate(case.term, z2, z1, case.inputs), base)
    # and the loss does depend on which embedding goes with which metadata / view
    if name != "ntxent" and n > 1:
        shuffled = _evaluate(case.term, z1[perm], z2, case.inputs)
        assert not torch.isclose(shuffled, base)


def _batch(n, seed=0):
    rng = np.random.default_rng(seed)
    meta = make_batch(n, rng)
    z1 = torch.tensor(rng.normal(size=(n, 8)))
    z2 = torch.tensor(rng.normal(size=(n, 8)))
    return z1, z2, meta, to_inputs(meta)


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian", "epanechnikov"])
def test_yaware_small_sigma_recovers_ntxent(kernel):
    z1, z2, _, inputs = _batch(12)
    yaware = YAwareInfoNCE("age", sigma=1e-6, kernel=kernel, temperature=0.3)
    expected = NTXent(temperature=0.3)(z1, z2)
    torch.testing.assert_close(yaware(z1, z2, inputs["metadata"]), expected)
    # a moderate sigma gives something else (the test can fail)
    moderate = YAwareInfoNCE("age", sigma=10.0, kernel=kernel, temperature=0.3)
    assert not torch.isclose(moderate(z1, z2, inputs["metadata"]), expected)


class _ConstantKernel(Kernel):
    """K = 1 for every pair: every candidate weighs the same."""

    def compute(self, values):
        return torch.ones(values.shape[0], values.shape[0], dtype=values.dtype)


def test_yaware_large_sigma_gives_uniform_weights():
    z1, z2, _, inputs = _batch(9)
    yaware = YAwareInfoNCE("age", sigma=1e9, temperature=0.2)
    uniform = KernelContrastive(_ConstantKernel("age"), temperature=0.2)
    torch.testing.assert_close(
        yaware(z1, z2, inputs["metadata"]), uniform(z1, z2, inputs["metadata"])
    )


@pytest.mark.parametrize(("kernel", "sigma"), [("gaussian", 1e-3), ("epanechnikov", 0.9)])
def test_kernel_one_only_on_equal_labels_equals_supcon(kernel, sigma):
    z1, z2, _, inputs = _batch(16, seed=3)
    yaware = YAwareInfoNCE("site", sigma=sigma, kernel=kernel, temperature=0.2)
    supcon = SupCon("site", temperature=0.2)
    torch.testing.assert_close(
        yaware(z1, z2, inputs["metadata"]), supcon(z1, z2, inputs["metadata"])
    )
    assert not torch.isclose(supcon(z1, z2, inputs["metadata"]), NTXent(0.2)(z1, z2))


def test_supcon_without_shared_labels_is_ntxent():
    z1, z2, _, _ = _batch(10)
    labels = torch.arange(10, dtype=torch.float32)
    torch.testing.assert_close(SupCon(temperature=0.5)(z1, z2, labels=labels), NTXent(0.5)(z1, z2))


def test_supcon_missing_labels_are_only_their_own_positive():
    z1, z2, _, _ = _batch(6)
    nan = float("nan")
    # samples 0 and 1 have a missing label: as if they had labels of their own
    labels = torch.tensor([nan, nan, 1.0, 1.0, 2.0, 1.0])
    unique = torch.tensor([10.0, 11.0, 1.0, 1.0, 2.0, 1.0])
    torch.testing.assert_close(SupCon()(z1, z2, labels=labels), SupCon()(z1, z2, labels=unique))


def test_wsp_with_one_weak_label_is_yaware_on_position():
    z1, z2, _, inputs = _batch(12)
    labels = torch.ones(12)
    wsp = WSPContrastive(sigma=0.2, kernel="laplacian", temperature=0.1)
    yaware = YAwareInfoNCE("position", sigma=0.2, kernel="laplacian", temperature=0.1)
    torch.testing.assert_close(
        wsp(z1, z2, inputs["metadata"], labels), yaware(z1, z2, inputs["metadata"])
    )
    # with several weak labels it differs
    varied = torch.tensor([0.0, 1.0] * 6)
    assert not torch.isclose(
        wsp(z1, z2, inputs["metadata"], varied), yaware(z1, z2, inputs["metadata"])
    )


def test_clinical_with_one_column_is_supcon():
    z1, z2, _, inputs = _batch(12)
    clinical = ClinicalContrastive({"site": 2.5}, temperature=0.2)
    supcon = SupCon("site", temperature=0.2)
    torch.testing.assert_close(
        clinical(z1, z2, inputs["metadata"]), 2.5 * supcon(z1, z2, inputs["metadata"])
    )
    unit = ClinicalContrastive(["site"], temperature=0.2)
    torch.testing.assert_close(unit(z1, z2, inputs["metadata"]), supcon(z1, z2, inputs["metadata"]))


def test_clinical_quantile_bins_fitted_once():
    rng = np.random.default_rng(5)
    full_age = rng.uniform(20, 80, 200)
    clinical = ClinicalContrastive({"age": 1.0}, bins={"age": 4}, temperature=0.2)
    clinical.fit({"age": full_age})
    edges = np.quantile(full_age, [0.25, 0.5, 0.75])
    z1, z2, _, inputs = _batch(10)
    explicit = SupCon("age", temperature=0.2, bins=edges.tolist())
    torch.testing.assert_close(
        clinical(z1, z2, inputs["metadata"]), explicit(z1, z2, inputs["metadata"])
    )
