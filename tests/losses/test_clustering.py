"""Self-training (IDEC): Student-t assignments, sharpened target and KL against naive loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stratify.losses import SelfTraining
from stratify.losses import functional as LF


def _naive(z, c, alpha, balance):
    n, k = len(z), len(c)
    q = [
        [
            (1 + sum((z[i][d] - c[j][d]) ** 2 for d in range(len(z[i]))) / alpha)
            ** (-(alpha + 1) / 2)
            for j in range(k)
        ]
        for i in range(n)
    ]
    q = [[v / sum(row) for v in row] for row in q]
    f = [sum(q[i][j] for i in range(n)) for j in range(k)]
    p = [[q[i][j] ** 2 / f[j] ** balance for j in range(k)] for i in range(n)]
    p = [[v / sum(row) for v in row] for row in p]
    loss = (
        sum(p[i][j] * (math.log(p[i][j]) - math.log(q[i][j])) for i in range(n) for j in range(k))
        / n
    )
    return q, p, loss


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("alpha", "balance"), [(1.0, 1.0), (2.5, 0.0), (0.5, 0.5)])
def test_against_naive_loops(dtype, alpha, balance):
    rng = np.random.default_rng(0)
    z, c = rng.normal(size=(7, 3)), rng.normal(size=(4, 3))
    q_ref, p_ref, loss_ref = _naive(z.tolist(), c.tolist(), alpha, balance)
    zt, ct = torch.tensor(z, dtype=dtype), torch.tensor(c, dtype=dtype)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 0}
    q = LF.student_t_assignments(zt, ct, alpha)
    np.testing.assert_allclose(q.numpy(), q_ref, **tol)
    np.testing.assert_allclose(LF.sharpened_target(q, balance).numpy(), p_ref, **tol)
    assert float(LF.self_training_loss(zt, ct, alpha, balance)) == pytest.approx(loss_ref, rel=1e-5)


def test_target_is_sharper_than_q_and_carries_no_gradient():
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(20, 2)), requires_grad=True)
    c = torch.tensor(rng.normal(size=(3, 2)))
    q = LF.student_t_assignments(z, c)
    p = LF.sharpened_target(q)
    assert not p.requires_grad
    entropy = lambda a: -(a * a.log()).sum(dim=1)  # noqa: E731
    assert (entropy(p) <= entropy(q).detach() + 1e-12).all()


def test_term_trains_its_centroids_and_assigns():
    term = SelfTraining(torch.tensor([[0.0, 0.0], [4.0, 0.0]]), normalize=False)
    mu = torch.tensor([[0.2, 0.1], [3.5, -0.2], [4.4, 0.3]])
    loss = term.evaluate({"mu": mu})
    loss.backward()
    assert term.centroids.grad is not None and torch.isfinite(term.centroids.grad).all()
    assert term.assign(mu).tolist() == [0, 1, 1]
    assert term.requires == frozenset({"mu"})
    # normalised: only directions count
    unit = SelfTraining(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert unit.assign(torch.tensor([[10.0, 1.0], [0.1, 3.0]])).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"centroids": [[1.0, 2.0]]},
            ValueError,
            r"shape \(K, D\) with K >= 2\. Got shape \(1, 2\)",
        ),
        ({"centroids": [[0.0], [1.0]], "alpha": 0}, ValueError, r"'alpha' parameter .*Got 0"),
        ({"centroids": [[0.0], [1.0]], "balance": 1.5}, ValueError, r"'balance' .*\[0, 1\]"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SelfTraining(**kwargs)


def test_wrong_latent_dimension():
    term = SelfTraining([[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"Expected mu of shape \(N, 2\), got \(4, 3\)"):
        term(torch.zeros(4, 3))
