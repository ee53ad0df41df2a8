"""The ``stratify`` command: demo, fit, predict, describe, report and sample.

Every subcommand takes ``--seed``, ``--device``, ``--quiet`` and ``--debug``. Bad input gives
one line on stderr and exit code 2 (a traceback only with ``--debug``); files are written to a
temporary name and renamed, so a failure never leaves a half-written output.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stratify._atomic import atomic_write, check_writable, write_csv, write_text
from stratify._errors import CommandError, error_line
from stratify._optional import MissingDependency

__all__ = ["main"]


# ------------------------------------------------------------------------------ inputs
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


def _read_table(path: str) -> Any:
    import pandas as pd

    file = Path(path)
    if not file.is_file():
        raise CommandError(f"metadata file not found: {file}")
    try:
        return pd.read_csv(file)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as error:
        raise CommandError(
            f"cannot read metadata {file} as a CSV with a header row: "
            f"{type(error).__name__}: {error_line(error)}"
        ) from None


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

    table = _read_table(path)
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
    from stratify.estimator import Stratifier

    return Stratifier.load(path)


# ----------------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from stratify.demo import run_demo

    demo = run_demo(
        args.n_samples,
        args.n_strata,
        args.epochs,
        args.out,
        seed=args.seed,
        device=args.device,
        verbose=not args.quiet,
    )
    if not args.quiet:
        ours, pixels = demo.scores["Stratifier"], demo.scores["pixel PCA + k-means"]
        print(
            f"stratify demo: {args.n_samples} synthetic patients, {args.n_strata} true strata, "
            f"fitted in {demo.seconds:.1f} s\n"
            f"  ARI to the true strata:  Stratifier {ours[0]:.3f}"
            f"   pixel PCA + k-means {pixels[0]:.3f}\n"
            f"  ARI to the scanner site: Stratifier {ours[1]:.3f}"
            f"   pixel PCA + k-means {pixels[1]:.3f}  (a nuisance: lower is better)\n"
            f"  report: {demo.folder.resolve()}"
        )
    return 0


def _window(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise CommandError(f"--window must be LOW,HIGH (two numbers), got {text!r}") from None
    return low, high


def _input(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """IMAGES or ``--medmnist FLAG`` (with --split, --size, --root): images and their ids."""
    if (args.images is None) == (args.medmnist is None):
        raise CommandError("give either IMAGES or --medmnist FLAG, not both or neither")
    if args.medmnist is not None:
        from stratify.data import load_medmnist

        size = 28 if args.size is None else args.size
        return load_medmnist(args.medmnist, args.split, size=size, root=args.root).images, None
    window = _window(getattr(args, "window", None))
    return _read_source(args.images, args.split, args.size, window, getattr(args, "cache", None))


def _input_images(args: argparse.Namespace) -> np.ndarray:
    return _input(args)[0]


def _views(args: argparse.Namespace) -> int:
    out = check_writable(args.out, "--out figure")
    if args.n_images < 1:
        raise CommandError(f"--n-images must be at least 1, got {args.n_images}")
    images = _input_images(args)
    from stratify.data.augment import AugmentParams
    from stratify.plotting import plot_views

    settings = _read_config(args.config).get("augmentation")
    try:
        params = None if settings is None else AugmentParams(**settings)
    except TypeError as error:
        raise CommandError(f"bad augmentation in {args.config}: {error}") from None
    plot_views(images, params, n_images=args.n_images, random_state=args.seed, path=out)
    if not args.quiet:
        print(f"views: {out}")
    return 0


def _fit_params(args: argparse.Namespace) -> dict[str, Any]:
    """The Stratifier's parameters from --config and the flags, checked against its
    constraint table before torch or scikit-learn is imported (an answer in well under 1 s).
    """
    from stratify._constraints import validate_params
    from stratify._params import STRATIFIER_CONSTRAINTS

    params = {"random_state": args.seed, "device": args.device, "verbose": not args.quiet}
    params.update(_read_config(args.config))
    options = {
        "n_clusters": args.n_clusters,
        "model": args.model,
        "clusterer": args.clusterer,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
    }
    params.update({k: v for k, v in options.items() if v is not None})
    if args.checkpoint_dir is not None:
        params["train_config"] = {
            **dict(params.get("train_config") or {}),
            "checkpoint_dir": args.checkpoint_dir,
        }
    if args.resume:
        params["resume"] = True
    unknown = sorted(set(params) - set(STRATIFIER_CONSTRAINTS))
    if unknown:
        raise CommandError(
            f"unknown Stratifier parameter(s) {unknown} in --config; the parameters are "
            f"{sorted(STRATIFIER_CONSTRAINTS)}"
        )
    checked = {name: STRATIFIER_CONSTRAINTS[name] for name in params}
    validate_params(argparse.Namespace(**params), checked, name="Stratifier")
    return params


def _fit(args: argparse.Namespace) -> int:
    out = check_writable(args.out, "--out model file")
    check_writable(out.with_name(out.stem + ".history.csv"), "history file")
    params = _fit_params(args)
    folder = (params.get("train_config") or {}).get("checkpoint_dir")
    if args.resume == "must" and not (folder and (Path(folder) / "last.pt").is_file()):
        where = f"in {folder}" if folder else "to read: no --checkpoint-dir given"
        raise CommandError(f"--resume=must: no checkpoint last.pt {where}; nothing to resume")
    if args.labels is not None and args.metadata is None:
        raise CommandError("--labels names a column of --metadata; give --metadata")
    images, ids = _input(args)
    metadata = labels = None
    if args.id_column is not None:
        if args.metadata is None:
            raise CommandError("--id-column names a column of --metadata; give --metadata")
        aligned, kept = _patients(ids, args.metadata, args.id_column, args.allow_missing)
        images, ids = images[kept], np.asarray(ids)[kept]
        if args.labels is not None:  # one row per kept image, in image order
            labels = _known_labels(aligned, args.labels, args.quiet)
        # one row per patient, indexed by id: the estimator joins it to the images again
        metadata = aligned.drop_duplicates(args.id_column).set_index(args.id_column)
    elif args.metadata is not None and ids is not None:
        raise CommandError(
            "these images carry ids: join the metadata by id with --id-column COLUMN "
            "(rows are never matched by order to image files)"
        )
    else:
        metadata = _read_metadata(args.metadata, len(images))
        if args.labels is not None:
            labels = _known_labels(metadata, args.labels, args.quiet)
    from stratify.estimator import Stratifier  # torch and scikit-learn: after the input checks

    try:
        model = Stratifier(**params)
    except TypeError as error:
        raise CommandError(f"bad config: {error}") from None
    if params.get("resume") and folder and not (Path(folder) / "last.pt").is_file():
        print(f"stratify fit: no checkpoint in {folder} yet: starting a new fit", file=sys.stderr)
    model.fit(images, labels, metadata=metadata, ids=ids)
    from stratify.distributed import is_main_process

    if not is_main_process():  # under torchrun every rank holds the same model; one writes
        return 0
    model.save(out)
    if args.images is not None and _is_file_cohort(args.images):
        # how the files were read: predict reads new files the same way
        settings = {"size": args.size, "window": args.window, "id_column": args.id_column}
        write_text(json.dumps(settings), _source_settings(out))
    history = out.with_name(out.stem + ".history.csv")
    write_csv(model.history_, history, index=False)
    chosen = ""
    if getattr(model, "cluster_selection_", None) is not None:
        from stratify.plotting import plot_k_selection

        figure = out.with_name(out.stem + ".k_selection.png")
        plot_k_selection(model, path=figure)
        chosen = (
            f"\nnumber of strata: {model.n_clusters_}, chosen by "
            f"{model.cluster_selection_['criterion'].iloc[0]} (see {figure})"
        )
    if not args.quiet:
        print(
            f"model: {out}\nhistory: {history}\nstrata sizes: "
            f"{np.bincount(model.labels_[model.labels_ >= 0]).tolist()}{chosen}"
        )
    return 0


def _source_settings(model_path: str | Path) -> Path:
    """The file beside a model that records how its training files were read."""
    path = Path(model_path)
    return path.with_name(path.stem + ".source.json")


def _read_settings(model_path: str | Path) -> dict[str, Any]:
    """How the model's training files were read (``size``, ``window``, ``id_column``)."""
    settings: dict[str, Any] = {"size": None, "window": None, "id_column": None}
    if _source_settings(model_path).is_file():
        settings.update(json.loads(_source_settings(model_path).read_text()))
    return settings


