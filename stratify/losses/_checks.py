"""Argument checks shared by the loss terms (scikit-learn error template).

Each function raises ``TypeError`` for a value of the wrong type and ``ValueError`` for a value
of the right type outside its range, with the message

    The '<name>' parameter of <Owner> must be <constraint>. Got <value!r> instead.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from stratify._validation import check_in_range, check_option

__all__ = [
    "check_choice",
    "check_columns",
    "check_float",
    "check_floats_per_column",
    "check_n_samples",
    "check_pair",
]


def _message(name: str, owner: str, constraint: str, value: Any) -> str:
    return f"The {name!r} parameter of {owner} must be {constraint}. Got {value!r} instead."


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_float(
    value: Any, name: str, owner: str, *, low: float = 0.0, closed: bool = False
) -> float:
    """Return ``value`` as a float in ``(low, inf)`` (or ``[low, inf)`` when ``closed``)."""
    return check_in_range(value, name, owner, low=low, closed="left" if closed else "neither")


def check_choice(value: Any, name: str, owner: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices`` (TypeError if not a str)."""
    choices = set(choices)
    if not isinstance(value, str):
        constraint = "a str among {" + ", ".join(repr(c) for c in sorted(choices)) + "}"
        raise TypeError(_message(name, owner, constraint, value))
    return check_option(value, name, owner, choices)


def check_columns(value: Any, name: str, owner: str) -> tuple[str, ...]:
    """Return a non-empty tuple of distinct column names from a str or a sequence of str."""
    constraint = "a str or a non-empty sequence of distinct str"
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise TypeError(_message(name, owner, constraint, value))
    if len(value) == 0 or len(set(value)) != len(value):
        raise ValueError(_message(name, owner, constraint, value))
    return tuple(value)


def check_floats_per_column(value: Any, name: str, owner: str, n_columns: int) -> tuple[float, ...]:
    """Return one positive float per column from a float or a sequence of ``n_columns`` floats."""
    constraint = f"a float in the range (0, inf) or a sequence of {n_columns} such floats"
    if _is_real(value):
        values: list[Any] = [value] * n_columns
    elif isinstance(value, Sequence) and not isinstance(value, str):
        values = list(value)
        if not all(_is_real(v) for v in values):
            raise TypeError(_message(name, owner, constraint, value))
        if len(values) != n_columns:
            raise ValueError(_message(name, owner, constraint, value))
    else:
        raise TypeError(_message(name, owner, constraint, value))
    out = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(_message(name, owner, constraint, value))
    return out


def check_pair(z1: Any, z2: Any) -> None:
    """Check that two views are tensors of the same shape (N, P) with N >= 1."""
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, Tensor):
            raise TypeError(f"Expected {name} to be a torch.Tensor, got {type(z).__name__}.")
        if z.ndim != 2 or z.shape[0] < 1:
            raise ValueError(
                f"Expected {name} to have shape (N, P) with N >= 1, got {tuple(z.shape)}."
            )
        if not torch.is_floating_point(z):
            raise TypeError(f"Expected {name} to be a floating-point tensor, got {z.dtype}.")
    if z1.shape != z2.shape:
        raise ValueError(
            f"Expected z1 and z2 to have the same shape (N, P), got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}."
        )


def check_n_samples(values: Tensor, n_samples: int, what: str) -> None:
    """Check that a per-sample tensor has ``n_samples`` rows."""
    if values.ndim < 1 or values.shape[0] != n_samples:
        raise ValueError(
            f"Expected {what} to have {n_samples} values (one per sample, N = len(z1)), got "
            f"shape {tuple(values.shape)}."
        )


#: The contrastive temperature of every term, ``build_objective`` and the Stratifier (one
#: value: the Stratifier's, measured on the benchmark grid).
DEFAULT_TEMPERATURE = 0.2
