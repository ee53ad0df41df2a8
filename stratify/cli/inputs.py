"""The command line's inputs: images, tables, ids, labels, configs and saved models.

Each reader checks what it reads and raises one-line errors (:class:`~stratify._errors.
CommandError`) naming the file, what was expected and what was got.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stratify._errors import CommandError, error_line


def _channel_first(images: np.ndarray) -> np.ndarray:
    """MedMNIST's storage layout -> channel-first: (N,H,W,3) -> (N,3,H,W); (N,D,H,W) volumes
    -> (N,1,D,H,W); (N,H,W) stays (the estimator adds the channel).
    """
    if images.ndim == 4 and images.shape[-1] == 3:
        return np.ascontiguousarray(np.moveaxis(images, -1, 1))
    if images.ndim == 4:
        return images[:, None]
    return images


def _read_images(path: str, split: str) -> np.ndarray:
    """Images from a .npy array, an .npz with an ``images`` array, or a MedMNIST .npz."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"image file not found: {file}")
    try:
        if file.suffix == ".npy":
            return np.load(file, allow_pickle=False)
        if file.suffix != ".npz":
            raise CommandError(f"expected a .npy or .npz image file, got {file.name}")
        with np.load(file, allow_pickle=False) as archive:
            if "images" in archive.files:
                return archive["images"]
            key = f"{split}_images"
            if key in archive.files:
                return _channel_first(archive[key])
            raise CommandError(
                f"{file.name} has neither an 'images' array nor '{key}' (MedMNIST layout); "
                f"it holds {sorted(archive.files)}"
            )
    except CommandError:
        raise
    except Exception as error:  # truncated zip, empty file, bad header, pickled objects, ...
        raise CommandError(
            f"cannot read images from {file} (a truncated or corrupted file?): "
            f"{type(error).__name__}: {error_line(error)}"
        ) from None


def _is_file_cohort(path: str) -> bool:
    """A folder of image files or a manifest CSV (not an array file)."""
    return Path(path).is_dir() or Path(path).suffix.lower() == ".csv"