def _predict(args: argparse.Namespace) -> int:
    import pandas as pd

    check_writable(args.out, "--out file")
    settings = _read_settings(args.model)
    size = settings["size"] if args.size is None else args.size
    window = _window(args.window if args.window is not None else settings["window"])
    images, ids = _read_source(args.images, args.split, size, window)
    model = _load_model(args.model)
    latents = model.transform(images)  # embedded once; the clustering space does the rest
    labels = model.clusterer_.predict(latents)
    frame = pd.DataFrame({"stratum": labels})
    proba = model.clusterer_.predict_proba(latents)
    for k in range(proba.shape[1]):
        frame[f"probability_{k}"] = proba[:, k]
    frame["novelty"] = model.clusterer_.novelty_score(latents)
    frame["out_of_distribution"] = model.clusterer_.is_novel(latents)
    if ids is None:
        write_csv(frame, Path(args.out), index_label="sample")
    else:
        from stratify.data.ids import patient_strata

        frame.insert(0, settings["id_column"] or "id", ids)
        if len(set(ids)) < len(ids):  # several images of one patient: one stratum per patient
            frame.insert(2, "patient_stratum", patient_strata(ids, labels, proba))
        write_csv(frame, Path(args.out), index=False)
    if not args.quiet:
        print(f"strata of {len(frame)} samples: {args.out}")
    return 0


