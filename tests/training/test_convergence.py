"""The label-free stopping rule: its checks, neighbour sets and agreement against by-hand
references, the stopped fit as the full fit's prefix, resume, and bad settings.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from stratify import Stratifier
from stratify.training import TrainConfig, train
from stratify.training.convergence import (
    NeighbourProbe,
    check_epochs,
    neighbour_agreement,
    neighbour_sets,
)

from .conftest import SpyObjective

QUIET = {"progress": False, "batch_size": 16, "num_threads": 1}


def _fit(model, images, epochs, callbacks=(), **config):
    cfg = TrainConfig(epochs=epochs, **{**QUIET, **config})
    objective = SpyObjective(("x", "recon", "z1", "z2"))
    return train(model, objective, images, config=cfg, random_state=5, callbacks=callbacks)


@pytest.mark.parametrize(
    ("epochs", "every", "expected"),
    [
        (10, 0.25, [3, 5, 8, 10]),  # ceil(10 j / 4), j = 1..4
        (55, 0.05, [3, 6, 9, 11, 14, 17, 20, 22, 25, 28, 31, 33, 36, 39, 42, 44, 47, 50, 53, 55]),
        (3, 0.05, [1, 2, 3]),  # a budget shorter than the checks: every epoch
        (7, 1.0, [7]),
    ],
)
def test_check_epochs_by_hand(epochs, every, expected):
    assert check_epochs(epochs, every) == expected


def test_neighbour_sets_match_a_naive_loop():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 5))
    got = neighbour_sets(torch.from_numpy(z).float(), 4).numpy()
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    for i in range(30):
        cos = [(-(unit[i] @ unit[j]), j) for j in range(30) if j != i]
        assert set(got[i]) == {j for _, j in sorted(cos)[:4]}
    # cosine: scaling a row changes nothing
    scaled = z * rng.uniform(0.1, 10, size=(30, 1))
    assert np.array_equal(np.sort(neighbour_sets(torch.from_numpy(scaled), 4).numpy()),
                          np.sort(got))  # fmt: skip


def test_agreement_by_hand():
    before = torch.tensor([[1, 2, 3], [0, 2, 3]])
    after = torch.tensor([[3, 2, 0], [4, 5, 1]])
    # row 0 shares {2, 3} (2 of 3); row 1 shares nothing
    assert neighbour_agreement(before, after) == pytest.approx((2 / 3 + 0) / 2)
    assert neighbour_agreement(before, before) == 1.0
    with pytest.raises(ValueError, match=r"one shape, got \(2, 3\) and \(2, 2\)"):
        neighbour_agreement(before, after[:, :2])


def test_neighbour_sets_refuse_k_out_of_range():
    with pytest.raises(ValueError, match="Expected 1 <= k < 5"):
        neighbour_sets(torch.zeros(5, 2), 5)


def test_probe_draws_from_the_training_rows_and_is_seeded(tiny_images):
    images = torch.from_numpy(tiny_images)
    rows = torch.arange(10, 40)
    a = NeighbourProbe(images, rows, seed=3, size=8, k=3)
    b = NeighbourProbe(images, rows, seed=3, size=8, k=3)
    assert a.images.shape == (8, 1, 16, 16) and torch.equal(a.images, b.images)
    pool = {images[i].numpy().tobytes() for i in rows.tolist()}
    assert all(img.numpy().tobytes() in pool for img in a.images)
    small = NeighbourProbe(images, torch.arange(4), seed=0)  # size and k shrink to fit
    assert small.images.shape[0] == 4 and small.k == 3
    with pytest.raises(ValueError, match=r"at least 2 training images .* got 1"):
        NeighbourProbe(images, torch.arange(1), seed=0)


def test_first_check_has_no_agreement_then_identical_weights_agree_fully(tiny_model, tiny_images):
    probe = NeighbourProbe(torch.from_numpy(tiny_images), torch.arange(48), seed=0, k=5)
    assert math.isnan(probe.agreement(tiny_model, 16, torch.device("cpu")))
    assert probe.agreement(tiny_model, 16, torch.device("cpu")) == 1.0
    assert tiny_model.training  # the mode is restored


def test_a_stopped_fit_is_the_full_fits_prefix(tiny_model, tiny_images):
    full, stopped = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    snapshots = {}

    def keep(epoch, row):
        snapshots[epoch] = {k: v.clone() for k, v in full.state_dict().items()}

    reference = _fit(full, tiny_images, 8, callbacks=[keep], check_every=0.25)
    assert "knn_agreement" not in reference.history  # no rule, no checks
    # any agreement stops: the second check (the first has nothing to compare with)
    result = _fit(stopped, tiny_images, 8, stop_agreement=1e-9, check_every=0.25)
    assert result.stopped_early and result.history["epoch"].tolist() == [1, 2, 3, 4]
    values = result.history["knn_agreement"]
    assert math.isnan(values[1]) and values[3] > 0  # checks after epochs 2 and 4 only
    assert values[[0, 2]].isna().all()
    weights = stopped.state_dict()
    assert all(torch.equal(weights[k], snapshots[4][k]) for k in weights)


def test_resumed_fit_keeps_the_probe_and_stops_where_the_whole_fit_does(
    tiny_model, tiny_images, tmp_path
):
    whole = copy.deepcopy(tiny_model)
    rule = {"stop_agreement": 0.999, "check_every": 0.25}
    ref = _fit(whole, tiny_images, 8, **rule)

    def interrupt(epoch, row):
        if epoch == 4:
            raise KeyboardInterrupt

    killed = copy.deepcopy(tiny_model)
    with pytest.raises(KeyboardInterrupt):
        _fit(killed, tiny_images, 8, callbacks=[interrupt], checkpoint_dir=tmp_path, **rule)
    resumed = copy.deepcopy(tiny_model)
    cfg = TrainConfig(epochs=8, checkpoint_dir=tmp_path, **QUIET, **rule)
    out = train(resumed, SpyObjective(("x", "recon", "z1", "z2")), tiny_images, config=cfg,
                resume_from=tmp_path)  # fmt: skip
    np.testing.assert_array_equal(
        out.history["knn_agreement"].to_numpy(), ref.history["knn_agreement"].to_numpy()
    )
    a, b = whole.state_dict(), resumed.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"stop_agreement": 0.0}, r"'stop_agreement' parameter of TrainConfig .* \(0, 1\]"),
        ({"stop_agreement": 1.5}, r"'stop_agreement' parameter of TrainConfig .* \(0, 1\]"),
        ({"check_every": 0.0}, r"'check_every' parameter of TrainConfig .* \(0, 1\]"),
    ],
)
def test_train_config_refuses_bad_rule_settings(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_estimator_records_the_epochs_that_ran_and_refuses_bad_thresholds(tiny_images):
    images = tiny_images[:, 0]
    model = Stratifier(2, epochs=8, batch_size=16, random_state=0)
    model.set_params(train_config={"stop_agreement": 1e-9, "check_every": 0.25, "num_threads": 1})
    model.fit(images)
    assert model.epochs_ == 4 and len(model.history_) == 4
    assert model.history_["knn_agreement"].notna().sum() == 1
    with pytest.raises(
        ValueError, match=r"of Stratifier .*'stop_agreement' parameter of TrainConfig"
    ):
        Stratifier(2, train_config={"stop_agreement": 2.0}).fit(images)
