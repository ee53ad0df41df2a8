"""Cross-check NT-Xent and SupCon against pytorch-metric-learning (test-only dependency).

Conventions (read in pytorch_metric_learning/losses/{ntxent,supcon}_loss.py, v2.x):
- Both take ONE batch of embeddings with labels; we give it the 2N embeddings
  ``cat([z1, z2])`` with labels ``cat([y, y])`` (for NT-Xent, y = sample index, so the only
  positive of an embedding is its other view). Both normalise with CosineSimilarity.
- NTXentLoss computes one loss per positive pair (a, p), with the denominator over p and the
  negatives of a (every c != a here), and averages over the 2N pairs (MeanReducer): exactly our
  1/(2N) average over anchors. It adds a tiny constant inside the log (negligible here).
- SupConLoss averages log-probabilities over the positives of each anchor (the "L_out" form,
  as ours) but reduces with AvgNonZeroReducer: the mean over anchors with a NON-ZERO loss,
  and it returns 0 when the batch has no negative at all (one label for everyone). Ours divides
  by all 2N anchors and is positive without negatives. With >= 2 labels in the batch every
  anchor has a negative, so its loss is > 0 and the two averages coincide.
"""

from __future__ import annotations

import pytest
import torch

from stratify.losses import NTXent, SupCon

pml = pytest.importorskip("pytorch_metric_learning.losses")


@pytest.mark.parametrize("tau", [0.07, 0.5, 2.0])
@pytest.mark.parametrize("n", [2, 5, 16])
def test_ntxent_matches_pml(n, tau):
    gen = torch.Generator().manual_seed(n)
    z1 = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    z2 = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    ids = torch.arange(n)
    expected = pml.NTXentLoss(temperature=tau)(torch.cat([z1, z2]), torch.cat([ids, ids]))
    torch.testing.assert_close(NTXent(temperature=tau)(z1, z2), expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("tau", [0.1, 0.5])
@pytest.mark.parametrize("n", [2, 5, 16])
def test_supcon_matches_pml(n, tau):
    gen = torch.Generator().manual_seed(n)
    z1 = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    z2 = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    labels = torch.arange(n) % 3  # >= 2 labels: every anchor has a negative
    expected = pml.SupConLoss(temperature=tau)(torch.cat([z1, z2]), torch.cat([labels, labels]))
    got = SupCon(temperature=tau)(z1, z2, labels=labels.to(torch.float64))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-8)
