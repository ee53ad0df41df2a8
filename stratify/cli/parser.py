"""The command line's parser: every subcommand, its arguments and an example."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from stratify.cli.commands import (
    _demo,
    _describe,
    _fit,
    _predict,
    _report,
    _sample,
    _views,
)


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
        help="training epochs, or 'auto' (the default: about 51,200 samples of 28 x 28 values "
        "seen, fewer for larger images)",
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
    report.add_argument(
        "--images",
        help="the training images: real examples per stratum, and the check that decides "
        "whether synthetic ones are shown",
    )
    report.add_argument(
        "--time-unit",
        default="time units",
        help="what the --outcome times count, for the report's labels (e.g. days, months)",
    )
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
    return parser
