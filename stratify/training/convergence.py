r"""A label-free stopping rule: stop pretraining once the latent neighbourhoods stop moving.

A fixed probe of training images (at most :data:`PROBE_SIZE`, drawn once from the fit's
seed) is embedded at every check, a fraction ``check_every`` of the epoch budget apart. Each
probe image's :data:`PROBE_NEIGHBORS` nearest other probe images by cosine similarity of
the latent means form its neighbour set; the **agreement** of two checks is the mean over
the probe of the share of neighbours the two sets have in common,

.. math:: a_t = \frac{1}{P} \sum_{i=1}^{P} \frac{|N_t(i) \cap N_{t-1}(i)|}{k},

1 when no neighbourhood changed. The fit stops at the first check with
``a_t >= stop_agreement`` (the history's ``knn_agreement`` column holds every ``a_t``; the
first check has none). The checks embed in eval mode under ``no_grad`` and draw nothing from
the fit's random streams, so a stopped fit is exactly the first epochs of the full one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stratify.training.batches import encode_batches

__all__ = [
    "PROBE_NEIGHBORS",
    "PROBE_SIZE",
    "NeighbourProbe",
    "check_epochs",
    "neighbour_agreement",
    "neighbour_sets",
]

#: Images in the probe (all of them for a smaller training set).
PROBE_SIZE = 1000
#: Neighbours per probe image.
PROBE_NEIGHBORS = 10


def check_epochs(epochs: int, check_every: float) -> list[int]:
    """The epochs (from 1) after which a check runs: the first epoch at or past each
    multiple of ``check_every * epochs``, the last epoch included.

    Parameters
    ----------
    epochs : int
        The epoch budget.
    check_every : float
        Fraction of the budget between two checks, in (0, 1].

    Returns
    -------
    list of int
        Increasing, unique (every epoch when the budget is shorter than the checks).
    """
    n_checks = max(1, round(1 / check_every))
    return sorted({max(1, -(-j * epochs // n_checks)) for j in range(1, n_checks + 1)})


def neighbour_sets(latents: Tensor, k: int) -> Tensor:
    """Indices of each row's ``k`` nearest other rows by cosine similarity.

    Parameters
    ----------
    latents : Tensor of shape (P, D)
    k : int
        At most P - 1.

    Returns
    -------
    Tensor of int64, shape (P, k)
    """
    if not 1 <= k < latents.shape[0]:
        raise ValueError(f"Expected 1 <= k < {latents.shape[0]} (the probe's rows), got k={k}.")
    unit = torch.nn.functional.normalize(latents.double(), dim=1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(-torch.inf)
    return similarity.topk(k, dim=1).indices


def neighbour_agreement(before: Tensor, after: Tensor) -> float:
    """Mean share of common neighbours of two neighbour-set tables of shape (P, k)."""
    if before.shape != after.shape:
        raise ValueError(
            f"Expected two neighbour tables of one shape, got {tuple(before.shape)} and "
            f"{tuple(after.shape)}."
        )
    common = (before.unsqueeze(2) == after.unsqueeze(1)).any(dim=2).sum(dim=1)
    return float(common.double().mean() / before.shape[1])


class NeighbourProbe:
    """The probe of one fit: which images, and the neighbour sets of the last check.

    Parameters
    ----------
    images : Tensor of shape (N_all, C, *S)
        The images (uint8 or float in [0, 1]), on the CPU.
    rows : Tensor of int64, shape (N,)
        The training rows of ``images`` the probe is drawn from.
    seed : int
        Seeds the draw of the probe (a local numpy Generator).
    size, k : int
        Probe images (at most N) and neighbours per image (at most the probe's size - 1).
    """

    def __init__(
        self,
        images: Tensor,
        rows: Tensor,
        seed: int,
        size: int = PROBE_SIZE,
        k: int = PROBE_NEIGHBORS,
    ) -> None:
        n = int(rows.shape[0])
        if n < 2:
            raise ValueError(
                f"Expected at least 2 training images for the stopping rule's probe, got {n}."
            )
        drawn = np.random.default_rng([seed, 2027]).choice(n, size=min(size, n), replace=False)
        self.images = images.index_select(0, rows[torch.from_numpy(np.sort(drawn))])
        self.k = min(k, self.images.shape[0] - 1)
        self.previous: Tensor | None = None

    def agreement(self, model: Any, batch_size: int, device: torch.device) -> float:
        """Embed the probe, compare its neighbour sets with the last check's (NaN at the first
        check) and keep them for the next.
        """
        current = neighbour_sets(encode_batches(model, self.images, batch_size, device)[0], self.k)
        value = math.nan if self.previous is None else neighbour_agreement(self.previous, current)
        self.previous = current
        return value

    def state_dict(self) -> dict[str, Any]:
        """The last check's neighbour sets (for a checkpoint)."""
        return {"previous": self.previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave."""
        self.previous = state.get("previous")
