"""What the host machine has, read without importing torch."""

from __future__ import annotations

import os

__all__ = ["host_memory"]


def host_memory() -> int | None:
    """Memory available to a new allocation on this host, in bytes (``MemAvailable``);
    None when it cannot be read (not Linux, no ``sysconf``).
    """
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    pages = getattr(os, "sysconf", None)
    try:
        return int(pages("SC_AVPHYS_PAGES") * pages("SC_PAGE_SIZE")) if pages else None
    except (ValueError, OSError):  # pragma: no cover - platform dependent
        return None
