"""Tests of the benchmark runner: scoring, the results file, the grid and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lab import methods as methods_module
from lab import profiles as profiles_module
from lab import runner, scoring
from lab.datasets import BenchmarkData, Split
from lab.methods import METHODS, Method, MethodResult, Settings
from stratify import cli


def _split(labels, groups=None, d=4, seed=0) -> Split:
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, size=(len(labels), 1, 4, 4)).astype(np.uint8)
    return Split(
        images,
        labels,
        pd.DataFrame(index=range(len(labels))),
        None if groups is None else np.asarray(groups),
    )


# --------------------------------------------------------------------------- scoring
def test_score_transductive_hand_example():
    y = np.array([0, 0, 0, 1, 1, 1] * 2)
    split = _split(y)
    data = BenchmarkData("toy", split, split, None, True, 2)
    labels = np.array([1, 1, 0, 0, 0, 0] * 2)  # cluster 1 -> class 0 (4), 0 -> class 1 (6)
    result = MethodResult(labels, labels, None, None, 2)
    scores = runner.score(data, result, seed=0)
    assert scores["acc"] == pytest.approx(10 / 12)
    assert scores["majority_rate"] == pytest.approx(0.5)
    assert scores["min_share"] == pytest.approx(4 / 12)  # stratum 1 holds 4 of 12
    assert np.isnan(scores["knn_acc"]) and scores["probe_level"] == ""


def test_score_counts_extra_clusters_as_errors():
    y = np.array([0, 0, 1, 1])
    split = _split(y)
    data = BenchmarkData("toy", split, split, None, True, 2)
    labels = np.array([0, 1, 2, -1])  # one sample right per matched cluster at best
    scores = runner.score(data, MethodResult(labels, labels, None, None, 3), seed=0)
    assert scores["acc"] == pytest.approx(2 / 4)
    assert scores["min_share"] == pytest.approx(1 / 4)  # the noise sample is in none
    # a stratum that no scored sample falls in is the smallest, with share 0
    missing = np.array([0, 0, 2, 2])
    scores = runner.score(data, MethodResult(missing, missing, None, None, 3), seed=0)
    assert scores["min_share"] == 0.0


def test_group_means_matches_a_loop():
    rng = np.random.default_rng(0)
    groups = np.array([5, 5, 2, 9, 2, 2, 9])
    labels = np.array([1, 1, 0, 1, 0, 0, 1])
    z = rng.normal(size=(7, 3))
    means, volume_labels = scoring._group_means(z, _split(labels, groups))
    for row, g in enumerate(sorted(set(groups))):
        np.testing.assert_allclose(means[row], z[groups == g].mean(axis=0))
        assert volume_labels[row] == labels[groups == g][0]


def test_score_volume_level_probes_on_held_out_volumes():
    # twelve volumes per class in train and test, three slices each; latents separate classes
    def make(seed):
        groups = np.repeat(np.arange(24), 3)
        labels = np.repeat(np.arange(24) % 2, 3)
        z = np.random.default_rng(seed).normal(size=(72, 2)) * 0.1 + labels[:, None] * 3
        return _split(labels, groups, seed=seed), z

    (train, z_train), (test, z_test) = make(0), make(1)
    data = BenchmarkData("toy-slices", train, test, None, False, 2)
    result = MethodResult(train.labels, test.labels, z_train, z_test, 2)
    scores = runner.score(data, result, seed=0)
    assert scores["probe_level"] == "volume"
    assert scores["linear_probe_acc"] == 1.0


# ------------------------------------------------------------------------ results file
def _row(method="m", seed=0, acc=0.5, status="ok"):
    return {
        "dataset": "d",
        "method": method,
        "seed": seed,
        "profile": "p",
        "status": status,
        "acc": acc,
    }


def test_record_appends_and_replaces_the_same_run(tmp_path):
    path = tmp_path / "out" / "results.csv"
    runner.record(_row(acc=0.1, status="failed"), path)
    runner.record(_row(method="other"), path)
    runner.record(_row(acc=0.7), path)  # the failed run, tried again
    frame = runner.read_results(path)
    assert list(frame.columns) == runner.COLUMNS
    assert sorted(frame["method"]) == ["m", "other"]
    assert frame.loc[frame["method"] == "m", "acc"].item() == 0.7
    assert frame.loc[frame["method"] == "m", "status"].item() == "ok"


def test_record_failure_leaves_the_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "results.csv"
    runner.record(_row(), path)
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        runner.record(_row(method="new"), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


# ------------------------------------------------------------------------------ grid
def test_expand_block_seeds_and_unknown_methods():
    profile = {
        "seeds": [0, 1],
        "blocks": [
            {"datasets": ["a"], "methods": ["pca-kmeans", "ae-kmeans"]},
            {"datasets": ["b"], "methods": ["pca-kmeans"], "seeds": [3]},
        ],
    }
    runs = runner.expand(profile)
    assert [(r.dataset, r.seed, r.method) for r in runs] == [
        ("a", 0, "pca-kmeans"),
        ("a", 0, "ae-kmeans"),
        ("a", 1, "pca-kmeans"),
        ("a", 1, "ae-kmeans"),
        ("b", 3, "pca-kmeans"),
    ]
    assert [r.seed for r in runner.expand(profile, seeds=[7])] == [7, 7, 7]
    with pytest.raises(ValueError, match=r"methods among .*got unknown \['nope'\]"):
        runner.expand(profile, methods=["nope"])


def test_expand_runs_a_named_method_on_a_named_dataset_no_block_pairs_it_with():
    profile = {
        "seeds": [0, 1],
        "blocks": [
            {"datasets": ["a"], "methods": ["pca-kmeans", "ae-kmeans"]},
            {"datasets": ["b"], "methods": ["pca-kmeans"], "seeds": [3]},
        ],
    }
    # known dataset, method from another block: the profile's seeds, not b's block seeds
    runs = runner.expand(profile, datasets=["b", "b"], methods=["pca-kmeans", "ae-kmeans"])
    assert [(r.dataset, r.seed, r.method) for r in runs] == [
        ("b", 3, "pca-kmeans"),
        ("b", 0, "ae-kmeans"),
        ("b", 1, "ae-kmeans"),
    ]
    # a method in no block at all, on a known dataset, with explicit seeds
    runs = runner.expand(profile, datasets=["a"], methods=["vae-kmeans"], seeds=[5])
    assert [(r.dataset, r.seed, r.method) for r in runs] == [("a", 5, "vae-kmeans")]
    # a known dataset with no methods named runs its blocks and nothing more
    assert len(runner.expand(profile, datasets=["a"])) == 4
    # an unknown dataset with no methods named runs the unsupervised methods
    runs = runner.expand(profile, datasets=["c"])
    assert {r.method for r in runs} == set(profiles_module._UNSUPERVISED)
    assert len(runs) == 2 * len(profiles_module._UNSUPERVISED)
    with pytest.raises(
        ValueError,
        match=r"Expected --datasets with methods that no block of "
        r"the profile runs, got \['vae-kmeans'\] and no "
        r"datasets\.",
    ):
        runner.expand(profile, methods=["vae-kmeans", "pca-kmeans"])


def test_grid_records_failures_goes_on_and_skips_completed_runs(tmp_path, monkeypatch):
    calls = []

    def constant(data, seed, settings):
        calls.append(("constant", seed))
        labels = np.zeros(len(data.train), dtype=np.int64)
        return MethodResult(labels, labels, None, None, 1)

    def broken(data, seed, settings):
        calls.append(("broken", seed))
        raise RuntimeError("exploded on purpose")

    registry = dict(METHODS)
    registry["constant"] = Method("constant", "unsupervised", "one stratum", constant)
    registry["broken"] = Method("broken", "unsupervised", "always fails", broken)
    monkeypatch.setattr(runner, "METHODS", registry)
    monkeypatch.setattr(methods_module, "METHODS", registry)
    profile = {
        "seeds": [0, 1],
        "epochs": {"default": 1},
        "n_samples": {"cohort": 30},
        "blocks": [{"datasets": ["cohort"], "methods": ["broken", "constant"]}],
    }
    results = runner.run_grid("toy", tmp_path, profile=profile, log=None, allow_dirty=True)
    assert len(results) == 4
    failed = results[results["status"] == "failed"]
    assert sorted(failed["seed"]) == [0, 1]
    assert failed["error"].str.contains("RuntimeError: exploded on purpose").all()
    ok = results[results["status"] == "ok"]
    assert sorted(ok["seed"]) == [0, 1]
    np.testing.assert_allclose(ok["acc"], 1 / 3)
    assert (tmp_path / "report.md").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "FAILED broken seed 0: RuntimeError: exploded on purpose" in report

    calls.clear()
    runner.run_grid("toy", tmp_path, profile=profile, log=None, allow_dirty=True)
    assert sorted(calls) == [("broken", 0), ("broken", 1)]  # only the failed runs again
    assert len(runner.read_results(tmp_path / "results.csv")) == 4


def test_quick_profile_end_to_end(tmp_path, capsys):
    """The quick profile (CI smoke test) runs every method on the synthetic cohorts."""
    assert runner.main(["--profile", "quick", "--out", str(tmp_path), "--allow-dirty"]) == 0
    results = runner.read_results(tmp_path / "results.csv")
    expected = {
        (r.dataset, r.method)
        for r in runner.expand(runner.PROFILES["quick"])
        if METHODS[r.method].applies(_applies_probe(r.dataset), Settings()) is None
    }
    assert set(zip(results["dataset"], results["method"], strict=True)) == expected
    assert (results["status"] == "ok").all(), results["error"].dropna().tolist()
    cohort = results[results["dataset"] == "cohort"]
    # with k = 3 clusters and balanced strata, Hungarian ACC cannot fall below 1/3 (HDBSCAN's
    # noise counts as errors, so it can)
    partitions = cohort[cohort["method"] != "ae-simclr-hdbscan"]
    assert partitions["acc"].between(1 / 3 - 1e-9, 1).all()
    assert cohort["linear_probe_acc"].notna().all()
    assert results["git_commit"].notna().all() and results["peak_rss_mb"].gt(0).all()
    report = (tmp_path / "report.md").read_text()
    assert "Command: `" in report and "| ae-simclr+yaware |" in report
    for name in ("latent_space", "heatmap", "reconstructions", "samples_per_stratum", "training"):
        assert (tmp_path / "figures" / "cohort" / f"ae-simclr-kmeans_{name}.png").is_file()
    assert (tmp_path / "acc_by_method.png").is_file()
    # every scored run keeps its strata, on the scored samples, for the seed agreement
    for dataset, method, n in zip(
        results["dataset"], results["method"], results["n_test"], strict=True
    ):
        assert len(np.load(tmp_path / "strata" / dataset / method / "seed0.npy")) == n
    err = capsys.readouterr().err
    assert "[1/" in err and "left)" in err


def _applies_probe(dataset: str) -> BenchmarkData:
    """A stand-in with the dataset's regularizers, to ask which methods apply."""
    from lab.datasets import COHORT_REGULARIZERS, SLICE_REGULARIZERS

    split = _split([0, 1])
    regs = COHORT_REGULARIZERS if dataset == "cohort" else SLICE_REGULARIZERS
    return dataclasses.replace(
        BenchmarkData(dataset, split, split, None, True, 2), regularizers=regs
    )


