"""The training engine: one loop (one process or torchrun), a frozen config, atomic checkpoints,
batched embedding.
"""

from stratify.training.checkpoint import load_checkpoint, save_checkpoint
from stratify.training.config import TrainConfig
from stratify.training.loop import (
    ACTIVE_UNIT_THRESHOLD,
    NonFiniteLossError,
    TrainResult,
    embed,
    physical_cores,
    train,
)

__all__ = [
    "ACTIVE_UNIT_THRESHOLD",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "embed",
    "load_checkpoint",
    "physical_cores",
    "save_checkpoint",
    "train",
]
