"""The Stratifier's parameters: one declarative constraint table and the rules between them.

:data:`STRATIFIER_CONSTRAINTS` is checked by :func:`stratify._constraints.validate_params`;
:func:`check_parameter_rules` then checks what ties parameters together. Neither imports
torch or scikit-learn (torch classes are recognised only once torch is loaded), so the
command line can refuse a bad value before any heavy import or long work.
"""

from __future__ import annotations

import inspect
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
from stratify.cluster.backends import BACKENDS, REMOVED_BACKENDS

__all__ = [
    "REMOVED_PARAMETERS",
    "STRATIFIER_CONSTRAINTS",
    "NamesRemovedParameters",
    "check_parameter_rules",
    "check_removed",
    "migrate_params",
    "removed_message",
]

_CLUSTERING = "the clustering is on the L2-normalised latents, unwhitened"
#: Parameters of earlier versions -> what became of them (the CHANGELOG says why).
REMOVED_PARAMETERS: dict[str, str] = {
    "whiten": f"removed in stratify 0.2 ({_CLUSTERING}); "
    "StrataClusterer(whiten=...) keeps it for research",
    "normalize": f"removed in stratify 0.2 ({_CLUSTERING}); "
    "StrataClusterer(normalize=...) keeps it for research",
    "manifold_dim": "removed in stratify 0.2: manifold='umap' maps to 10 dimensions; "
    "StrataClusterer(manifold_dim=...) keeps it for research",
    "self_training_epochs": "removed in stratify 0.2 with the IDEC self-training stage, "
    "which was never chosen on validation data",
    "self_training_weight": "removed in stratify 0.2 with the IDEC self-training stage, "
    "which was never chosen on validation data",
    "free_bits": "removed in stratify 0.2 (never chosen on validation data); "
    "stratify.losses.build_objective(free_bits=...) keeps it",
    "stop_agreement": "moved in stratify 0.2: use train_config={'stop_agreement': ...}",
    "resume": "moved in stratify 0.2: use train_config={'resume': True} beside 'checkpoint_dir'",
}


def removed_message(name: str) -> str:
    """The one-line answer for a parameter of an earlier version."""
    return f"The {name!r} parameter of Stratifier was {REMOVED_PARAMETERS[name]}."


def migrate_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a model saved by an earlier version, as this version takes them.

    A removed parameter is dropped: a saved clustering keeps its own settings (whitening,
    normalisation, manifold dimension and choice) in its state, so the loaded model
    predicts what it did; a moved one (``stop_agreement``) goes into ``train_config``.
    """
    params = dict(params)
    stop = params.pop("stop_agreement", None)
    if stop is not None:
        params["train_config"] = {**dict(params.get("train_config") or {}), "stop_agreement": stop}
    for name in REMOVED_PARAMETERS:
        params.pop(name, None)
    if params.get("manifold") == "auto":  # the fitted clustering's state holds the choice
        params["manifold"] = None
    return params


def check_removed(given: dict[str, Any]) -> None:
    """Refuse parameters of an earlier version, naming what became of them.

    Raises
    ------
    TypeError
        For the first such name: its removal or move, and its successor.
    """
    for name in sorted(given):
        if name in REMOVED_PARAMETERS:
            raise TypeError(removed_message(name))


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
    "contrastive": [Options({"simclr", "supcon"}), NONE],
    "temperature": _POSITIVE,
    "contrastive_weight": _NON_NEGATIVE,
    "regularizers": [Satisfies(is_mapping, "a mapping of names to terms", bad=([1],)), NONE],
    "augmentation": [
        Satisfies(_is_augmentation, "an AugmentParams or a callable", bad=(1,)),
        NONE,
    ],
    "clusterer": [
        Keys(BACKENDS, removed=REMOVED_BACKENDS),
        Satisfies(_is_clusterer, "a clusterer with a fit method", bad=(object(),)),
    ],
    "manifold": [Options({"umap"}), NONE],
    "epochs": [*_POSITIVE_INT, Options({"auto"})],
    "batch_size": [*_POSITIVE_INT, Options({"auto"})],
    "lr": _POSITIVE,
    "train_config": [
        Satisfies(is_mapping, "a mapping of TrainConfig fields", bad=([1],)),
        NONE,
    ],
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


class NamesRemovedParameters:
    """Mixed into the Stratifier (left of ``BaseEstimator``): a parameter of an earlier
    version, given to the constructor or to ``set_params``, is refused with a TypeError that
    names its successor (:data:`REMOVED_PARAMETERS`) instead of Python's generic one.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        """Refuse a removed parameter by name, before ``__init__`` runs."""
        check_removed({k: v for k, v in kwargs.items() if k in REMOVED_PARAMETERS})
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give the class ``__init__``'s signature (``__new__`` takes any keyword), which
        tools such as scikit-learn's estimator checks read.
        """
        super().__init_subclass__(**kwargs)
        init = inspect.signature(cls.__init__)
        cls.__signature__ = init.replace(  # type: ignore[attr-defined]
            parameters=list(init.parameters.values())[1:]
        )

    def set_params(self, **params: Any) -> Any:
        """As scikit-learn's; a removed parameter is named with its successor."""
        check_removed({k: v for k, v in params.items() if k in REMOVED_PARAMETERS})
        return super().set_params(**params)  # type: ignore[misc]
