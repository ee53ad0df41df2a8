"""scikit-learn's estimator checks on the Stratifier and the StrataClusterer.

The Stratifier runs on the checks' flattened arrays as feature vectors (an MLP encoder and
decoder, the same training loop and clustering as for images), in a tiny configuration: one
epoch, latent size 4. No check is expected to fail.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from stratify import StrataClusterer, Stratifier, make_cohort

TINY = {"latent_dim": 4, "width": 2, "epochs": 1, "batch_size": 16, "random_state": 0}


@parametrize_with_checks([Stratifier(2, **TINY), StrataClusterer(n_clusters=2, random_state=0)])
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
    value = {"n_clusters": "auto", "regularizers": {"a": {"kind": "yaware", "columns": "a"}},
             "train_config": {"weight_decay": 0.1}}[name]
    assert Stratifier(**{name: value}).get_params()[name] is value
