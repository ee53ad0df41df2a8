"""The Objective: named, weighted loss terms summed into one training loss.

The training loop builds a mapping of the batch's inputs (keys in :data:`INPUT_KEYS`), asks
the Objective which ones it needs (``requires``, ``metadata_columns``, ``uses_labels``) and
calls it; it gets back the weighted total to back-propagate and each term's unweighted value
to log.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

from torch import Tensor, nn

from stratify._validation import check_in_range
from stratify.losses._base import INPUT_KEYS, LossTerm
from stratify.losses._checks import DEFAULT_TEMPERATURE, check_choice, check_float
from stratify.losses.kernels import LABELS
from stratify.losses.reconstruction import BCEReconstruction, KLDivergence, MSEReconstruction
from stratify.losses.registry import make_term

__all__ = ["INPUT_KEYS", "Objective", "build_objective"]

TermSpec = LossTerm | tuple[LossTerm, float]


class Objective(nn.Module):
    """A weighted sum of named loss terms.

    Parameters
    ----------
    terms : mapping of str to LossTerm or (LossTerm, float)
        Term name (used in logs; no ``"."``) -> term, or (term, weight); a bare term has
        weight 1. Weights are floats >= 0. The order is kept for logging.

    Attributes
    ----------
    terms : nn.ModuleDict
        The terms by name.
    weights : dict of str to float
        Their full weights.
    warmup : dict of str to float
        Epochs of linear warm-up per term name (terms not named have none).
    progress : float
        Epochs of training done, set by the training loop through :meth:`set_progress`
        (``inf``, i.e. full weights, until then).

    Notes
    -----
    A term with ``warmup[name] = E > 0`` has weight ``weights[name] * min(1, progress / E)``
    (KL annealing, Bowman et al. 2016, when the term is the KL of a VAE). The training loop
    sets ``progress`` before every batch to ``(epoch - 1) + b / n_batches`` for batch ``b``
    of ``n_batches`` (epochs counted from 1), so the weight rises linearly over the first
    ``E`` epochs and is full from then on.

    Examples
    --------
    >>> objective = Objective({"reconstruction": BCEReconstruction(),
    ...                        "contrastive": (NTXent(temperature=0.2), 0.5)})
    >>> total, values = objective({"x": x, "recon": recon, "z1": z1, "z2": z2})  # doctest: +SKIP
    """

    def __init__(
        self, terms: Mapping[str, TermSpec], warmup: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        constraint = "a non-empty mapping of str (without '.') to LossTerm or (LossTerm, float)"
        if not isinstance(terms, Mapping):
            raise TypeError(
                f"The 'terms' parameter of {owner} must be {constraint}. Got {terms!r} instead."
            )
        if len(terms) == 0:
            raise ValueError(
                f"The 'terms' parameter of {owner} must be {constraint}. Got {terms!r} instead."
            )
        modules: dict[str, LossTerm] = {}
        weights: dict[str, float] = {}
        for name, spec in terms.items():
            if not isinstance(name, str) or not name or "." in name:
                raise ValueError(
                    f"The 'terms' parameter of {owner} must be {constraint}. "
                    f"Got the name {name!r} instead."
                )
            term, weight = spec if isinstance(spec, tuple) and len(spec) == 2 else (spec, 1.0)
            if not isinstance(term, LossTerm):
                raise TypeError(
                    f"The 'terms' parameter of {owner} must be {constraint}. "
                    f"Got {spec!r} for {name!r} instead."
                )
            modules[name] = term
            weights[name] = check_float(weight, f"terms[{name!r}] weight", owner, closed=True)
        self.terms = nn.ModuleDict(modules)
        self.weights = weights
        self.warmup: dict[str, float] = {}
        for name, epochs in dict(warmup or {}).items():
            if name not in modules:
                raise ValueError(
                    f"The 'warmup' parameter of {owner} must name terms among "
                    f"{sorted(modules)}. Got {name!r} instead."
                )
            self.warmup[name] = check_float(epochs, f"warmup[{name!r}]", owner, closed=True)
        self.progress = math.inf

    def set_progress(self, epochs: float) -> None:
        """Set the training progress in epochs (float), which scales warmed-up weights."""
        self.progress = float(epochs)

    def current_weights(self) -> dict[str, float]:
        """Each term's weight at the current ``progress`` (see the class notes)."""
        return {
            name: weight * min(1.0, self.progress / self.warmup[name])
            if self.warmup.get(name, 0.0) > 0
            else weight
            for name, weight in self.weights.items()
        }

    @property
    def _terms(self) -> dict[str, LossTerm]:
        """``terms`` as the loss terms they are (a ModuleDict types them as modules)."""
        return cast(dict[str, LossTerm], dict(self.terms.items()))

    @property
    def requires(self) -> frozenset[str]:
        """Union of the input keys the terms need (subset of :data:`INPUT_KEYS`)."""
        return frozenset().union(*(t.requires for t in self._terms.values()))

    @property
    def metadata_columns(self) -> tuple[str, ...]:
        """Union of the metadata columns the terms read, in order of first use."""
        return tuple(dict.fromkeys(c for t in self._terms.values() for c in t.columns))

    @property
    def uses_labels(self) -> bool:
        """Whether some term reads the ``labels`` input."""
        return "labels" in self.requires

    def fit(self, metadata: Mapping[str, Any]) -> Objective:
        """Fit data-dependent state of the terms (e.g. quantile bins) on the training metadata.

        Call once before training with the full training metadata (column -> array of shape
        (n_samples,); add ``"labels"`` if a term bins the labels). Harmless when no term has
        such state.
        """
        for term in self._terms.values():
            term.fit(metadata)
        return self

    def forward(self, inputs: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Evaluate every term and their weighted sum.

        Parameters
        ----------
        inputs : mapping of str to Any
            Keys from :data:`INPUT_KEYS` (see that constant for shapes); at least those in
            ``requires`` with non-None values, and ``inputs["metadata"]`` holding every column
            in ``metadata_columns``. Extra keys are ignored.

        Returns
        -------
        total : Tensor, shape ()
            ``sum_name weight[name] * value[name]`` with the weights of
            :meth:`current_weights`, differentiable.
        values : dict of str to Tensor of shape ()
            Each term's unweighted value, detached, in the order of ``terms``.

        Raises
        ------
        KeyError
            If a required input or metadata column is missing (the message names it).
        """
        for key in INPUT_KEYS:
            if key in self.requires and inputs.get(key) is None:
                users = [n for n, t in self._terms.items() if key in t.requires]
                raise KeyError(
                    f"Objective input {key!r} is missing or None; it is required by term(s) "
                    f"{users}. Got inputs {sorted(k for k, v in inputs.items() if v is not None)}."
                )
        if self.metadata_columns:
            metadata = inputs["metadata"]
            absent = [c for c in self.metadata_columns if c not in metadata]
            if absent:
                raise KeyError(
                    f"Objective metadata column(s) {absent} are missing from inputs['metadata']; "
                    f"got columns {sorted(metadata)}."
                )
        values: dict[str, Tensor] = {}
        total: Tensor | None = None
        weights = self.current_weights()
        for name, term in self._terms.items():
            value = term.evaluate(inputs)
            weighted = weights[name] * value
            total = weighted if total is None else total + weighted
            values[name] = value.detach()
        assert total is not None  # terms is non-empty (checked in __init__)
        return total, values

    def extra_repr(self) -> str:
        """The terms and weights shown in the module's repr."""
        return f"weights={self.weights}" + (f", warmup={self.warmup}" if self.warmup else "")


def build_objective(
    reconstruction: str | None = "bce",
    beta: float = 0.0,
    contrastive: str | LossTerm | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    contrastive_weight: float = 1.0,
    columns: str | Sequence[str] | None = None,
    sigma: float | Sequence[float] = 1.0,
    kernel: str = "gaussian",
    output: str = "logits",
    reduction: str = "mean",
    regularizers: Mapping[str, TermSpec] | None = None,
    elements_per_sample: int | None = None,
    kl_warmup: float = 0.0,
    free_bits: float = 0.0,
) -> Objective:
    """Build an Objective from simple specifications (for estimators and configs).

    Terms are named ``"reconstruction"``, ``"kl"`` and ``"contrastive"``, then the
    ``regularizers`` under their own names.

    Parameters
    ----------
    reconstruction : {"bce", "mse"} or None, default="bce"
        Reconstruction term on the decoder logits (:class:`BCEReconstruction` or
        :class:`MSEReconstruction`), weight 1; None for none.
    beta : float, default=0.0
        Weight of the KL in the negative beta-ELBO ``reconstruction + beta * KL`` (a VAE;
        ``beta=1`` is the ELBO); 0 adds no KL term (a plain AE). With ``reduction="mean"``
        the reconstruction is the per-element mean, i.e. the per-sample sum divided by
        ``elements_per_sample`` = P, so the :class:`KLDivergence` term gets the weight
        ``beta / P``: the two together are the beta-ELBO divided by the constant P (same
        optimum, and on the per-pixel scale of an AE's reconstruction, so a contrastive term
        of weight ~1 neither swamps it nor is swamped, in 2D and 3D alike). With
        ``reduction="sum"`` the weight is ``beta``.
    contrastive : {"simclr", "supcon", "yaware"}, LossTerm or None, default=None
        "simclr": :class:`NTXent`; "supcon": :class:`SupCon` on ``columns`` (default the
        ``labels`` input); "yaware": :class:`YAwareInfoNCE` on ``columns`` with ``sigma`` and
        ``kernel``; a LossTerm is used as given.
    temperature : float, default=0.2
        ``tau`` of a contrastive term built by name.
    contrastive_weight : float, default=1.0
        Weight of the contrastive term.
    columns : str or sequence of str, optional
        Metadata columns of "supcon" / "yaware".
    sigma, kernel :
        Bandwidth(s) and kernel name of "yaware".
    output : {"logits", "values"}, default="logits"
        For MSE reconstruction.
    reduction : {"mean", "sum"}, default="mean"
        Of the reconstruction term.
    regularizers : mapping of str to LossTerm or (LossTerm, float), optional
        Extra terms added as they are.
    elements_per_sample : int, optional
        P, the number of values of one sample (``prod(image_shape)``); required when there
        is a reconstruction with ``reduction="mean"`` and ``beta > 0``.
    kl_warmup : float, default=0.0
        Epochs over which the KL weight rises linearly from 0 to its full value (KL
        annealing; see :class:`Objective`); 0 for none.
    free_bits : float, default=0.0
        Free bits of the :class:`KLDivergence` term (nats per latent dimension).

    Returns
    -------
    Objective
    """
    owner = "build_objective"
    terms: dict[str, TermSpec] = {}
    if reconstruction is not None:
        check_choice(reconstruction, "reconstruction", owner, ("bce", "mse"))
        if reconstruction == "bce":
            terms["reconstruction"] = BCEReconstruction(reduction=reduction)
        else:
            terms["reconstruction"] = MSEReconstruction(output=output, reduction=reduction)
    beta = check_float(beta, "beta", owner, closed=True)
    kl_warmup = check_float(kl_warmup, "kl_warmup", owner, closed=True)
    if beta > 0:
        kl_weight = beta
        if reconstruction is not None and reduction == "mean":
            if elements_per_sample is None:
                raise ValueError(
                    "The 'elements_per_sample' parameter of build_objective must be the "
                    "number of values of one sample when beta > 0 and the reconstruction is "
                    "a per-element mean (so that beta=1 is the ELBO). Got None instead."
                )
            pixels = check_in_range(
                elements_per_sample, "elements_per_sample", owner, kind=int, low=1
            )
            kl_weight = beta / pixels
        terms["kl"] = (KLDivergence(free_bits=free_bits), kl_weight)
    if contrastive is not None:
        weight = check_float(contrastive_weight, "contrastive_weight", owner, closed=True)
        term: LossTerm
        if isinstance(contrastive, LossTerm):
            term = contrastive
        else:
            check_choice(contrastive, "contrastive", owner, ("simclr", "supcon", "yaware"))
            options: dict[str, Any] = {"temperature": temperature}
            if contrastive == "supcon":
                options["column"] = columns if columns is not None else LABELS
            elif contrastive == "yaware":
                if columns is None:
                    raise ValueError(
                        "The 'columns' parameter of build_objective must name the metadata "
                        "column(s) of the y-Aware kernel when contrastive='yaware'. Got None "
                        "instead."
                    )
                options.update(columns=columns, sigma=sigma, kernel=kernel)
            term = make_term(contrastive, options, owner)
        terms["contrastive"] = (term, weight)
    for name, spec in (regularizers or {}).items():
        if name in terms:
            raise ValueError(
                f"The 'regularizers' parameter of build_objective must not reuse the names "
                f"{sorted(terms)}. Got {name!r} instead."
            )
        terms[name] = spec
    if not terms:
        raise ValueError(
            "build_objective got no term: set reconstruction, beta > 0, contrastive or "
            "regularizers."
        )
    return Objective(terms, warmup={"kl": kl_warmup} if "kl" in terms and kl_warmup else None)
