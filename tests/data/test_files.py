"""Cohorts from image files: NIfTI, DICOM series, PNG slices, manifests, the cache, errors."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stratify.data import load_medmnist
from stratify.data.files import FileCohortError, read_cohort

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")
Image = pytest.importorskip("PIL.Image")

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"
DICOM_DATA = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"


def _save_nifti(volume_zyx: np.ndarray, path: Path, zooms=(1.0, 1.0, 1.0), flip_x=False):
    """Save a (D, H, W) = (z, y, x) volume as RAS (x, y, z), or with x stored flipped (LAS)."""
    data = np.transpose(volume_zyx, (2, 1, 0)).astype(np.float32)
    affine = np.diag([*zooms, 1.0])
    if flip_x:
        data = data[::-1]
        affine[0, 0] = -zooms[0]
        affine[0, 3] = zooms[0] * (data.shape[0] - 1)
    nib.save(nib.Nifti1Image(data, affine), str(path))


def test_nibabel_example_files_read_as_one_array(tmp_path):
    for name in ("anatomical.nii", "standard.nii.gz"):
        shutil.copy(NIBABEL_DATA / name, tmp_path / name)
    cohort = read_cohort(tmp_path, size=8)
    assert cohort.images.shape == (2, 1, 8, 8, 8) and cohort.images.dtype == np.uint8
    assert cohort.ids.tolist() == ["anatomical", "standard"] and cohort.kind == "nifti"
    assert cohort.images.max() == 255 and cohort.images.min() == 0  # percentile rule


def test_a_4d_nibabel_file_is_refused(tmp_path):
    shutil.copy(NIBABEL_DATA / "example4d.nii.gz", tmp_path / "example4d.nii.gz")
    with pytest.raises(FileCohortError, match=r"example4d.nii.gz: expected a 3D volume"):
        read_cohort(tmp_path, size=8)


def test_orientation_is_canonical_and_spacing_isotropic(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 255, size=(4, 6, 8)).astype(np.float32)  # (z, y, x)
    (tmp_path / "ras").mkdir()
    (tmp_path / "las").mkdir()
    _save_nifti(volume, tmp_path / "ras" / "a.nii.gz")
    _save_nifti(volume, tmp_path / "las" / "a.nii.gz", flip_x=True)
    window = (0.0, 255.0)  # the identity on 0..255
    ras = read_cohort(tmp_path / "ras", window=window).images[0, 0]
    las = read_cohort(tmp_path / "las", window=window).images[0, 0]
    np.testing.assert_array_equal(ras, volume.astype(np.uint8))  # depth first: (z, y, x)
    np.testing.assert_array_equal(las, ras)  # the same anatomy whatever the storage order
    # z voxels twice as thick: resampled to isotropic 1 mm, the depth doubles
    (tmp_path / "thick").mkdir()
    _save_nifti(volume, tmp_path / "thick" / "a.nii.gz", zooms=(1.0, 1.0, 2.0))
    assert read_cohort(tmp_path / "thick").images.shape == (1, 1, 8, 6, 8)


def test_window_clips_and_maps_to_256_levels(tmp_path):
    volume = np.zeros((2, 2, 2), dtype=np.float32)
    volume[0, 0, 0], volume[0, 0, 1], volume[0, 1, 0] = -2000.0, 2000.0, 200.0
    _save_nifti(volume, tmp_path / "ct.nii.gz")
    levels = read_cohort(tmp_path, window=(-1000, 1000)).images[0, 0]
    # by hand: (clip(v) + 1000) / 2000 * 255, rounded
    assert levels[0, 0, 0] == 0 and levels[0, 0, 1] == 255
    assert levels[0, 1, 0] == round(1200 / 2000 * 255) == 153
    assert levels[1, 1, 1] == round(1000 / 2000 * 255) == 128


def test_dicom_series_from_pydicom_ordered_by_position_with_patient_id(tmp_path):
    shutil.copytree(DICOM_DATA / "98892001" / "CT5N", tmp_path / "series")
    reference = read_cohort(tmp_path, window=(-1000, 1000))
    assert reference.kind == "dicom" and reference.ids.tolist() == ["98890234"]
    # the same slices under names in the reverse order of their positions
    files = sorted((tmp_path / "series").iterdir())
    z = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files]
    renamed = tmp_path.parent / (tmp_path.name + "-renamed") / "series"
    renamed.mkdir(parents=True)
    for rank, k in enumerate(np.argsort(z)[::-1]):
        shutil.copy(files[k], renamed / f"{rank:03d}.dcm")
    again = read_cohort(renamed.parent, window=(-1000, 1000))
    np.testing.assert_array_equal(again.images, reference.images)
    n_slices = len(files)
    assert reference.images.shape[2] >= n_slices  # resampled along depth, not dropped


def test_dicom_series_that_cannot_be_one_volume_are_refused(tmp_path):
    shutil.copytree(DICOM_DATA / "98892003" / "MR1", tmp_path / "mixed" / "MR1")
    with pytest.raises(FileCohortError, match=r"MR1: expected one series per folder, got 3"):
        read_cohort(tmp_path / "mixed", size=8)
    shutil.copytree(DICOM_DATA / "77654033" / "CT2", tmp_path / "gap" / "CT2")
    with pytest.raises(FileCohortError, match=r"CT2: expected equally spaced slices"):
        read_cohort(tmp_path / "gap", size=8)


def test_pneumoniamnist_as_png_and_adrenal_as_nifti_equal_the_arrays(tmp_path, medmnist_root):
    chest = load_medmnist("pneumoniamnist", "test", root=medmnist_root).images[:12]
    for k, image in enumerate(chest):
        Image.fromarray(image[0]).save(tmp_path / f"X{k:03d}.png")
    cohort = read_cohort(tmp_path, window=(0, 255))
    assert cohort.kind == "2d" and cohort.ids.tolist() == [f"X{k:03d}" for k in range(12)]
    np.testing.assert_array_equal(cohort.images, chest)

    volumes = load_medmnist("adrenalmnist3d", "test", root=medmnist_root).images[:3]
    folder = tmp_path / "adrenal"
    folder.mkdir()
    for k, volume in enumerate(volumes):
        _save_nifti(volume[0].astype(np.float32), folder / f"V{k}.nii.gz")
    np.testing.assert_array_equal(read_cohort(folder, window=(0, 255)).images, volumes)


def test_manifest_paths_and_ids_and_rgb(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(
            tmp_path / f"{name}.png"
        )
    pd.DataFrame({"path": ["b.png", "a.png"], "id": ["P2", "P1"]}).to_csv(
        tmp_path / "manifest.csv", index=False
    )
    cohort = read_cohort(tmp_path / "manifest.csv", window=(0, 255))
    assert cohort.images.shape == (2, 3, 6, 6) and cohort.ids.tolist() == ["P2", "P1"]
    expected = np.moveaxis(np.asarray(Image.open(tmp_path / "b.png")), -1, 0)
    np.testing.assert_array_equal(cohort.images[0], expected)


def test_cache_is_a_memory_map_that_is_read_back(tmp_path):
    rng = np.random.default_rng(2)
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, (10, 12), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    direct = read_cohort(tmp_path, size=8)
    cache = tmp_path.parent / (tmp_path.name + "-cache")
    first = read_cohort(tmp_path, size=8, cache=cache)
    second = read_cohort(tmp_path, size=8, cache=cache)
    assert isinstance(second.images, np.memmap) and len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(first.images, direct.images)
    np.testing.assert_array_equal(second.images, direct.images)
    assert second.ids.tolist() == direct.ids.tolist()


def test_bad_folders_name_the_file(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "broken.nii.gz").write_bytes(os.urandom(64))
    with pytest.raises(FileCohortError, match=r"broken.nii.gz: cannot read the NIfTI file"):
        read_cohort(tmp_path / "bad", size=8)
    (tmp_path / "mixed").mkdir()
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(tmp_path / "mixed" / "a.png")
    _save_nifti(np.zeros((2, 2, 2)), tmp_path / "mixed" / "b.nii.gz")
    with pytest.raises(FileCohortError, match=r"expected 2D images or 3D volumes, not both"):
        read_cohort(tmp_path / "mixed")
    (tmp_path / "shapes").mkdir()
    for name, side in (("a", 4), ("b", 6)):
        Image.fromarray(np.zeros((side, side), dtype=np.uint8)).save(
            tmp_path / "shapes" / f"{name}.png"
        )
    with pytest.raises(FileCohortError, match=r"b.png: expected the shape \(4, 4\).*--size"):
        read_cohort(tmp_path / "shapes")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileCohortError, match=r"found no image files"):
        read_cohort(tmp_path / "empty")
    with pytest.raises(FileCohortError, match=r"LOW < HIGH"):
        read_cohort(tmp_path / "shapes", window=(5, 1))


def test_a_missing_field_library_is_named(tmp_path, monkeypatch):
    _save_nifti(np.zeros((2, 2, 2)), tmp_path / "a.nii.gz")
    monkeypatch.setitem(sys.modules, "nibabel", None)  # import nibabel -> ImportError
    with pytest.raises(FileCohortError, match=r"needs nibabel \(pip install 'stratify\[files\]'"):
        read_cohort(tmp_path)
