"""Tests of the benchmark's reference methods (supervised ResNet-18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from lab.baselines import (
    SupervisedBaseline,
    auc_score,
    medmnist_protocol,
    resnet18_trunk,
    resnet_trunk,
)


# --------------------------------------------------------------------------- ResNet trunk
@pytest.mark.parametrize(
    ("shape", "stride"),
    [((1, 28, 28), 1), ((3, 28, 28), 2), ((1, 16, 16), 1), ((1, 16, 16, 16), 2)],
)
def test_resnet18_trunk_maps_small_images_to_512_features(shape, stride):
    trunk, loaded = resnet18_trunk(shape, stem_stride=stride)
    assert loaded == []
    with torch.no_grad():
        out = trunk.eval()(torch.rand(2, *shape))
    assert out.shape == (2, 512)


def test_resnet18_trunk_loads_matching_tensors_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    trunk, loaded = resnet18_trunk((1, 28, 28), weights=path)
    assert "layer1.0.conv1.weight" in loaded and "layer4.1.bn2.running_var" in loaded
    assert not any(name.startswith(("conv1.", "fc.")) for name in loaded)
    own = trunk.state_dict()
    torch.testing.assert_close(
        own["layer3.0.conv2.weight"], reference.state_dict()["layer3.0.conv2.weight"]
    )
    assert own["conv1.0.weight"].shape == (64, 1, 3, 3)  # the small stem, not ImageNet's


def test_resnet18_trunk_weight_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing is downloaded.*missing\.pt"):
        resnet18_trunk((1, 28, 28), weights=tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"Could not read weights from .*junk\.pt"):
        resnet18_trunk((1, 28, 28), weights=junk)
    other = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=r"No tensor of .*other\.pt matches"):
        resnet18_trunk((1, 28, 28), weights=other)
    with pytest.raises(ValueError, match=r"image_shape \(C, H, W\) or \(C, D, H, W\)"):
        resnet18_trunk((28, 28))


def _stage_sizes(trunk, shape):
    """Spatial size of the input to each residual stage, read by forward hooks."""
    sizes = {}
    hooks = [
        getattr(trunk, name).register_forward_pre_hook(
            lambda module, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[2:]))
        )
        for name in ("layer1", "layer2", "layer3", "layer4")
    ]
    with torch.no_grad():
        out = trunk.eval()(torch.rand(1, *shape))
    for hook in hooks:
        hook.remove()
    return sizes, out


@pytest.mark.parametrize(
    ("shape", "arch", "features"),
    [
        ((1, 28, 28), "resnet18", 512),
        ((3, 64, 64), "resnet18", 512),
        ((1, 28, 28), "resnet50", 2048),
        ((1, 28, 28, 28), "resnet18", 512),
    ],
)
def test_medmnist_stem_keeps_full_resolution_in_the_first_stage(shape, arch, features):
    trunk, loaded, skipped = resnet_trunk(shape, arch=arch, stem="medmnist")
    assert loaded == [] and skipped == {}
    sizes, out = _stage_sizes(trunk, shape)
    side = shape[-1]
    dims = len(shape) - 1
    # MedMNIST's ResNet (28): 3x3 stride-1 stem, no max-pool, then strides 1, 2, 2, 2
    assert sizes == {
        "layer1": (side,) * dims,
        "layer2": (side,) * dims,
        "layer3": ((side + 1) // 2,) * dims,
        "layer4": ((side + 3) // 4,) * dims,
    }
    assert out.shape == (1, features)
    small, _, _ = resnet_trunk(shape, arch=arch, stem="small")
    assert _stage_sizes(small, shape)[0]["layer1"] == (side // 2,) * dims


def test_medmnist_stem_normalises_inputs_to_minus_one_one():
    trunk, _, _ = resnet_trunk((1, 8, 8), stem="medmnist")
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(trunk.conv1[0](x).numpy(), ((x - 0.5) / 0.5).numpy())


def test_resnet50_has_no_3d_variant():
    with pytest.raises(ValueError, match=r"2D image_shape for arch='resnet50'.*\(1, 8, 8, 8\)"):
        resnet_trunk((1, 8, 8, 8), arch="resnet50")
    with pytest.raises(ValueError, match="'arch' parameter of resnet_trunk"):
        resnet_trunk((1, 8, 8), arch="vgg")


def test_weights_are_loaded_by_name_and_shape_and_mismatches_reported(tmp_path, two_groups):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(7, 7)  # wrong shape
    state["extra.bias"] = torch.zeros(3)  # not in the network
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    trunk, loaded, skipped = resnet_trunk((1, 28, 28), stem="medmnist", weights=path)
    assert (
        skipped["layer2.0.conv1.weight"] == "shape (7, 7) in the file, (128, 64, 3, 3) in "
        "the network"
    )
    assert skipped["extra.bias"] == "not in ResNet"
    assert skipped["conv1.weight"].startswith("replaced by the small-image stem")
    assert "fc.weight" in skipped and "layer2.0.conv1.weight" not in loaded
    assert set(loaded) | set(skipped) == set(state)
    torch.testing.assert_close(
        trunk.state_dict()["layer2.0.conv2.weight"], state["layer2.0.conv2.weight"]
    )
    X, y = two_groups(8, (1, 28, 28))
    model = SupervisedBaseline(
        epochs=1, batch_size=8, weights=path, stem="medmnist", random_state=0
    ).fit(X, y)
    assert not model.from_scratch_ and model.skipped_weights_ == skipped


def test_a_saved_trunk_loads_whole_into_the_same_stem_and_without_its_stem_elsewhere(
    tmp_path, two_groups
):
    X, y = two_groups(8, (1, 28, 28))
    source = SupervisedBaseline(
        epochs=1, batch_size=8, stem="medmnist", random_state=0, patience=None
    ).fit(X, y)
    path = source.save_trunk(tmp_path / "trunk.pt")
    saved = torch.load(path, weights_only=True)
    assert not any(name.startswith("fc.") for name in saved)  # no classifier head
    trunk, loaded, skipped = resnet_trunk((1, 28, 28), stem="medmnist", weights=path)
    assert skipped == {} and set(loaded) == set(trunk.state_dict()) == set(saved)
    assert "conv1.1.weight" in loaded  # the MedMNIST stem's convolution came along
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(trunk.eval()(x), source.model_.encoder.eval()(x))
    # RGB images: the grey stem does not fit, so none of it (convolution nor norm) loads.
    rgb, loaded, skipped = resnet_trunk((3, 28, 28), stem="medmnist", weights=path)
    stem = {name for name in saved if name.startswith("conv1.")}
    assert stem and set(skipped) == stem and set(loaded) == set(saved) - stem
    assert {skipped[name] for name in stem} == {"replaced by the small-image stem"}
    assert not torch.equal(saved["conv1.2.running_var"], torch.ones(64))  # trained stats...
    torch.testing.assert_close(rgb.state_dict()["conv1.2.running_var"], torch.ones(64))  # fresh


def test_save_trunk_needs_a_fitted_model_and_a_file_path(tmp_path, two_groups):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        SupervisedBaseline().save_trunk(tmp_path / "trunk.pt")
    X, y = two_groups(4, (1, 8, 8))
    model = SupervisedBaseline(epochs=1, batch_size=8, random_state=0).fit(X, y)
    with pytest.raises(IsADirectoryError, match="existing directory"):
        model.save_trunk(tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_an_interrupted_protocol_fit_resumes_to_the_uninterrupted_weights(
    tmp_path, monkeypatch, interrupt_at, two_groups
):
    X, y = two_groups(12, (1, 28, 28))
    X_val, y_val = two_groups(6, (1, 28, 28), seed=1)
    settings = {"epochs": 4, "batch_size": 8, "random_state": 0}

    def fit(folder, **extra):
        return medmnist_protocol(**settings, checkpoint_dir=tmp_path / folder, **extra).fit(
            X, y, X_val=X_val, y_val=y_val
        )

    reference = fit("a")
    with monkeypatch.context() as patch:
        interrupt_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            fit("b")
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=True)["epoch"] == 2
    with pytest.raises(FileExistsError, match=r"\(epoch 2 of 4\); resume it"):
        fit("b")  # a new fit never overwrites the progress
    resumed = fit("b", resume=True)
    assert resumed.history_["epoch"].tolist() == [1, 2, 3, 4]
    assert (resumed.resumed_epochs_, reference.resumed_epochs_) == (2, 0)
    assert resumed.best_epoch_ == reference.best_epoch_
    for name, value in reference.model_.state_dict().items():
        torch.testing.assert_close(resumed.model_.state_dict()[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(resumed.history_["lr"], reference.history_["lr"])
    with pytest.raises(ValueError, match="written by a fit with other data or settings"):
        medmnist_protocol(
            **{**settings, "lr": 0.5}, checkpoint_dir=tmp_path / "b", resume=True
        ).fit(X, y, X_val=X_val, y_val=y_val)
    with pytest.raises(ValueError, match="written by a fit with other data or settings"):
        fit("b", resume=True, weights=reference.save_trunk(tmp_path / "trunk.pt"))
    with pytest.raises(
        ValueError,
        match=r"checkpoint_dir with resume=True.*got "
        r"checkpoint_dir=None",
    ):
        medmnist_protocol(resume=True).fit(X, y)


# ------------------------------------------------------------------- supervised baseline
def _auc_by_pairs(y: np.ndarray, score: np.ndarray) -> float:
    """AUC as the fraction of (positive, negative) pairs ranked correctly (ties count 1/2)."""
    pos, neg = score[y == 1], score[y == 0]
    wins = sum(float(p > n) + 0.5 * float(p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_supervised_baseline_learns_and_reports_acc_and_auc(two_groups):
    X, y = two_groups(32, (1, 16, 16))
    X_val, y_val = two_groups(8, (1, 16, 16), seed=1)
    names = np.array(["left", "right"])[y]
    model = SupervisedBaseline(epochs=4, batch_size=16, patience=3, random_state=0)
    model.fit(X, names, X_val=X_val, y_val=np.array(["left", "right"])[y_val])
    assert model.classes_.tolist() == ["left", "right"]
    assert model.from_scratch_ and model.n_features_in_ == 256
    assert {"cross_entropy", "val_loss"} <= set(model.history_.columns)
    assert model.best_epoch_ is not None
    X_test, y_test = two_groups(10, (1, 16, 16), seed=2)
    proba = model.predict_proba(X_test)
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    scores = model.evaluate(X_test, np.array(["left", "right"])[y_test])
    predicted = model.predict(X_test)
    assert scores["acc"] == pytest.approx(np.mean(predicted == np.array(["left", "right"])[y_test]))
    assert scores["auc"] == pytest.approx(_auc_by_pairs(y_test, proba[:, 1]))
    # 4 epochs of 4 steps: the ranking is learnt (batch-norm running statistics, read in
    # eval mode, lag behind on so few steps, so the threshold is not tested here)
    assert scores["auc"] >= 0.95


def test_supervised_baseline_is_reproducible(two_groups):
    X, y = two_groups(16, (1, 16, 16))
    state = torch.get_rng_state()
    a = SupervisedBaseline(epochs=1, batch_size=16, random_state=3).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    b = SupervisedBaseline(epochs=1, batch_size=16, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    pd_a, pd_b = a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds")
    assert pd_a.equals(pd_b)


def test_supervised_baseline_errors(two_groups):
    X, y = two_groups(4, (1, 16, 16))
    model = SupervisedBaseline(epochs=1)
    with pytest.raises(ValueError, match=r"X_val and y_val together.*only X_val"):
        model.fit(X, y, X_val=X)
    with pytest.raises(ValueError, match=r"at least 2 classes in y, got \[0\]"):
        model.fit(X, np.zeros(8, int))
    with pytest.raises(ValueError, match=r"y of shape \(8,\).*got shape \(7,\)"):
        model.fit(X, y[:7])
    with pytest.raises(ValueError, match=r"y_val among the training classes \[0, 1\], got \[5\]"):
        model.fit(X, y, X_val=X[:2], y_val=np.array([5, 0]))
    fitted = SupervisedBaseline(epochs=1, batch_size=8, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"images of shape \(1, 16, 16\), got \(1, 8, 8\)"):
        fitted.predict(np.zeros((2, 1, 8, 8), np.uint8))


def test_medmnist_protocol_selects_the_epoch_with_the_best_validation_auc(two_groups):
    X, y = two_groups(24, (1, 16, 16))
    X_val, y_val = two_groups(8, (1, 16, 16), seed=1)
    model = medmnist_protocol(epochs=4, batch_size=16, random_state=0)
    assert (model.optimizer, model.scheduler, model.select, model.stem, model.patience) == (
        "adam",
        "multistep",
        "val_auc",
        "medmnist",
        None,
    )
    assert medmnist_protocol(volumes=True).batch_size == 32
    assert medmnist_protocol().epochs == 100 and medmnist_protocol().batch_size == 128
    model.fit(X, y, X_val=X_val, y_val=y_val)
    history = model.history_
    assert len(history) == 4  # no early stop: every epoch runs
    np.testing.assert_allclose(history["lr"], [1e-3, 1e-3, 1e-4, 1e-5])
    best = int(history["val_score"].to_numpy().argmax()) + 1  # the first best, as MedMNIST
    assert model.best_epoch_ == best
    proba = model.predict_proba(X_val)
    assert auc_score(y_val, proba) == pytest.approx(history["val_score"].iloc[best - 1])
    scores = model.evaluate(X_val, y_val)
    assert scores["auc"] == pytest.approx(_auc_by_pairs(y_val, proba[:, 1]))


def test_auc_score_multiclass_is_the_mean_one_vs_rest_auc():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, 60)
    proba = rng.dirichlet(np.ones(3), 60)
    expected = np.mean([_auc_by_pairs((codes == k).astype(int), proba[:, k]) for k in range(3)])
    assert auc_score(codes, proba) == pytest.approx(expected)
    assert np.isnan(auc_score(np.zeros(5, int), proba[:5]))


def test_fine_tunes_a_given_encoder_module_and_refuses_multi_label(two_groups):
    from stratify import Stratifier

    X, y = two_groups(16, (1, 16, 16))
    pretrained = Stratifier(2, epochs=1, batch_size=16, latent_dim=4, width=4, random_state=0).fit(
        X
    )
    before = {k: v.clone() for k, v in pretrained.model_.encoder.state_dict().items()}
    model = SupervisedBaseline(
        arch=pretrained.model_.encoder, epochs=2, batch_size=16, random_state=0
    ).fit(X, y)
    assert not model.from_scratch_
    # the copy was fine-tuned, the Stratifier's own encoder is untouched
    after = pretrained.model_.encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    tuned = model.model_.encoder.state_dict()
    assert any(
        not torch.equal(before[k], tuned[k]) for k in before if before[k].is_floating_point()
    )
    assert model.predict_proba(X).shape == (32, 2)
    with pytest.raises(ValueError, match=r"multi-label indicators of shape \(32, 3\)"):
        SupervisedBaseline(epochs=1).fit(X, np.zeros((32, 3), int))
    with pytest.raises(ValueError, match="'select' parameter of SupervisedBaseline"):
        SupervisedBaseline(select="auc").fit(X, y)


def test_medmnist_stem_of_64_px_volumes_keeps_full_resolution():
    trunk, _, _ = resnet_trunk((1, 64, 64, 64), stem="medmnist")
    with torch.no_grad():
        out = trunk.stem.eval()(torch.rand(1, 1, 64, 64, 64))
    assert out.shape == (1, 64, 64, 64, 64)  # 64 channels at 64^3: no stride, no pooling
    small, _, _ = resnet_trunk((1, 64, 64, 64), stem="small")
    with torch.no_grad():
        assert small.stem.eval()(torch.rand(1, 1, 64, 64, 64)).shape == (1, 64, 32, 32, 32)
