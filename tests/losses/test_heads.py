"""SCAN-style clustering heads: the loss's parts against by-hand computations on tiny batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stratify.losses import ClusterHeads
from stratify.losses import functional as LF


def test_neighbour_consistency_by_hand():
    p = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    neighbours = torch.tensor([[[0.8, 0.2], [0.5, 0.5]], [[0.1, 0.9], [0.3, 0.7]]])
    dots = [
        0.9 * 0.8 + 0.1 * 0.2,
        0.9 * 0.5 + 0.1 * 0.5,
        0.2 * 0.1 + 0.8 * 0.9,
        0.2 * 0.3 + 0.8 * 0.7,
    ]
    expected = -sum(math.log(d) for d in dots) / 4
    assert float(LF.neighbour_consistency(p, neighbours)) == pytest.approx(expected, rel=1e-6)


def test_size_divergence_by_hand_and_uniform_is_entropy():
    p = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.1, 0.9], [0.7, 0.3]], dtype=torch.float64)
    mean = [0.55, 0.45]
    prior = torch.tensor([0.75, 0.25], dtype=torch.float64)
    expected = mean[0] * math.log(0.55 / 0.75) + mean[1] * math.log(0.45 / 0.25)
    assert float(LF.size_divergence(p, prior)) == pytest.approx(expected, rel=1e-12)
    uniform = torch.tensor([0.5, 0.5], dtype=torch.float64)
    entropy = -(0.55 * math.log(0.55) + 0.45 * math.log(0.45))
    assert float(LF.size_divergence(p, uniform)) == pytest.approx(math.log(2) - entropy)


def test_confident_cross_entropy_by_hand():
    p = torch.tensor([[0.995, 0.005], [0.6, 0.4], [0.001, 0.999], [0.992, 0.008]])
    logits = torch.tensor(
        [[[2.0, 0.0]], [[9.0, -9.0]], [[0.5, 1.5]], [[1.0, 1.0]]], dtype=torch.float32
    )
    # anchors 0 and 3 (class 0) and 2 (class 1) pass 0.99; anchor 1 does not
    log_softmax = lambda a, b, k: (a, b)[k] - math.log(math.exp(a) + math.exp(b))  # noqa: E731
    class0 = [log_softmax(2.0, 0.0, 0), log_softmax(1.0, 1.0, 0)]
    class1 = [log_softmax(0.5, 1.5, 1)]
    # every class seen weighs equally: 1 / (2 classes * its count)
    expected = -(sum(class0) / (2 * 2) + sum(class1) / (2 * 1))
    value = LF.confident_cross_entropy(p, logits, 0.99)
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert float(LF.confident_cross_entropy(p, logits, 0.9999)) == 0.0
    # a threshold below every confidence takes anchor 1 too
    assert float(LF.confident_cross_entropy(p, logits, 0.5)) != pytest.approx(expected)


def test_term_is_the_mean_of_its_heads_by_hand():
    rng = np.random.default_rng(0)
    prototypes = rng.normal(size=(2, 3, 4))
    rows = torch.tensor(rng.normal(size=(5, 3, 4, 1)), dtype=torch.float32)
    term = ClusterHeads(prototypes, [0.5, 0.3, 0.2], temperature=0.5, entropy_weight=2.0)
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)  # noqa: E731
    x = unit(rows[:, :, :, 0].double().numpy())
    losses = []
    for h in range(2):
        w = unit(prototypes[h])
        logits = x @ w.T / 0.5  # (5, 3 rows, 3 strata)
        prob = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
        anchor, neighbours = prob[:, 0], prob[:, 1:]
        consistency = -np.mean(np.log((anchor[:, None, :] * neighbours).sum(-1)))
        mean = anchor.mean(axis=0)
        size = float((mean * np.log(mean / np.array([0.5, 0.3, 0.2]))).sum())
        confident = anchor.max(axis=1) >= 0.99
        assert not confident.any()  # no self-label term at this temperature
        losses.append(consistency + 2.0 * size)
    value = term.evaluate({"x": rows, "mu": rows[:, 0, :, 0]})
    assert float(value.detach()) == pytest.approx(np.mean(losses), rel=1e-5)
    np.testing.assert_allclose(term.head_losses(rows).numpy(), losses, rtol=1e-5)


def test_term_gradients_reach_the_prototypes_only():
    rng = np.random.default_rng(1)
    term = ClusterHeads(rng.normal(size=(3, 2, 4)), [0.5, 0.5])
    rows = torch.tensor(rng.normal(size=(6, 3, 4, 1)), dtype=torch.float32, requires_grad=True)
    term.evaluate({"x": rows, "mu": rows[:, 0, :, 0]}).backward()
    assert term.prototypes.grad is not None and torch.isfinite(term.prototypes.grad).all()
    assert float(term.prototypes.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prototypes": np.zeros((2, 1, 4))}, "shape (H, K, D) with K >= 2"),
        ({"prior": [0.5, 0.5, 0.0]}, "must hold 3 positive sizes"),
        ({"prior": [1.0, 1.0]}, "must hold 3 positive sizes"),
        ({"threshold": 1.5}, "range (0, 1]"),
        ({"temperature": 0.0}, "temperature"),
    ],
)
def test_term_refuses_bad_settings(kwargs, message):
    settings = {"prototypes": np.ones((2, 3, 4)), "prior": [0.2, 0.3, 0.5], **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ClusterHeads(**settings)
