"""volumes_to_slices against a naive loop over volumes and slice indices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stratify.data import volumes_to_slices


@pytest.fixture
def volumes():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, 2, 5, 6, 7), dtype=np.uint8)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_match_a_naive_loop(volumes, axis):
    slices, frame = volumes_to_slices(volumes, axis=axis)
    length = volumes.shape[2 + axis]
    expected, rows = [], []
    for v in range(len(volumes)):
        for i in range(length):
            index = [slice(None)] * 3
            index[axis] = i
            expected.append(volumes[v][(slice(None), *index)])
            rows.append((v, i, i / (length - 1)))
    np.testing.assert_array_equal(slices, np.stack(expected))
    assert slices.dtype == volumes.dtype
    expected_frame = np.array(rows)
    np.testing.assert_array_equal(frame["volume_id"], expected_frame[:, 0])
    np.testing.assert_array_equal(frame["slice_index"], expected_frame[:, 1])
    np.testing.assert_allclose(frame["position"], expected_frame[:, 2], rtol=0, atol=1e-12)


def test_labels_metadata_stride_and_margin(volumes):
    metadata = pd.DataFrame({"age": [30.0, np.nan, 70.0], "site": ["A", "B", "A"]})
    slices, frame = volumes_to_slices(
        volumes, labels=np.array([1, 0, 1]), metadata=metadata, stride=2, margin=0.25
    )
    # depth 5 -> indices 0, 2, 4 at positions 0, .5, 1; margin .25 keeps only index 2
    assert slices.shape == (3, 2, 6, 7)
    assert frame["slice_index"].tolist() == [2, 2, 2]
    assert frame["position"].tolist() == [0.5, 0.5, 0.5]
    assert frame["label"].tolist() == [1, 0, 1]
    assert frame["site"].tolist() == ["A", "B", "A"]
    assert np.isnan(frame["age"][1])
    np.testing.assert_array_equal(slices[1], volumes[1][:, 2])


def test_four_dimensional_input_is_single_channel():
    volumes = np.zeros((2, 4, 3, 3), dtype=np.float32)
    slices, frame = volumes_to_slices(volumes)
    assert slices.shape == (8, 1, 3, 3)
    assert frame["volume_id"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_single_slice_volume_has_central_position():
    _, frame = volumes_to_slices(np.zeros((1, 1, 1, 4, 4), dtype=np.uint8))
    assert frame["position"].tolist() == [0.5]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"volumes": np.zeros((2, 3, 3), np.uint8)},
            ValueError,
            r"Expected volumes with 4 or 5 dimensions .*got an array of shape \(2, 3, 3\)",
        ),
        ({"axis": 3}, ValueError, r"'axis' parameter of volumes_to_slices .*Got 3 instead"),
        ({"stride": 0}, ValueError, r"'stride' parameter .*\[1, inf\)\. Got 0"),
        ({"margin": 0.5}, ValueError, r"'margin' parameter .*\[0, 0\.5\)\. Got 0\.5"),
        ({"labels": np.zeros(2)}, ValueError, r"labels of shape \(3,\).*got shape \(2,\)"),
        ({"metadata": pd.DataFrame({"a": [1]})}, ValueError, r"\(3 rows\), got 1 rows"),
        ({"metadata": pd.DataFrame({"position": [1, 2, 3]})}, ValueError, r"\['position'\]"),
        ({"metadata": [1, 2, 3]}, TypeError, r"pandas DataFrame .*got list"),
        ({"volumes": np.full((1, 1, 2, 2, 2), np.nan)}, ValueError, r"8 NaN or inf"),
        ({"volumes": np.zeros((0, 1, 2, 2, 2))}, ValueError, r"non-empty volumes"),
        ({"volumes": np.zeros((1, 1, 2, 2, 2), bool)}, TypeError, r"got dtype bool"),
    ],
)
def test_bad_input(volumes, kwargs, error, match):
    kwargs = {"volumes": volumes} | kwargs
    with pytest.raises(error, match=match):
        volumes_to_slices(**kwargs)
