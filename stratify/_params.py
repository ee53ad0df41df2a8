"""The Stratifier's parameters: one declarative constraint table and the rules between them.

:data:`STRATIFIER_CONSTRAINTS` is checked by :func:`stratify._constraints.validate_params`;
:func:`check_parameter_rules` then checks what ties parameters together. Neither imports
torch or scikit-learn (torch classes are recognised only once torch is loaded), so the
command line can refuse a bad value before any heavy import or long work.
"""

from __future__ import annotations

import sys
from typing import Any

from stratify._constraints import (
    BOOL,
    NONE,
    Constraint,
    Interval,
    Keys,
    Options,
    Satisfies,
    is_integer,
    is_mapping,
    module_instance,
)
from stratify.cluster.backends import BACKENDS

__all__ = ["STRATIFIER_CONSTRAINTS", "check_parameter_rules"]


def _is_random_state(value: Any) -> bool:
    """An int seed (not a bool) or a numpy ``RandomState``."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.random.RandomState):
        return True
    return is_integer(value) and 0 <= value < 2**32


def _is_shape(value: Any) -> bool:
    """``(C, H, W)`` or ``(C, D, H, W)`` of positive ints."""
    return (
        isinstance(value, (tuple, list))
        and len(value) in (3, 4)
        and all(is_integer(v) and v >= 1 for v in value)
    )


def _is_augmentation(value: Any) -> bool:
    """An :class:`~stratify.data.augment.AugmentParams` or a callable."""
    return callable(value) or module_instance("stratify.data.augment.AugmentParams").accepts(value)


def _is_clusterer(value: Any) -> bool:
    """A clusterer object (not a name) with a ``fit`` method."""
    return not isinstance(value, str) and hasattr(value, "fit")


_POSITIVE_INT: list[Constraint] = [Interval(int, 1, closed="left")]
_NON_NEGATIVE: list[Constraint] = [Interval(float, 0, closed="left")]
_POSITIVE: list[Constraint] = [Interval(float, 0, closed="neither")]

#: Parameter -> the constraints a valid value meets at least one of.
STRATIFIER_CONSTRAINTS: dict[str, list[Constraint]] = {
    "n_clusters": [Interval(int, 2, closed="left"), Options({"auto"})],
    "model": [Options({"ae", "vae"})],
    "latent_dim": _POSITIVE_INT,
    "width": _POSITIVE_INT,
    "depth": [*_POSITIVE_INT, NONE],
    "encoder": [module_instance("torch.nn.Module"), NONE],
    "decoder": [module_instance("torch.nn.Module"), NONE],
    "reconstruction": [Options({"bce", "mse"}), NONE],
    "beta": _NON_NEGATIVE,
    "kl_warmup": _NON_NEGATIVE,
    "free_bits": _NON_NEGATIVE,
    "contrastive": [Options({"simclr", "supcon"}), NONE],
    "temperature": _POSITIVE,
    "contrastive_weight": _NON_NEGATIVE,
    "regularizers": [Satisfies(is_mapping, "a mapping of names to terms", bad=([1],)), NONE],
    "augmentation": [
        Satisfies(_is_augmentation, "an AugmentParams or a callable", bad=(1,)),
        NONE,
    ],
    "clusterer": [
        Keys(BACKENDS),
        Satisfies(_is_clusterer, "a clusterer with a fit method", bad=(object(),)),
    ],
    "manifold": [Options({"umap", "auto"}), NONE],
    "manifold_dim": _POSITIVE_INT,
    "self_training_epochs": [Interval(int, 0, closed="left")],
    "self_training_weight": _POSITIVE,
    "normalize": [BOOL],
    "whiten": [Options({True, False, "auto"})],
    "epochs": [*_POSITIVE_INT, Options({"auto"})],
    "stop_agreement": [Interval(float, 0, 1, closed="right"), NONE],
    "batch_size": [*_POSITIVE_INT, Options({"auto"})],
    "lr": _POSITIVE,
    "train_config": [
        Satisfies(is_mapping, "a mapping of TrainConfig fields", bad=([1],)),
        NONE,
    ],
    "resume": [BOOL],
    "image_shape": [
        Satisfies(
            _is_shape,
            "a tuple (C, H, W) or (C, D, H, W) of positive ints",
            bad=((1, 28), (1, 0, 28)),
        ),
        NONE,
    ],
    "device": [Satisfies(lambda v: isinstance(v, str), "a str", bad=(0,))],
    "random_state": [
        Satisfies(_is_random_state, "an int, a numpy RandomState", bad=("seed", 1.5)),
        NONE,
    ],
    "verbose": [BOOL],
}


def check_parameter_rules(params: Any) -> None:
    """The rules that tie the Stratifier's parameters together.

    Parameters
    ----------
    params : object
        Holds the parameters as attributes (the estimator).

    Raises
    ------
    ValueError
        For the first rule broken, naming what was expected and what was got.
    """
    if params.resume and not (params.train_config or {}).get("checkpoint_dir"):
        raise ValueError(
            "Expected train_config={'checkpoint_dir': ...} naming the checkpoint folder "
            "with resume=True, got no checkpoint_dir."
        )
    if params.decoder is not None and params.encoder is None:
        raise ValueError(
            "Expected decoder only together with a custom encoder, got decoder without encoder."
        )
    if params.encoder is not None and params.decoder is None and params.reconstruction is not None:
        raise ValueError(
            "Expected reconstruction=None with a custom encoder and no decoder, got "
            f"reconstruction={params.reconstruction!r}. Pass decoder= to reconstruct."
        )
    if params.reconstruction is None and params.contrastive is None and not params.regularizers:
        raise ValueError(
            "Expected at least one loss term, got reconstruction=None, contrastive=None "
            "and no regularizers."
        )
