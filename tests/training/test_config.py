"""TrainConfig validation (scikit-learn error template)."""

from __future__ import annotations

import dataclasses

import pytest

from stratify.training import TrainConfig


def test_lr_message_is_exact():
    with pytest.raises(ValueError) as info:
        TrainConfig(lr=0)
    assert str(info.value) == (
        "The 'lr' parameter of TrainConfig must be a float in the range (0, inf). Got 0 instead."
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "The 'epochs' parameter of TrainConfig must be an int"),
        ({"epochs": 2.5}, TypeError, "The 'epochs' parameter"),
        ({"batch_size": 0}, ValueError, "The 'batch_size' parameter"),
        ({"weight_decay": -1.0}, ValueError, "The 'weight_decay' parameter"),
        ({"optimizer": "rmsprop"}, ValueError, "The 'optimizer' parameter of TrainConfig must"),
        ({"scheduler": "step"}, ValueError, "The 'scheduler' parameter"),
        ({"grad_clip": 0.0}, ValueError, "The 'grad_clip' parameter"),
        ({"patience": 0}, ValueError, "The 'patience' parameter"),
        ({"val_fraction": 1.0}, ValueError, "The 'val_fraction' parameter"),
        ({"device": "tpu"}, ValueError, "The 'device' parameter"),
        ({"num_workers": -1}, ValueError, "The 'num_workers' parameter"),
        ({"num_threads": 0}, ValueError, "The 'num_threads' parameter"),
        ({"checkpoint_every": 0}, ValueError, "The 'checkpoint_every' parameter"),
        ({"progress": 1}, TypeError, "The 'progress' parameter"),
        ({"clean_pass": "no"}, TypeError, "The 'clean_pass' parameter of TrainConfig must be"),
        ({"checkpoint_dir": 3}, TypeError, "The 'checkpoint_dir' parameter"),
        ({"networks": 0}, ValueError, "The 'networks' parameter of TrainConfig must be an int"),
        ({"mixed_precision": "fp8"}, ValueError, "must be a bool or 'bfloat16'. Got 'fp8'"),
        ({"mixed_precision": 1}, ValueError, "must be a bool or 'bfloat16'. Got 1 instead"),
    ],
)
def test_invalid_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_frozen_and_defaults():
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]
    assert config.device == "auto" and config.scheduler == "cosine"


def test_the_auto_budget_is_in_compute():
    from stratify.training.config import AUTO_EPOCH_SAMPLES, REFERENCE_SIZE, auto_epochs

    # by hand: ceil(budget * min(1, sqrt(784 / size)) / N)
    assert auto_epochs(1000, 784, 25_600) == 26
    assert auto_epochs(1000, 28 * 28 * 28, 25_600) == 5  # 25,600 / sqrt(28) = 4,838 samples
    assert auto_epochs(1188, 64**3, 25_600) == 2  # 25,600 / sqrt(334.4) = 1,400 samples
    assert auto_epochs(1000, 100, 25_600) == 26  # smaller samples are not seen more often
    assert auto_epochs(10**6, 64**3, 25_600) == 1  # at least one epoch
    assert auto_epochs(500) == -(-AUTO_EPOCH_SAMPLES // 500)  # feature vectors
    assert REFERENCE_SIZE == 28 * 28
    with pytest.raises(ValueError, match="'budget' parameter of auto_epochs must be an int"):
        auto_epochs(100, 784, 0)
    with pytest.raises(ValueError, match="'sample_size' parameter of auto_epochs"):
        auto_epochs(100, 0)
