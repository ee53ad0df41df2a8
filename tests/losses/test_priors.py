"""Metadata priors: bandwidths without guessing (sigma="auto") and priors that fail loudly."""

from __future__ import annotations

import statistics
import warnings

import numpy as np
import pytest
import torch

from stratify.losses import (
    ALONE_SHARE,
    POSITIVE_CHECK_BATCHES,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
    silverman_bandwidth,
)


def _silverman_by_hand(values):
    """0.9 min(sd, IQR / 1.349) n^(-1/5), with the quartiles by linear interpolation."""
    xs = sorted(v for v in values if v == v)
    n = len(xs)
    sd = statistics.stdev(xs)

    def quantile(q):
        pos = q * (n - 1)
        low = int(pos)
        frac = pos - low
        return xs[low] + frac * (xs[min(low + 1, n - 1)] - xs[low])

    iqr = (quantile(0.75) - quantile(0.25)) / 1.349
    return 0.9 * min(sd, iqr) * n**-0.2


def test_silverman_rule_matches_the_formula_and_ignores_nan():
    values = [61.0, 45.0, 70.0, 52.0, float("nan"), 66.0, 58.0, 90.0, 49.0]
    assert silverman_bandwidth(values) == pytest.approx(_silverman_by_hand(values), rel=1e-12)
    assert silverman_bandwidth([3.0, 3.0, 3.0]) == 1.0  # a constant column
    # more than half equal: the IQR is 0, the sd takes its place
    tied = [1.0, 1.0, 1.0, 1.0, 1.0, 5.0]
    assert silverman_bandwidth(tied) == pytest.approx(0.9 * statistics.stdev(tied) * 6**-0.2)


def test_auto_sigma_is_chosen_on_the_training_metadata_and_recorded():
    rng = np.random.default_rng(0)
    age, bmi = rng.normal(60, 10, 200), rng.normal(25, 4, 200)
    term = YAwareInfoNCE(["age", "bmi"], sigma="auto")
    with pytest.raises(RuntimeError, match=r"bandwidth='auto'\) has no bandwidth yet"):
        term(
            torch.randn(4, 3),
            torch.randn(4, 3),
            metadata={"age": torch.zeros(4), "bmi": torch.zeros(4)},
        )
    term.fit({"age": age, "bmi": bmi})
    assert term.sigma_ == pytest.approx((_silverman_by_hand(age), _silverman_by_hand(bmi)))
    assert YAwareInfoNCE("age", sigma=3.0).sigma_ == (3.0,)
    wsp = WSPContrastive(sigma="auto").fit(
        {"position": np.linspace(0, 1, 50), "labels": np.zeros(50)}
    )
    assert wsp.sigma_ == pytest.approx((_silverman_by_hand(np.linspace(0, 1, 50)),))


def test_auto_sigma_from_a_stratifier_spec():
    import pandas as pd

    from stratify import Stratifier

    rng = np.random.default_rng(0)
    age = rng.normal(60, 10, 16)
    model = Stratifier(
        2,
        latent_dim=4,
        width=4,
        epochs=1,
        batch_size=8,
        random_state=0,
        regularizers={"age": {"kind": "yaware", "columns": "age", "sigma": "auto"}},
    ).fit(
        rng.integers(0, 256, (16, 1, 28, 28), dtype=np.uint8), metadata=pd.DataFrame({"age": age})
    )
    assert model.objective_.terms["age"].sigma_ == pytest.approx((_silverman_by_hand(age),))


def _batches(term, n_batches, ages):
    for _ in range(n_batches):
        term(
            torch.randn(len(ages), 3),
            torch.randn(len(ages), 3),
            metadata={"age": torch.tensor(ages)},
        )


def test_a_kernel_too_narrow_for_its_metadata_warns_once_with_the_share():
    ages = [40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    term = YAwareInfoNCE("age", sigma=0.5).train()  # 10 years apart: weights ~exp(-200)
    with pytest.warns(
        UserWarning,
        match=r"YAwareInfoNCE: 100% of the anchors had no "
        r"positive beyond their own other view over the "
        rf"first {POSITIVE_CHECK_BATCHES} training batches",
    ):
        _batches(term, POSITIVE_CHECK_BATCHES, ages)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _batches(term, 5, ages)  # once only


def test_a_reasonable_kernel_and_evaluation_batches_do_not_warn():
    ages = [40.0, 42.0, 44.0, 46.0, 48.0, 50.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _batches(YAwareInfoNCE("age", sigma=5.0).train(), POSITIVE_CHECK_BATCHES, ages)
        # evaluation batches are not counted
        _batches(YAwareInfoNCE("age", sigma=0.5).eval(), POSITIVE_CHECK_BATCHES, ages)


def test_lone_anchor_share_against_a_hand_count():
    # labels 0, 0, 1, 2: SupCon anchors of classes 1 and 2 have no other positive; the two
    # class-0 anchors have the other class-0 sample (2 views, weight 2/3 of their positives)
    term = SupCon().train()
    for _ in range(POSITIVE_CHECK_BATCHES - 1):
        term(torch.randn(4, 3), torch.randn(4, 3), labels=torch.tensor([0.0, 0.0, 1.0, 2.0]))
    assert term._alone_shares == [0.5] * (POSITIVE_CHECK_BATCHES - 1)
    assert 1 / (1 + 2) < ALONE_SHARE  # a class-0 anchor's own view holds a third
