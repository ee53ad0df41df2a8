"""Batch sizes from measured activation bytes: the probe, the rules, train() and the estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stratify.losses import build_objective
from stratify.models import build_model
from stratify.training import TrainConfig, memory, train


def test_probe_counts_the_activations_saved_per_sample():
    # Linear(5 -> 7) saves its input (5 floats per sample; its weight is a parameter and does
    # not count), pow(2) saves its input (7 floats): 4 * (5 + 7) bytes per sample
    model = nn.Linear(5, 7)

    def step(m, objective, x):
        return m(x).pow(2).sum()

    assert memory.step_bytes_per_sample(step, model, None, (5,)) == 4 * (5 + 7)


def test_probe_leaves_the_model_untouched():
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    memory.step_bytes_per_sample(lambda m, o, x: m(x + 1).sum(), model, None, (4,))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_inference_probe_is_the_largest_layer_output():
    model = build_model("ae", (1, 28, 28), width=4)
    # the first convolution's output: 4 channels of 28 x 28 floats
    assert memory.inference_bytes_per_sample(model, (1, 28, 28)) == 4 * 4 * 28 * 28


@pytest.mark.parametrize(
    ("per_sample", "budget", "cap", "expected"),
    [
        (10.0, 1000, 256, 50),  # 1000 // (2 * 10)
        (10.0, 10**9, 256, 256),  # capped
        (10**9, 1000, 256, 1),  # at least one sample
    ],
)
def test_train_batch_size_rule(per_sample, budget, cap, expected):
    assert memory.train_batch_size(per_sample, budget, cap) == expected


def test_format_bytes():
    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(1536) == "1.5 KiB"
    assert memory.format_bytes(3 * 1024**3) == "3.0 GiB"


def _fit(images, **config):
    model = build_model("ae", images.shape[1:], latent_dim=4, width=4)
    objective = build_objective("bce", contrastive="simclr")
    options = {"epochs": 1, "progress": False, "device": "cpu"}
    options.update(config)
    return model, train(model, objective, images, config=TrainConfig(**options), random_state=0)


def test_auto_batch_follows_the_memory_budget():
    images = np.random.default_rng(0).integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)
    _, tiny = _fit(images, batch_size="auto", memory_budget=1)
    assert tiny.batch_size == 1
    _, large = _fit(images, batch_size="auto", memory_budget=2**40)
    assert large.batch_size == memory.BATCH_CAP
    # a budget of ten measured samples (with the backward's headroom) gives ten
    from stratify.data.augment import TwoViewAugment
    from stratify.models.conv import use_layout
    from stratify.training.step import Plan, step_loss

    model = build_model("ae", (1, 16, 16), latent_dim=4, width=4)
    use_layout(model, torch.device("cpu"))  # measured as train holds it
    objective = build_objective("bce", contrastive="simclr")
    per_sample = memory.step_bytes_per_sample(
        lambda m, o, x: step_loss(
            m,
            o,
            {"x": x, "metadata": {}, "labels": None},
            Plan.of(o),
            TwoViewAugment(),
            torch.Generator().manual_seed(0),
        )[0],
        model,
        objective,
        (1, 16, 16),
    )
    _, ten = _fit(
        images, batch_size="auto", memory_budget=int(10 * memory.HEADROOM * per_sample) + 1
    )
    assert ten.batch_size == 10
    assert len(ten.history) == 1


def test_an_explicit_batch_that_cannot_fit_is_refused_before_training(monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)
    monkeypatch.setattr(memory, "available_memory", lambda device: 10 * 1024**2)
    model = build_model("ae", (1, 16, 16), latent_dim=4, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    objective = build_objective("bce", contrastive="simclr")
    with pytest.raises(
        ValueError,
        match=r"batch_size=4096: its training step needs about "
        r".* but cpu has 10\.0 MiB available\. "
        r"batch_size=\d+ fits",
    ):
        train(
            model,
            objective,
            images,
            config=TrainConfig(batch_size=4096, progress=False, device="cpu"),
        )
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_batch_size_setting_is_validated():
    with pytest.raises(
        TypeError,
        match=r"'batch_size' parameter of TrainConfig must be an int "
        r"in the range \[1, inf\) or 'auto'\. Got 'big'",
    ):
        TrainConfig(batch_size="big")
    with pytest.raises(ValueError, match=r"'memory_budget' parameter of TrainConfig"):
        TrainConfig(memory_budget=0)
