"""The metadata-prior protocol: label subsets, weak-label flips, settings, an end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest

from lab.priors import (
    FAINT,
    FAINTER,
    Setting,
    flip_weak_labels,
    label_subset,
    load_setting,
    run_one,
    run_supervised,
)


def test_label_subsets_are_stratified_reproducible_and_shared_by_methods():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    a, b = label_subset(y, 0.1, seed=3), label_subset(y, 0.1, seed=3)
    np.testing.assert_array_equal(a, b)  # the same subset for every method of a seed
    assert len(a) == 100
    np.testing.assert_array_equal(np.bincount(y[a]), [50, 30, 20])  # stratified
    assert len(np.unique(y[label_subset(y, 0.001, seed=0)])) == 3  # one per class at least
    assert not np.array_equal(label_subset(y, 0.1, seed=4), a)
    np.testing.assert_array_equal(label_subset(y, 1.0, seed=0), np.arange(1000))


def test_weak_label_flips_have_the_stated_rate_and_are_seeded():
    labels = np.tile([0.0, 1.0], 250)
    flipped = flip_weak_labels(labels, 0.2, seed=7)
    assert (flipped != labels).sum() == 100
    np.testing.assert_array_equal(flip_weak_labels(labels, 0.2, seed=7), flipped)
    assert set(np.unique(flipped)) == {0.0, 1.0}


def test_the_nuisance_control_keeps_images_and_marginals_but_not_the_link():
    informative = load_setting("cohort-informative", 0, n_train=120, n_test=30)
    nuisance = load_setting("cohort-nuisance", 0, n_train=120, n_test=30)
    np.testing.assert_array_equal(informative.train_images, nuisance.train_images)
    for column in ("age", "weak_label"):
        a = np.sort(informative.train_metadata[column].to_numpy())
        b = np.sort(nuisance.train_metadata[column].to_numpy())
        np.testing.assert_array_equal(a, b)
    age = informative.train_metadata["age"].to_numpy()
    shuffled = nuisance.train_metadata["age"].to_numpy()
    ok = ~np.isnan(age) & ~np.isnan(shuffled)
    link = abs(np.corrcoef(age[ok], informative.train_y[ok])[0, 1])
    assert link > 0.5 and abs(np.corrcoef(shuffled[ok], informative.train_y[ok])[0, 1]) < link
    with pytest.raises(ValueError, match=r"known setting .*cohort-faint.*got 'cohort-other'"):
        load_setting("cohort-other", 0)


def test_the_faint_cohort_is_the_informative_one_at_half_its_texture():
    from stratify.data import make_cohort

    sizes = {"n_train": 80, "n_test": 20, "n_val": 10}
    informative = load_setting("cohort-informative", 3, **sizes)
    faint = load_setting("cohort-faint", 3, **sizes)
    assert FAINTER == FAINT / 2
    for name in ("train_y", "test_y", "val_y"):  # same patients, strata and metadata
        np.testing.assert_array_equal(getattr(faint, name), getattr(informative, name))
    assert faint.train_metadata.equals(informative.train_metadata)
    # The generator draws the same noise whatever the texture, so at half the texture the
    # step from the untextured images to the faint ones equals the step from faint to
    # informative (up to 8-bit rounding and clipping).
    bare = make_cohort(100, texture_contrast=0.0, random_state=3).images[:80].astype(float)
    step_in = faint.train_images.astype(float) - bare
    step_up = informative.train_images.astype(float) - faint.train_images
    assert np.abs(step_up).mean() > 0.5  # the texture is there
    assert np.abs(step_up - step_in).mean() < 0.1 * np.abs(step_up).mean()


def test_protocol_end_to_end_on_a_small_cohort():
    setting = load_setting("cohort-informative", 0, n_train=60, n_test=30)
    small = {"latent_dim": 4, "width": 4, "batch_size": 16}
    rows = {
        m: run_one(setting, m, 0, epochs=1, fractions=(0.1,), **small) for m in ("simclr", "yaware")
    }
    for method, (row,) in rows.items():
        assert row["method"] == method and row["fraction"] == 0.1 and row["n_labels"] == 6
        assert 0.0 <= row["probe_acc"] <= 1.0 and -1.0 <= row["ari"] <= 1.0
    assert rows["simclr"][0]["sigma"] is None
    assert rows["yaware"][0]["sigma"].startswith("(")  # Silverman's choice, recorded


def test_supervised_reference_on_the_same_subsets():
    setting = load_setting("cohort-informative", 0, n_train=60, n_test=30)
    (row,) = run_supervised(setting, 0, fractions=(0.1,), steps=2, batch_size=8)
    assert row["method"] == "supervised" and row["n_labels"] == 6
    assert 0.0 <= row["probe_acc"] <= 1.0 and np.isnan(row["ari"])


def test_supervised_reference_on_slices_picks_volumes_and_scores_volumes(monkeypatch):
    from lab.baselines import SupervisedBaseline

    setting = load_setting("cohort-informative", 0, n_train=60, n_test=30)
    # 12 training "volumes" of 5 slices, 6 test volumes of 5 slices; a volume's label is
    # the label of its slices
    train_groups, test_groups = np.repeat(np.arange(12), 5), np.repeat(np.arange(6), 5)
    volume_y = np.array([0, 1] * 6)
    grouped = Setting(
        "slices",
        setting.train_images,
        volume_y[train_groups],
        setting.train_metadata,
        setting.test_images,
        volume_y[test_groups],
        train_groups,
        test_groups,
    )
    # fixed slice probabilities of class 1: per slice, the majority of a volume's slices can
    # disagree with the volume mean, so slice-level and volume-level scores differ
    slice_p1 = np.random.default_rng(0).uniform(size=30)
    fitted_on = []

    def fit(self, X, y):
        fitted_on.append((len(X), set(np.unique(y))))
        self.classes_ = np.array([0, 1])
        return self

    monkeypatch.setattr(SupervisedBaseline, "fit", fit)
    monkeypatch.setattr(
        SupervisedBaseline,
        "predict_proba",
        lambda self, X: np.column_stack([1 - slice_p1, slice_p1]),
    )
    rows = run_supervised(grouped, 0, fractions=(0.5, 1.0), steps=2, batch_size=8)
    assert [r["n_labels"] for r in rows] == [6, 12]  # volumes, as the probes count them
    assert [n for n, _ in fitted_on] == [30, 60]  # every slice of the picked volumes
    # by hand: a volume's probability is the mean over its 5 slices
    volume_p1 = slice_p1.reshape(6, 5).mean(axis=1)
    truth = volume_y[:6]
    expected_acc = np.mean((volume_p1 > 0.5) == truth)
    pairs = [(p, n) for p in volume_p1[truth == 1] for n in volume_p1[truth == 0]]
    expected_auc = np.mean([float(p > n) for p, n in pairs])
    for row in rows:
        assert row["probe_acc"] == pytest.approx(expected_acc)
        assert row["probe_auc"] == pytest.approx(expected_auc)


def test_candidates_scale_the_bandwidth_by_the_columns_sd_in_grid_order():
    from lab.priors import GRID, candidates

    setting = load_setting("cohort-informative", 0, n_train=120, n_test=30, n_val=10)
    age = setting.train_metadata["age"].to_numpy(dtype=float)
    ok = ~np.isnan(age)
    sd = np.sqrt(np.mean((age[ok] - age[ok].mean()) ** 2))  # population sd, by hand
    specs = candidates(setting, "yaware")
    expected = [(w, s) for w in GRID["yaware"]["weight"] for s in GRID["yaware"]["sigma"]]
    assert [(c["weight"], c["sigma_sd"]) for c in specs] == expected
    for spec in specs:
        assert spec["sigma"] == pytest.approx(spec["sigma_sd"] * sd)
        assert spec["kind"] == "yaware" and spec["columns"] == "age"
    assert [c["weight"] for c in candidates(setting, "clinical")] == list(
        GRID["clinical"]["weight"]
    )
    assert all("sigma" not in c for c in candidates(setting, "clinical"))
    assert candidates(setting, "simclr") == [None]
    flat = Setting(
        "cohort-informative",
        setting.train_images,
        setting.train_y,
        setting.train_metadata.assign(age=40.0),
        setting.test_images,
        setting.test_y,
    )
    with pytest.raises(ValueError, match=r"'age' to vary .* standard deviation of 0.0"):
        candidates(flat, "yaware")


def test_the_cohorts_validation_patients_are_other_patients_and_leave_train_and_test_alone():
    small = load_setting("cohort-informative", 0, n_train=60, n_test=30, n_val=10)
    large = load_setting("cohort-informative", 0, n_train=60, n_test=30, n_val=40)
    np.testing.assert_array_equal(small.train_images, large.train_images)
    np.testing.assert_array_equal(small.test_images, large.test_images)
    assert small.val_images.shape == (10, 1, 28, 28) and small.val_y.shape == (10,)
    train = {image.tobytes() for image in small.train_images}
    assert not any(image.tobytes() in train for image in large.val_images)
    assert set(np.unique(large.val_y)) == {0, 1, 2}


def test_a_chosen_spec_is_trained_with_and_fine_tuning_leaves_the_pretrained_encoder_alone():
    import torch

    from lab.priors import candidates, run_finetune

    setting = load_setting("cohort-informative", 0, n_train=60, n_test=30, n_val=20)
    spec = candidates(setting, "yaware")[-1]  # the widest kernel, weight 3
    small = {"latent_dim": 4, "width": 4, "batch_size": 16}
    rows = run_one(
        setting, "yaware", 0, epochs=1, fractions=(0.1, 1.0), spec=spec, finetune=(0.1,), **small
    )
    probes = [r for r in rows if r["protocol"] == "probe"]
    (tuned,) = [r for r in rows if r["protocol"] == "finetune"]
    assert [r["fraction"] for r in probes] == [0.1, 1.0]
    for row in probes:
        assert row["weight"] == 3.0 and row["sigma_sd"] == spec["sigma_sd"]
        assert row["sigma"] == str((spec["sigma"],))  # the term used the chosen bandwidth
        assert 0.0 <= row["val_acc"] <= 1.0 and 0.0 <= row["probe_acc"] <= 1.0
    assert tuned["n_labels"] == 6 and np.isnan(tuned["ari"]) and tuned["method"] == "yaware"

    from stratify import Stratifier

    model = Stratifier(3, epochs=1, random_state=0, **small).fit(setting.train_images)
    before = {k: v.clone() for k, v in model.model_.encoder.state_dict().items()}
    (row,) = run_finetune(setting, model, 0, fractions=(0.1,), steps=3, batch_size=8)
    assert row["protocol"] == "finetune" and 0.0 <= row["probe_acc"] <= 1.0
    after = model.model_.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # a copy was trained
