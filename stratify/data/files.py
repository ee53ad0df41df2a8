"""A cohort from image files: PNG/JPEG/TIFF slices, NIfTI volumes or DICOM series.

:func:`read_cohort` reads a folder (searched recursively) or a manifest CSV with a ``path``
column (and optionally ``id``), and returns channel-first uint8 images of one shape with an
id per image:

* **2D** (``.png``, ``.jpg``, ``.jpeg``, ``.tif``, ``.tiff``; Pillow): grey levels (RGB kept
  when every image is RGB), resized to ``size x size`` (bilinear).
* **NIfTI** (``.nii``, ``.nii.gz``; nibabel): reoriented to the closest canonical (RAS)
  orientation, resampled to isotropic voxels of the smallest spacing, then to ``size^3``
  (trilinear). A 4D file is refused.
* **DICOM** (``.dcm``, or any file with the ``DICM`` marker and no other extension;
  pydicom): one folder per series (a series of one slice is a 2D image); slices ordered by
  their position along the slice normal (``ImagePositionPatient`` against
  ``ImageOrientationPatient``), rescaled to modality units (HU for CT) by
  ``RescaleSlope`` / ``RescaleIntercept``, spacing from ``PixelSpacing`` and the slice
  positions, then as NIfTI. A series with mixed SeriesInstanceUID, unequal slice gaps (a
  missing slice) or unequal slice shapes is refused.

Intensities follow one rule: with ``window=(low, high)`` (a CT window in HU, e.g.
``(-1000, 400)``) values are clipped to it; without, each image is clipped to its own 0.5 and
99.5 percentiles. Either way the range is mapped to 0..255 (uint8, 256 levels).

Ids: the file name without its extensions (``P001.nii.gz`` -> ``P001``), the manifest's
``id`` column, or the series' PatientID for DICOM (the folder name when it has none).

With ``cache`` the resampled images are written to a memory-mapped ``.npy`` in that folder,
one file at a time (the full-resolution files are never all in memory), and a second call
with the same files (paths, sizes, modification times) and settings reads it back.

nibabel, pydicom and Pillow are the field's libraries, installed with the ``files`` extra
(``pip install stratify[files]``); a missing one is named in the error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stratify._atomic import atomic_write
from stratify._optional import require
from stratify._system import host_memory

__all__ = ["FileCohort", "FileCohortError", "cohort_dimensions", "read_cohort"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm",)
#: Percentiles each image is clipped to without a window.
PERCENTILES = (0.5, 99.5)
#: Relative spread of the gaps between DICOM slices above which a slice is taken as missing.
SLICE_GAP_RTOL = 0.05


class FileCohortError(ValueError):
    """A cohort file or folder that cannot be read as asked; the message names the file."""


@dataclass(frozen=True)
class FileCohort:
    """Images read from files, with their ids and sources.

    Attributes
    ----------
    images : numpy.ndarray of uint8, shape (N, C, H, W) or (N, 1, D, H, W)
        Possibly a read-only memory map (with ``cache``).
    ids : numpy.ndarray of str, shape (N,)
    paths : list of str
        The file (DICOM: the series folder) of each image.
    kind : {"2d", "nifti", "dicom"}
    """

    images: np.ndarray
    ids: np.ndarray
    paths: list[str]
    kind: str


def _require(module: str) -> Any:
    """Import a field library or name the extra that installs it (a FileCohortError)."""
    return require(module, "files", "reading these files", error=FileCohortError)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    """The file name without its extensions (``P001.nii.gz`` -> ``P001``)."""
    name = path.name
    for suffix in (*NIFTI_SUFFIXES, *IMAGE_SUFFIXES, *DICOM_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_dicom(path: Path) -> bool:
    """A DICOM Part 10 file: ``DICM`` after the 128-byte preamble (any name)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def _kind(path: Path) -> str | None:
    suffix = _suffix(path)
    if suffix in IMAGE_SUFFIXES:
        return "2d"
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix in DICOM_SUFFIXES or (
        (suffix in ("", ".ima") or suffix[1:].isdigit()) and _is_dicom(path)
    ):
        return "dicom"
    return None


