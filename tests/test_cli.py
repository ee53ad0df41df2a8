"""The `stratify` command line, end to end in temporary folders."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stratify import Stratifier, make_cohort
from stratify.cli import main

FAST = ["--quiet", "--seed", "0"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small cohort on disk, and a model fitted on it through `stratify fit`."""
    folder = tmp_path_factory.mktemp("cli")
    images, strata, metadata = make_cohort(96, random_state=0)
    np.savez(folder / "images.npz", images=images)
    np.save(folder / "images.npy", images)
    metadata.to_csv(folder / "metadata.csv", index=False)
    config = {
        "n_clusters": 3,
        "latent_dim": 8,
        "width": 4,
        "epochs": 2,
        "batch_size": 32,
        "clusterer": "gmm",
    }
    (folder / "config.json").write_text(json.dumps(config))
    code = main(
        [
            "fit",
            str(folder / "images.npz"),
            "--metadata",
            str(folder / "metadata.csv"),
            "--config",
            str(folder / "config.json"),
            "--out",
            str(folder / "model.pt"),
            *FAST,
        ]
    )
    assert code == 0
    return folder, images, strata


def test_demo_writes_a_report_and_recovers_the_strata(tmp_path, capsys):
    # the demo's own size (600 patients, 15 epochs): on 300 patients after 10 epochs the
    # default consensus merges two strata at this seed (ARI 0.66; recorded in the README)
    out = tmp_path / "report"
    assert main(["demo", "--seed", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ari = float(re.search(r"ARI to the true strata:  Stratifier (-?[\d.]+)", printed).group(1))
    assert ari > 0.8
    assert str(out.resolve()) in printed
    names = {p.name for p in out.iterdir()}
    assert names == {
        "summary.md",
        "strata_profile.csv",
        "strata_tests.csv",
        "latent_space.png",
        "samples.png",
        "training.png",
        "model.pt",
    }
    tests = pd.read_csv(out / "strata_tests.csv", index_col=0)
    assert tests.loc["true_stratum", "p_value"] < 1e-10
    summary = (out / "summary.md").read_text()
    assert f"| Stratifier | {ari:.3f} |" in summary
    # the prior's column is marked where the strata are described, in every route
    assert "| age (used in training: prior) |" in summary
    assert tests.loc["age", "training_role"] == "prior" and tests.loc["age", "used_in_training"]


def test_fit_writes_model_and_history(files):
    folder, images, _ = files
    model = Stratifier.load(folder / "model.pt")
    assert model.get_params()["clusterer"] == "gmm" and model.get_params()["epochs"] == 2
    history = pd.read_csv(folder / "model.history.csv")
    assert list(history["epoch"]) == [1, 2]
    np.testing.assert_array_equal(model.predict(images), model.labels_)


def test_predict_writes_strata_and_probabilities(files, tmp_path):
    folder, images, _ = files
    out = tmp_path / "strata.csv"
    assert (
        main(
            [
                "predict",
                str(folder / "model.pt"),
                str(folder / "images.npy"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    frame = pd.read_csv(out, index_col="sample")
    model = Stratifier.load(folder / "model.pt")
    np.testing.assert_array_equal(frame["stratum"], model.predict(images))
    proba = frame[[f"probability_{k}" for k in range(3)]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(frame["novelty"], model.novelty_score(images), rtol=1e-6)
    np.testing.assert_array_equal(frame["out_of_distribution"], model.is_novel(images))


def test_describe_writes_tables_and_figures(files, tmp_path):
    folder, _, _ = files
    out = tmp_path / "described"
    assert (
        main(
            [
                "describe",
                str(folder / "model.pt"),
                "--metadata",
                str(folder / "metadata.csv"),
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    tests = pd.read_csv(out / "strata_tests.csv", index_col=0)
    assert set(tests.index) == {"age", "site", "weak_label"}
    assert (out / "latent_space.png").stat().st_size > 1000


@pytest.mark.parametrize("suffix", [".npz", ".png"])
def test_sample_writes_images(files, tmp_path, suffix):
    folder, _, _ = files
    out = tmp_path / f"samples{suffix}"
    assert (
        main(
            [
                "sample",
                str(folder / "model.pt"),
                "--n",
                "4",
                "--cluster",
                "1",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    if suffix == ".npz":
        with np.load(out) as archive:
            assert archive["images"].shape == (4, 1, 28, 28)
    else:
        assert out.read_bytes()[:4] == b"\x89PNG"


def test_every_subcommand_has_help_with_an_example(capsys):
    for command in ("demo", "fit", "predict", "describe", "sample"):
        with pytest.raises(SystemExit) as excinfo:
            main([command, "--help"])
        assert excinfo.value.code == 0
        text = capsys.readouterr().out
        assert "example:" in text and "--seed" in text and "--device" in text


def _fails(argv, capsys, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert re.search(pattern, err), err


def test_error_paths_are_one_line_with_exit_code_2(files, tmp_path, capsys):
    folder, _, _ = files
    model = str(folder / "model.pt")
    _fails(
        ["fit", str(tmp_path / "none.npz"), "--out", str(tmp_path / "m.pt"), *FAST],
        capsys,
        "image file not found",
    )
    np.save(tmp_path / "flat.npy", np.zeros((4, 10), np.uint8))
    _fails(
        ["predict", model, str(tmp_path / "flat.npy"), "--out", str(tmp_path / "s.csv"), *FAST],
        capsys,
        "X has 10 features, but Stratifier is expecting 784",
    )
    short = tmp_path / "short.csv"
    pd.DataFrame({"age": [1.0, 2.0]}).to_csv(short, index=False)
    _fails(
        ["describe", model, "--metadata", str(short), "--out", str(tmp_path / "d"), *FAST],
        capsys,
        r"one row per sample \(96 rows\), got 2 rows",
    )
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model")
    _fails(
        ["sample", str(garbage), "--out", str(tmp_path / "s.npz"), *FAST],
        capsys,
        r"is not a stratify model file \(expected the .pt that stratify fit",
    )
    _fails(["fit", "--out", str(tmp_path / "m.pt"), *FAST], capsys, "either IMAGES or --medmnist")
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"n_clusterz": 3}')
    _fails(
        [
            "fit",
            str(folder / "images.npz"),
            "--config",
            str(bad_config),
            "--out",
            str(tmp_path / "m.pt"),
            *FAST,
        ],
        capsys,
        r"unknown Stratifier parameter\(s\) \[.n_clusterz.\] in --config",
    )
    _fails(["demo", "--n-samples", "0", *FAST], capsys, "'n_samples' parameter of make_cohort")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "s.csv").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="n_samples"):
        main(["demo", "--n-samples", "0", "--debug", "--quiet"])


def test_a_failed_write_keeps_the_previous_output(files, tmp_path, monkeypatch, capsys):
    folder, _, _ = files
    out = tmp_path / "strata.csv"
    out.write_text("previous results\n")

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    _fails(
        ["predict", str(folder / "model.pt"), str(folder / "images.npz"), "--out", str(out), *FAST],
        capsys,
        "disk full",
    )
    assert out.read_text() == "previous results\n"
    assert [p.name for p in tmp_path.iterdir()] == ["strata.csv"]


def test_unknown_subcommand_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["nonsense"])
    assert excinfo.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_out_naming_a_directory_fails_before_training(files, tmp_path, capsys, monkeypatch):
    folder, _, _ = files
    trained = []
    monkeypatch.setattr(Stratifier, "fit", lambda self, *a, **k: trained.append(1))
    code = main(["fit", str(folder / "images.npy"), "--out", str(tmp_path), *FAST])
    assert code == 2 and not trained
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert f"the --out model file {str(tmp_path)!r} is an existing directory" in err


def test_saving_a_model_to_a_directory_names_the_problem(files):
    folder, _, _ = files
    model = Stratifier.load(folder / "model.pt")
    with pytest.raises(IsADirectoryError, match=r"'\.' is an existing directory; give a file"):
        model.save(".")


def test_common_parameters_on_the_command_line_override_the_config(files, tmp_path):
    folder, _, _ = files
    out = tmp_path / "cli.pt"
    assert (
        main(
            [
                "fit",
                str(folder / "images.npy"),
                "--config",
                str(folder / "config.json"),
                "--epochs",
                "1",
                "--n-clusters",
                "2",
                "--clusterer",
                "kmeans",
                "--model",
                "vae",
                "--batch-size",
                "48",
                "--out",
                str(out),
                *FAST,
            ]
        )
        == 0
    )
    params = Stratifier.load(out).get_params()
    assert (
        params["epochs"],
        params["n_clusters"],
        params["clusterer"],
        params["model"],
        params["batch_size"],
    ) == (1, 2, "kmeans", "vae", 48)


def test_ctrl_c_ends_with_one_line(files, tmp_path, capsys, monkeypatch):
    folder, _, _ = files

    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Stratifier, "fit", interrupt)
    code = main(["fit", str(folder / "images.npy"), "--out", str(tmp_path / "m.pt"), *FAST])
    assert code == 130
    assert capsys.readouterr().err == ("stratify fit: interrupted; no partial output was written\n")
    assert not (tmp_path / "m.pt").exists()


def test_written_files_honour_the_umask(files, tmp_path):
    import os
    import stat

    from stratify._atomic import write_text

    old = os.umask(0o022)
    try:
        path = write_text("x", tmp_path / "report.md")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.chmod(path, 0o640)  # a file that exists keeps its mode
        write_text("y", path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        os.umask(0o077)
        assert stat.S_IMODE(write_text("z", tmp_path / "private.md").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_broken_files_give_one_line_before_training(files, tmp_path, capsys, monkeypatch):
    folder, _, _ = files
    trained = []
    monkeypatch.setattr(Stratifier, "fit", lambda self, *a, **k: trained.append(1))
    good = (folder / "images.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(good[: len(good) // 2])
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    cases = [
        (
            ["fit", str(tmp_path / "truncated.npz")],
            r"cannot read images from .*truncated\.npz \(a truncated or corrupted file\?\): "
            r"BadZipFile",
        ),
        (["fit", str(tmp_path / "empty.npy")], r"cannot read images from .*empty\.npy .*EOFError"),
        (
            ["fit", str(folder / "images.npy"), "--metadata", str(tmp_path / "garbage.csv")],
            r"metadata garbage\.csv is not UTF-8 text \(byte 0x80 at position 128\); save it",
        ),
    ]
    for argv, pattern in cases:
        assert main([*argv, "--out", str(tmp_path / "m.pt"), *FAST]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and re.search(pattern, err), err
    assert (
        main(
            [
                "predict",
                str(folder / "model.pt"),
                str(tmp_path / "truncated.npz"),
                "--out",
                str(tmp_path / "s.csv"),
                *FAST,
            ]
        )
        == 2
    )
    assert "BadZipFile" in capsys.readouterr().err
    assert not trained


def test_ctrl_c_names_the_checkpoint_and_fit_resume_continues(files, tmp_path, capsys, monkeypatch):
    folder, _, _ = files
    from stratify.training import trainer

    original = trainer.Trainer.train_epoch

    def stop_at_two(self, data, epoch, total_steps):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, data, epoch, total_steps)

    checkpoints, out = tmp_path / "ckpt", tmp_path / "m.pt"
    argv = [
        "fit",
        str(folder / "images.npy"),
        "--config",
        str(folder / "config.json"),
        "--checkpoint-dir",
        str(checkpoints),
        "--out",
        str(out),
        *FAST,
    ]
    with monkeypatch.context() as patch:
        patch.setattr(trainer.Trainer, "train_epoch", stop_at_two)
        assert main(argv) == 130
    err = capsys.readouterr().err
    assert err == (
        f"stratify fit: interrupted; progress saved in {checkpoints / 'last.pt'} "
        f"(epoch 1); continue with: stratify {' '.join(argv)} --resume\n"
    )
    assert not out.exists()
    assert main(argv) == 2  # a plain re-run must not destroy the saved progress
    assert "holds the checkpoint of an earlier fit (epoch 1 of 2)" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    reference = tmp_path / "reference.pt"
    assert (
        main(
            [
                "fit",
                str(folder / "images.npy"),
                "--config",
                str(folder / "config.json"),
                "--out",
                str(reference),
                *FAST,
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        Stratifier.load(out).embedding_, Stratifier.load(reference).embedding_
    )


# ------------------------------------------------------------------ start-up and --size/--root


@pytest.mark.parametrize(
    "statement", ["import stratify", "import stratify.cli", "import stratify; stratify.__version__"]
)
def test_the_command_starts_without_the_heavy_libraries(statement):
    import subprocess
    import sys

    code = (
        f"{statement}; import sys; "
        "print(sorted(m for m in ('torch', 'sklearn', 'pandas', 'seaborn', 'hdbscan', "
        "'umap', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_lazy_names_resolve_and_unknown_ones_fail():
    import stratify
    from stratify.estimator import Stratifier as Direct

    assert stratify.Stratifier is Direct
    assert "Stratifier" in dir(stratify) and "analysis" in dir(stratify)
    assert stratify.analysis.metrics.cluster_accuracy is not None
    with pytest.raises(AttributeError, match="module 'stratify' has no attribute 'nope'"):
        stratify.nope  # noqa: B018


def test_fit_reads_medmnist_at_a_size_from_root(tmp_path, monkeypatch, capsys):
    import copy
    import hashlib

    from stratify.data import medmnist

    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)
    rng = np.random.default_rng(0)
    path = tmp_path / "breastmnist_64.npz"
    np.savez_compressed(
        path,
        **{
            f"{s}_images": rng.integers(0, 256, (12, 64, 64), np.uint8)
            for s in ("train", "val", "test")
        },
        **{f"{s}_labels": rng.integers(0, 2, (12, 1), np.uint8) for s in ("train", "val", "test")},
    )
    table["breastmnist"]["MD5_64"] = hashlib.md5(path.read_bytes()).hexdigest()
    out = tmp_path / "m.pt"
    assert (
        main(
            [
                "fit",
                "--medmnist",
                "breastmnist",
                "--size",
                "64",
                "--root",
                str(tmp_path),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--n-clusters",
                "2",
                *FAST,
            ]
        )
        == 0
    )
    from stratify import Stratifier

    assert Stratifier.load(out).image_shape_ == (1, 64, 64)


def test_fit_with_auto_k_draws_the_criterion_and_says_what_it_chose(files, tmp_path, capsys):
    folder, _, _ = files
    out = tmp_path / "auto.pt"
    assert (
        main(
            [
                "fit",
                str(folder / "images.npy"),
                "--config",
                str(folder / "config.json"),
                "--n-clusters",
                "auto",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--seed",
                "0",
            ]
        )
        == 0
    )
    model = Stratifier.load(out)
    figure = tmp_path / "auto.k_selection.png"
    assert figure.is_file() and figure.stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"number of strata: {model.n_clusters_}, chosen by bic (see {figure})" in printed


def test_views_draws_the_augmentation_of_the_configured_params(files, tmp_path, capsys):
    folder, _, _ = files
    config = tmp_path / "aug.json"
    config.write_text(json.dumps({"augmentation": {"rotation": 0.0, "hflip": 0.5}}))
    out = tmp_path / "views.png"
    assert (
        main(
            [
                "views",
                str(folder / "images.npy"),
                "--config",
                str(config),
                "--n-images",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file() and f"views: {out}" in capsys.readouterr().out
    config.write_text(json.dumps({"augmentation": {"rotate": 5}}))
    assert (
        main(["views", str(folder / "images.npy"), "--config", str(config), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "bad augmentation" in err and "'rotate'" in err


def test_epochs_take_an_int_or_auto(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "images.npz", "--out", "model.pt", "--epochs", "many"])
    assert "expected an int or 'auto', got 'many'" in capsys.readouterr().err


def test_bad_parameters_are_refused_before_torch_is_imported(tmp_path):
    # the constraint table is plain Python: a bad value answers before the heavy imports
    import subprocess
    import sys

    np.save(tmp_path / "X.npy", np.zeros((4, 1, 8, 8), dtype=np.uint8))
    code = (
        "import sys; from stratify.cli import main; "
        f"rc = main(['fit', {str(tmp_path / 'X.npy')!r}, '--n-clusters', '0', "
        f"'--out', {str(tmp_path / 'm.pt')!r}]); "
        "print(rc, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["2", "False"]
    assert "'n_clusters' parameter of Stratifier must be an int in the range [2, inf)" in (
        done.stderr
    )


def test_unknown_config_keys_and_unwritable_out_fail_before_training(tmp_path, capsys):
    np.save(tmp_path / "X.npy", np.zeros((4, 1, 8, 8), dtype=np.uint8))
    (tmp_path / "bad.json").write_text(json.dumps({"n_clustrs": 2}))
    argv = ["fit", str(tmp_path / "X.npy"), "--config", str(tmp_path / "bad.json")]
    _fails([*argv, "--out", str(tmp_path / "m.pt")], capsys, r"unknown Stratifier parameter")
    if Path("/proc").is_dir():  # a folder that passes the permission test but holds no file
        _fails(
            ["fit", str(tmp_path / "X.npy"), "--out", "/proc/m.pt"],
            capsys,
            r"creating a file in '/proc' failed",
        )


def test_resume_without_a_checkpoint_says_it_starts_fresh(files, tmp_path, capsys):
    folder, _, _ = files
    argv = ["fit", str(folder / "images.npz"), "--config", str(folder / "config.json")]
    argv += ["--checkpoint-dir", str(tmp_path / "ckpt"), "--resume"]
    assert main([*argv, "--out", str(tmp_path / "m.pt"), *FAST]) == 0
    assert f"no checkpoint in {tmp_path / 'ckpt'} yet: starting a new fit" in (
        capsys.readouterr().err
    )


def test_resume_must_without_a_checkpoint_refuses_before_reading_images(tmp_path, capsys):
    # the images file does not exist: the refusal must come from --resume=must, first
    base = ["fit", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "m.pt"), *FAST]
    _fails(
        [*base, "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume=must"],
        capsys,
        rf"--resume=must: no checkpoint last\.pt in {re.escape(str(tmp_path / 'ckpt'))}",
    )
    _fails([*base, "--resume=must"], capsys, r"no --checkpoint-dir given")
    assert not (tmp_path / "m.pt").exists()
    with pytest.raises(SystemExit):
        main([*base, "--resume=maybe"])
    assert "invalid choice: 'maybe'" in capsys.readouterr().err


def test_fit_labels_reads_a_column_with_blanks_for_unknown(files, tmp_path, capsys):
    folder, _, strata = files
    table = pd.read_csv(folder / "metadata.csv")
    names = np.array(["benign", "malignant", "normal"])[strata].astype(object)
    names[np.arange(len(names)) % 8 != 0] = ""  # one image in eight is labelled
    table.assign(grade=names).to_csv(tmp_path / "t.csv", index=False)
    base = ["fit", str(folder / "images.npz"), "--config", str(folder / "config.json")]
    argv = [*base, "--metadata", str(tmp_path / "t.csv"), "--labels", "grade", "--seed", "0"]
    assert main([*argv, "--out", str(tmp_path / "m.pt")]) == 0
    assert "classes 0 = benign, 1 = malignant, 2 = normal" in capsys.readouterr().err
    model = Stratifier.load(tmp_path / "m.pt")
    known = np.arange(len(strata)) % 8 == 0
    np.testing.assert_array_equal(model.known_labels_[known], strata[known])
    assert (model.known_labels_[~known] == -1).all()
    for c in range(3):  # every labelled image of a class in that class's stratum
        assert set(model.labels_[model.known_labels_ == c]) == {c}
    # the labels column is no finding of the strata: describe marks it as trained on
    assert model.label_column_ == "grade" and model.columns_in_training() == {"grade": "labels"}
    out_dir = tmp_path / "describe"
    describe = ["describe", str(tmp_path / "m.pt"), "--metadata", str(tmp_path / "t.csv")]
    assert main([*describe, "--out", str(out_dir), "--quiet"]) == 0
    tests = pd.read_csv(out_dir / "strata_tests.csv", index_col=0)
    assert tests.loc["grade", "training_role"] == "labels"
    assert tests.loc["grade", "used_in_training"]
    others = tests.drop(index="grade")
    assert not others["used_in_training"].any() and (others["training_role"] == "none").all()
    table.assign(grade=np.where(known, 0.5, np.nan)).to_csv(tmp_path / "f.csv", index=False)
    out = ["--out", str(tmp_path / "f.pt"), *FAST]
    floats = [*base, "--metadata", str(tmp_path / "f.csv"), "--labels", "grade", *out]
    _fails(
        floats, capsys, r"integer classes \(blank = unknown\), got non-integer values such as 0.5"
    )
    absent = [*base, "--metadata", str(tmp_path / "f.csv"), "--labels", "nope", *out]
    _fails(absent, capsys, r"--labels names the column 'nope' that the metadata lacks")
    assert not (tmp_path / "f.pt").exists()


# ------------------------------------------------------------ answers before heavy work
def _fresh(argv: list[str]) -> tuple[int, str, bool]:
    """``main(argv)`` in a new interpreter: exit code, stderr, whether torch was imported."""
    code = (
        "import sys; from stratify.cli import main; rc = main(sys.argv[1:]); "
        "print('torch' in sys.modules); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120
    )
    return done.returncode, done.stderr, done.stdout.strip() == "True"


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["predict", "{model}", "{tmp}/missing", "--out", "{tmp}/p.csv"], "images not found"),
        (["describe", "{model}", "--metadata", "{tmp}/no.csv", "--out", "{tmp}/d"], "not found"),
        (["report", "{tmp}/text.pt", "--out", "{tmp}/r.html"], "not a stratify model file"),
        (["sample", "{tmp}/text.pt", "--out", "{tmp}/s.png"], "not a stratify model file"),
    ],
)
def test_bad_inputs_answer_before_torch_is_imported(files, tmp_path, argv, match):
    folder, _, _ = files
    (tmp_path / "text.pt").write_text("not a model")
    argv = [a.format(model=folder / "model.pt", tmp=tmp_path) for a in argv]
    rc, err, torch_loaded = _fresh(argv)
    assert rc == 2 and err.count("\n") == 1 and match in err
    assert not torch_loaded


def test_an_impossible_size_is_refused_before_allocating(tmp_path):
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "png").mkdir()
    image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "png" / "a.png")
    image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "png" / "b.png")
    argv = ["fit", str(tmp_path / "png"), "--size", "100000", "--out", str(tmp_path / "m.pt")]
    rc, err, _ = _fresh(argv)
    assert rc == 2 and err.count("\n") == 1
    assert re.search(r"size 100000 needs [\d.]+ GiB .* choose a smaller --size", err)


def test_a_negative_window_reads_as_the_readme_writes_it():
    from stratify.cli import _joined_negative_values

    assert _joined_negative_values(["fit", "x", "--window", "-1000,400", "--out", "m"]) == [
        "fit",
        "x",
        "--window=-1000,400",
        "--out",
        "m",
    ]
    # a plain option after --window is not swallowed, nor a value without a minus
    assert _joined_negative_values(["--window", "0,1"]) == ["--window", "0,1"]
    assert _joined_negative_values(["--window", "--quiet"]) == ["--window", "--quiet"]
    from stratify.cli.parser import _parser

    args = _parser().parse_args(
        _joined_negative_values(["views", "x", "--window", "-1000,400", "--out", "v.png"])
    )
    assert args.window == "-1000,400"


def test_warnings_are_one_line_without_a_source_line(capsys):
    from stratify.cli import _one_line_warning

    _one_line_warning("fit")("Dropped 2 image ids\n  without rows", UserWarning, "f.py", 3)
    assert capsys.readouterr().err == "stratify fit: warning: Dropped 2 image ids without rows\n"
