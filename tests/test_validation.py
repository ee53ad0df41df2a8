"""The shared validation helpers: the error templates users see everywhere."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from stratify._random import draw_seeds, seed_from
from stratify._validation import (
    check_array_images,
    check_in_range,
    check_metadata,
    check_option,
    require_columns,
)


def test_in_range_message_follows_the_scikit_learn_template():
    with pytest.raises(ValueError) as excinfo:
        check_in_range(0, "temperature", "KernelContrastive", low=0, closed="neither")
    assert str(excinfo.value) == (
        "The 'temperature' parameter of KernelContrastive must be a float in the range "
        "(0, inf). Got 0 instead."
    )


@pytest.mark.parametrize(
    ("value", "kwargs", "error"),
    [
        (True, {"kind": int}, TypeError),
        (1.5, {"kind": int}, TypeError),
        ("1", {}, TypeError),
        (float("nan"), {}, ValueError),
        (1.0, {"low": 1.0, "closed": "right"}, ValueError),
        (2.0, {"high": 2.0, "closed": "left"}, ValueError),
        (3, {"high": 2}, ValueError),
    ],
)
def test_in_range_rejects(value, kwargs, error):
    with pytest.raises(error, match="Got"):
        check_in_range(value, "p", "f", **kwargs)


def test_in_range_accepts_bounds_and_converts():
    assert check_in_range(np.int64(3), "p", "f", kind=int, low=3, high=3) == 3
    assert isinstance(check_in_range(2, "p", "f", low=0), float)


def test_option_lists_the_choices():
    with pytest.raises(ValueError, match=r"must be a str among \{'a', 'b'\}\. Got 'c' instead"):
        check_option("c", "p", "f", {"b", "a"})
    assert check_option("a", "p", "f", {"a"}) == "a"


def test_images_accept_arrays_and_tensors_without_copy():
    array = np.zeros((2, 1, 4, 4), np.uint8)
    assert check_array_images(array) is array
    assert check_array_images(torch.zeros(2, 1, 2, 2, 2)).shape == (2, 1, 2, 2, 2)


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        ("images", TypeError, r"Expected X to be a numpy array or torch tensor, got str"),
        (np.zeros((2, 4, 4), object), TypeError, r"got dtype object"),
        (np.zeros((2, 4)), ValueError, r"Expected X with 4 or 5 dimensions .*\(2, 4\)"),
        (np.zeros((0, 1, 4, 4)), ValueError, r"non-empty X"),
        (np.array([[[[np.inf, 0.0]]]]), ValueError, r"got 1 NaN or inf values"),
    ],
)
def test_images_reject(X, error, match):
    with pytest.raises(error, match=match):
        check_array_images(X)


def test_metadata_rows_must_match():
    frame = pd.DataFrame({"age": [1.0, 2.0]})
    assert check_metadata(frame, 2) is frame
    with pytest.raises(ValueError, match=r"one row per sample \(3 rows\), got 2 rows"):
        check_metadata(frame, 3)
    with pytest.raises(TypeError, match="got dict"):
        check_metadata({"age": [1.0]}, 1)


def test_require_columns_names_the_missing_columns_their_reader_and_what_there_is():
    require_columns(["age"], {"age": 1, "site": 2}, name="metadata", reader="y-Aware")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "Expected metadata to hold the column(s) ['age', 'score'] read by y-Aware, got "
            "columns ['site']."
        ),
    ):
        require_columns(["age", "site", "score"], ["site"], name="metadata", reader="y-Aware")
    with pytest.raises(KeyError, match="'age'"):
        require_columns(["age"], [], name="metadata", reader="a kernel", error=KeyError)


def test_draw_seeds_is_scikit_learns_rule_and_seed_from_passes_ints_through():
    expected = np.random.RandomState(5).randint(2**31 - 1, size=3)
    assert draw_seeds(5, 3) == [int(s) for s in expected]
    assert draw_seeds(5) == int(np.random.RandomState(5).randint(2**31 - 1))
    rng = np.random.RandomState(1)
    assert draw_seeds(rng) == int(np.random.RandomState(1).randint(2**31 - 1))
    assert seed_from(7) == 7
    assert seed_from(np.random.RandomState(2)) == int(np.random.RandomState(2).randint(2**31 - 1))
    with pytest.raises(ValueError, match="random_state >= 0, got -1"):
        seed_from(-1)
    with pytest.raises(TypeError, match="got str"):
        seed_from("7")
