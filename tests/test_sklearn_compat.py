"""scikit-learn's estimator checks on the Stratifier and the StrataClusterer.

The Stratifier runs on the checks' flattened arrays as feature vectors (an MLP encoder and
decoder, the same training loop and clustering as for images), in a tiny configuration: one
epoch, latent size 4. The only expected failures are the checks that set ``n_clusters=1``:
the Stratifier refuses a single stratum (that is no stratification) before any training,
with a message naming ``n_clusters``; the StrataClusterer passes every check.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from stratify import StrataClusterer, Stratifier, make_cohort

TINY = {"latent_dim": 4, "width": 2, "epochs": 1, "batch_size": 16, "random_state": 0}


_ONE_STRATUM = "sets n_clusters=1, which the Stratifier refuses (a single stratum)"
_SETS_ONE_CLUSTER = (
    "check_dont_overwrite_parameters",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_fit2d_predict1d",
)


def _expected_failures(estimator):
    if isinstance(estimator, Stratifier):
        return dict.fromkeys(_SETS_ONE_CLUSTER, _ONE_STRATUM)
    return {}


@parametrize_with_checks(
    [Stratifier(2, **TINY), StrataClusterer(n_clusters=2, random_state=0)],
    expected_failed_checks=_expected_failures,
)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # e.g. spectral graph connectivity
        check(estimator)


def test_clone_and_refit_on_images():
    images = make_cohort(48, random_state=0).images
    est = Stratifier(2, **TINY).fit(images)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "labels_")
    np.testing.assert_array_equal(copy.fit(images).labels_, est.labels_)


@pytest.mark.parametrize("name", ["n_clusters", "regularizers", "train_config"])
def test_parameters_are_stored_unchanged(name):
    value = {
        "n_clusters": "auto",
        "regularizers": {"a": {"kind": "yaware", "columns": "a"}},
        "train_config": {"weight_decay": 0.1},
    }[name]
    assert Stratifier(**{name: value}).get_params()[name] is value


def test_one_stratum_is_refused_before_training():
    images = make_cohort(48, random_state=0).images
    with pytest.raises(
        ValueError,
        match=r"'n_clusters' parameter of Stratifier .*\[2, inf\) or 'auto'\. "
        r"Got 1 instead",
    ):
        Stratifier(1, **TINY).fit(images)
