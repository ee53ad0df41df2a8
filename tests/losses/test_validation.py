"""One test per validation rule (constructor arguments and forward inputs)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from stratify.losses import (
    ELBO,
    BCEReconstruction,
    ClinicalContrastive,
    EqualityKernel,
    GaussianKernel,
    KernelContrastive,
    KLDivergence,
    MSEReconstruction,
    NTXent,
    Objective,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
    build_objective,
    make_kernel,
)


def _m(text):
    return re.escape(text)


# ---------------------------------------------------------------- constructor arguments


@pytest.mark.parametrize("value", [0, -0.5, float("inf"), float("nan")])
def test_temperature_must_be_positive(value):
    msg = (
        "The 'temperature' parameter of KernelContrastive must be a float in the range "
        f"(0, inf). Got {value!r} instead."
    )
    with pytest.raises(ValueError, match=_m(msg)):
        KernelContrastive(temperature=value)


def test_temperature_error_names_the_subclass():
    with pytest.raises(ValueError, match=_m("parameter of NTXent must be a float")):
        NTXent(temperature=0)


@pytest.mark.parametrize("value", ["0.1", None, True])
def test_temperature_must_be_a_float(value):
    with pytest.raises(TypeError, match=_m(f"Got {value!r} instead.")):
        SupCon(temperature=value)


def test_kernel_must_be_a_kernel_instance():
    with pytest.raises(TypeError, match="'kernel' parameter of KernelContrastive must be a Kernel"):
        KernelContrastive(kernel="gaussian")


def test_sigma_must_be_positive():
    with pytest.raises(
        ValueError, match=_m("The 'sigma' parameter of YAwareInfoNCE must be a float in the range")
    ):
        YAwareInfoNCE("age", sigma=0.0)


def test_sigma_needs_one_value_per_column():
    with pytest.raises(ValueError, match=_m("or a sequence of 2 such floats. Got [1.0] instead.")):
        YAwareInfoNCE(["age", "bmi"], sigma=[1.0])


def test_sigma_must_be_numeric():
    with pytest.raises(TypeError, match="'sigma' parameter of YAwareInfoNCE"):
        YAwareInfoNCE("age", sigma="wide")


def test_wsp_sigma_must_be_positive():
    with pytest.raises(ValueError, match=_m("The 'sigma' parameter of WSPContrastive")):
        WSPContrastive(sigma=-1.0)


@pytest.mark.parametrize("factory", [YAwareInfoNCE, WSPContrastive])
def test_kernel_name_must_be_known(factory):
    args = ("age",) if factory is YAwareInfoNCE else ()
    msg = (
        f"The 'kernel' parameter of {factory.__name__} must be a str among "
        "{'epanechnikov', 'gaussian', 'laplacian'}. Got 'cosine' instead."
    )
    with pytest.raises(ValueError, match=_m(msg)):
        factory(*args, kernel="cosine")


def test_kernel_name_must_be_a_str():
    with pytest.raises(TypeError, match="'kernel' parameter of YAwareInfoNCE"):
        YAwareInfoNCE("age", kernel=GaussianKernel("age"))


def test_make_kernel_name_must_be_known():
    with pytest.raises(ValueError, match="'kernel' parameter of make_kernel"):
        make_kernel("rbf", "age")


def test_columns_must_be_non_empty_and_distinct():
    with pytest.raises(ValueError, match="'columns' parameter of YAwareInfoNCE"):
        YAwareInfoNCE([])
    with pytest.raises(ValueError, match="'columns' parameter of GaussianKernel"):
        GaussianKernel(["age", "age"])


def test_columns_must_be_str():
    with pytest.raises(TypeError, match="'columns' parameter of GaussianKernel"):
        GaussianKernel(3)
    with pytest.raises(TypeError, match="'label_column' and 'position_column' parameters"):
        WSPContrastive(label_column=0)


def test_bandwidth_must_be_positive():
    with pytest.raises(ValueError, match="'bandwidth' parameter of GaussianKernel"):
        GaussianKernel("age", bandwidth=0)


@pytest.mark.parametrize("bins", [1, [3.0, 2.0], [], [1.0, float("inf")]])
def test_bins_must_be_valid(bins):
    with pytest.raises(ValueError, match="'bins' parameter of EqualityKernel must be None, an int"):
        EqualityKernel("age", bins=bins)


def test_bins_must_be_int_or_sequence():
    with pytest.raises(TypeError, match="'bins' parameter of EqualityKernel"):
        EqualityKernel("age", bins=2.5)


def test_bins_apply_to_one_column():
    with pytest.raises(ValueError, match="applies to one column"):
        EqualityKernel(["age", "bmi"], bins=3)


def test_clinical_weights_must_be_non_negative():
    msg = "The \"columns['age']\" parameter of ClinicalContrastive must be a float in the range [0"
    with pytest.raises(ValueError, match=_m(msg)):
        ClinicalContrastive({"site": 1.0, "age": -0.1})


def test_clinical_bins_must_name_known_columns():
    with pytest.raises(ValueError, match=_m("must only name columns in 'columns' ['site']")):
        ClinicalContrastive({"site": 1.0}, bins={"age": [50.0]})


@pytest.mark.parametrize(
    ("factory", "name", "value"),
    [
        (lambda v: MSEReconstruction(output=v), "output", "probs"),
        (lambda v: MSEReconstruction(reduction=v), "reduction", "none"),
        (lambda v: BCEReconstruction(reduction=v), "reduction", "batchmean"),
        (lambda v: ELBO(reconstruction=v), "reconstruction", "l1"),
    ],
)
def test_reconstruction_options_must_be_known(factory, name, value):
    with pytest.raises(ValueError, match=_m(f"The '{name}' parameter of")):
        factory(value)


def test_beta_must_be_non_negative():
    with pytest.raises(ValueError, match=_m("The 'beta' parameter of ELBO must be a float in the")):
        ELBO(beta=-1.0)
    with pytest.raises(ValueError, match=_m("The 'beta' parameter of build_objective")):
        build_objective(beta=-1.0)


def test_objective_weights_must_be_non_negative():
    with pytest.raises(ValueError, match=_m("\"terms['nce'] weight\" parameter of Objective")):
        Objective({"nce": (NTXent(), -1.0)})


def test_objective_terms_must_be_loss_terms():
    with pytest.raises(TypeError, match="'terms' parameter of Objective"):
        Objective({"mse": torch.nn.MSELoss()})


def test_objective_needs_terms_with_plain_names():
    with pytest.raises(ValueError, match="'terms' parameter of Objective"):
        Objective({})
    with pytest.raises(ValueError, match=_m("Got the name 'a.b' instead")):
        Objective({"a.b": NTXent()})


def test_build_objective_options():
    with pytest.raises(ValueError, match="'contrastive' parameter of build_objective"):
        build_objective(contrastive="byol")
    with pytest.raises(ValueError, match="'columns' parameter of build_objective"):
        build_objective(contrastive="yaware")
    with pytest.raises(ValueError, match="got no term"):
        build_objective(reconstruction=None)
    with pytest.raises(ValueError, match="must not reuse the names"):
        build_objective(regularizers={"reconstruction": KLDivergence()})


# ---------------------------------------------------------------- forward inputs


def test_views_must_have_the_same_shape():
    msg = "Expected z1 and z2 to have the same shape (N, P), got (4, 8) and (5, 8)."
    with pytest.raises(ValueError, match=_m(msg)):
        NTXent()(torch.randn(4, 8), torch.randn(5, 8))


def test_views_must_be_2d_tensors():
    with pytest.raises(
        ValueError, match=_m("Expected z1 to have shape (N, P) with N >= 1, got (4,)")
    ):
        NTXent()(torch.randn(4), torch.randn(4))
    with pytest.raises(TypeError, match=_m("Expected z2 to be a torch.Tensor, got ndarray")):
        NTXent()(torch.randn(4, 2), np.zeros((4, 2)))


def test_metadata_length_must_match_the_batch():
    msg = "Expected metadata column 'age' to have 4 values (one per sample, N = len(z1)), got"
    with pytest.raises(ValueError, match=_m(msg)):
        YAwareInfoNCE("age")(torch.randn(4, 3), torch.randn(4, 3), {"age": torch.rand(5)})


def test_labels_length_must_match_the_batch():
    with pytest.raises(ValueError, match=_m("Expected metadata column 'labels' to have 4 values")):
        SupCon()(torch.randn(4, 3), torch.randn(4, 3), labels=torch.zeros(3))


def test_metadata_column_must_be_present():
    with pytest.raises(KeyError, match="'age'"):
        YAwareInfoNCE("age")(torch.randn(4, 3), torch.randn(4, 3), {"bmi": torch.rand(4)})


def test_metadata_and_labels_must_be_given():
    with pytest.raises(ValueError, match=_m("Expected metadata with column(s) ['age']")):
        YAwareInfoNCE("age")(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match=_m("Expected labels of shape (4,) for SupCon, got None")):
        SupCon()(torch.randn(4, 3), torch.randn(4, 3))


def test_quantile_bins_need_fit():
    term = SupCon("age", bins=4)
    with pytest.raises(RuntimeError, match="call fit\\(metadata\\)"):
        term(torch.randn(4, 3), torch.randn(4, 3), {"age": torch.rand(4)})


def test_reconstruction_shapes_must_match():
    msg = "Expected recon and x to have the same shape (N, C, *spatial), got (2, 1, 4, 4) and"
    with pytest.raises(ValueError, match=_m(msg)):
        BCEReconstruction()(torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 5))


def test_posterior_shapes_must_match():
    with pytest.raises(
        ValueError, match=_m("Expected mu and logvar to have the same shape (N, D)")
    ):
        KLDivergence()(torch.randn(2, 3), torch.randn(2, 4))