# ------------------------------------------------------------------------------- CLI
def test_benchmark_runner_help_and_errors(capsys, tmp_path):
    from lab import main as run

    with pytest.raises(SystemExit) as exit_info:
        run(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: benchmarks/run.py" in out and "--profile" in out and "--seed" in out
    assert run(["--profile", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "benchmarks/run.py: error: Expected --profile among "
        "['full', 'quick', 'validation'], got 'nope'."
    )
    assert run(["--config", str(tmp_path / "missing.json")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_the_product_has_no_benchmark_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "--help"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'benchmark'" in capsys.readouterr().err


def test_clusterer_variants_reuse_the_trained_network(tmp_path, monkeypatch):
    from stratify import Stratifier

    fits = []
    original = Stratifier.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(self.random_state)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Stratifier, "fit", counting_fit)
    profile = {
        "seeds": [0, 1],
        "epochs": {"default": 1},
        "batch_size": 32,
        "n_samples": {"cohort": 48},
        "blocks": [
            {"datasets": ["cohort"], "methods": ["ae-simclr-kmeans", "ae-kmeans", "ae-simclr-gmm"]}
        ],
    }
    results = runner.run_grid("toy", tmp_path, profile=profile, log=None, allow_dirty=True)
    assert (results["status"] == "ok").all()
    assert sorted(fits) == [0, 0, 1, 1]  # ae-simclr and ae per seed; gmm re-clusters
    gmm = results[results["method"] == "ae-simclr-gmm"]
    kmeans = results[results["method"] == "ae-simclr-kmeans"]
    # the same network: identical probes (they read the latents, not the strata)
    np.testing.assert_allclose(
        gmm["linear_probe_acc"].to_numpy(), kmeans["linear_probe_acc"].to_numpy()
    )


def test_config_file_profile(tmp_path, capsys):
    import json

    config = tmp_path / "grid.json"
    config.write_text(
        json.dumps(
            {
                "name": "mine",
                "seeds": [0, 1],
                "epochs": {"default": 1},
                "n_samples": {"cohort": 60},
                "blocks": [{"datasets": ["cohort"], "methods": ["pca-kmeans"]}],
            }
        )
    )
    out = tmp_path / "out"
    assert (
        runner.main(["--config", str(config), "--out", str(out), "--quiet", "--allow-dirty"]) == 0
    )
    results = runner.read_results(out / "results.csv")
    assert results["profile"].tolist() == ["mine", "mine"]
    assert results["seed"].tolist() == [0, 1] and (results["status"] == "ok").all()
    assert results["n_train"].tolist() == [60, 60]
    assert capsys.readouterr().err == ""  # --quiet
    # --report-only rewrites the report from the CSV without running anything
    (out / "report.md").unlink()
    assert runner.main(["--config", str(config), "--out", str(out), "--report-only"]) == 0
    assert "| pca-kmeans |" in (out / "report.md").read_text()


def test_report_with_only_failed_runs(tmp_path):
    from lab import report

    results = pd.DataFrame(
        [{**_row(status="failed"), "error": "RuntimeError: boom"}], columns=runner.COLUMNS
    )
    from lab.profiles import FULL_BARS

    path = report.write_report(results, tmp_path, "p", {"seeds": [0], "description": "x"})
    text = path.read_text()
    assert "* FAILED m seed 0: RuntimeError: boom" in text
    assert "## The bar" not in text  # a profile without bars has none
    path = report.write_report(
        results, tmp_path, "p", {"seeds": [0], "description": "x", "bars": FULL_BARS[:1]}
    )
    assert (
        "| PneumoniaMNIST cluster ACC >= 0.80 (fewer than 3 seeds so far) | not run (needs "
        "3 seeds) |"
    ) in path.read_text()
    assert not (tmp_path / "acc_by_method.png").exists()  # nothing scored, nothing drawn


def test_report_sums_the_rows_fit_times(tmp_path):
    from lab import report

    # failed rows keep the report to its header, which is what is tested here
    rows = [
        {**_row(seed=seed, status="failed"), "error": "RuntimeError: boom", "fit_seconds": seconds}
        for seed, seconds in [(0, 90.0), (1, 150.0), (2, None)]
    ]
    results = pd.DataFrame(rows, columns=runner.COLUMNS)
    text = report.write_report(
        results, tmp_path, "p", {"seeds": [0], "description": "x"}
    ).read_text()
    assert "The 2 timed rows' fits add up to 4 minutes (plus loading and scoring)." in text
    untimed = results.assign(fit_seconds=float("nan"))
    text = report.write_report(
        untimed, tmp_path, "p", {"seeds": [0], "description": "x"}
    ).read_text()
    assert "timed rows" not in text


def test_bars_are_data_checked_by_five_rules():
    from lab.report import check_bar

    summary = pd.DataFrame(
        {
            "dataset": ["d"] * 5,
            "n_seeds": [3, 3, 3, 2, 3],
            "method": [
                "pca-kmeans",
                "ae-simclr-kmeans",
                "ae-simclr+yaware",
                "ae-simclr+wsp",
                "ae-simclr-finetune",
            ],  # the last is supervised: never a peer or "best"
            "acc_mean": [0.70, 0.80, 0.83, 0.99, 0.95],
            "acc_sd": [0.01, 0.02, 0.01, 0.0, 0.01],
        }
    )
    text, verdict = check_bar(
        summary,
        {
            "label": "ACC",
            "dataset": "d",
            "metric": "acc",
            "method": "best unsupervised",
            "at_least": 0.85,
        },
    )
    # the best unsupervised method with 3 seeds (the 2-seed row does not count)
    assert "ae-simclr+yaware 0.830" in text and verdict == "MISSED by 0.020"
    _, verdict = check_bar(
        summary,
        {
            "label": "x",
            "dataset": "d",
            "metric": "acc",
            "method": "pca-kmeans",
            "within_of_best": {"prefix": "ae-", "margin": 0.2},
        },
    )
    assert verdict == "met"  # 0.70 >= 0.83 - 0.2 (not 0.95 - 0.2: supervised)
    text, verdict = check_bar(
        summary,
        {
            "label": "gain",
            "dataset": "d",
            "metric": "acc",
            "method": "-",
            "beats_by_spread": {"base": "ae-simclr-kmeans", "contains": "+"},
        },
    )
    assert verdict == "met" and "gain 0.030, spread 0.020" in text
    _, verdict = check_bar(
        summary,
        {
            "label": "none",
            "dataset": "other",
            "metric": "acc",
            "method": "pca-kmeans",
            "at_least": 0.5,
        },
    )
    assert verdict.startswith("not run")
    # within a published value, on either side
    for published, expected in (
        (0.815, "met"),
        (0.785, "met"),
        (0.85, "MISSED by 0.030"),
        (0.75, "MISSED by 0.030"),
    ):
        text, verdict = check_bar(
            summary,
            {
                "label": "near",
                "dataset": "d",
                "metric": "acc",
                "method": "ae-simclr-kmeans",
                "within": {"value": published, "tolerance": 0.02},
            },
        )
        assert verdict == expected, (published, verdict)
    assert f"within 0.02 of {0.75:.3f} (ae-simclr-kmeans 0.800 ± 0.020)" in text
    # above a fixed value by more than the method's own sd (0.80 ± 0.02)
    for value, expected in (
        (0.77, "met"),
        (0.785, "MISSED by 0.005"),
        (0.79, "MISSED by 0.010"),
        (0.85, "MISSED by 0.070"),
    ):
        text, verdict = check_bar(
            summary,
            {
                "label": "above",
                "dataset": "d",
                "metric": "acc",
                "method": "ae-simclr-kmeans",
                "above_by_spread": value,
            },
        )
        assert verdict == expected, (value, verdict)
    assert f"above {0.85:.3f} by more than the seed sd (ae-simclr-kmeans 0.800 ± 0.020)" in text


# ------------------------------------------------------------------ any MedMNIST flag
def _fake_retina(folder, size, seed):
    """A MedMNIST-layout RGB file with 5 classes (retinamnist's layout): class c has a
    bright square in corner-band c."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", 40), ("val", 15), ("test", 20)):
        labels = np.arange(n) % 5
        images = rng.integers(0, 60, size=(n, size, size, 3)).astype(np.uint8)
        step = size // 5
        for i, c in enumerate(labels):
            images[i, c * step : (c + 1) * step, : size // 2] = 220
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    name = "retinamnist.npz" if size == 28 else f"retinamnist_{size}.npz"
    np.savez_compressed(folder / name, **arrays)
    return folder / name


def test_any_medmnist_flag_and_size_runs_by_name(tmp_path, monkeypatch):
    import copy
    import hashlib

    from stratify.data import medmnist

    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)
    data = tmp_path / "data"
    data.mkdir()
    for size in (28, 64):
        path = _fake_retina(data, size, seed=size)
        table["retinamnist"]["MD5" if size == 28 else f"MD5_{size}"] = hashlib.md5(
            path.read_bytes()
        ).hexdigest()
    monkeypatch.setattr(methods_module, "SHORT_PROTOCOL_EPOCHS", 2)
    profile = {
        "seeds": [0],
        "epochs": 1,
        "batch_size": 16,
        "supervised_epochs": 1,
        "blocks": [
            {
                "datasets": ["retinamnist", "retinamnist_64"],
                "methods": ["pca-kmeans", "ae-simclr-gmm", "resnet18-supervised"],
            },
            {
                "datasets": ["retinamnist"],
                "methods": ["resnet18-medmnist-short", "resnet18-transfer"],
            },
        ],
    }
    results = runner.run_grid("any-flag", tmp_path / "out", profile=profile, root=data, log=None)
    assert (results["status"] == "ok").all(), results["error"].dropna().tolist()
    ran = set(zip(results["dataset"], results["method"], strict=True))
    assert ran == {
        (d, m)
        for d in ("retinamnist", "retinamnist_64")
        for m in ("pca-kmeans", "ae-simclr-gmm", "resnet18-supervised")
    } | {("retinamnist", "resnet18-medmnist-short")}  # transfer: skipped, no --weights
    assert (results["n_test"] == 20).all() and (results["n_classes"] == 5).all()
    protocol = results[results["method"] == "resnet18-medmnist-short"].iloc[0]
    assert 0 <= protocol["acc"] <= 1 and 0 <= protocol["auc"] <= 1
    assert protocol["epochs"] == 2  # the protocol's own schedule, not supervised_epochs
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## retinamnist_64" in report and "| resnet18-medmnist-short |" in report

    # The transfer row with a local trunk file: which file, and how much of it loaded.
    from lab import baselines

    monkeypatch.setitem(baselines.MEDMNIST_PROTOCOL, "epochs", 2)
    trunk = baselines.resnet_trunk((3, 28, 28), stem="medmnist")[0]
    weights = tmp_path / "trunk.pt"
    torch.save(trunk.state_dict(), weights)
    results = runner.run_grid(
        "any-flag", tmp_path / "out", profile=profile, root=data, weights=str(weights), log=None
    )
    transfer = results[results["method"] == "resnet18-transfer"].iloc[0]
    assert transfer["status"] == "ok" and transfer["epochs"] == 2
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()[:12]
    assert transfer["weights"] == (
        f"trunk.pt (md5 {md5}; {len(trunk.state_dict())} tensors loaded, 0 skipped)"
    )
    assert (results.loc[results["method"] != "resnet18-transfer", "weights"].isna()).all()
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"resnet18-transfer: trunk weights from {transfer['weights']}." in report


def test_an_interrupted_protocol_row_resumes_from_its_checkpoint(
    tmp_path, monkeypatch, interrupt_at
):
    import copy
    import hashlib
    import itertools
    import types

    from stratify.data import medmnist
    from stratify.training import trainer

    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)
    path = _fake_retina(tmp_path, 28, seed=5)
    table["retinamnist"]["MD5"] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setattr(methods_module, "SHORT_PROTOCOL_EPOCHS", 3)
    profile = {
        "seeds": [0],
        "epochs": 1,
        "batch_size": 16,
        "blocks": [{"datasets": ["retinamnist"], "methods": ["resnet18-medmnist-short"]}],
    }
    checkpoints = tmp_path / "checkpoints"

    def grid(out):
        return runner.run_grid(
            "resume",
            tmp_path / out,
            profile=profile,
            root=tmp_path,
            checkpoints=checkpoints,
            log=None,
        )

    straight = grid("straight").iloc[0]
    assert straight["status"] == "ok" and list(checkpoints.iterdir()) == []  # cleaned up
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        clock = itertools.count(step=500.0)  # each epoch of the stopped process "takes" 500 s
        patch.setattr(trainer, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
        with pytest.raises(KeyboardInterrupt):
            grid("stopped")
    original = trainer.Trainer.train_epoch
    folder = checkpoints / "retinamnist-resnet18-scratch-short-seed0"
    assert torch.load(folder / "last.pt", weights_only=True)["epoch"] == 2
    epochs = []

    def counted(self, data, current, total_steps):
        epochs.append(current)
        return original(self, data, current, total_steps)

    monkeypatch.setattr(trainer.Trainer, "train_epoch", counted)
    resumed = grid("stopped").iloc[0]
    assert epochs == [3]  # went on from the checkpoint, did not start again
    assert resumed["status"] == "ok" and not folder.exists()
    # the time recorded includes the 2 x 500 s the stopped process spent on epochs 1-2
    assert 1000 < resumed["fit_seconds"] < 1000 + 100 * straight["fit_seconds"]
    for metric in ("acc", "bacc", "auc"):
        assert resumed[metric] == straight[metric]


def test_pretrain_weights_writes_a_trunk_that_loads_whole_and_records_its_md5(
    tmp_path, monkeypatch
):
    import copy
    import hashlib
    import importlib.util

    from lab.baselines import resnet_trunk
    from stratify.data import medmnist

    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)
    path = _fake_retina(tmp_path, 28, seed=3)
    table["retinamnist"]["MD5"] = hashlib.md5(path.read_bytes()).hexdigest()
    spec = importlib.util.spec_from_file_location(
        "pretrain_weights", Path(__file__).parents[2] / "benchmarks" / "pretrain_weights.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    weights, out = tmp_path / "models" / "trunk.pt", tmp_path / "record.md"
    assert (
        script.main(
            [
                "--source",
                "retinamnist",
                "--epochs",
                "1",
                "--root",
                str(tmp_path),
                "--weights",
                str(weights),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    trunk, loaded, skipped = resnet_trunk((3, 28, 28), stem="medmnist", weights=weights)
    assert skipped == {} and set(loaded) == set(trunk.state_dict())
    record = out.read_text()
    md5 = hashlib.md5(weights.read_bytes()).hexdigest()
    assert f"| trunk.pt | {md5} | {len(loaded)} |" in record
    assert "the source's own train / val split" in record and "1 epochs" in record
    with pytest.raises(SystemExit):
        script.main(["--epochs", "0", "--weights", str(weights), "--out", str(out)])


def test_multi_label_flags_are_refused_before_loading():
    from lab.datasets import load_dataset

    with pytest.raises(
        ValueError,
        match=r"single-label MedMNIST flag, got 'chestmnist', a "
        r"multi-label, binary-class task \(14 binary",
    ):
        load_dataset("chestmnist")
    with pytest.raises(ValueError, match=r"may end in _64, _128 or _224.*'dermamnist_x'"):
        load_dataset("dermamnist_x")


def test_the_model_cache_reuses_a_saved_network_and_clusters_it_as_the_method_asks(
    tmp_path, monkeypatch
):
    from lab.datasets import load_dataset
    from stratify import Stratifier
    from stratify.training import config

    monkeypatch.setattr(config, "AUTO_EPOCH_SAMPLES", 60)  # the default rows: 1 epoch
    data = load_dataset("cohort", seed=0, n_samples=60)
    settings = Settings(epochs=1, batch_size=30, model_cache=str(tmp_path / "models"))
    methods_module.clear_cache()
    first = METHODS["default-raw-gmm"].run(data, 0, settings)
    saved = list((tmp_path / "models").glob("cohort-0-*.pt"))
    assert len(saved) == 1
    methods_module.clear_cache()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(Stratifier, "fit", no_training)
    again = METHODS["default-raw-gmm"].run(data, 0, settings)
    np.testing.assert_array_equal(again.train_labels, first.train_labels)
    np.testing.assert_array_equal(again.train_embedding, first.train_embedding)
    # another clustering of the same network: loaded, then clustered as that method asks
    methods_module.clear_cache()
    white = METHODS["default-white-gmm"].run(data, 0, settings)
    from stratify import StrataClusterer

    expected = StrataClusterer("gmm", data.n_classes, normalize=True, whiten=True, random_state=0)
    expected = expected.fit(first.model.embedding_)
    assert expected.whitening_ is not None
    np.testing.assert_array_equal(white.train_labels, expected.labels_)
    # another training parameter (no reconstruction term) or seed is another file: it trains
    methods_module.clear_cache()
    with pytest.raises(AssertionError, match="trained again"):
        METHODS["simclr-kmeans"].run(data, 0, settings)
    with pytest.raises(AssertionError, match="trained again"):
        METHODS["default-raw-gmm"].run(data, 1, settings)
    methods_module.clear_cache()


def test_rows_from_uncommitted_code_are_refused_unless_allowed_and_then_marked(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(runner, "git_commit", lambda: "abc1234+dirty")
    profile = {
        "seeds": [0],
        "epochs": {"default": 1},
        "n_samples": {"cohort": 30},
        "blocks": [{"datasets": ["cohort"], "methods": ["pca-kmeans"]}],
    }
    with pytest.raises(ValueError, match=r"uncommitted changes \(git_commit abc1234\+dirty\)"):
        runner.run_grid("toy", tmp_path, profile=profile, log=None)
    assert not (tmp_path / "results.csv").exists()
    config = tmp_path / "toy.json"
    config.write_text(json.dumps(profile))
    assert runner.main(["--config", str(config), "--out", str(tmp_path), "--quiet"]) == 2
    assert "--allow-dirty" in capsys.readouterr().err
    results = runner.run_grid("toy", tmp_path, profile=profile, log=None, allow_dirty=True)
    assert (results["git_commit"] == "abc1234+dirty").all()
    report = (tmp_path / "report.md").read_text()
    assert "1 of 1 rows were run from uncommitted code** (abc1234+dirty)" in report


def test_the_headline_reads_the_default_strata_against_the_protocol_rows(tmp_path):
    from lab import report

    rows = []
    for seed, acc in enumerate([0.70, 0.80, 0.90]):
        base = {"kind": "unsupervised", "scoring": "test split", "majority_rate": 0.6}
        base.update(n_test=10, n_train=20)
        rows.append({**_row("default", seed, acc), **base, "nmi": 0.1 * (seed + 1)})
        sup = {**base, "kind": "supervised", "auc": 0.9}
        rows.append({**_row("resnet18-medmnist", seed, 0.85), **sup})
        rows.append({**_row("resnet18-supervised", seed, 0.75), **sup})
    results = pd.DataFrame(rows, columns=runner.COLUMNS)
    text = report.write_report(results, tmp_path, "p", {"seeds": [0, 1, 2]}).read_text()
    line = next(x for x in text.splitlines() if x.startswith("| d |") and "protocol" not in x)
    assert line == (
        "| d | 0.800 ± 0.100 | 0.200 ± 0.100 | – | resnet18-medmnist 0.850 ± 0.000 "
        "(AUC 0.900 ± 0.000) | 0.600 |"
    )
    assert "resnet18-supervised 0" not in text.split("## d")[0]  # not the weak baseline
    assert (
        "## Headline"
        not in report.write_report(
            results[results["method"] != "default"], tmp_path, "p", {"seeds": [0]}
        ).read_text()
    )


def test_guided_rows_know_a_stratified_share_and_keep_their_own_network(tmp_path, monkeypatch):
    from lab.datasets import load_dataset
    from lab.priors import label_subset
    from stratify.training import config

    monkeypatch.setattr(config, "AUTO_EPOCH_SAMPLES", 60)  # 1 epoch
    data = load_dataset("cohort", seed=0, n_samples=60)
    settings = Settings(epochs=1, batch_size=30, model_cache=str(tmp_path / "models"))
    methods_module.clear_cache()
    guided = METHODS["guided-10pct"].run(data, 0, settings)
    picked = label_subset(data.train.labels, 0.1, 0)
    known = guided.model.known_labels_
    np.testing.assert_array_equal(np.flatnonzero(known >= 0), picked)
    np.testing.assert_array_equal(known[picked], data.train.labels[picked])
    for c in np.unique(known[picked]):  # the labelled patients anchored in their stratum
        assert set(guided.train_labels[known == c]) == {c}
    free = METHODS["default"].run(data, 0, settings)  # the label-free network: another file
    assert free.model.known_labels_ is None
    assert len(list((tmp_path / "models").glob("cohort-0-*.pt"))) == 2
    methods_module.clear_cache()


def test_supervised_rows_on_the_guided_share_train_and_select_on_that_share(tmp_path, monkeypatch):
    import copy
    import hashlib

    from lab import baselines
    from lab.datasets import load_dataset
    from lab.priors import label_subset
    from stratify.data import medmnist

    table = copy.deepcopy(medmnist._info_table())
    monkeypatch.setattr(medmnist, "_info_table", lambda: table)
    path = _fake_retina(tmp_path, 28, seed=3)
    table["retinamnist"]["MD5"] = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(baselines.MEDMNIST_PROTOCOL, "epochs", 1)
    seen = {}
    protocol = baselines.medmnist_protocol

    def spy(*args, **kwargs):
        model = protocol(*args, **kwargs)
        fit = model.fit

        def recorded(X, y, X_val=None, y_val=None):
            seen.update(n=len(X), y=np.asarray(y), n_val=len(X_val), y_val=np.asarray(y_val))
            return fit(X, y, X_val=X_val, y_val=y_val)

        model.fit = recorded
        return model

    monkeypatch.setattr(baselines, "medmnist_protocol", spy)
    data = load_dataset("retinamnist", seed=0, root=tmp_path)
    result = METHODS["resnet18-medmnist-10pct"].run(data, 1, Settings(epochs=1, batch_size=16))
    train = label_subset(data.train.labels, 0.1, 1)
    val = label_subset(data.val.labels, 0.1, 1)
    assert seen["n"] == len(train) == 5 and seen["n_val"] == len(val) == 5  # one per class
    np.testing.assert_array_equal(seen["y"], np.asarray(data.train.labels)[train])
    np.testing.assert_array_equal(seen["y_val"], np.asarray(data.val.labels)[val])
    assert len(result.test_labels) == len(data.test.labels)  # scored on the whole test split
    cohort = load_dataset("cohort", n_samples=60)  # transductive: no split to train on
    assert "no train/test split" in METHODS["resnet18-medmnist-1pct"].applies(cohort, Settings())


def test_the_label_budget_table_sets_guided_strata_beside_supervised_on_the_same_labels(
    tmp_path,
):
    from lab import report

    rows = []
    base = {"scoring": "test split", "majority_rate": 0.6, "n_test": 10, "n_train": 20}
    accs = {
        "default": [0.6, 0.7, 0.8],
        "guided-1pct": [0.80, 0.82, 0.84],
        "resnet18-medmnist-1pct": [0.5, 0.6, 0.7],
        "resnet18-medmnist-10pct": [0.9, 0.9, 0.9],
        "resnet18-medmnist": [0.95, 0.95, 0.95],
        "pca-kmeans": [0.1, 0.1, 0.1],  # not a budget row
    }
    for method, values in accs.items():
        kind = "supervised" if method.startswith("resnet") else "unsupervised"
        for seed, acc in enumerate(values):
            rows.append({**_row(method, seed, acc), **base, "kind": kind})
    results = pd.DataFrame(rows, columns=runner.COLUMNS)
    table = report.label_budget(report.summarize(results))
    assert list(zip(table["percent"], table["family"], strict=True)) == [
        (0, "strata"),
        (1, "strata"),
        (1, "supervised"),
        (10, "supervised"),
        (100, "supervised"),
    ]
    text = report.write_report(results, tmp_path, "p", {"seeds": [0, 1, 2]}).read_text()
    lines = text.split("## How many labels to buy")[1].splitlines()
    sd = np.std([0.80, 0.82, 0.84], ddof=1)
    assert f"| d | 1 % | 0.820 ± {sd:.3f} (3) | 0.600 ± 0.100 (3) | 0.600 |" in lines
    assert "| d | 0 % | 0.700 ± 0.100 (3) | – | 0.600 |" in lines  # no supervised fit at 0 %
    assert "| d | 10 % | not run | 0.900 ± 0.000 (3) | 0.600 |" in lines  # guided-10pct: not run
    png = tmp_path / "label_efficiency.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "![label efficiency]" in text
    without = results[~results["method"].str.startswith("guided")]
    assert "How many labels" not in report.write_report(without, tmp_path, "p", {}).read_text()
    # a transductive set: the protocol cannot apply, so its cells say why, not "not run"
    cohort = pd.DataFrame(
        [
            {**_row(m, seed, 0.9), **base, "dataset": "c", "scoring": "transductive"}
            for m in ("default", "guided-10pct")
            for seed in range(3)
        ],
        columns=runner.COLUMNS,
    )
    text = report.write_report(cohort, tmp_path, "p", {}).read_text()
    assert "| c | 10 % | 0.900 ± 0.000 (3) | – (no held-out split) | 0.600 |" in text
