"""Base class of the loss terms and the names of the inputs they read."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

__all__ = ["INPUT_KEYS", "LossTerm"]

#: Names of the inputs a term can read from the training batch:
#: "x" (N, C, *spatial) target in [0, 1]; "recon" (N, C, *spatial) decoder logits;
#: "mu", "logvar" (N, D) posterior parameters; "z1", "z2" (N, P) projections of two views;
#: "labels" (N,) float label codes (NaN = missing); "metadata" dict column -> (N,) float tensor.
INPUT_KEYS: tuple[str, ...] = ("x", "recon", "mu", "logvar", "z1", "z2", "labels", "metadata")


class LossTerm(nn.Module):
    """Base class of a loss term: an ``nn.Module`` returning a scalar.

    Subclasses set, in ``__init__``, the two attributes below and implement ``forward`` with
    keyword arguments named after the input keys they read, so that :meth:`evaluate` (used by
    the :class:`~stratify.losses.Objective`) can call any term the same way.

    Attributes
    ----------
    requires : frozenset of str
        The input keys (a subset of :data:`INPUT_KEYS`) that ``forward`` needs.
    columns : tuple of str
        The metadata columns read from ``inputs["metadata"]`` (empty if none).
    """

    requires: frozenset[str] = frozenset()
    columns: tuple[str, ...] = ()

    def evaluate(self, inputs: Mapping[str, Any]) -> Tensor:
        """Compute the term from a mapping of named inputs.

        Parameters
        ----------
        inputs : mapping of str to Any
            Must hold a non-None value for every key in ``requires``; other keys are ignored.

        Returns
        -------
        Tensor, shape ()

        Raises
        ------
        KeyError
            If a required input is absent or None.
        """
        missing = [k for k in INPUT_KEYS if k in self.requires and inputs.get(k) is None]
        if missing:
            raise KeyError(
                f"{type(self).__name__} requires input(s) {missing}, which are missing or None; "
                f"got keys {sorted(k for k, v in inputs.items() if v is not None)}."
            )
        return self(**{k: inputs[k] for k in self.requires})

    def fit(self, metadata: Mapping[str, Any]) -> LossTerm:
        """Learn data-dependent state (e.g. quantile bin edges) from the full training metadata.

        Terms without such state return ``self`` unchanged.
        """
        return self

    def extra_repr(self) -> str:
        return ", ".join(
            f"{k}={v!r}"
            for k, v in vars(self).items()
            if not k.startswith("_") and k not in ("training", "requires", "columns")
        )