def _outcome(text: str | None, metadata: Any) -> tuple[str, str] | None:
    """``--outcome TIME,EVENT``: two columns of the metadata."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if len(names) != 2 or not all(names):
        raise CommandError(f"--outcome must be TIME,EVENT (two column names), got {text!r}")
    missing = [n for n in names if n not in metadata.columns]
    if missing:
        raise CommandError(
            f"--outcome names columns {missing} that the metadata lacks; it has "
            f"{list(metadata.columns)}"
        )
    return names[0], names[1]


def _strata_table(args: argparse.Namespace, model: Any) -> tuple[Any, Any]:
    """The training strata with their metadata (one row per image) and, with ids, one row
    per patient (``patient_stratum``: the most frequent stratum of their images).
    """
    if args.id_column is None:
        metadata = _read_metadata(args.metadata, len(model.labels_))
        return metadata, metadata.assign(stratum=model.labels_)
    from stratify.data.ids import patient_strata

    metadata, _ = _patients(getattr(model, "ids_", None), args.metadata, args.id_column)
    patients = metadata.assign(stratum=patient_strata(model.ids_, model.labels_))
    return metadata, patients.drop_duplicates(args.id_column).reset_index(drop=True)


def _describe(args: argparse.Namespace) -> int:
    from stratify import plotting

    model = _load_model(args.model)
    metadata, patients = _strata_table(args, model)
    outcome = _outcome(args.outcome, metadata)
    if outcome is not None:  # checked before anything is written
        from stratify.survival import survival_by_stratum

        survival = survival_by_stratum(
            patients["stratum"], patients[outcome[0]], patients[outcome[1]]
        )
    profile, tests = model.describe(metadata)
    # a column the strata were trained to follow (a prior, the labels) is no finding
    roles = model.columns_in_training()
    tests["used_in_training"] = tests.index.isin(list(roles))
    tests["training_role"] = [roles.get(c, "none") for c in tests.index]
    out = Path(args.out)
    write_csv(profile, out / "strata_profile.csv")
    write_csv(tests, out / "strata_tests.csv")
    write_csv(patients, out / "strata.csv", index=False)
    if outcome is not None:
        write_csv(survival.curves, out / "survival_curves.csv", index=False)
        write_csv(survival.hazard_ratios, out / "hazard_ratios.csv", index=False)
        write_csv(survival.summary, out / "survival_summary.csv")
        write_text(json.dumps(survival.logrank, indent=2), out / "logrank.json")
        plotting.plot_survival(survival, path=out / "survival.png")
    plotting.plot_latent_space(
        model.clustered_space(),
        model.labels_,
        space_name="clustered space",
        path=out / "latent_space.png",
    )
    plotting.plot_history(
        model.history_, model.objective_.current_weights(), path=out / "training.png"
    )
    if not args.quiet:
        print(tests[["test", "p_value", "p_adjusted"]].to_string())
        if outcome is not None:
            print(
                f"log-rank across strata: chi2 {survival.logrank['statistic']:.2f}, "
                f"p = {survival.logrank['p_value']:.3g}"
            )
        print(f"report: {out.resolve()}")
    return 0


def _report(args: argparse.Namespace) -> int:
    out = check_writable(args.out, "--out report")
    if args.stability_resamples < 0:
        raise CommandError(f"--stability-resamples must be >= 0, got {args.stability_resamples}")
    model = _load_model(args.model)
    metadata = patients = outcome = None
    if args.metadata is not None:
        metadata, patients = _strata_table(args, model)
        outcome = _outcome(args.outcome, metadata)
    elif args.outcome is not None:
        raise CommandError("--outcome names columns of --metadata; give --metadata")
    images = None
    if args.images is not None:
        settings = _read_settings(args.model)
        images, ids = _read_source(
            args.images, "train", settings["size"], _window(settings["window"])
        )
        if len(images) != len(model.labels_) or (
            ids is not None
            and getattr(model, "ids_", None) is not None
            and list(ids) != list(model.ids_)
        ):
            raise CommandError(
                f"--images must be the {len(model.labels_)} training images in training order, "
                f"got {len(images)}"
            )
    from stratify.html_report import write_html_report

    write_html_report(
        model,
        out,
        metadata=metadata,
        patients=patients,
        outcome=outcome,
        images=images,
        stability_resamples=args.stability_resamples,
    )
    if not args.quiet:
        print(f"report: {out.resolve()}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from stratify import plotting

    model = _load_model(args.model)
    images = model.sample(args.n, cluster=args.cluster, random_state=args.seed)
    out = Path(args.out)
    if out.suffix == ".png":
        if len(model.image_shape_) != 3:
            raise CommandError("PNG output is for 2D images; use .npz for volumes")
        shown = images.reshape(len(images), *model.image_shape_)
        label = (
            "synthetic (prior)" if args.cluster is None else f"synthetic, stratum {args.cluster}"
        )
        plotting.plot_image_grid({label: shown}, value_range=model.data_range_, path=out)
    elif out.suffix == ".npz":
        atomic_write(out, lambda tmp: np.savez_compressed(tmp, images=images))
    else:
        raise CommandError(f"--out must end in .npz or .png, got {out.name}")
    if not args.quiet:
        print(f"{args.n} samples: {out}")
    return 0


# ------------------------------------------------------------------------------ parsing
def _int_or_auto(value: str) -> int | str:
    """``--n-clusters``, ``--epochs``: an int or "auto" (the Stratifier checks the range)."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'auto', got {value!r}") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--quiet", action="store_true", help="print nothing, no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stratify",
        description="Patient stratification from medical images.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str, example: str, func: Callable) -> argparse.ArgumentParser:
        command = sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.set_defaults(func=func)
        return command

    demo = add(
        "demo",
        "stratify the built-in synthetic cohort (no download) and write a report",
        "stratify demo --n-samples 600 --out stratify_demo",
        _demo,
    )
    demo.add_argument("--n-samples", type=int, default=600, help="patients (default 600)")
    demo.add_argument("--n-strata", type=int, default=3, help="true strata (default 3)")
    demo.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    demo.add_argument("--out", default="stratify_demo", help="report folder")

    fit = add(
        "fit",
        "fit a Stratifier on images and save it",
        "stratify fit images.npz --metadata meta.csv --config cfg.json --out model.pt\n"
        "  stratify fit --medmnist pneumoniamnist --split train --out model.pt",
        _fit,
    )
    views = add(
        "views",
        "draw the two contrastive views the augmentation makes of a few "
        "images (check they keep what tells the classes apart)",
        "stratify views --medmnist pneumoniamnist --out views.png",
        _views,
    )
    for command in (fit, views):
        command.add_argument(
            "images",
            nargs="?",
            help="a folder of image files (PNG/JPEG/TIFF, NIfTI, DICOM series; searched "
            "recursively), a manifest .csv with a 'path' column, a .npy, or an .npz with "
            "'images' (and 'ids') or the MedMNIST layout",
        )
        command.add_argument("--medmnist", metavar="FLAG", help="a MedMNIST flag instead of IMAGES")
        command.add_argument(
            "--split", default="train", help="split of a MedMNIST file (default train)"
        )
        command.add_argument(
            "--size",
            type=int,
            default=None,
            help="image files: resample to N x N (x N); --medmnist: 28 (default), 64, 128, "
            "224 (3D: 28, 64)",
        )
        command.add_argument(
            "--window",
            help="image files: intensity window LOW,HIGH (e.g. HU for CT); default: each "
            "image clipped to its 0.5-99.5 percentiles",
        )
        command.add_argument(
            "--cache", help="image files: folder for the memory-mapped resampled images"
        )
        command.add_argument(
            "--root",
            help="folder holding the --medmnist file (searched "
            "before $STRATIFY_DATA and ~/.medmnist)",
        )
        command.add_argument(
            "--config",
            help="JSON (or YAML) file of Stratifier parameters"
            + ("" if command is fit else " (its 'augmentation' mapping: AugmentParams fields)"),
        )
    views.add_argument("--n-images", type=int, default=8, help="images drawn (default 8)")
    views.add_argument("--out", required=True, help="figure to write (.png)")
    fit.add_argument(
        "--metadata",
        help="CSV: one row per patient joined by --id-column, or (arrays without ids) one row "
        "per image in order",
    )
    fit.add_argument(
        "--id-column",
        help="the metadata column of patient ids (image ids: file names without extensions, "
        "the manifest's 'id', DICOM PatientID)",
    )
    fit.add_argument(
        "--allow-missing",
        action="store_true",
        help="drop images without a metadata row and rows without an image (with a warning)",
    )
    fit.add_argument("--out", required=True, help="model file to write")
    fit.add_argument(
        "--labels",
        metavar="COLUMN",
        help="a --metadata column of known classes, blank where unknown: they steer the "
        "training (supervised-contrastive positives) and anchor the strata",
    )
    fit.add_argument("--n-clusters", type=_int_or_auto, help="number of strata, or 'auto'")
    fit.add_argument("--model", choices=["ae", "vae"], help="autoencoder kind (default ae)")
    from stratify.cluster.backends import BACKENDS, DEFAULT_BACKEND  # no scikit-learn import

    fit.add_argument(
        "--clusterer",
        help=", ".join(
            f"{name} (default)" if name == DEFAULT_BACKEND else name for name in BACKENDS
        ),
    )
    fit.add_argument(
        "--epochs",
        type=_int_or_auto,
        help="training epochs, or 'auto' (the default: ceil(256000 / N) epochs for N images)",
    )
    fit.add_argument(
        "--batch-size", type=int, help="batch size (default: as many as fit in memory, at most 256)"
    )
    fit.add_argument(
        "--checkpoint-dir",
        help="folder for the training checkpoint (last.pt, written after every epoch)",
    )
    fit.add_argument(
        "--resume",
        nargs="?",
        const="fresh",
        choices=("fresh", "must"),
        default=None,
        help="continue the interrupted fit whose checkpoint is in --checkpoint-dir; with no "
        "checkpoint there, plain --resume says so and starts a new fit, --resume=must refuses",
    )

    predict = add(
        "predict",
        "assign images to the strata of a saved model",
        "stratify predict model.pt new_images.npz --out strata.csv",
        _predict,
    )
    predict.add_argument("model")
    predict.add_argument("images", help="as for fit (files are read as they were for the fit)")
    predict.add_argument("--split", default="test", help="split of a MedMNIST file (default test)")
    predict.add_argument("--size", type=int, default=None, help="override the fit's --size")
    predict.add_argument("--window", help="override the fit's --window")
    predict.add_argument("--out", required=True, help="CSV to write")

    describe = add(
        "describe",
        "profile the strata of a saved model on metadata",
        "stratify describe model.pt --metadata meta.csv --out report/",
        _describe,
    )
    describe.add_argument("model")
    describe.add_argument(
        "--metadata",
        required=True,
        help="CSV: one row per patient with --id-column, else one row per training image",
    )
    describe.add_argument("--out", required=True, help="folder to write")

    report = add(
        "report",
        "write one self-contained HTML report of a saved model to share",
        "stratify report model.pt --metadata table.csv --id-column patient_id "
        "--outcome time,event --out report.html",
        _report,
    )
    report.add_argument("model")
    report.add_argument("--metadata", help="CSV, as for describe")
    report.add_argument("--images", help="the training images, for real examples per stratum")
    report.add_argument("--out", required=True, help="the .html file to write")
    report.add_argument(
        "--stability-resamples",
        type=int,
        default=10,
        help="subsamples the clustering is refitted on for the per-stratum and per-patient "
        "stability section (default 10; 0 leaves it out)",
    )
    for command in (describe, report):
        command.add_argument("--id-column", help="the metadata column of patient ids")
        command.add_argument(
            "--outcome",
            metavar="TIME,EVENT",
            help="survival columns: Kaplan-Meier per stratum, log-rank test, Cox hazard ratios",
        )

    sample = add(
        "sample",
        "generate images from a saved model",
        "stratify sample model.pt --n 16 --cluster 0 --out samples.png",
        _sample,
    )
    sample.add_argument("model")
    sample.add_argument("--n", type=int, default=16, help="number of images (default 16)")
    sample.add_argument("--cluster", type=int, default=None, help="stratum to sample from")
    sample.add_argument("--out", required=True, help=".npz or .png to write")

    for command in (demo, fit, views, predict, describe, report, sample):
        _common(command)
    # Listed here for ``stratify --help``; its arguments are the runner's own (see main).
    sub.add_parser(
        "benchmark", add_help=False, help="run the benchmark grid (see stratify benchmark --help)"
    )
    return parser


def _interrupted(args: argparse.Namespace, argv: list[str]) -> str:
    """What an interrupted command left behind, and how to continue it."""
    folder = getattr(args, "checkpoint_dir", None)
    if args.command == "fit" and folder is None:
        config = _read_config(args.config) if args.config else {}
        folder = (config.get("train_config") or {}).get("checkpoint_dir")
    checkpoint = Path(folder) / "last.pt" if folder else None
    if checkpoint is None or not checkpoint.is_file():
        return "no partial output was written"
    from stratify.training.checkpoint import load_checkpoint

    epoch = load_checkpoint(checkpoint)["epoch"]
    command = " ".join(["stratify", *argv, *([] if "--resume" in argv else ["--resume"])])
    return f"progress saved in {checkpoint} (epoch {epoch}); continue with: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``stratify`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["benchmark"]:
        from stratify.benchmark import main as benchmark

        return benchmark(argv[1:], prog="stratify benchmark")
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"stratify {args.command}: interrupted; {_interrupted(args, argv)}", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, OSError, KeyError, MissingDependency) as error:
        if args.debug:
            raise
        print(f"stratify {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
