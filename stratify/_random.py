"""Seeds from ``random_state``: the two rules the package uses, written once.

* :func:`draw_seeds` is scikit-learn's rule for an estimator's ``random_state`` (None, an
  int or a ``RandomState``): seeds are *drawn* from ``check_random_state(random_state)``, so
  one int gives a fixed, well-mixed stream of seeds (the Stratifier derives the seeds of its
  network, its training and its clusterer this way; the clusterer and the manifold derive
  their own from the seed they are given).
* :func:`seed_from` is the training loop's rule: an int *is* the seed (so ``train(...,
  random_state=7)`` can be reproduced by hand), a numpy ``Generator`` or ``RandomState`` gives
  one draw, None fresh entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_random_state

__all__ = ["SEED_BOUND", "draw_seeds", "member_seeds", "seed_from"]

#: Seeds are ints in [0, SEED_BOUND): the int32 range every library here accepts.
SEED_BOUND = 2**31 - 1


def draw_seeds(random_state: Any, n: int | None = None) -> Any:
    """Draw one seed (``n=None``) or a list of ``n`` seeds from ``random_state``.

    Parameters
    ----------
    random_state : None, int or numpy.random.RandomState
        As in scikit-learn (:func:`sklearn.utils.check_random_state`).
    n : int or None, default=None

    Returns
    -------
    int or list of int
        In ``[0, SEED_BOUND)``; for an int ``random_state`` always the same.
    """
    rng = check_random_state(random_state)
    if n is None:
        return int(rng.randint(SEED_BOUND))
    return [int(s) for s in rng.randint(SEED_BOUND, size=n)]


def seed_from(random_state: Any) -> int:
    """An int seed from None, an int, a numpy Generator or a numpy RandomState."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(SEED_BOUND))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"Expected random_state >= 0, got {random_state}.")
        return int(random_state)
    raise TypeError(
        "Expected random_state to be None, an int, a numpy Generator or RandomState, got "
        f"{type(random_state).__name__}."
    )


def member_seeds(seed: int, n: int) -> list[int]:
    """``n`` seeds for the networks of an ensemble: ``seed`` itself first (so an ensemble of
    one network is the single-network fit), then seeds derived from ``(seed, j)`` by numpy's
    ``SeedSequence`` (independent streams, the same for the same ``seed``).

    Returns
    -------
    list of int
        In ``[0, SEED_BOUND)``.
    """
    derived = [
        int(np.random.SeedSequence([int(seed), j]).generate_state(1, np.uint64)[0] % SEED_BOUND)
        for j in range(1, n)
    ]
    return [int(seed), *derived]