def _sources(source: str | os.PathLike) -> tuple[list[Path], list[str | None]]:
    """The files (DICOM: series folders) of a folder or a manifest, and manifest ids."""
    root = Path(source)
    if root.is_file() and root.suffix.lower() == ".csv":
        try:
            manifest = pd.read_csv(root)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
            raise FileCohortError(f"cannot read the manifest {root} as a CSV: {error}") from None
        if "path" not in manifest.columns:
            raise FileCohortError(
                f"expected a 'path' column in the manifest {root}, got {list(manifest.columns)}"
            )
        paths = [Path(p) if Path(p).is_absolute() else root.parent / p for p in manifest["path"]]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileCohortError(f"the manifest {root} names missing files: {missing[:5]}")
        ids = manifest["id"].astype(str).tolist() if "id" in manifest else [None] * len(paths)
        return paths, ids
    if not root.is_dir():
        raise FileCohortError(f"expected a folder of images or a manifest .csv, got {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and _kind(p) is not None)
    dicom_dirs = sorted({p.parent for p in files if _kind(p) == "dicom"})
    others = [p for p in files if _kind(p) != "dicom"]
    paths = others + dicom_dirs
    if not paths:
        raise FileCohortError(
            f"found no image files in {root} (expected {', '.join(IMAGE_SUFFIXES)}, "
            f"{', '.join(NIFTI_SUFFIXES)} or folders of .dcm series)"
        )
    return paths, [None] * len(paths)


def _source_kind(path: Path) -> str:
    if path.is_dir():  # a series: a volume, or a 2D image (radiograph) when it has one slice
        n_slices = sum(1 for p in path.iterdir() if p.is_file() and _kind(p) == "dicom")
        return "dicom" if n_slices > 1 else "dicom2d"
    kind = _kind(path)
    if kind is None:
        raise FileCohortError(f"{path}: expected an image, NIfTI or DICOM file")
    return kind


# ------------------------------------------------------------------------------ readers
def _read_2d(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image_module = _require("PIL.Image")
    try:
        with image_module.open(path) as image:
            image.load()
            colour = image.mode not in ("1", "L", "I", "I;16", "I;16B", "F")
            array = np.asarray(image.convert("RGB") if colour else image, dtype=np.float32)
    except Exception as error:
        raise FileCohortError(f"{path}: cannot read the image ({error})") from None
    if array.ndim == 3:  # (H, W, 3) -> (3, H, W); grey stored as RGB stays grey
        array = np.moveaxis(array, -1, 0)
        if np.array_equal(array[0], array[1]) and np.array_equal(array[0], array[2]):
            array = array[:1]
    else:
        array = array[None]
    return array, np.ones(2)


def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    nib = _require("nibabel")
    try:
        image = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(image.dataobj, dtype=np.float32)
        zooms = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
    except Exception as error:
        raise FileCohortError(f"{path}: cannot read the NIfTI file ({error})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise FileCohortError(f"{path}: expected a 3D volume, got shape {data.shape}")
    # canonical RAS (x, y, z) -> (z, y, x): depth first, as the networks take volumes
    return np.transpose(data, (2, 1, 0))[None], zooms[::-1]


def _read_dicom(folder: Path) -> tuple[np.ndarray, np.ndarray, str | None]:
    pydicom = _require("pydicom")
    slices = []
    for file in sorted(p for p in folder.iterdir() if _kind(p) == "dicom"):
        try:
            slices.append(pydicom.dcmread(file))
        except Exception as error:
            raise FileCohortError(f"{file}: cannot read the DICOM file ({error})") from None
    series = {str(getattr(s, "SeriesInstanceUID", "")) for s in slices}
    if len(series) > 1:
        raise FileCohortError(f"{folder}: expected one series per folder, got {len(series)}")
    try:
        frames = [s.pixel_array.astype(np.float32) for s in slices]
    except Exception as error:
        raise FileCohortError(f"{folder}: cannot decode the pixel data ({error})") from None
    if len({f.shape for f in frames}) > 1:
        raise FileCohortError(
            f"{folder}: expected slices of one shape, got {sorted({f.shape for f in frames})}"
        )
    if frames[0].ndim != 2:
        raise FileCohortError(
            f"{folder}: expected single-frame slices, got shape {frames[0].shape}"
        )
    scaled = [
        f * float(getattr(s, "RescaleSlope", 1) or 1)
        + float(getattr(s, "RescaleIntercept", 0) or 0)
        for f, s in zip(frames, slices, strict=True)
    ]
    spacing = [float(v) for v in getattr(slices[0], "PixelSpacing", [1.0, 1.0])]
    depth = float(getattr(slices[0], "SliceThickness", 1.0) or 1.0)
    if len(slices) > 1:
        try:
            orientation = np.asarray(slices[0].ImageOrientationPatient, dtype=np.float64)
            normal = np.cross(orientation[:3], orientation[3:])
            positions = np.array(
                [
                    np.dot(np.asarray(s.ImagePositionPatient, dtype=np.float64), normal)
                    for s in slices
                ]
            )
        except AttributeError:
            raise FileCohortError(
                f"{folder}: expected ImagePositionPatient and ImageOrientationPatient to order "
                "the slices"
            ) from None
        order = np.argsort(positions)
        scaled = [scaled[k] for k in order]
        gaps = np.diff(positions[order])
        if np.any(gaps <= 0) or gaps.max() - gaps.min() > SLICE_GAP_RTOL * gaps.mean():
            raise FileCohortError(
                f"{folder}: expected equally spaced slices, got gaps from {gaps.min():.3g} to "
                f"{gaps.max():.3g} mm (a missing or duplicated slice?)"
            )
        depth = float(gaps.mean())
    patient = getattr(slices[0], "PatientID", None)
    volume = np.stack(scaled)[None]
    return volume, np.asarray([depth, *spacing]), (str(patient) if patient else None)


# -------------------------------------------------------------------- resampling, levels
def _resample(array: np.ndarray, spacing: np.ndarray, size: int | None) -> np.ndarray:
    """Channel-first ``array`` to isotropic spacing (volumes), then to ``size`` per side."""
    from scipy import ndimage

    spatial = np.asarray(array.shape[1:], dtype=np.float64)
    if len(spatial) == 3:  # isotropic voxels of the smallest spacing
        spatial = spatial * spacing / spacing.min()
    target = spatial if size is None else np.full(len(spatial), float(size))
    target = np.maximum(1, np.round(target)).astype(int)
    if tuple(target) == array.shape[1:]:
        return array
    factors = target / np.asarray(array.shape[1:], dtype=np.float64)
    return np.stack(
        [ndimage.zoom(c, factors, order=1, grid_mode=True, mode="nearest") for c in array]
    )


def _levels(array: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """The intensity rule of the module docstring, to uint8."""
    low, high = window if window is not None else np.percentile(array, PERCENTILES)
    if not high > low:
        return np.zeros(array.shape, dtype=np.uint8)
    scaled = (np.clip(array, low, high) - low) / (high - low)
    return np.round(scaled * 255).astype(np.uint8)


def _cache_key(paths: Sequence[Path], size: int | None, window: Any) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for path in paths:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            digest.update(f"{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    digest.update(json.dumps([size, window]).encode())
    return digest.hexdigest()


#: Bytes per voxel while one image is resampled (float64 copies of the image).
_RESAMPLE_BYTES = 16


def _check_memory(n_images: int, ndim: int, size: int | None, cache: Any) -> None:
    """Refuse a ``size`` whose images cannot fit in memory, before allocating anything."""
    if size is None:
        return
    available = host_memory()
    voxels = size**ndim
    needed = {"one image while resampling": voxels * _RESAMPLE_BYTES}
    if cache is None:  # the cohort in memory, one byte a voxel (up to 3 channels)
        needed[f"the {n_images} images"] = n_images * voxels
    if available is None:
        return
    for what, bytes_ in needed.items():
        if bytes_ > available:
            raise FileCohortError(
                f"size {size} needs {bytes_ / 2**30:.1f} GiB for {what} ({size}^{ndim} voxels), "
                f"more than the {available / 2**30:.1f} GiB available; choose a smaller --size"
                + ("" if cache is not None else " or memory-map them with --cache FOLDER")
            )


_FLAT_KINDS = ("2d", "dicom2d")


def _dimensions(source: Any, kinds: dict[Path, str]) -> int:
    """2 for a cohort of 2D images, 3 for one of volumes; mixed is an error."""
    dims = {2 if k in _FLAT_KINDS else 3 for k in kinds.values()}
    if len(dims) > 1:
        flat = [p for p, k in kinds.items() if k in _FLAT_KINDS][:1]
        deep = [p for p, k in kinds.items() if k not in _FLAT_KINDS][:1]
        raise FileCohortError(
            f"{source}: expected 2D images or 3D volumes, not both (e.g. {flat[0]} and {deep[0]})"
        )
    return dims.pop()


def cohort_dimensions(source: str | os.PathLike) -> int:
    """Whether a folder or manifest holds 2D images (2) or 3D volumes (3), from the file
    kinds alone (nothing is read or resampled).

    Raises
    ------
    FileCohortError
        For no image files, or 2D images mixed with 3D volumes.
    """
    paths, _ = _sources(source)
    return _dimensions(source, {p: _source_kind(p) for p in paths})


def read_cohort(
    source: str | os.PathLike,
    *,
    size: int | None = None,
    window: tuple[float, float] | None = None,
    cache: str | os.PathLike | None = None,
) -> FileCohort:
    """Read every image of a folder or manifest into one array, with an id per image.

    Parameters
    ----------
    source : path
        A folder (searched recursively; DICOM: one sub-folder per series) or a manifest CSV
        with a ``path`` column (relative to the manifest) and optionally ``id``.
    size : int, optional
        Side of the output images (``size x size``, volumes ``size^3``). Without it every
        image must already have one shape (volumes: after isotropic resampling).
    window : (float, float), optional
        Intensity window (e.g. HU for CT); without it each image is clipped to its 0.5-99.5
        percentiles.
    cache : path, optional
        Folder for the memory-mapped resampled images (see the module docstring).

    Returns
    -------
    FileCohort

    Raises
    ------
    FileCohortError
        For a file that cannot be read, mixed 2D and 3D files, images of several shapes
        without ``size``, or a missing field library; the message names the file.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 2):
        raise FileCohortError(f"expected size to be an int >= 2, got {size!r}")
    if window is not None:
        low, high = (float(v) for v in window)
        if not high > low:
            raise FileCohortError(f"expected a window LOW,HIGH with LOW < HIGH, got {window!r}")
        window = (low, high)
    paths, manifest_ids = _sources(source)
    kinds = {p: _source_kind(p) for p in paths}
    kind = (
        "2d"
        if _dimensions(source, kinds) == 2
        else ("dicom" if all(k == "dicom" for k in kinds.values()) else "nifti")
    )
    _check_memory(len(paths), 2 if kind == "2d" else 3, size, cache)
    cached = None
    if cache is not None:
        cached = Path(cache) / f"cohort-{_cache_key(paths, size, window)}.npz"
        if cached.is_file():
            with np.load(cached, allow_pickle=False) as stored:
                stored_ids, stored_paths = stored["ids"], stored["paths"].tolist()
            mapped = np.load(cached.with_suffix(".npy"), mmap_mode="r")
            return FileCohort(mapped, stored_ids, stored_paths, kind)

    images: np.ndarray | None = None
    ids: list[str] = []
    for index, path in enumerate(paths):
        patient = None
        if kinds[path] == "2d":
            array, spacing = _read_2d(path)
        elif kinds[path] == "nifti":
            array, spacing = _read_nifti(path)
        else:
            array, spacing, patient = _read_dicom(path)
            if kinds[path] == "dicom2d":
                array, spacing = array[:, 0], spacing[1:]
        image = _levels(_resample(array, spacing, size), window)
        if images is None:
            channels = 3 if kind == "2d" and image.shape[0] == 3 else 1
            shape = (len(paths), channels, *image.shape[1:])
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                images = np.lib.format.open_memmap(
                    cached.with_suffix(".npy.partial"), mode="w+", dtype=np.uint8, shape=shape
                )
            else:
                images = np.empty(shape, dtype=np.uint8)
        if image.shape[0] != images.shape[1]:  # a grey image among RGB ones, or the reverse
            image = (
                image.mean(axis=0, keepdims=True).astype(np.uint8)
                if images.shape[1] == 1
                else np.repeat(image, 3, axis=0)
            )
        if image.shape[1:] != images.shape[2:]:
            raise FileCohortError(
                f"{path}: expected the shape {images.shape[2:]} of {paths[0].name}, got "
                f"{image.shape[1:]}; pass size (--size N) to resample every image"
            )
        images[index] = image
        ids.append(manifest_ids[index] or patient or _stem(path))
    assert images is not None
    id_array = np.asarray(ids, dtype=str)
    files = [str(p) for p in paths]
    if cached is not None and isinstance(images, np.memmap):
        images.flush()
        del images
        os.replace(cached.with_suffix(".npy.partial"), cached.with_suffix(".npy"))
        atomic_write(
            cached, lambda tmp: np.savez(tmp, ids=id_array, paths=np.asarray(files, dtype=str))
        )
        images = np.load(cached.with_suffix(".npy"), mmap_mode="r")
    return FileCohort(images, id_array, files, kind)
