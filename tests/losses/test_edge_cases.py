"""Never NaN or inf: degenerate batches, extreme temperatures, zero embeddings, missing data."""

from __future__ import annotations

import pytest
import torch

from stratify.losses import (
    ClinicalContrastive,
    EqualityKernel,
    GaussianKernel,
    KernelContrastive,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
)

NAN = float("nan")

TERMS = {
    "ntxent": lambda tau: NTXent(temperature=tau),
    "supcon": lambda tau: SupCon(temperature=tau),
    "yaware": lambda tau: YAwareInfoNCE(["age", "position"], sigma=[5.0, 0.1], temperature=tau),
    "yaware_epanechnikov": lambda tau: YAwareInfoNCE("age", kernel="epanechnikov", temperature=tau),
    "wsp": lambda tau: WSPContrastive(sigma=0.1, temperature=tau),
    "clinical": lambda tau: ClinicalContrastive(
        {"labels": 1.0, "age": 0.5}, bins={"age": [50.0]}, temperature=tau
    ),
    "kernel_sum": lambda tau: KernelContrastive(
        GaussianKernel("age", 3.0) + EqualityKernel("labels"), temperature=tau
    ),
}


def _batch(case, dtype):
    gen = torch.Generator().manual_seed(0)
    n = 1 if case == "batch_of_one" else 6
    z1 = torch.randn(n, 4, generator=gen, dtype=dtype)
    z2 = torch.randn(n, 4, generator=gen, dtype=dtype)
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 2.0])[:n]
    age = torch.rand(n, generator=gen) * 60 + 20
    position = torch.rand(n, generator=gen)
    tau = 0.1
    if case == "no_shared_label":
        labels = torch.arange(n, dtype=torch.float32)
    elif case == "identical_metadata":
        labels, age, position = torch.zeros(n), torch.full((n,), 50.0), torch.full((n,), 0.5)
    elif case == "all_missing":
        labels, age, position = (torch.full((n,), NAN) for _ in range(3))
    elif case == "tau_0.01":
        tau = 0.01
    elif case == "tau_10":
        tau = 10.0
    elif case == "zero_embeddings":
        z1, z2 = torch.zeros(n, 4, dtype=dtype), torch.zeros(n, 4, dtype=dtype)
    elif case == "some_zero_embeddings":
        z1[1] = 0.0
        z2[3] = 0.0
    elif case == "identical_embeddings":
        z1 = z2 = torch.ones(n, 4, dtype=dtype)
    elif case == "huge_embeddings":
        z1, z2 = z1 * 1e15, z2 * 1e15
    elif case == "tiny_embeddings":
        z1, z2 = z1 * 1e-20, z2 * 1e-20
    return z1, z2, {"labels": labels, "metadata": {"age": age, "position": position}}, tau


CASES = [
    "batch_of_one",
    "no_shared_label",
    "identical_metadata",
    "all_missing",
    "tau_0.01",
    "tau_10",
    "zero_embeddings",
    "some_zero_embeddings",
    "identical_embeddings",
    "huge_embeddings",
    "tiny_embeddings",
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("name", list(TERMS))
def test_finite_value_and_gradient(name, case, dtype):
    z1, z2, extra, tau = _batch(case, dtype)
    z1 = z1.clone().requires_grad_(True)
    z2 = z2.clone().requires_grad_(True)
    term = TERMS[name](tau)
    loss = term.evaluate({"z1": z1, "z2": z2, **extra})
    assert loss.shape == () and torch.isfinite(loss)
    assert loss.item() >= 0.0
    loss.backward()
    assert torch.isfinite(z1.grad).all() and torch.isfinite(z2.grad).all()
    if case == "batch_of_one":  # the only candidate is the other view: log 1 = 0
        assert loss.item() == 0.0
