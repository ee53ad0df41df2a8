"""Device-agnostic code: the same values on CUDA as on CPU (skipped without a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.losses import build_objective
from tests.losses.cases import CASE_NAMES, make_case

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _to(inputs, device):
    out = {}
    if "labels" in inputs:
        out["labels"] = inputs["labels"].to(device)
    if "metadata" in inputs:
        out["metadata"] = {k: v.to(device) for k, v in inputs["metadata"].items()}
    return out


@cuda
@pytest.mark.parametrize("metadata_on", ["cpu", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_cuda_matches_cpu(name, dtype, metadata_on):
    rng = np.random.default_rng(0)
    case = make_case(name, 16, rng)
    z1 = torch.tensor(rng.normal(size=(16, 8)), dtype=dtype)
    z2 = torch.tensor(rng.normal(size=(16, 8)), dtype=dtype)
    cpu = case.term.evaluate({"z1": z1, "z2": z2, **case.inputs})
    g1, g2 = z1.cuda().requires_grad_(), z2.cuda().requires_grad_()
    gpu = case.term.evaluate({"z1": g1, "z2": g2, **_to(case.inputs, metadata_on)})
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
    gpu.backward()
    assert torch.isfinite(g1.grad).all()


@cuda
def test_objective_on_cuda():
    objective = build_objective("bce", beta=1.0, contrastive="supcon").cuda()
    n = 8
    inputs = {
        "x": torch.rand(n, 1, 6, 6, device="cuda"),
        "recon": torch.randn(n, 1, 6, 6, device="cuda"),
        "mu": torch.randn(n, 3, device="cuda"),
        "logvar": torch.randn(n, 3, device="cuda"),
        "z1": torch.randn(n, 4, device="cuda"),
        "z2": torch.randn(n, 4, device="cuda"),
        "labels": torch.tensor([0.0, 1.0] * 4, device="cuda"),
    }
    total, _ = objective(inputs)
    assert total.device.type == "cuda" and torch.isfinite(total)
    cpu_total, _ = objective.cpu()({k: v.cpu() for k, v in inputs.items()})
    torch.testing.assert_close(total.cpu(), cpu_total, rtol=1e-5, atol=1e-5)