def _read_source(
    path: str, split: str, size: int | None = None, window: Any = None, cache: Any = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Images and their ids (None for arrays without an ``ids`` entry)."""
    if _is_file_cohort(path):
        from stratify.data.files import read_cohort

        cohort = read_cohort(path, size=size, window=window, cache=cache)
        return cohort.images, cohort.ids
    images = _read_images(path, split)
    ids = None
    if Path(path).suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            ids = archive["ids"].astype(str) if "ids" in archive.files else None
    return images, ids


def _read_table(path: str, id_column: str | None = None) -> Any:
    """A CSV table with a header row; ``id_column`` is read as text (``001`` stays ``001``)
    and stripped. Encoding and delimiter problems are named with their fix.
    """
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"metadata file not found: {file}")
    try:
        table = pd.read_csv(file, dtype=None if id_column is None else {id_column: str})
    except UnicodeDecodeError as error:
        raise CommandError(
            f"metadata {file.name} is not UTF-8 text (byte 0x{error.object[error.start]:02x} at "
            f"position {error.start}); save it as UTF-8 (Excel: 'CSV UTF-8'; or iconv -f "
            "cp1252 -t utf-8)"
        ) from None
    except (ValueError, pd.errors.ParserError) as error:
        raise CommandError(
            f"cannot read metadata {file} as a CSV with a header row: "
            f"{type(error).__name__}: {error_line(error)}"
        ) from None
    if len(table.columns) == 1:
        (header,) = table.columns
        for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "bar")):
            if delimiter in str(header):
                raise CommandError(
                    f"metadata {file.name} has one column {str(header)[:60]!r}: it looks "
                    f"{name}-separated; save it comma-separated (stratify reads CSV with commas)"
                )
    if id_column is not None and id_column in table.columns:
        table[id_column] = table[id_column].str.strip()
    return table


def check_model_file(path: str) -> None:
    """Refuse at once what cannot be a saved model (before torch is imported): no file, or
    a file that is not a torch archive.
    """
    import zipfile

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"model file not found: {file}")
    if not zipfile.is_zipfile(file):
        raise CommandError(
            f"{file} is not a stratify model file (expected the .pt that stratify fit or "
            "Stratifier.save wrote; this file is not a torch archive)"
        )


def _patients(
    ids: Any, path: str, id_column: str, allow_missing: bool = False
) -> tuple[Any, np.ndarray]:
    """The table at ``path`` joined to the image ``ids`` by ``id_column``: (rows, kept)."""
    if ids is None:
        raise CommandError(
            f"--id-column {id_column} needs image ids: give a folder of image files, a manifest "
            "CSV, or an .npz with an 'ids' array"
        )
    from stratify.data.ids import align_metadata

    table = _read_table(path, id_column)
    try:
        return align_metadata(ids, table, id_column=id_column, allow_missing=allow_missing)
    except ValueError as error:
        raise CommandError(f"metadata {Path(path).name}: {error_line(error)}") from None


def _known_labels(frame: Any, column: str, quiet: bool) -> Any:
    """``--labels COLUMN``: one class per image, -1 where the cell is blank, as a Series
    named ``COLUMN`` (the model keeps the name, so ``describe`` marks the column). Integer
    codes are kept; text classes are coded 0..C-1 in sorted order (the mapping is printed).
    """
    import pandas as pd

    if column not in frame.columns:
        raise CommandError(
            f"--labels names the column {column!r} that the metadata lacks; it has "
            f"{list(frame.columns)}"
        )
    values = frame[column].reset_index(drop=True)
    known = values.notna() & (values.astype(str).str.strip() != "")
    if known.all():
        raise CommandError(
            f"--labels column {column!r} has a class for every image: it is for few known "
            "labels, blank where unknown (the strata would only repeat a complete column)"
        )
    labels = np.full(len(values), -1, dtype=np.int64)
    if pd.api.types.is_numeric_dtype(values):
        codes = values[known].to_numpy(dtype=float)
        bad = codes[codes != np.round(codes)]
        if bad.size:
            raise CommandError(
                f"--labels column {column!r} must hold integer classes (blank = unknown), got "
                f"non-integer values such as {bad[0]:g}"
            )
        labels[known.to_numpy()] = codes.astype(np.int64)
        return pd.Series(labels, name=column)
    names = sorted(values[known].astype(str).str.strip().unique())
    code = {name: i for i, name in enumerate(names)}
    labels[known.to_numpy()] = [code[v] for v in values[known].astype(str).str.strip()]
    if not quiet:
        mapping = ", ".join(f"{i} = {name}" for name, i in code.items())
        print(f"stratify fit: --labels {column}: classes {mapping}", file=sys.stderr)
    return pd.Series(labels, name=column)


def _read_metadata(path: str | None, n_samples: int) -> Any:
    if path is None:
        return None
    file = Path(path)
    frame = _read_table(path)
    from stratify._validation import check_metadata

    try:
        return check_metadata(frame, n_samples, name=f"metadata {file.name}")
    except ValueError as error:
        raise CommandError(error_line(error)) from None


def _read_config(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"config file not found: {file}")
    text = file.read_text(encoding="utf-8")
    if file.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise CommandError(
                "reading a YAML config needs PyYAML (pip install pyyaml); "
                "or write the config as JSON"
            ) from None
        config = yaml.safe_load(text)
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise CommandError(f"config {file.name} is not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise CommandError(f"config {file.name} must hold a mapping of Stratifier parameters")
    return config


def _load_model(path: str) -> Any:
    check_model_file(path)
    from stratify.estimator import Stratifier

    return Stratifier.load(path)


def _checkpoints(folder: str | Path | None) -> list[Path]:
    """The checkpoints a fit keeps in ``folder`` (read without importing torch): its own
    ``last.pt``, and with several networks each network's ``network<j>/last.pt``, in
    training order. Empty for None or a folder without any.
    """
    if folder is None:
        return []
    root = Path(folder)
    nested = sorted(
        root.glob("network*/last.pt"), key=lambda p: int(p.parent.name[len("network") :] or 0)
    )
    return [p for p in [root / "last.pt", *nested] if p.is_file()]
