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
        ({"checkpoint_dir": 3}, TypeError, "The 'checkpoint_dir' parameter"),
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
