"""load_medmnist: real files, root resolution, checksums, downloads and every label layout."""

from __future__ import annotations

import copy
import hashlib
import io
import shutil
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from stratify.data import DataNotFoundError, _files, load_medmnist, medmnist, medmnist_flags

SPLIT_SIZES = {  # from ../shared/data/medmnist/SOURCES.md, checked against INFO below
    "pneumoniamnist": (4708, 524, 624),
    "breastmnist": (546, 78, 156),
    "adrenalmnist3d": (1188, 98, 298),
}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_info(monkeypatch):
    """Patch INFO so a small fake file can stand in for an official one.

    Returns a function ``register(flag, path, size=28)`` that sets the flag's MD5 to the
    fake file's MD5.
    """
    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)

    def register(flag: str, path: Path, size: int = 28) -> None:
        table[flag]["MD5" if size == 28 else f"MD5_{size}"] = _md5(path)

    return register


def _write_npz(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path:
    arrays = {f"{s}_images": images[s] for s in images} | {f"{s}_labels": labels[s] for s in labels}
    np.savez_compressed(path, **arrays)
    return path


# ----------------------------------------------------------------------------- real files
@pytest.mark.data
@pytest.mark.parametrize("flag", sorted(SPLIT_SIZES))
def test_real_split_sizes_shapes_and_dtypes(medmnist_root, flag):
    info = medmnist.medmnist_info(flag)
    spatial = (28, 28, 28) if flag.endswith("3d") else (28, 28)
    for split, expected in zip(("train", "val", "test"), SPLIT_SIZES[flag], strict=True):
        images, labels, metadata = load_medmnist(flag, split, root=medmnist_root)
        assert info["n_samples"][split] == expected
        assert images.shape == (expected, 1, *spatial)
        assert images.dtype == np.uint8
        assert labels.shape == (expected,) and labels.dtype == np.int64
        assert set(np.unique(labels)) <= {0, 1}
        assert len(metadata) == expected
        assert (metadata["split"] == split).all()
        np.testing.assert_array_equal(metadata["index"], np.arange(expected))
        np.testing.assert_array_equal(metadata["label"], labels)


@pytest.mark.data
def test_real_pneumonia_test_matches_raw_file(medmnist_root):
    images, labels, metadata = load_medmnist("pneumoniamnist", "test", root=medmnist_root)
    with np.load(medmnist_root / "pneumoniamnist.npz") as raw:
        np.testing.assert_array_equal(images[:, 0], raw["test_images"])
        np.testing.assert_array_equal(labels, raw["test_labels"][:, 0])
    assert images.shape == (624, 1, 28, 28)
    assert metadata.attrs["classes"] == {0: "normal", 1: "pneumonia"}
    assert metadata.attrs["task"] == "binary-class"
    assert metadata.loc[labels == 1, "label_name"].eq("pneumonia").all()


@pytest.mark.data
def test_all_split_concatenates_train_val_test(medmnist_root):
    parts = [load_medmnist("breastmnist", s, root=medmnist_root) for s in ("train", "val", "test")]
    images, labels, metadata = load_medmnist("breastmnist", "all", root=medmnist_root)
    np.testing.assert_array_equal(images, np.concatenate([p.images for p in parts]))
    np.testing.assert_array_equal(labels, np.concatenate([p.labels for p in parts]))
    assert list(metadata["split"].value_counts()[["train", "val", "test"]]) == [546, 78, 156]


# ----------------------------------------------------------------------- root resolution
@pytest.mark.data
def test_environment_variable_is_used_without_root(medmnist_root, isolated_data_env, monkeypatch):
    monkeypatch.setenv("STRATIFY_DATA", str(medmnist_root))
    assert load_medmnist("breastmnist", "test", download=False).images.shape[0] == 156


def test_argument_takes_precedence_over_environment(tmp_path, isolated_data_env, monkeypatch):
    arg_root, env_root = tmp_path / "arg", tmp_path / "env"
    arg_root.mkdir()
    env_root.mkdir()
    (arg_root / "breastmnist.npz").write_bytes(b"not the official file")
    (env_root / "breastmnist.npz").write_bytes(b"also not the official file")
    monkeypatch.setenv("STRATIFY_DATA", str(env_root))
    with pytest.raises(ValueError, match=r"MD5 mismatch for .*arg.*breastmnist\.npz"):
        load_medmnist("breastmnist", root=arg_root, download=False)


def test_default_folder_is_medmnist_home(isolated_data_env, fake_info):
    folder = isolated_data_env / ".medmnist"
    folder.mkdir()
    images = {s: np.full((2, 28, 28), 7, np.uint8) for s in ("train", "val", "test")}
    labels = {s: np.zeros((2, 1), np.uint8) for s in images}
    fake_info("breastmnist", _write_npz(folder / "breastmnist.npz", images, labels))
    assert load_medmnist("breastmnist", download=False).images.shape == (2, 1, 28, 28)


# ---------------------------------------------------------------------- checksum failures
@pytest.mark.data
def test_corrupted_copy_names_file_and_both_hashes(medmnist_root, tmp_path):
    corrupted = tmp_path / "breastmnist.npz"
    shutil.copy(medmnist_root / "breastmnist.npz", corrupted)
    data = bytearray(corrupted.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupted.write_bytes(bytes(data))
    expected = medmnist.medmnist_info("breastmnist")["MD5"]
    actual = hashlib.md5(bytes(data)).hexdigest()
    with pytest.raises(ValueError) as excinfo:
        load_medmnist("breastmnist", root=tmp_path, download=False)
    message = str(excinfo.value)
    assert str(corrupted) in message and expected in message and actual in message


def test_md5_is_computed_once_per_unchanged_file(tmp_path, monkeypatch):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc" * 1000)
    calls = []
    real_md5 = hashlib.md5
    monkeypatch.setattr(_files.hashlib, "md5", lambda **kw: calls.append(1) or real_md5(**kw))
    first = _files.md5sum(path)
    assert _files.md5sum(path) == first == real_md5(b"abc" * 1000).hexdigest()
    assert len(calls) == 1
    path.write_bytes(b"changed content, other size")
    assert _files.md5sum(path) == real_md5(b"changed content, other size").hexdigest()
    assert len(calls) == 2


# ------------------------------------------------------------------ missing and download
def test_missing_file_lists_every_place_searched(tmp_path, isolated_data_env, monkeypatch):
    env_root = tmp_path / "env"
    monkeypatch.setenv("STRATIFY_DATA", str(env_root))
    with pytest.raises(DataNotFoundError) as excinfo:
        load_medmnist("pneumoniamnist", root=tmp_path / "arg", download=False)
    message = str(excinfo.value)
    for place in (tmp_path / "arg", env_root, isolated_data_env / ".medmnist"):
        assert str(place / "pneumoniamnist.npz") in message
    assert "STRATIFY_DATA" in message and "zenodo" in message
    assert isinstance(excinfo.value, FileNotFoundError)


def test_failed_download_gives_clean_error_and_leaves_nothing(
    tmp_path, isolated_data_env, monkeypatch
):
    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(_files.urllib.request, "urlopen", offline)
    root = tmp_path / "root"
    with pytest.raises(DataNotFoundError, match="name resolution") as excinfo:
        load_medmnist("breastmnist", root=root)
    assert excinfo.value.__context__ is None and excinfo.value.__cause__ is None
    assert list(root.iterdir()) == []


def test_download_writes_verified_file(tmp_path, isolated_data_env, fake_info, monkeypatch):
    source = tmp_path / "source.npz"
    images = {
        s: np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
        for s in ("train", "val", "test")
    }
    _write_npz(source, images, {s: np.ones((2, 1), np.uint8) for s in images})
    fake_info("breastmnist", source)
    requested = []

    def serve(url, timeout):
        requested.append(url)
        return io.BytesIO(source.read_bytes())

    monkeypatch.setattr(_files.urllib.request, "urlopen", serve)
    root = tmp_path / "root"
    loaded = load_medmnist("breastmnist", "val", root=root)
    assert requested == [medmnist.medmnist_info("breastmnist")["url"]]
    assert (root / "breastmnist.npz").read_bytes() == source.read_bytes()
    np.testing.assert_array_equal(loaded.images[:, 0], images["val"])


def test_download_with_wrong_checksum_is_not_kept(tmp_path, isolated_data_env, monkeypatch):
    monkeypatch.setattr(_files.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"x"))
    root = tmp_path / "root"
    with pytest.raises(DataNotFoundError, match="MD5"):
        load_medmnist("breastmnist", root=root)
    assert list(root.iterdir()) == []


# ---------------------------------------------------------------- every layout of labels
def _fake_dataset(tmp_path, fake_info, flag, shape, label_width, n_classes, size=28):
    rng = np.random.default_rng(0)
    images = {
        s: rng.integers(0, 256, (3, *shape), dtype=np.uint8) for s in ("train", "val", "test")
    }
    labels = {s: rng.integers(0, n_classes, (3, label_width), dtype=np.uint8) for s in images}
    name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
    fake_info(flag, _write_npz(tmp_path / name, images, labels), size)
    return images, labels


def test_rgb_images_become_channel_first(tmp_path, fake_info):
    raw, _ = _fake_dataset(tmp_path, fake_info, "dermamnist", (28, 28, 3), 1, 7)
    images, labels, metadata = load_medmnist("dermamnist", "test", root=tmp_path)
    assert images.shape == (3, 3, 28, 28)
    for i in range(3):
        for c in range(3):
            np.testing.assert_array_equal(images[i, c], raw["test"][i, :, :, c])
    assert metadata.attrs["n_channels"] == 3
    classes = metadata.attrs["classes"]
    assert list(metadata["label_name"]) == [classes[int(k)] for k in labels]


def test_multilabel_labels_keep_one_column_per_class(tmp_path, fake_info):
    _, raw = _fake_dataset(tmp_path, fake_info, "chestmnist", (28, 28), 14, 2)
    _, labels, metadata = load_medmnist("chestmnist", "train", root=tmp_path)
    assert labels.shape == (3, 14) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, raw["train"])
    label_columns = [c for c in metadata.columns if c.startswith("label_")]
    assert len(label_columns) == 14 and "label_pleural" in label_columns
    np.testing.assert_array_equal(metadata[label_columns].to_numpy(), raw["train"])


