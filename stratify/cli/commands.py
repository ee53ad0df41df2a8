"""The command line's commands: demo, fit, views, predict, describe, report and sample.

Each takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from stratify._atomic import atomic_write, check_writable, write_csv, write_text
from stratify._errors import CommandError
from stratify.cli.inputs import (
    _checkpoints,
    _is_file_cohort,
    _known_labels,
    _load_model,
    _patients,
    _read_config,
    _read_metadata,
    _read_source,
    _read_table,
    check_model_file,
)


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
    from stratify.analysis.plotting import plot_views
    from stratify.data.augment import AugmentParams

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
    from stratify._params import REMOVED_PARAMETERS, STRATIFIER_CONSTRAINTS, removed_message

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
        params["train_config"] = {**dict(params.get("train_config") or {}), "resume": True}
    unknown = sorted(set(params) - set(STRATIFIER_CONSTRAINTS))
    if unknown:
        removed = [name for name in unknown if name in REMOVED_PARAMETERS]
        if removed:
            raise CommandError(f"--config: {removed_message(removed[0])}")
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
    if args.resume == "must" and not _checkpoints(folder):
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
    if args.resume and folder and not _checkpoints(folder):
        print(f"stratify fit: no checkpoint in {folder} yet: starting a new fit", file=sys.stderr)
    model.fit(images, labels, metadata=metadata, ids=ids)
    from stratify.distributed import is_main_process

    if not is_main_process():  # under torchrun every rank holds the same model; one writes
        return 0
    model.save(out)
    if args.images is not None and _is_file_cohort(args.images):
        # how the files were read: predict reads new files the same way
        settings = {
            "size": args.size,
            "window": args.window,
            "id_column": args.id_column,
            "dims": len(model.image_shape_) - 1,
        }
        write_text(json.dumps(settings), _source_settings(out))
    history = out.with_name(out.stem + ".history.csv")
    write_csv(model.history_, history, index=False)
    chosen = ""
    if getattr(model, "cluster_selection_", None) is not None:
        from stratify.analysis.plotting import plot_k_selection

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
    check_model_file(args.model)
    if not Path(args.images).exists():
        raise CommandError(f"images not found: {args.images}")
    settings = _read_settings(args.model)
    if settings.get("dims") is not None and _is_file_cohort(args.images):
        from stratify.data.files import cohort_dimensions

        found = cohort_dimensions(args.images)
        if found != settings["dims"]:
            kinds = {2: "2D images", 3: "3D volumes"}
            raise CommandError(
                f"the model was fitted on {kinds[settings['dims']]}, but {args.images} holds "
                f"{kinds[found]}: predict them with a model fitted on {kinds[found]}"
            )
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


def _id_column(args: argparse.Namespace, model: Any) -> str | None:
    """How ``describe`` and ``report`` join the table: by the id column (``--id-column``, or
    the one recorded when the model was fitted), or, for a model fitted without ids, by row.
    """
    fitted_with_ids = getattr(model, "ids_", None) is not None
    if not fitted_with_ids:
        if args.id_column is not None:
            raise CommandError(
                f"--id-column {args.id_column}: the model was fitted without patient ids, so "
                "the table's rows are matched to its images in order; leave out --id-column"
            )
        return None
    column = args.id_column or _read_settings(args.model)["id_column"]
    if column is None:
        raise CommandError(
            "the model was fitted with patient ids: name the table's id column with "
            "--id-column COLUMN (rows are never matched by order to a model fitted with ids)"
        )
    return column


def _strata_table(args: argparse.Namespace, model: Any) -> tuple[Any, Any]:
    """The training strata with their metadata (one row per image) and, with ids, one row
    per patient (``patient_stratum``: the most frequent stratum of their images).
    """
    column = _id_column(args, model)
    if column is None:
        metadata = _read_metadata(args.metadata, len(model.labels_))
        return metadata, metadata.assign(stratum=model.labels_)
    from stratify.data.ids import patient_strata

    metadata, _ = _patients(model.ids_, args.metadata, column)
    patients = metadata.assign(stratum=patient_strata(model.ids_, model.labels_))
    return metadata, patients.drop_duplicates(column).reset_index(drop=True)


def _check_first(args: argparse.Namespace) -> None:
    """What ``describe`` and ``report`` can refuse before torch is imported (a second)."""
    check_model_file(args.model)
    if getattr(args, "metadata", None) is None:
        if args.outcome is not None:
            raise CommandError("--outcome names columns of --metadata; give --metadata")
        return
    table = _read_table(args.metadata, args.id_column)  # named errors: encoding, delimiter
    if args.id_column is not None and args.id_column not in table.columns:
        raise CommandError(
            f"--id-column {args.id_column!r} is not a column of {Path(args.metadata).name}; "
            f"it has {list(table.columns)}"
        )
    _outcome(args.outcome, table)


def _describe(args: argparse.Namespace) -> int:
    from stratify.analysis import plotting

    _check_first(args)
    model = _load_model(args.model)
    metadata, patients = _strata_table(args, model)
    outcome = _outcome(args.outcome, metadata)
    if outcome is not None:  # checked before anything is written
        from stratify.analysis.survival import survival_by_stratum

        survival = survival_by_stratum(
            patients["stratum"], patients[outcome[0]], patients[outcome[1]]
        )
    profile, tests = model.describe(metadata, outcome=outcome)
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
    _check_first(args)
    model = _load_model(args.model)
    metadata = patients = outcome = None
    if args.metadata is not None:
        metadata, patients = _strata_table(args, model)
        outcome = _outcome(args.outcome, metadata)
    elif args.outcome is not None:
        raise CommandError("--outcome names columns of --metadata; give --metadata")
    images = None
    settings = _read_settings(args.model)
    inputs = f"{len(model.labels_)} training images"
    if getattr(model, "ids_", None) is not None:
        inputs += f" of {len(set(model.ids_))} patients"
    if settings["size"] is not None or settings["window"] is not None:
        inputs += f", read at size {settings['size']} with window {settings['window']}"
    if args.images is not None:
        inputs = f"{args.images}: {inputs}"
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
    from stratify.analysis.html_report import write_html_report

    write_html_report(
        model,
        out,
        metadata=metadata,
        patients=patients,
        outcome=outcome,
        images=images,
        stability_resamples=args.stability_resamples,
        inputs=inputs,
        time_unit=args.time_unit,
    )
    if not args.quiet:
        print(f"report: {out.resolve()}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from stratify.analysis import plotting

    if Path(args.out).suffix not in (".png", ".npz"):
        raise CommandError(f"--out must end in .npz or .png, got {Path(args.out).name}")
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
