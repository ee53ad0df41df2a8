"""Declarative parameter constraints, checked by one helper (scikit-learn's pattern).

Each estimator declares ``_parameter_constraints``: parameter name -> the list of
constraints a valid value meets at least one of. :func:`validate_params` checks them all in
``fit`` before any work, with scikit-learn's message template::

    The 'n_clusters' parameter of Stratifier must be an int in the range [2, inf) or 'auto'.
    Got 0 instead.

The module is plain Python (numpy for its integer types only): the command line can check
parameters before torch or scikit-learn is imported. :func:`invalid_values` lists, for each
constraint table, values that must be refused; the tests are generated from it.
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "InvalidParameterError",
    "Keys",
    "Options",
    "Satisfies",
    "invalid_values",
    "validate_params",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter is of the wrong type or outside its range (a ValueError and a TypeError)."""


def format_bound(value: float, closed: bool, left: bool) -> str:
    """One end of an interval: ``[1``, ``(0``, ``inf)``, ``1]``."""
    if value == math.inf:
        return "inf)"
    if value == -math.inf:
        return "(-inf"
    bracket = ("[" if closed else "(") if left else ("]" if closed else ")")
    return f"{bracket}{value:g}" if left else f"{value:g}{bracket}"


@dataclass(frozen=True)
class Interval:
    """A real (``kind=float``) or integral (``kind=int``) number in an interval.

    ``closed`` is one of ``"both"``, ``"left"``, ``"right"``, ``"neither"``: which bounds
    belong to the interval. Bools are never numbers here.
    """

    kind: type
    low: float = -math.inf
    high: float = math.inf
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a number of ``kind`` inside the interval (NaN never is)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        number = float(value)
        if math.isnan(number):
            return False
        left = number >= self.low if self.closed in ("both", "left") else number > self.low
        right = number <= self.high if self.closed in ("both", "right") else number < self.high
        return bool(left and right)

    def describe(self) -> str:
        """``an int in the range [1, inf)``."""
        left = format_bound(self.low, self.closed in ("both", "left"), True)
        right = format_bound(self.high, self.closed in ("both", "right"), False)
        article = "an" if self.kind is int else "a"
        return f"{article} {self.kind.__name__} in the range {left}, {right}"

    def invalid(self) -> list[Any]:
        """Values just outside each finite bound, and one of the wrong type."""
        step = 1 if self.kind is int else 0.5
        values: list[Any] = []
        if self.low != -math.inf:
            values.append(
                self.kind(self.low - step if self.closed in ("both", "left") else self.low)
            )
        if self.high != math.inf:
            values.append(
                self.kind(self.high + step if self.closed in ("both", "right") else self.high)
            )
        values.append(2.5 if self.kind is int else "1")
        return values


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (compared with ``==`` and the same type: 1 is not True)."""

    values: frozenset

    def __init__(self, values: Collection[Any]) -> None:
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is one of the options."""
        try:
            return any(value == o and type(value) is type(o) for o in self.values)
        except (TypeError, ValueError):  # arrays and other values without a truth value
            return False

    def describe(self) -> str:
        """``a str among {'ae', 'vae'}``; one option alone: its repr (``'auto'``, ``None``)."""
        if len(self.values) == 1:
            return repr(next(iter(self.values)))
        kinds = sorted({type(o).__name__ for o in self.values})
        listed = ", ".join(repr(o) for o in sorted(self.values, key=str))
        return f"a {' or '.join(kinds)} among {{{listed}}}"

    def invalid(self) -> list[Any]:
        """A string that is no option, and an object of no option's type."""
        return ["not-an-option", object()]


@dataclass(frozen=True)
class Keys:
    """A key of a registry that may grow after import (``BACKENDS``), read at check time;
    ``removed`` maps names of earlier versions to what became of them.
    """

    registry: Mapping[str, Any]
    removed: Mapping[str, str] = field(default_factory=dict)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is a str naming an entry now."""
        return isinstance(value, str) and value in self.registry

    def describe(self) -> str:
        """``a str among {...}`` of the entries now."""
        return Options(set(self.registry)).describe()

    def invalid(self) -> list[Any]:
        """A name of no entry."""
        return ["not-an-option"]


@dataclass(frozen=True)
class Satisfies:
    """A rule that is not a type or a range: ``check(value)`` decides, ``description`` says.

    ``invalid`` lists values the rule refuses, for the generated tests.
    """

    check: Callable[[Any], bool]
    description: str
    bad: tuple[Any, ...] = ()

    def accepts(self, value: Any) -> bool:
        """Whether ``check(value)`` holds."""
        return bool(self.check(value))

    def describe(self) -> str:
        """The description given."""
        return self.description

    def invalid(self) -> list[Any]:
        """The refused values given."""
        return list(self.bad)


Constraint = Interval | Keys | Options | Satisfies

#: ``None`` as a constraint.
NONE = Options({None})
#: A bool.
BOOL = Options({True, False})


def module_instance(class_path: str) -> Satisfies:
    """Instances of a torch class named ``"torch.nn.Module"``, checked without importing torch.

    If torch has not been imported, no object can be an instance of its classes.
    """
    module_name, _, class_name = class_path.rpartition(".")

    def check(value: Any) -> bool:
        module = sys.modules.get(module_name)
        return module is not None and isinstance(value, getattr(module, class_name))

    return Satisfies(check, f"a {class_path}", bad=("encoder", object()))


def is_mapping(value: Any) -> bool:
    """Whether ``value`` is a mapping."""
    return isinstance(value, Mapping)


def _allowed(constraints: list[Constraint]) -> str:
    """``A``, ``A or B``, ``A, B or C``."""
    parts = [c.describe() for c in constraints]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def validate_params(
    owner: object, constraints: Mapping[str, list[Constraint]], *, name: str | None = None
) -> None:
    """Check every parameter of ``owner`` against its constraints.

    Parameters
    ----------
    owner : object
        Holds the parameters as attributes (an estimator, a config dataclass).
    constraints : mapping of str to list of constraints
        A value is valid when it meets at least one constraint of its list.
    name : str, optional
        The owner's name in the message (default: its class name).

    Raises
    ------
    InvalidParameterError
        For the first parameter that meets none of its constraints, with the template
        ``The 'x' parameter of Owner must be <allowed>. Got <value> instead.``
    """
    owner_name = name or type(owner).__name__
    for parameter, allowed in constraints.items():
        value = getattr(owner, parameter)
        if not any(c.accepts(value) for c in allowed):
            notes = [
                f" {value!r} {c.removed[value]}."
                for c in allowed
                if isinstance(c, Keys) and isinstance(value, str) and value in c.removed
            ]
            raise InvalidParameterError(
                f"The {parameter!r} parameter of {owner_name} must be {_allowed(allowed)}. "
                f"Got {value!r} instead.{''.join(notes)}"
            )


def invalid_values(constraints: Mapping[str, list[Constraint]]) -> list[tuple[str, Any]]:
    """``(parameter, value)`` pairs that the table refuses: each constraint's out-of-range
    and wrong-type values that no other constraint of the parameter accepts.
    """
    pairs = []
    for parameter, allowed in constraints.items():
        for constraint in allowed:
            for value in constraint.invalid():
                if not any(c.accepts(value) for c in allowed):
                    pairs.append((parameter, value))
    return pairs


def is_integer(value: Any) -> bool:
    """An integral number that is not a bool (Python or numpy)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
