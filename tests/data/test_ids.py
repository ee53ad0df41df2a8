"""Metadata joined to images by patient id, never by row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stratify.data.ids import align_metadata, check_ids, patient_strata


def _table():
    return pd.DataFrame({"patient_id": ["P3", "P1", "P2"], "age": [30.0, 10.0, 20.0]})


def test_rows_follow_the_images_whatever_the_table_order():
    ids = ["P1", "P2", "P2", "P3"]  # two images of P2
    aligned, kept = align_metadata(ids, _table(), id_column="patient_id")
    assert aligned["patient_id"].tolist() == ids and aligned["age"].tolist() == [10, 20, 20, 30]
    assert kept.all() and list(aligned.columns) == ["patient_id", "age"]
    shuffled = _table().sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(align_metadata(ids, shuffled, id_column="patient_id")[0], aligned)
    by_index, _ = align_metadata(ids, _table().set_index("patient_id"))
    pd.testing.assert_frame_equal(by_index, aligned)


def test_unmatched_and_duplicate_ids_are_named():
    with pytest.raises(ValueError, match=r"1 image ids without a metadata row: 'P9'"):
        align_metadata(["P1", "P2", "P3", "P9"], _table(), id_column="patient_id")
    with pytest.raises(ValueError, match=r"1 metadata ids without an image: 'P3'"):
        align_metadata(["P1", "P2"], _table(), id_column="patient_id")
    doubled = pd.concat([_table(), _table().iloc[:1]])
    with pytest.raises(ValueError, match=r"1 duplicate ids: 'P3'"):
        align_metadata(["P1", "P2", "P3"], doubled, id_column="patient_id")
    many = [f"Q{k}" for k in range(8)]
    with pytest.raises(ValueError, match=r"'Q0', 'Q1', 'Q2', 'Q3', 'Q4' and 3 more"):
        align_metadata([*many, "P1", "P2", "P3"], _table(), id_column="patient_id")
    with pytest.raises(ValueError, match=r"id column 'pid'.*\['patient_id', 'age'\]"):
        align_metadata(["P1"], _table(), id_column="pid")


def test_allow_missing_drops_with_a_warning():
    with pytest.warns(UserWarning, match=r"Dropped 1 image ids without a metadata row: 'P9'"):
        aligned, kept = align_metadata(
            ["P9", "P1", "P2"], _table(), id_column="patient_id", allow_missing=True
        )
    assert kept.tolist() == [False, True, True] and aligned["patient_id"].tolist() == ["P1", "P2"]


def test_ids_are_text_stripped_and_near_misses_are_named():
    table = pd.DataFrame({"patient_id": [" 001", "002 "], "age": [1.0, 2.0]})
    aligned, _ = align_metadata(["001", "002"], table, id_column="patient_id")
    assert aligned["age"].tolist() == [1.0, 2.0]
    with pytest.raises(
        ValueError,
        match=r"1 of them differ from a metadata id only in case "
        r"\(image 'p1', row 'P1'\)",
    ):
        align_metadata(["p1", "P2", "P3"], _table(), id_column="patient_id")
    numbers = pd.DataFrame({"patient_id": [1, 2], "age": [1.0, 2.0]})  # read as numbers
    with pytest.raises(
        ValueError,
        match=r"2 metadata ids look like image ids without their "
        r"leading zeros \(row '1', image '001'\): read the id column as text",
    ):
        align_metadata(["001", "002"], numbers, id_column="patient_id")


def test_no_match_at_all_is_an_error_even_with_allow_missing():
    with pytest.raises(
        ValueError,
        match=r"Expected some images to match a metadata row by "
        r"patient_id, got none: 2 image ids without a metadata row",
    ):
        align_metadata(["X1", "X2"], _table(), id_column="patient_id", allow_missing=True)


def test_ids_are_checked():
    with pytest.raises(ValueError, match=r"one id per image \(3 ids\), got 2"):
        check_ids(["a", "b"], 3)
    with pytest.raises(ValueError, match=r"got none for images at 1"):
        check_ids(["a", "", "c"], 3)


def test_patient_stratum_by_mean_probability_or_vote():
    ids = ["A", "A", "A", "B", "C", "C"]
    labels = np.array([0, 1, 1, 2, -1, -1])
    assert patient_strata(ids, labels).tolist() == [1, 1, 1, 2, -1, -1]
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.4, 0.6], [0, 1], [1, 0], [1, 0]])
    # A: mean (0.567, 0.433) -> 0 although two of its three images are in 1
    assert patient_strata(ids, labels, proba).tolist() == [0, 0, 0, 1, 0, 0]
