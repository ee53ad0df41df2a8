"""How many samples fit in a batch: measured activation bytes per sample, and a memory budget.

The cost of a training step grows with the batch through the activations autograd keeps for
the backward pass; for two-view contrastive training of 3D volumes it dominates everything
else (a 64^3 volume of width-16 features is 16 MiB per layer, per view). Rather than a
table of guesses, :func:`step_bytes_per_sample` *measures* it: one training forward of a
probe batch of 2 grey images through a copy of the model and the objective, with
``torch.autograd.graph.saved_tensors_hooks`` counting the bytes of every tensor saved for
the backward (each storage once; parameters and buffers, which do not grow with the batch,
excluded). :func:`inference_bytes_per_sample` measures the largest
layer output of a forward without gradients (what embedding needs).

The rules (documented in the user guide, "Scaling"):

* training: ``batch = min(BATCH_CAP, budget // (HEADROOM * step_bytes_per_sample))``, at
  least 1;
  ``HEADROOM`` = 2 covers the gradients of the activations during the backward and the
  allocator's slack;
* embedding: ``batch = min(EMBED_CAP, budget // (INFERENCE_FACTOR * largest layer output
  per sample))``, ``INFERENCE_FACTOR`` = 4 (a layer's input, output and temporaries);
* the budget: ``memory_budget`` bytes when given, else on a GPU half of its free memory,
  on the CPU a quarter of the available memory (``MemAvailable``) capped at
  :data:`DEFAULT_CPU_BUDGET`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from stratify._system import host_memory
from stratify.training.config import TrainConfig
from stratify.training.step import Augment, Plan, step_loss

if TYPE_CHECKING:
    from stratify.models.autoencoder import Autoencoder
    from stratify.models.ensemble import Ensemble

__all__ = [
    "BATCH_CAP",
    "DEFAULT_CPU_BUDGET",
    "EMBED_CAP",
    "HEADROOM",
    "INFERENCE_FACTOR",
    "available_memory",
    "default_budget",
    "embed_batch_size",
    "fit_batch_size",
    "format_bytes",
    "inference_bytes_per_sample",
    "step_bytes_per_sample",
    "train_batch_size",
]

#: Largest default activation budget on the CPU (bytes).
DEFAULT_CPU_BUDGET = 2 * 1024**3
#: Safety factor on the measured saved-activation bytes of a training step.
HEADROOM = 2.0
#: Peak of a forward without gradients, in units of the largest layer output.
INFERENCE_FACTOR = 4.0
#: Largest embedding batch (beyond it, batches only cost memory).
EMBED_CAP = 1024
#: Largest training batch of ``batch_size="auto"`` (the default of SimCLR-style recipes at
#: 28 px; beyond it the step count per epoch drops for little gain on small image sets).
BATCH_CAP = 256
_PROBE = 2


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - unreachable


def available_memory(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes (CUDA: free GPU memory; CPU: ``MemAvailable``).

    None when it cannot be read (not Linux, other accelerators).
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    return host_memory()


def default_budget(device: torch.device) -> int:
    """Bytes the activations of one batch may take (see the module notes)."""
    free = available_memory(device)
    if device.type == "cuda" and free is not None:
        return free // 2
    if free is None:
        return DEFAULT_CPU_BUDGET
    return min(DEFAULT_CPU_BUDGET, free // 4)


def step_bytes_per_sample(
    step: Callable[[Autoencoder, Any, torch.Tensor], torch.Tensor],
    model: Autoencoder,
    objective: Any,
    image_shape: Sequence[int],
) -> float:
    """Bytes autograd keeps per sample for one training step (measured on a probe batch).

    Parameters
    ----------
    step : callable
        ``step(model, objective, x) -> loss`` for a float batch ``x`` of shape (2, *image_shape)
        (the training loop's forward: views, reconstruction, terms).
    model, objective :
        Copied (deep) for the probe, so batch-norm statistics and parameters are untouched.
    image_shape : sequence of int
        ``(C, *S)``.

    Returns
    -------
    float
        Saved bytes divided by the probe's batch size.
    """
    probe_model, probe_objective = copy.deepcopy(model), copy.deepcopy(objective)
    probe_model.train()
    device = next((p.device for p in probe_model.parameters()), torch.device("cpu"))
    x = torch.full((_PROBE, *image_shape), 0.5, device=device)
    # parameters and buffers are saved too (e.g. a weight for the input's gradient) but do
    # not grow with the batch: only activations count
    fixed = [*probe_model.parameters(), *probe_model.buffers()]
    if isinstance(probe_objective, nn.Module):
        fixed += [*probe_objective.parameters(), *probe_objective.buffers()]
    seen: set[tuple[int, int]] = {
        (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()) for t in fixed
    }
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        try:
            storage = tensor.untyped_storage()
            key = (storage.data_ptr(), storage.nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage
            return tensor
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(probe_model, probe_objective, x)
    return total / _PROBE


def inference_bytes_per_sample(model: Autoencoder | Ensemble, image_shape: Sequence[int]) -> float:
    """Largest output (bytes per sample) of any module of ``model.encode`` without gradients."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    largest = 4.0 * math.prod(image_shape)
    hooks = []

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size() / _PROBE)

    for module in model.modules():
        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model.encode(torch.zeros((_PROBE, *image_shape), device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return largest


def train_batch_size(per_sample: float, budget: int, cap: int) -> int:
    """``min(cap, budget // (HEADROOM * per_sample))``, at least 1."""
    return int(max(1, min(cap, budget // max(1.0, HEADROOM * per_sample))))


def embed_batch_size(model: Autoencoder | Ensemble, image_shape: Sequence[int], budget: int) -> int:
    """The embedding batch for ``model`` on images of ``image_shape`` within ``budget``."""
    per_sample = INFERENCE_FACTOR * inference_bytes_per_sample(model, image_shape)
    return int(max(1, min(EMBED_CAP, budget // max(1.0, per_sample))))


def fit_batch_size(
    model: Autoencoder,
    objective: Any,
    plan: Plan,
    augment: Augment | None,
    config: TrainConfig,
    device: torch.device,
    image_shape: tuple[int, ...],
) -> int:
    """Resolve ``batch_size="auto"``, or check that an explicit one fits, before any batch.

    The activation bytes of one step are measured on a probe batch
    (:func:`step_bytes_per_sample`).
    """

    def step(probe_model: Autoencoder, probe_objective: Any, x: Tensor) -> Tensor:
        n = x.shape[0]
        batch = {
            "x": x,
            "metadata": {
                c: torch.zeros(n, device=x.device) for c in probe_objective.metadata_columns
            },
            "labels": torch.zeros(n, device=x.device),
        }
        total, _ = step_loss(
            probe_model, probe_objective, batch, plan, augment, torch.Generator().manual_seed(0)
        )
        return total

    per_sample = step_bytes_per_sample(step, model, objective, image_shape)
    if config.batch_size == "auto":
        budget = config.memory_budget or default_budget(device)
        return train_batch_size(per_sample, budget, BATCH_CAP)
    need = HEADROOM * per_sample * int(config.batch_size)
    free = available_memory(device)
    if free is not None and need > free:
        fits = train_batch_size(per_sample, free, int(config.batch_size))
        raise ValueError(
            f"Expected a batch that fits in memory, got batch_size={config.batch_size}: its "
            f"training step needs about {format_bytes(need)} of activations "
            f"({format_bytes(per_sample)} per sample, measured, times "
            f"{HEADROOM:g} for the backward pass) but {device} has "
            f"{format_bytes(free)} available. batch_size={fits} fits; pass "
            "batch_size='auto' (sized to memory_budget) or a smaller batch_size."
        )
    return int(config.batch_size)