def test_ordinal_labels_are_a_vector(tmp_path, fake_info):
    _, raw = _fake_dataset(tmp_path, fake_info, "retinamnist", (28, 28, 3), 1, 5)
    _, labels, metadata = load_medmnist("retinamnist", "val", root=tmp_path)
    np.testing.assert_array_equal(labels, raw["val"][:, 0])
    assert metadata.attrs["task"] == "ordinal-regression"


def test_3d_size_64_reads_the_sized_file(tmp_path, fake_info):
    raw, _ = _fake_dataset(tmp_path, fake_info, "organmnist3d", (64, 64, 64), 1, 11, size=64)
    images, _, _ = load_medmnist("organmnist3d", "test", size=64, root=tmp_path)
    assert images.shape == (3, 1, 64, 64, 64)
    np.testing.assert_array_equal(images[:, 0], raw["test"])


def test_every_flag_has_what_the_loader_needs():
    for flag in medmnist_flags():
        info = medmnist.medmnist_info(flag)
        assert {"task", "label", "n_channels", "MD5", "url", "n_samples"} <= set(info)
        assert medmnist._available_sizes(info)[0] == 28


# -------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flag": "pneumonia"}, r"'flag' parameter of load_medmnist .*Got 'pneumonia'"),
        ({"flag": "breastmnist", "split": "tst"}, r"'split' parameter .*Got 'tst' instead"),
        ({"flag": "breastmnist", "size": 32}, r"'size' parameter .*Got 32 instead"),
        ({"flag": "adrenalmnist3d", "size": 128}, r"'size' parameter .*\{28, 64\}.*Got 128"),
    ],
)
def test_bad_arguments(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        load_medmnist(root=tmp_path, download=False, **kwargs)
