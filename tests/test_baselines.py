"""Tests of the benchmark's reference methods (pixel PCA + k-means, supervised ResNet-18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from stratify.baselines import SupervisedBaseline, pixel_pca_kmeans, resnet18_trunk


def _two_groups(n_per: int, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark images with a bright left half vs dark images with a bright right half."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(2 * n_per, *shape)).astype(np.uint8)
    half = shape[-1] // 2
    images[:n_per, ..., :half] += 180
    images[n_per:, ..., half:] += 180
    labels = np.repeat([0, 1], n_per)
    order = rng.permutation(2 * n_per)
    return images[order], labels[order]


# ------------------------------------------------------------------------- pixel PCA
def test_pixel_pca_kmeans_separates_and_assigns_test_images():
    train, y = _two_groups(30, (1, 8, 8))
    test, y_test = _two_groups(10, (1, 8, 8), seed=1)
    train_labels, test_labels, train_z, test_z = pixel_pca_kmeans(
        train, 2, test, n_components=5, random_state=0)
    assert train_labels.shape == (60,) and test_labels.shape == (20,)
    assert train_z.shape == (60, 5) and test_z.shape == (20, 5)
    # one cluster per group, and test images land in their group's cluster
    mapping = {int(y[i]): int(train_labels[i]) for i in range(60)}
    assert len(set(mapping.values())) == 2
    assert all(mapping[int(t)] == int(c) for t, c in zip(y_test, test_labels, strict=True))


def test_pixel_pca_kmeans_projection_matches_centred_svd():
    """The embedding is the projection on the top principal axes (up to sign)."""
    train, _ = _two_groups(20, (1, 6, 6))
    _, _, train_z, _ = pixel_pca_kmeans(train, 2, n_components=3, random_state=0)
    flat = train.reshape(40, -1).astype(np.float64) / 255.0
    centred = flat - flat.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    reference = u[:, :3] * s[:3]
    np.testing.assert_allclose(np.abs(train_z), np.abs(reference), atol=1e-4)


def test_pixel_pca_kmeans_caps_components_and_checks_input():
    train, _ = _two_groups(3, (1, 4, 4))
    _, test_labels, train_z, test_z = pixel_pca_kmeans(train, 2, n_components=50)
    assert train_z.shape == (6, 6) and test_labels is None and test_z is None
    with pytest.raises(ValueError, match=r"n_clusters <= the number of training images \(6\)"):
        pixel_pca_kmeans(train, 7)
    with pytest.raises(ValueError, match=r"training image shape \(1, 4, 4\), got \(1, 5, 5\)"):
        pixel_pca_kmeans(train, 2, np.zeros((2, 1, 5, 5), np.uint8))


# --------------------------------------------------------------------------- ResNet trunk
@pytest.mark.parametrize(("shape", "stride"), [((1, 28, 28), 1), ((3, 28, 28), 2),
                                                ((1, 16, 16), 1), ((1, 16, 16, 16), 2)])
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
    torch.testing.assert_close(own["layer3.0.conv2.weight"],
                               reference.state_dict()["layer3.0.conv2.weight"])
    assert own["conv1.weight"].shape == (64, 1, 3, 3)  # the small stem, not ImageNet's


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


# ------------------------------------------------------------------- supervised baseline
def _auc_by_pairs(y: np.ndarray, score: np.ndarray) -> float:
    """AUC as the fraction of (positive, negative) pairs ranked correctly (ties count 1/2)."""
    pos, neg = score[y == 1], score[y == 0]
    wins = sum(float(p > n) + 0.5 * float(p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_supervised_baseline_learns_and_reports_acc_and_auc():
    X, y = _two_groups(32, (1, 16, 16))
    X_val, y_val = _two_groups(8, (1, 16, 16), seed=1)
    names = np.array(["left", "right"])[y]
    model = SupervisedBaseline(epochs=4, batch_size=16, patience=3, random_state=0)
    model.fit(X, names, X_val=X_val, y_val=np.array(["left", "right"])[y_val])
    assert model.classes_.tolist() == ["left", "right"]
    assert model.from_scratch_ and model.n_features_in_ == 256
    assert {"cross_entropy", "val_loss"} <= set(model.history_.columns)
    assert model.best_epoch_ is not None
    X_test, y_test = _two_groups(10, (1, 16, 16), seed=2)
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


def test_supervised_baseline_is_reproducible():
    X, y = _two_groups(16, (1, 16, 16))
    state = torch.get_rng_state()
    a = SupervisedBaseline(epochs=1, batch_size=16, random_state=3).fit(X, y)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    b = SupervisedBaseline(epochs=1, batch_size=16, random_state=3).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    pd_a, pd_b = a.history_.drop(columns="seconds"), b.history_.drop(columns="seconds")
    assert pd_a.equals(pd_b)


def test_supervised_baseline_errors():
    X, y = _two_groups(4, (1, 16, 16))
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
