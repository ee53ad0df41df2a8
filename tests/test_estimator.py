"""The Stratifier: recovering strata, inputs, fitted state, determinism and errors."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from stratify._constraints import invalid_values
from stratify._validation import check_strata_fit
from stratify.analysis import stability
from stratify.data import make_cohort, volumes_to_slices
from stratify.estimator import Stratifier

TINY = {"latent_dim": 8, "width": 4, "epochs": 1, "batch_size": 32}


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(360, random_state=0)


@pytest.fixture(scope="module")
def fitted(cohort):
    images, _, metadata = cohort
    return Stratifier(3, epochs=10, batch_size=64, random_state=0).fit(images, metadata=metadata)


def test_default_stratifier_recovers_the_strata(fitted, cohort):
    _, strata, _ = cohort
    assert adjusted_rand_score(strata, fitted.labels_) > 0.8
    held_out, held_strata, _ = make_cohort(150, random_state=1)
    assert adjusted_rand_score(held_strata, fitted.predict(held_out)) > 0.8


def test_fitted_attributes(fitted, cohort):
    images = cohort[0]
    assert fitted.embedding_.shape == (360, 32) and fitted.embedding_.dtype == np.float32
    assert fitted.labels_.shape == (360,) and fitted.n_clusters_ == 3
    assert fitted.image_shape_ == (1, 28, 28) and fitted.n_features_in_ == 784
    assert fitted.data_range_ == (0.0, 255.0)
    assert list(fitted.history_["epoch"]) == list(range(1, 11))
    assert {"reconstruction", "contrastive", "total", "lr"} <= set(fitted.history_.columns)
    assert not fitted.model_.training
    np.testing.assert_allclose(fitted.transform(images[:20]), fitted.embedding_[:20], atol=1e-5)
    np.testing.assert_array_equal(fitted.predict(images), fitted.labels_)
    # the default clusterer: evidence accumulation (20 Gaussian mixtures, spectral cut) on
    # the normalised latents, no manifold
    consensus = fitted.clusterer_.estimator_
    assert type(consensus).__name__ == "ConsensusStrata"
    assert (consensus.linkage, consensus.base, consensus.n_runs) == ("spectral", "gmm", 20)
    assert fitted.clusterer_.normalize
    assert fitted.probabilities_.shape == (360,)
    proba = fitted.predict_proba(images[:5])
    assert proba.shape == (5, 3)
    np.testing.assert_array_equal(proba.argmax(axis=1), fitted.labels_[:5])
    assert not fitted.clusterer_.uses_manifold_ and fitted.manifold_embedding_ is None
    auto = fitted.recluster("gmm", manifold="auto")  # the earlier default: the stabler space
    table = auto.manifold_selection_
    assert table["manifold"].tolist() == ["none", "umap"] and table["selected"].sum() == 1
    on_manifold = bool(table.loc[1, "selected"])
    assert auto.clusterer_.uses_manifold_ == on_manifold
    assert (None if auto.manifold_embedding_ is None else auto.manifold_embedding_.shape) == (
        (360, 10) if on_manifold else None
    )
    latent = fitted.recluster(manifold=None)
    assert latent.manifold_embedding_ is None and not hasattr(latent, "manifold_selection_")
    assert fitted.recluster(manifold="umap").manifold_embedding_.shape == (360, 10)
    kmeans = fitted.recluster("kmeans")
    assert not hasattr(kmeans, "probabilities_")
    np.testing.assert_allclose(kmeans.predict_proba(images[:5]).sum(axis=1), 1.0)
    assert -1 <= fitted.score(images) <= 1


def test_same_seed_same_strata_and_global_rng_untouched(cohort):
    images = cohort[0][:96]
    state = torch.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()  # noqa: NPY002 (checks it is untouched)
    a = Stratifier(3, random_state=7, **TINY).fit(images)
    b = Stratifier(3, random_state=7, **TINY).fit(images)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state)  # noqa: NPY002
    c = Stratifier(3, random_state=8, **TINY).fit(images)
    assert not np.array_equal(a.embedding_, c.embedding_)


def test_input_layouts_give_the_same_model(cohort):
    images = cohort[0][:64]
    reference = Stratifier(2, random_state=0, **TINY).fit(images)
    variants = [
        (images[:, 0], {}),
        (images.reshape(64, -1), {"image_shape": (1, 28, 28)}),
        (torch.utils.data.TensorDataset(torch.from_numpy(images)), {}),
    ]
    for X, extra in variants:
        other = Stratifier(2, random_state=0, **TINY, **extra).fit(X)
        np.testing.assert_array_equal(other.embedding_, reference.embedding_)


def test_float_input_is_scaled_by_its_training_range(cohort):
    images = cohort[0][:64]
    hounsfield = images.astype(np.float32) * 4.0 - 1000.0  # CT-like range
    est = Stratifier(2, random_state=0, **TINY).fit(hounsfield)
    assert est.data_range_ == (float(hounsfield.min()), float(hounsfield.max()))
    reference = Stratifier(2, random_state=0, **TINY).fit(images)
    if images.min() == 0 and images.max() == 255:
        np.testing.assert_allclose(est.embedding_, reference.embedding_, atol=1e-4)


def test_volumes_and_rgb(cohort):
    volumes, _, _ = make_cohort(16, mode="3d", size=16, random_state=0)
    est = Stratifier(2, random_state=0, **TINY).fit(volumes)
    assert est.image_shape_ == (1, 16, 16, 16) and est.transform(volumes).shape == (16, 8)
    rgb = np.repeat(cohort[0][:32], 3, axis=1)
    assert Stratifier(2, random_state=0, **TINY).fit(rgb).image_shape_ == (3, 28, 28)


def test_fit_does_not_modify_inputs_or_encoder(cohort):
    images, _, metadata = cohort
    images, metadata = images[:64].copy(), metadata.iloc[:64].copy()
    before_images, before_meta = images.copy(), metadata.copy()
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 16))
    weights = copy.deepcopy(encoder.state_dict())
    est = Stratifier(
        2,
        encoder=encoder,
        reconstruction=None,
        random_state=0,
        regularizers={"age": {"kind": "yaware", "columns": "age", "sigma": 10.0}},
        **TINY,
    ).fit(images, metadata=metadata)
    np.testing.assert_array_equal(images, before_images)
    pd.testing.assert_frame_equal(metadata, before_meta)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, weights[key])
    assert est.model_.encoder is not encoder


def test_regularizers_from_specs_reach_the_objective(cohort):
    volumes, strata, metadata = make_cohort(12, mode="3d", size=16, random_state=0)
    slices, frame = volumes_to_slices(volumes, labels=strata, metadata=metadata, stride=4)
    regularizers = {
        "age": {"kind": "yaware", "columns": "age", "sigma": 10.0, "weight": 0.5},
        "wsp": {"kind": "wsp", "label_column": "weak_label", "position_column": "position"},
        "clinical": {"kind": "clinical", "columns": {"weak_label": 1.0, "site": 0.5}},
    }
    est = Stratifier(2, regularizers=regularizers, random_state=0, **TINY)
    est.fit(slices, metadata=frame)
    assert {"age", "wsp", "clinical"} <= set(est.history_.columns)
    assert set(est.objective_.metadata_columns) == {"age", "weak_label", "position", "site"}


def test_supcon_uses_y(cohort):
    images, strata, _ = cohort
    est = Stratifier(3, contrastive="supcon", random_state=0, **TINY).fit(images[:64], strata[:64])
    assert "contrastive" in est.history_.columns
    with pytest.raises(ValueError, match="Expected y: the objective has a term on 'labels'"):
        Stratifier(3, contrastive="supcon", **TINY).fit(images[:64])


@pytest.mark.parametrize("clusterer", ["gmm", "hdbscan"])
def test_soft_memberships(fitted, cohort, clusterer):
    images = cohort[0]
    est = Stratifier("auto", clusterer=clusterer, random_state=0, **TINY).fit(images[:120])
    assert est.probabilities_.shape == (120,)
    assert est.predict_proba(images[:5]).shape == (5, est.n_clusters_)
    if clusterer == "hdbscan":
        assert est.outlier_scores_.shape == (120,)
    else:
        assert list(est.cluster_selection_["k"]) == list(range(2, 11))


def test_refit_forgets_the_previous_fit(cohort):
    images = cohort[0][:64]
    est = Stratifier("auto", clusterer="gmm", random_state=0, **TINY).fit(images)
    assert hasattr(est, "cluster_selection_") and hasattr(est, "probabilities_")
    est.set_params(n_clusters=2, clusterer="kmeans").fit(images)
    assert not hasattr(est, "cluster_selection_") and not hasattr(est, "probabilities_")


def test_recluster_equals_a_fit_with_that_clusterer(cohort):
    images = cohort[0][:96]
    base = Stratifier(3, clusterer="kmeans", random_state=7, **TINY).fit(images)
    other = base.recluster("gmm", 2)
    direct = Stratifier(2, clusterer="gmm", random_state=7, **TINY).fit(images)
    np.testing.assert_array_equal(other.labels_, direct.labels_)
    np.testing.assert_allclose(other.probabilities_, direct.probabilities_, atol=1e-6)
    np.testing.assert_array_equal(other.predict(images[:10]), direct.predict(images[:10]))
    assert other.model_ is base.model_ and other.n_clusters_ == 2
    # the original keeps its own strata and parameters
    assert base.get_params()["clusterer"] == "kmeans" and base.n_clusters_ == 3
    assert not hasattr(base, "probabilities_")
    back = other.recluster("kmeans", 3)
    np.testing.assert_array_equal(back.labels_, base.labels_)
    assert not hasattr(back, "probabilities_")
    with pytest.raises(NotFittedError):
        Stratifier(3).recluster("gmm")


def test_describe_and_stability_delegate(fitted, cohort):
    _, _, metadata = cohort
    profile, tests = fitted.describe(metadata)
    assert profile["n"].sum() == 360
    assert tests.loc["age", "p_value"] < 1e-6  # age is correlated with the strata
    roles = fitted.columns_in_training()
    assert tests["training_role"].tolist() == [roles.get(c, "none") for c in tests.index]
    assert tests["used_in_training"].tolist() == [c in roles for c in tests.index]
    _, without = fitted.describe(metadata, outcome=("age", "site"))
    assert not {"age", "site"} & set(without.index) and len(without) == len(tests) - 2
    images = cohort[0][:60]
    table = stability(Stratifier(2, random_state=0, **TINY), images, n_resamples=2, random_state=0)
    table = table.resamples
    assert len(table) == 2 and table["ari"].between(-1, 1).all()


def test_not_fitted():
    with pytest.raises(NotFittedError):
        Stratifier().transform(np.zeros((2, 1, 28, 28), np.uint8))


@pytest.mark.parametrize(
    ("params", "X", "fit_kwargs", "error", "match"),
    [
        ({}, np.zeros(784, np.uint8), {}, ValueError, r"got a 1D array .*Reshape your data"),
        (
            {"image_shape": (1, 28, 27)},
            np.zeros((4, 784), np.uint8),
            {},
            ValueError,
            r"Expected 756 values per sample for image_shape=\(1, 28, 27\), got 784",
        ),
        ({"model": "gan"}, None, {}, ValueError, r"'model' parameter of Stratifier .*'gan'"),
        ({"temperature": 0}, None, {}, ValueError, r"'temperature' .*\(0, inf\)\. Got 0"),
        (
            {"batch_size": "big"},
            None,
            {},
            TypeError,
            r"'batch_size' parameter of Stratifier must be an int in the range \[1, inf\) or "
            r"'auto'\. Got 'big'",
        ),
        ({"batch_size": 0}, None, {}, ValueError, r"'batch_size' parameter of Stratifier"),
        (
            {"reconstruction": None, "contrastive": None},
            None,
            {},
            ValueError,
            "at least one loss term",
        ),
        (
            {"encoder": "resnet"},
            None,
            {},
            TypeError,
            r"'encoder' .*torch\.nn\.Module or None\. Got 'resnet'",
        ),
        (
            {"encoder": torch.nn.Flatten()},
            None,
            {},
            ValueError,
            "reconstruction=None with a custom encoder",
        ),
        (
            {"regularizers": {"r": {"kind": "magic"}}},
            None,
            {},
            ValueError,
            r"'kind' parameter of regularizer 'r' .*Got 'magic'",
        ),
        (
            {"regularizers": {"age": {"kind": "yaware", "columns": "age"}}},
            None,
            {"metadata": pd.DataFrame({"sex": [0] * 8})},
            ValueError,
            r"metadata to hold the column\(s\) \['age'\] read by the regularizers, "
            r"got columns \['sex'\]",
        ),
        (
            {"regularizers": {"age": {"kind": "yaware", "columns": "age"}}},
            None,
            {"metadata": pd.DataFrame({"age": [1.0] * 3})},
            ValueError,
            r"\(8 rows\), got 3 rows",
        ),
        (
            {"regularizers": {"age": {"kind": "yaware", "columns": "age"}}},
            None,
            {},
            ValueError,
            r"Expected metadata with the columns \['age'\]",
        ),
        (
            {"regularizers": {"age": {"kind": "yaware", "columns": "age"}}},
            None,
            {"metadata": pd.DataFrame({"age": [np.nan] * 4 + [np.inf] * 4})},
            ValueError,
            r"finite values in the metadata column 'age' .*got none \(all 8 missing or infinite",
        ),
        (
            {"regularizers": {"s": {"kind": "yaware", "columns": "site"}}},
            None,
            {"metadata": pd.DataFrame({"site": pd.Categorical(["A", "B"] * 4)})},
            TypeError,
            r"numeric metadata column 'site' for a distance kernel .*got dtype category",
        ),
        ({}, np.zeros((8, 2, 2, 2, 2, 2), np.uint8), {}, ValueError, "2, 3, 4 or 5 dimensions"),
        # inputs that no term reads are still checked against the images
        (
            {},
            None,
            {"y": np.zeros(5)},
            ValueError,
            r"Expected y of shape \(8,\), one label per image, got shape \(5,\)",
        ),
        (
            {},
            None,
            {"metadata": pd.DataFrame({"age": [1.0] * 3})},
            ValueError,
            r"\(8 rows\), got 3 rows",
        ),
    ],
)
def test_bad_input(params, X, fit_kwargs, error, match):
    X = np.zeros((8, 1, 28, 28), np.uint8) if X is None else X
    with pytest.raises(error, match=match):
        Stratifier(**{**TINY, **params}).fit(X, **fit_kwargs)


def test_feature_vectors_get_an_mlp_and_recover_groups():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(300, centers=3, n_features=12, cluster_std=1.0, random_state=0)
    est = Stratifier(3, epochs=30, batch_size=64, random_state=0).fit(X)
    assert est.image_shape_ == (12, 1, 1) and type(est.model_.encoder).__name__ == "MLPEncoder"
    assert adjusted_rand_score(y, est.labels_) > 0.9
    assert est.sample(4, random_state=0).shape == (4, 12)
    with pytest.raises(ValueError, match="X has 5 features, but Stratifier is expecting 12"):
        est.predict(X[:, :5])


def test_predict_checks_the_image_shape(fitted):
    with pytest.raises(
        ValueError,
        match=r"shape \(1, 28, 28\) per sample, as in fit, got "
        r"\(1, 32, 32\)",
    ):
        fitted.predict(np.zeros((2, 1, 32, 32), np.uint8))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"manifold": "pca"}, r"'manifold' parameter of Stratifier"),
        ({"clusterer": "kmeanz"}, r"'clusterer' parameter of Stratifier"),
    ],
)
def test_clustering_parameters_fail_before_training(cohort, params, match):
    import time

    start = time.perf_counter()
    with pytest.raises(ValueError, match=match):
        Stratifier(3, **{**TINY, **params}).fit(cohort[0][:48])
    assert time.perf_counter() - start < 1.0


@pytest.fixture(scope="module")
def scale_models(cohort):
    images = cohort[0][:64]
    uint8 = Stratifier(2, random_state=0, **TINY).fit(images)
    twelve_bit = images.astype(np.uint16) * 16  # 0-4080, stored as uint16
    deep = Stratifier(2, random_state=0, **TINY).fit(twelve_bit)
    return images, uint8, twelve_bit, deep


def test_new_images_on_another_intensity_scale_are_refused(scale_models):
    images, uint8, twelve_bit, deep = scale_models
    with pytest.raises(
        ValueError,
        match=r"fitted on intensities in \[0, 255\] \(uint8\); got "
        r"float32 values in \[0, 1\], which looks like images "
        r"rescaled to \[0, 1\]",
    ):
        uint8.predict(images.astype(np.float32) / 255.0)
    with pytest.raises(
        ValueError,
        match=r"uint16 values in \[0, 4080\], which cannot be on "
        r"the same scale",
    ):
        uint8.predict(twelve_bit)
    assert deep.data_range_ == (float(twelve_bit.min()), 4080.0)
    with pytest.raises(ValueError, match=r"got uint8 images, whose 0-255 scale cannot be"):
        deep.predict(images)
    with pytest.raises(ValueError, match="rescaled to"):
        deep.transform(twelve_bit.astype(np.float32) / 4080.0)


def test_new_images_on_the_training_scale_give_the_training_strata(scale_models):
    images, uint8, twelve_bit, deep = scale_models
    np.testing.assert_array_equal(uint8.predict(images.astype(np.float32)), uint8.labels_)
    np.testing.assert_array_equal(deep.predict(twelve_bit), deep.labels_)
    brighter = images.astype(np.float32) * 1.2  # up to 306 > 255: clipped, with a warning
    with pytest.warns(UserWarning, match=r"outside the training intensities \[0, 255\]"):
        uint8.predict(brighter)


def test_resumed_fit_equals_an_uninterrupted_fit(cohort, tmp_path, monkeypatch, interrupt_at):
    images = cohort[0][:96]
    settings = {**TINY, "epochs": 4, "random_state": 0}
    reference = Stratifier(2, train_config={"checkpoint_dir": str(tmp_path / "a")}, **settings)
    reference.fit(images)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            Stratifier(2, train_config={"checkpoint_dir": str(tmp_path / "b")}, **settings).fit(
                images
            )
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert saved["epoch"] == 2
    resumed = Stratifier(
        2, train_config={"checkpoint_dir": str(tmp_path / "b"), "resume": True}, **settings
    ).fit(images)
    np.testing.assert_array_equal(resumed.embedding_, reference.embedding_)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    assert resumed.history_["epoch"].tolist() == [1, 2, 3, 4]
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"] == 4


def test_a_new_fit_never_overwrites_a_checkpoint(cohort, tmp_path, monkeypatch, interrupt_at):
    images = cohort[0][:64]
    folder = tmp_path / "ckpt"
    settings = {
        **TINY,
        "epochs": 3,
        "random_state": 0,
        "train_config": {"checkpoint_dir": str(folder)},
    }
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            Stratifier(2, **settings).fit(images)
    before = (folder / "last.pt").read_bytes()
    trained = []
    monkeypatch.setattr("stratify.training.loop.run", lambda *a, **k: trained.append(1))
    with pytest.raises(
        FileExistsError,
        match=r"holds the checkpoint of an earlier fit "
        r"\(epoch 2 of 3\); resume it",
    ):
        Stratifier(2, **settings).fit(images)
    assert not trained and (folder / "last.pt").read_bytes() == before


def test_resume_refuses_another_fits_checkpoint(cohort, tmp_path):
    images = cohort[0][:64]
    settings = {
        **TINY,
        "epochs": 1,
        "random_state": 0,
        "train_config": {"checkpoint_dir": str(tmp_path)},
    }
    Stratifier(2, **settings).fit(images)
    resume = {**settings, "train_config": {"checkpoint_dir": str(tmp_path), "resume": True}}
    with pytest.raises(ValueError, match="written by a fit with other data or settings"):
        Stratifier(2, **resume).fit(images[::-1].copy())
    with pytest.raises(ValueError, match="written by a fit with other data or settings"):
        Stratifier(2, **{**resume, "lr": 0.5}).fit(images)
    with pytest.raises(ValueError, match=r"Expected a checkpoint_dir naming the checkpoint folder"):
        Stratifier(2, train_config={"resume": True}, **TINY).fit(images)


def test_verbose_fit_shows_progress_from_the_first_batch_and_the_steps_after(cohort, capsys):
    images = cohort[0][:64]  # 2 batches of 32 per epoch, 2 epochs
    Stratifier(2, **{**TINY, "epochs": 2}, verbose=True, random_state=0).fit(images)
    err = capsys.readouterr().err
    assert "train:   0%" in err and "0/4 [" in err  # drawn before the first batch
    assert "4/4 [" in err and "epoch=2/2" in err  # per batch, kept at the end
    assert "stratify: embedding 64 images ..." in err
    assert "stratify: clustering into 2 strata (consensus-spectral) ..." in err


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"latent_dim": 0}, r"'latent_dim' parameter of Stratifier .*Got 0"),
        ({"width": 0}, r"'width' parameter of Stratifier"),
        ({"depth": 0}, r"'depth' parameter of Stratifier"),
        ({"batch_size": 0}, r"'batch_size' parameter of Stratifier"),
        (
            {"epochs": 0},
            r"'epochs' parameter of Stratifier must be an int in the range \[1, inf\) "
            r"or 'auto'\. Got 0 instead",
        ),
        ({"epochs": "many"}, r"'epochs' parameter of Stratifier .*Got 'many' instead"),
        ({"lr": 0.0}, r"'lr' parameter of Stratifier .*\(0, inf\)"),
        ({"contrastive_weight": -1.0}, r"'contrastive_weight' parameter of Stratifier"),
        ({"verbose": "loud"}, r"'verbose' parameter of Stratifier must be a bool"),
        (
            {"image_shape": (1, 2)},
            r"'image_shape' parameter of Stratifier must be a tuple \(",
        ),
        (
            {"train_config": {"optimizr": "adam"}},
            r"'train_config' parameter of Stratifier has unknown field\(s\) \['optimizr'\]",
        ),
        (
            {"train_config": {"optimizer": "rmsprop"}},
            r"Invalid training settings of Stratifier .*'optimizer' parameter of TrainConfig",
        ),
        ({"device": "tpu"}, r"Invalid training settings of Stratifier .*'device'"),
    ],
)
def test_every_parameter_is_checked_before_training_and_named(cohort, params, match, monkeypatch):
    trained = []
    monkeypatch.setattr("stratify._parts.train", lambda *a, **k: trained.append(1))
    with pytest.raises((ValueError, TypeError), match=match):
        Stratifier(2, **{**TINY, **params}).fit(cohort[0][:16])
    assert not trained


def test_auto_batch_is_recorded_and_saved(cohort, tmp_path):
    from stratify.training import memory

    images = cohort[0][:64]
    model = Stratifier(
        2, epochs=1, latent_dim=4, width=4, random_state=0, train_config={"memory_budget": 1}
    ).fit(images)
    assert model.batch_size == "auto" and model.batch_size_ == 1  # a 1-byte budget
    default = Stratifier(2, epochs=1, latent_dim=4, width=4, random_state=0).fit(images)
    assert default.batch_size_ == memory.BATCH_CAP  # 28 px images: the cap fits
    loaded = Stratifier.load(default.save(tmp_path / "m.pt"))
    assert loaded.batch_size_ == default.batch_size_
    np.testing.assert_array_equal(loaded.predict(images), default.labels_)


BAD_PARAMS = {
    "n_clusters": 0,
    "model": "gan",
    "latent_dim": 0,
    "width": 0,
    "depth": 0,
    "encoder": "resnet",
    "decoder": "resnet",
    "reconstruction": "l1",
    "beta": -1.0,
    "kl_warmup": -1.0,
    "contrastive": "byol",
    "temperature": 0.0,
    "contrastive_weight": -1.0,
    "regularizers": 5,
    "augmentation": 5,
    "clusterer": "kmeanz",
    "manifold": "tsne",
    "epochs": 0,
    "batch_size": 0,
    "lr": 0.0,
    "train_config": {"epochz": 1},
    "image_shape": (1, 2),
    "device": "tpu",
    "random_state": "seed",
    "verbose": "loud",
}


def test_every_parameter_has_a_bad_value_case():
    assert set(BAD_PARAMS) == set(Stratifier().get_params())


def test_every_parameter_has_a_constraint():
    assert set(Stratifier._parameter_constraints) == set(Stratifier().get_params())


def _fails_before_training(params, monkeypatch):
    import time

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr("stratify._parts.train", no_training)
    start = time.perf_counter()
    with pytest.raises((TypeError, ValueError)) as excinfo:
        Stratifier(**params).fit(np.zeros((8, 1, 28, 28), np.uint8))
    assert time.perf_counter() - start < 1.0
    return str(excinfo.value)


@pytest.mark.parametrize("name", sorted(BAD_PARAMS))
def test_a_bad_parameter_fails_before_any_training(name, monkeypatch):
    message = _fails_before_training({name: BAD_PARAMS[name]}, monkeypatch)
    assert f"'{name}'" in message and "Stratifier" in message


@pytest.mark.parametrize(
    ("name", "value"),
    invalid_values(Stratifier._parameter_constraints),
    ids=lambda v: repr(v)[:30],
)
def test_values_the_constraint_table_refuses_fail_with_its_template(name, value, monkeypatch):
    from stratify._constraints import InvalidParameterError

    message = _fails_before_training({name: value}, monkeypatch)
    assert message.startswith(f"The '{name}' parameter of Stratifier must be ")
    assert message.endswith(f"Got {value!r} instead.")
    with pytest.raises(InvalidParameterError):
        Stratifier(**{name: value})._validate_params()


def test_auto_epochs_follow_the_sample_budget_rule(cohort, monkeypatch):
    from stratify.training import config

    # the rule by hand: ceil(AUTO_EPOCH_SAMPLES / N), at least 1
    budget = config.AUTO_EPOCH_SAMPLES
    assert config.auto_epochs(1000) == -(-budget // 1000)
    assert config.auto_epochs(546) == -(-budget // 546)
    assert config.auto_epochs(budget) == 1 and config.auto_epochs(10**7) == 1
    with pytest.raises(ValueError, match="'n_samples' parameter of auto_epochs"):
        config.auto_epochs(0)
    monkeypatch.setattr(config, "AUTO_EPOCH_SAMPLES", 100)  # 3 epochs of 40 images
    model = Stratifier(2, latent_dim=4, width=4, batch_size=20, random_state=0).fit(cohort[0][:40])
    assert model.epochs == "auto" and model.epochs_ == 3
    assert model.history_["epoch"].tolist() == [1, 2, 3]
    fixed = Stratifier(2, latent_dim=4, width=4, epochs=2, batch_size=20, random_state=0)
    assert fixed.fit(cohort[0][:40]).epochs_ == 2


def test_models_saved_before_whitening_load_unwhitened(cohort, tmp_path):
    import torch

    images = cohort[0][:64]
    model = Stratifier(2, random_state=0, **TINY).fit(images)
    path = model.save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=False)
    # as stratify wrote it in format version 1, before the whiten parameter
    payload["params"].pop("whiten", None)
    payload["format_version"] = 1
    fitted, state = payload["fitted"], payload["fitted"].pop("clusterer")
    fitted["labels_"], fitted["cluster_seed"] = state["labels"], state["params"]["random_state"]
    fitted["manifold_embedding_"] = state["manifold_embedding"]
    fitted["manifold_selection_"] = state["manifold_selection"]
    torch.save(payload, path)
    loaded = Stratifier.load(path)
    assert loaded.clusterer_.whiten is False
    np.testing.assert_array_equal(loaded.labels_, model.labels_)


@pytest.mark.parametrize("space", [{"manifold": "umap"}])
def test_score_is_the_silhouette_of_the_clustered_space(cohort, space):
    # the bar: score(X) is the silhouette of clustered_space(X) with predict(X),
    # also when the strata live on the manifold
    from sklearn.metrics import silhouette_score

    images = cohort.images[:200]
    held_out = cohort.images[200:300]
    est = Stratifier(3, clusterer="kmeans", random_state=0, **TINY, **space).fit(images)
    for X in (images, held_out):
        expected = silhouette_score(est.clustered_space(X), est.predict(X))
        assert est.score(X) == pytest.approx(expected, abs=1e-12)
    # the normalised latents give another value: the space matters
    latents = est.transform(held_out)
    normalised = latents / np.linalg.norm(latents, axis=1, keepdims=True)
    assert est.score(held_out) != pytest.approx(
        silhouette_score(normalised, est.predict(held_out)), abs=1e-6
    )


def test_metadata_joined_by_id_equals_metadata_in_order(cohort, tmp_path):
    images, _, metadata = cohort
    images, metadata = images[:120], metadata.iloc[:120].reset_index(drop=True)
    prior = {"age": {"kind": "yaware", "columns": "age", "sigma": 10.0}}
    params = {"random_state": 0, "regularizers": prior, **TINY}
    ordered = Stratifier(2, **params).fit(images, metadata=metadata)
    ids = np.array([f"P{k:03d}" for k in range(120)])
    table = metadata.assign(patient_id=ids).sample(frac=1, random_state=5).set_index("patient_id")
    joined = Stratifier(2, **params).fit(images, metadata=table, ids=ids)
    np.testing.assert_array_equal(joined.labels_, ordered.labels_)
    np.testing.assert_array_equal(joined.embedding_, ordered.embedding_)
    assert joined.ids_.tolist() == ids.tolist() and not hasattr(ordered, "ids_")
    assert Stratifier.load(joined.save(tmp_path / "m.pt")).ids_.tolist() == ids.tolist()
    with pytest.raises(ValueError, match=r"1 image ids without a metadata row: 'P119'"):
        Stratifier(2, **params).fit(images, metadata=table.drop(index="P119"), ids=ids)


@pytest.mark.parametrize("clusterer", ["gmm", "head"])
def test_data_that_cannot_give_the_strata_fails_before_training(cohort, clusterer, monkeypatch):
    trained = []
    monkeypatch.setattr("stratify._parts.train", lambda *a, **k: trained.append(1))
    images = cohort[0][:6]
    with pytest.raises(ValueError, match=r"n_clusters at most the number of images \(6\), got "):
        Stratifier(7, clusterer=clusterer, **TINY).fit(images)
    same = np.repeat(images[:1], 10, axis=0)
    with pytest.raises(ValueError, match="got 10 identical images"):
        Stratifier(2, clusterer=clusterer, **TINY).fit(same)
    assert not trained
    # one differing pixel is enough to go on (the check compares in chunks)
    almost = same.copy()
    almost[-1, 0, 0, 0] = 255 - almost[-1, 0, 0, 0]
    assert check_strata_fit(almost, 2, chunk=3) is None
    with pytest.raises(ValueError, match="got 9 identical images"):
        check_strata_fit(almost[:9], 2, chunk=3)
