"""load_mnist_test: the real idx files, checksums, header parsing, missing files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from stratify.data import DataNotFoundError, load_mnist_test, mnist

# Label counts of the MNIST test set, read from ../shared/data/mnist/SOURCES.md.
COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.data
def test_real_test_set(mnist_root):
    images, labels, metadata = load_mnist_test(mnist_root, download=False)
    assert images.shape == (10000, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert np.bincount(labels).tolist() == COUNTS
    with gzip.open(mnist_root / "t10k-images-idx3-ubyte.gz") as handle:
        raw = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(10000, 28, 28)
    np.testing.assert_array_equal(images[:, 0], raw)
    assert (metadata["split"] == "test").all() and len(metadata) == 10000


@pytest.mark.data
def test_corrupted_copy_is_refused(mnist_root, tmp_path):
    for name, _ in mnist.FILES.values():
        shutil.copy(mnist_root / name, tmp_path / name)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"MD5 mismatch for .*t10k-labels.*ec29112dd5afa06"):
        load_mnist_test(tmp_path, download=False)


def _idx(tmp_path, magic, dims, payload):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    path = tmp_path / "file.gz"
    path.write_bytes(gzip.compress(header + payload))
    return path


def test_idx_parser_reads_header_and_data(tmp_path):
    path = _idx(tmp_path, 0x803, (2, 3, 4), bytes(range(24)))
    np.testing.assert_array_equal(mnist._read_idx(path, "images"), np.arange(24).reshape(2, 3, 4))


def test_idx_parser_rejects_truncated_and_wrong_magic(tmp_path):
    with pytest.raises(ValueError, match=r"Expected 24 values .*got 20: the file is truncated"):
        mnist._read_idx(_idx(tmp_path, 0x803, (2, 3, 4), bytes(20)), "images")
    with pytest.raises(ValueError, match=r"magic 0x00000801 .*got 0x00000803"):
        mnist._read_idx(_idx(tmp_path, 0x803, (2,), bytes(2)), "labels")


def test_missing_files_name_the_places(tmp_path, isolated_data_env, monkeypatch):
    monkeypatch.setenv("STRATIFY_MNIST", str(tmp_path / "env"))
    with pytest.raises(DataNotFoundError) as excinfo:
        load_mnist_test(tmp_path / "arg", download=False)
    message = str(excinfo.value)
    for folder in (tmp_path / "arg", tmp_path / "env", isolated_data_env / ".stratify" / "mnist"):
        assert str(folder / "t10k-images-idx3-ubyte.gz") in message
    assert "STRATIFY_MNIST" in message
