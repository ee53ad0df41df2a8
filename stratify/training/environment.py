"""The environment of a fit: CPU threads and the device (seeds: :mod:`stratify._random`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = ["physical_cores", "resolve_device", "torch_threads"]


def physical_cores() -> int:
    """Number of physical CPU cores available to this process (logical count as fallback)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text(), (topo / "core_id").read_text()))
        except OSError:
            return len(cpus)
    return max(1, len(cores))


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch CPU threads inside the block (the previous number restored after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU; any other torch device string as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Expected an available device, got {device!r} but CUDA is not available.")
    return resolved
