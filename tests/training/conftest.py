"""Tiny models, data and objectives for the training-loop tests (seconds on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.models import build_model


class SpyObjective(torch.nn.Module):
    """Follows the Objective contract; records what it was given; optional NaN at a batch."""

    def __init__(self, requires=("x", "recon"), columns=(), nan_at=None):
        super().__init__()
        self.requires = frozenset(requires)
        self.metadata_columns = tuple(columns)
        self.nan_at = nan_at
        self.calls: list[dict] = []

    def forward(self, inputs):
        self.calls.append({k: v for k, v in inputs.items() if v is not None})
        terms = {}
        if "recon" in self.requires:
            terms["recon"] = torch.nn.functional.binary_cross_entropy_with_logits(
                inputs["recon"], inputs["x"]
            )
        if "z1" in self.requires:
            terms["align"] = (inputs["z1"] - inputs["z2"]).pow(2).mean()
        if "mu" in self.requires:
            terms["l2"] = inputs["mu"].pow(2).mean()
        if self.nan_at is not None and len(self.calls) == self.nan_at:
            terms["bad"] = torch.tensor(float("nan"))
        else:
            terms["bad"] = torch.zeros(())
        total = sum(terms.values())
        return total, {k: v.detach() for k, v in terms.items()}


@pytest.fixture
def tiny_images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:16, :16]
    centres = rng.integers(4, 12, size=(48, 2))
    blobs = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 8)
    return (blobs[:, None] * 255).astype(np.uint8)  # (48, 1, 16, 16)


def seeded_model(kind="vae", seed=0):
    """A tiny model with reproducible initial weights (global RNG forked, then restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(kind, (1, 16, 16), latent_dim=4, width=4, projection_dim=4)


@pytest.fixture
def tiny_model():
    return seeded_model()
