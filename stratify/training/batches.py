"""The data of a fit: images kept as given, per-sample columns, batches gathered one at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from stratify._validation import check_array_images, require_columns
from stratify.distributed import World
from stratify.training.config import TrainConfig

__all__ = [
    "Data",
    "as_image_tensor",
    "encode_batches",
    "global_batches",
    "iterate",
    "make_data",
    "split_validation",
    "to_device",
]


@dataclass
class Data:
    """Images kept as given (uint8 stays uint8) plus per-sample float columns, and the rows
    of this split; batches are gathered and converted one at a time.
    """

    images: Tensor  # (N_all, C, *S) uint8 or float, CPU
    metadata: dict[str, Tensor]  # column -> (N_all,) float32
    labels: Tensor | None  # (N_all,) float32
    rows: Tensor  # (n,) int64 indices of this split

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitem__(self, idx: Tensor) -> dict[str, Any]:
        """Gather the batch at positions ``idx`` of this split (CPU tensors, not converted)."""
        rows = self.rows[idx]
        return {
            "x": self.images.index_select(0, rows),
            "metadata": {c: v[rows] for c, v in self.metadata.items()},
            "labels": None if self.labels is None else self.labels[rows],
        }


def as_image_tensor(images: Any, name: str) -> Tensor:
    """Images as a CPU tensor (N, C, *S) without a copy, checked; ``name`` for messages."""
    array = check_array_images(images, name=name)
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)
    return torch.from_numpy(array)  # shares memory, no float copy


def _columns(
    metadata: Mapping[str, Any] | None, columns: Sequence[str], n: int, name: str
) -> dict[str, Tensor]:
    if not columns:
        return {}
    if metadata is None:
        raise ValueError(
            f"Expected {name} with the column(s) {list(columns)} read by the objective, got "
            "None. Pass metadata={column: array of shape (n_samples,)}."
        )
    require_columns(columns, metadata, name=name, reader="the objective")
    out = {}
    for col in columns:
        values = np.asarray(metadata[col], dtype=np.float32)
        if values.shape != (n,):
            raise ValueError(
                f"Expected {name}[{col!r}] of shape ({n},), got an array of shape {values.shape}."
            )
        out[col] = torch.from_numpy(values.copy())
    return out


def _labels(labels: Any, n: int, name: str) -> Tensor | None:
    if labels is None:
        return None
    values = np.asarray(labels, dtype=np.float32)
    if values.shape != (n,):
        raise ValueError(f"Expected {name} of shape ({n},), got an array of shape {values.shape}.")
    return torch.from_numpy(values.copy())


def make_data(images, metadata, labels, columns, name: str) -> Data:
    """Images, metadata columns and labels checked against each other as one :class:`Data`."""
    tensor = as_image_tensor(images, name)
    n = tensor.shape[0]
    meta = _columns(metadata, columns, n, f"{name.replace('images', 'metadata')}")
    lab = _labels(labels, n, f"{name.replace('images', 'labels')}")
    return Data(tensor, meta, lab, torch.arange(n))


def split_validation(data: Data, fraction: float, seed: int) -> tuple[Data, Data | None]:
    """Hold out ``fraction`` of the rows at random (numpy generator from ``seed``)."""
    if fraction == 0:
        return data, None
    n = len(data)
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ValueError(
            f"Expected val_fraction to leave training samples, got {fraction} of {n} samples."
        )
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    train = dataclasses.replace(data, rows=data.rows[order[n_val:]])
    return train, dataclasses.replace(data, rows=data.rows[order[:n_val]])


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a gathered batch to ``device`` and convert images to float32 in [0, 1]."""
    nb = device.type == "cuda"
    x = batch["x"].to(device, non_blocking=nb)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    labels = batch["labels"]
    return {
        "x": x,
        "metadata": {c: v.to(device, non_blocking=nb) for c, v in batch["metadata"].items()},
        "labels": None if labels is None else labels.to(device, non_blocking=nb),
    }


def global_batches(
    order: Tensor, batch_size: int, drop_last: bool, world: World | None
) -> list[Tensor]:
    """Global batches of ``batch_size`` per rank (``batch_size * W`` rows) in ``order``.

    A last incomplete batch is dropped with ``drop_last``, and under a world when it has
    fewer rows than ranks (at most W - 1 rows of an epoch; every rank needs one).
    """
    size = 1 if world is None else world.size
    chunks = list(order.split(batch_size * size))
    if chunks and len(chunks[-1]) < batch_size * size and len(chunks) > 1 and drop_last:
        chunks.pop()
    if chunks and len(chunks[-1]) < size:
        chunks.pop()
    return chunks


def iterate(data: Data, chunks: list[Tensor], config: TrainConfig) -> Iterator[dict]:
    """Yield gathered CPU batches, in the main process or from DataLoader workers."""
    if config.num_workers == 0:
        yield from (data[idx] for idx in chunks)
        return
    loader: torch.utils.data.DataLoader = torch.utils.data.DataLoader(
        cast(torch.utils.data.Dataset, data),
        sampler=chunks,
        batch_size=None,
        num_workers=config.num_workers,
        pin_memory=torch.cuda.is_available(),
    )
    yield from loader


@torch.no_grad()
def encode_batches(
    model: Any, images: Tensor, batch_size: int, device: torch.device
) -> tuple[Tensor, Tensor | None]:
    """The encoder's heads on ``images`` (N, C, *S), in batches of ``batch_size`` on
    ``device``, in eval mode without gradients (the mode is restored); uint8 is divided by
    255 per batch, never as a whole.

    Returns
    -------
    mu : Tensor of float32, shape (N, D), on the CPU
    logvar : Tensor of float32, shape (N, D), or None for a model without a log-variance head
    """
    was_training = model.training
    model.eval()
    try:
        means, logvars = [], []
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device)
            x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
            mu, log_variance = model.encode(x)
            means.append(mu.float().cpu())
            if log_variance is not None:
                logvars.append(log_variance.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(means), (torch.cat(logvars) if logvars else None)
