"""Safe persistence: exact round trips, clear errors, no code execution, joblib still works."""

from __future__ import annotations

import io as _io

import joblib
import numpy as np
import pandas as pd
import pytest
import torch

from stratify import io
from stratify.data import make_cohort
from stratify.data.augment import AugmentParams
from stratify.estimator import Stratifier

TINY = {"latent_dim": 8, "width": 4, "epochs": 2, "batch_size": 32}


@pytest.fixture(scope="module")
def images():
    return make_cohort(120, random_state=0).images


@pytest.mark.parametrize(
    "params",
    [
        {"clusterer": "kmeans"},
        {"clusterer": "hdbscan", "n_clusters": "auto"},
        {"clusterer": "gmm", "n_clusters": "auto", "model": "vae"},
        {"clusterer": "kmeans", "manifold": "umap", "augmentation": AugmentParams(hflip=0.5)},
        {"clusterer": "head", "manifold": None},
        {"clusterer": "consensus-spectral"},
    ],
)
def test_round_trip_predicts_exactly(images, tmp_path, params):
    est = Stratifier(random_state=0, **{"n_clusters": 3, **TINY, **params}).fit(images)
    loaded = Stratifier.load(est.save(tmp_path / "model.pt"))
    assert loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.labels_, est.labels_)
    np.testing.assert_array_equal(loaded.predict(images), est.predict(images))
    np.testing.assert_array_equal(loaded.transform(images), est.transform(images))
    np.testing.assert_array_equal(loaded.novelty_score(images), est.novelty_score(images))
    assert loaded.clusterer_.novelty_.threshold_ == est.clusterer_.novelty_.threshold_
    np.testing.assert_array_equal(loaded.sample(2, random_state=0), est.sample(2, random_state=0))
    assert loaded.history_.equals(est.history_)
    assert loaded.fit_seconds_ == est.fit_seconds_ > 0


def test_truncated_and_foreign_files(images, tmp_path):
    path = Stratifier(2, random_state=0, **TINY).fit(images).save(tmp_path / "m.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="not a readable stratify model file"):
        Stratifier.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="not a stratify model file"):
        Stratifier.load(foreign)
    with pytest.raises(FileNotFoundError, match="No stratify model file"):
        Stratifier.load(tmp_path / "missing.pt")


def test_newer_format_is_refused(images, tmp_path):
    path = Stratifier(2, random_state=0, **TINY).fit(images).save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = io.FORMAT_VERSION + 1
    torch.save(payload, path)
    newer, current = io.FORMAT_VERSION + 1, io.FORMAT_VERSION
    with pytest.raises(ValueError, match=rf"format version {newer}; .*version {current} at most"):
        Stratifier.load(path)


class _Payload:
    """Pickling this object would run code on load: the safe loader must refuse it."""

    def __reduce__(self):
        return (exec, ("import sys; sys.modules[__name__].EXECUTED = True",))


def test_loading_never_executes_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": io.FORMAT, "format_version": 1, "x": _Payload()}, path)
    with pytest.raises(
        ValueError, match="is not a stratify model file: torch's safe loader rejected its content"
    ) as caught:
        Stratifier.load(path)
    assert not hasattr(__import__(__name__), "EXECUTED")
    message = str(caught.value)
    assert "Do not open it with torch.load(weights_only=False)" in message
    assert "will likely succeed" not in message and "\n" not in message


def test_objects_in_parameters_need_joblib(images, tmp_path):
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 8))
    est = Stratifier(2, encoder=encoder, reconstruction=None, random_state=0, **TINY)
    est.fit(images)
    with pytest.raises(TypeError, match=r"Cannot save parameters \['encoder'\] .*joblib"):
        est.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    buffer = _io.BytesIO()
    joblib.dump(est, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(joblib.load(buffer).predict(images), est.predict(images))


def test_a_failed_save_keeps_the_previous_file(images, tmp_path, monkeypatch):
    est = Stratifier(2, random_state=0, **TINY).fit(images)
    path = est.save(tmp_path / "m.pt")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        est.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_auto_manifold_restores_its_chosen_run_without_recomputing_the_candidates(
    images, monkeypatch
):
    # manifold="auto" is StrataClusterer's (research) option since 0.2; its saved state
    # restores the chosen run exactly
    from stratify import cluster

    latents = Stratifier(2, random_state=0, **TINY).fit(images).embedding_
    strata = cluster.StrataClusterer("gmm", 2, normalize=True, manifold="auto", random_state=0).fit(
        latents
    )
    table = strata.manifold_selection_
    assert table["selected"].sum() == 1
    state = strata.state()

    def no_candidates(*args, **kwargs):
        raise AssertionError("the candidates were recomputed")

    monkeypatch.setattr(cluster.StrataClusterer, "_most_stable", no_candidates)
    restored = cluster.StrataClusterer.from_state(latents, state)
    np.testing.assert_array_equal(restored.labels_, strata.labels_)
    np.testing.assert_array_equal(restored.predict(latents[:20]), strata.predict(latents[:20]))
    pd.testing.assert_frame_equal(restored.manifold_selection_, table, check_dtype=False)
    with pytest.raises(ValueError, match="one selected row"):
        cluster.StrataClusterer("gmm", 2, manifold="auto").fit(
            latents, manifold_selection=table.assign(selected=False)
        )


def test_a_flipped_byte_inside_a_tensor_is_refused(images, tmp_path):
    est = Stratifier(2, random_state=0, **TINY).fit(images)
    path = est.save(tmp_path / "m.pt")
    raw = bytearray(path.read_bytes())
    start = bytes(raw).find(est.embedding_.tobytes()[:64])  # the latents, stored as they are
    assert start > 0
    raw[start + 1000] ^= 0x01
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(raw))
    torch.load(flipped, map_location="cpu", weights_only=True)  # torch alone notices nothing
    with pytest.raises(ValueError, match=r"flipped.pt is corrupted: .* checksum"):
        Stratifier.load(flipped)
    Stratifier.load(path)  # the intact file still loads


def _rewritten(path, tmp_path, change):
    payload = torch.load(path, map_location="cpu", weights_only=True)
    change(payload)
    payload["checksum"] = io.checksum(payload)
    out = tmp_path / "rewritten.pt"
    torch.save(payload, out)
    return out


def test_other_library_versions_warn_and_name_both(images, tmp_path):
    path = Stratifier(2, random_state=0, **TINY).fit(images).save(tmp_path / "m.pt")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert set(payload["versions"]) == set(io.RECORDED)
    installed = io.versions()["scikit-learn"]

    def older_sklearn(p):
        p["versions"]["scikit-learn"] = "0.1.0"

    older = _rewritten(path, tmp_path, older_sklearn)
    with pytest.warns(UserWarning, match=rf"scikit-learn saved with 0.1.0, installed {installed}"):
        Stratifier.load(older)

    def other_labels(p):
        older_sklearn(p)
        labels = p["fitted"]["clusterer"]["labels"]
        p["fitted"]["clusterer"]["labels"] = 1 - labels

    changed = _rewritten(path, tmp_path, other_labels)
    with (
        pytest.warns(UserWarning),
        pytest.raises(ValueError, match=r"other labels.*Versions differ: scikit-learn saved"),
    ):
        Stratifier.load(changed)
