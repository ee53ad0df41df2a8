"""Loss terms by name: the kinds that configurations (``build_objective``, the Stratifier's
``regularizers``) may name, and what the estimator needs to know about an objective.

Adding a kind is one entry in :data:`TERMS` (a :class:`~stratify.losses.LossTerm` subclass
whose keyword arguments are the options of its spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratify._validation import check_option
from stratify.losses._base import LossTerm
from stratify.losses.contrastive import (
    ClinicalContrastive,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
)
from stratify.losses.kernels import LABELS

__all__ = ["TERMS", "distance_columns", "make_term", "regularizer_from_spec"]

#: Term kinds by name -> class; each takes ``temperature`` among its keyword arguments.
TERMS: dict[str, type[LossTerm]] = {
    "simclr": NTXent,
    "supcon": SupCon,
    "yaware": YAwareInfoNCE,
    "wsp": WSPContrastive,
    "clinical": ClinicalContrastive,
}


def make_term(kind: str, options: Mapping[str, Any], owner: str) -> LossTerm:
    """``TERMS[kind](**options)``; a bad kind or option names ``owner`` in the message."""
    check_option(kind, "kind", owner, set(TERMS))
    try:
        return TERMS[kind](**options)
    except TypeError as error:
        raise TypeError(f"Bad options for {owner} ({kind}): {error}") from None


def regularizer_from_spec(name: str, spec: Any, temperature: float) -> tuple[LossTerm, float]:
    """A (term, weight) pair from a LossTerm, a (LossTerm, weight) pair or a dict spec.

    A dict spec is ``{"kind": <a key of TERMS>, "weight": w (default 1), **options}``; the
    term gets ``temperature`` unless its options set one.
    """
    if isinstance(spec, LossTerm):
        return spec, 1.0
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], LossTerm):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"Expected regularizer {name!r} to be a LossTerm, a (LossTerm, weight) pair or a "
            f"dict with a 'kind' key, got {type(spec).__name__}."
        )
    options = dict(spec)
    kind = options.pop("kind", None)
    weight = options.pop("weight", 1.0)
    options.setdefault("temperature", temperature)
    return make_term(kind, options, f"regularizer {name!r}"), weight


def distance_columns(objective: Any) -> set[str]:
    """Metadata columns that some term of ``objective`` reads through a distance kernel.

    These must be numbers (not category codes); see :attr:`~stratify.losses.Kernel.distance`.
    """
    found: set[str] = set()
    for module in objective.modules():
        kernel = getattr(module, "kernel", None)
        if kernel is not None:
            found |= kernel.distance_columns()
    return found - {LABELS}
