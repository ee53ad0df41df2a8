"""CrossEntropy: against a plain-Python reference, NaN labels, edge cases, validation, loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stratify.losses import CrossEntropy, Objective
from stratify.losses.supervised import cross_entropy

NAN = float("nan")
DTYPES = [torch.float32, torch.float64]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """-(1/|S|) sum_{i in S} (l_iy - log sum_k exp(l_ik)), S = non-NaN labels; 0 if S empty."""
    total, count = 0.0, 0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        if math.isnan(label):
            continue
        top = max(row)
        log_norm = top + math.log(sum(math.exp(v - top) for v in row))
        total -= row[int(label)] - log_norm
        count += 1
    return total / count if count else 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "labels",
    [
        [0.0, 1.0, 2.0, 1.0, 0.0, 2.0],
        [2.0, NAN, 0.0, NAN, 1.0, 1.0],
        [NAN, NAN, NAN, NAN, NAN, 0.0],
    ],
    ids=["all-labelled", "some-missing", "one-labelled"],
)
def test_matches_the_reference(dtype, labels):
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(6, 3))
    labels = np.array(labels)
    value = CrossEntropy()(torch.tensor(logits, dtype=dtype), torch.tensor(labels).float())
    assert value.shape == () and value.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert float(value) == pytest.approx(reference_cross_entropy(logits, labels), rel=tol)


def test_integer_labels_give_the_same_value():
    logits = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    codes = torch.tensor([3, 0, 1, 1, 2])
    torch.testing.assert_close(CrossEntropy()(logits, codes), CrossEntropy()(logits, codes.float()))


def test_missing_labels_do_not_touch_the_gradient_of_their_rows():
    logits = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    CrossEntropy()(logits, torch.tensor([1.0, NAN, 0.0, NAN])).backward()
    assert torch.all(logits.grad[[1, 3]] == 0)
    assert torch.all(logits.grad[[0, 2]].abs().sum(dim=1) > 0)


def test_gradient_matches_finite_differences():
    logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0.0, 2.0, NAN, 1.0, 2.0])
    assert torch.autograd.gradcheck(lambda m: cross_entropy(m, labels), (logits,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_labelled_sample_gives_zero_with_a_finite_gradient(dtype):
    logits = torch.randn(3, 2, dtype=dtype, requires_grad=True)
    value = CrossEntropy()(logits, torch.full((3,), NAN))
    assert float(value.detach()) == 0.0
    value.backward()
    assert torch.isfinite(logits.grad).all() and torch.all(logits.grad == 0)


@pytest.mark.parametrize(
    ("logits", "labels", "expected"),
    [
        ([[0.0, 0.0]], [1.0], math.log(2.0)),  # batch of one
        ([[1e4, -1e4]], [1.0], 2e4),  # extreme logits stay finite
        ([[5.0]], [0.0], 0.0),  # a single class
    ],
)
def test_edge_cases(logits, labels, expected):
    logits = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    value = CrossEntropy()(logits, torch.tensor(labels))
    assert float(value.detach()) == pytest.approx(expected)
    value.backward()
    assert torch.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    ("mu", "labels", "error", "match"),
    [
        (
            torch.zeros(4, 3),
            torch.tensor([0.0, 1.0, 3.0, NAN]),
            ValueError,
            r"Expected label codes in \{0, ..., 2\}.*got \[3.0\]",
        ),
        (torch.zeros(2, 3), torch.tensor([-1.0, 0.0]), ValueError, r"got \[-1.0\]"),
        (torch.zeros(2, 3), torch.tensor([0.5, 0.0]), ValueError, r"got \[0.5\]"),
        (
            torch.zeros(2, 3),
            torch.tensor([0.0, 1.0, 2.0]),
            ValueError,
            r"Expected labels of shape \(2,\).*got shape \(3,\)",
        ),
        (torch.zeros(2, 3), torch.zeros(2, 3), ValueError, "Multi-label targets are not supported"),
        (torch.zeros(6), torch.zeros(6), ValueError, r"Expected mu .* shape \(N, K\).*got shape"),
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2), ValueError, "floating-point"),
        (torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool), TypeError, "got dtype torch.bool"),
        (np.zeros((2, 3)), torch.zeros(2), TypeError, "Expected mu to be a torch.Tensor"),
    ],
)
def test_invalid_inputs(mu, labels, error, match):
    with pytest.raises(error, match=match):
        CrossEntropy()(mu, labels)


def test_objective_integration():
    objective = Objective({"cross_entropy": CrossEntropy()})
    assert objective.requires == frozenset({"mu", "labels"})
    assert objective.uses_labels and objective.metadata_columns == ()
    mu = torch.randn(4, 2, requires_grad=True)
    labels = torch.tensor([0.0, 1.0, NAN, 1.0])
    total, values = objective({"mu": mu, "labels": labels, "x": torch.rand(4, 1, 3, 3)})
    torch.testing.assert_close(values["cross_entropy"], CrossEntropy()(mu, labels).detach())
    torch.testing.assert_close(total.detach(), values["cross_entropy"])
    with pytest.raises(KeyError, match="'labels'"):
        objective({"mu": mu})


def test_the_training_loop_fits_a_linear_classifier():
    from stratify.models import build_model
    from stratify.training import TrainConfig, embed, train

    gen = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 4, 4, generator=gen) * 0.5
    labels = (torch.arange(64) % 2).float()
    images[labels == 1] += 0.5  # bright vs dark
    encoder = torch.nn.Flatten()
    model = build_model("ae", (1, 4, 4), latent_dim=2, encoder=encoder)
    config = TrainConfig(epochs=30, batch_size=16, lr=0.05, progress=False, num_threads=1)
    result = train(
        model,
        Objective({"cross_entropy": CrossEntropy()}),
        images.numpy(),
        labels=labels.numpy(),
        config=config,
        random_state=0,
    )
    assert result.history["cross_entropy"].iloc[-1] < result.history["cross_entropy"].iloc[0]
    predicted = embed(model, images.numpy()).argmax(axis=1)
    assert (predicted == labels.numpy()).mean() == 1.0


@cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(dtype):
    logits = torch.randn(8, 3, dtype=dtype)
    labels = torch.tensor([0.0, 1.0, 2.0, NAN, 1.0, 0.0, NAN, 2.0])
    cpu = CrossEntropy()(logits, labels)
    gpu = CrossEntropy()(logits.cuda(), labels)  # labels may stay on the CPU
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)
