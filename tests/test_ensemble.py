"""An ensemble of networks (``train_config={"networks": m}``): seeds, latents, the consensus
across networks, checkpoints, persistence and generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify import Stratifier
from stratify._random import member_seeds
from stratify.data import make_cohort
from stratify.generate import decode
from stratify.models import build_model
from stratify.models.ensemble import Ensemble
from stratify.training import embed

TINY = {"latent_dim": 4, "width": 4, "batch_size": 32, "epochs": 2}


@pytest.fixture(scope="module")
def images():
    return make_cohort(96, random_state=0).images


@pytest.fixture(scope="module")
def pair(images):
    one = Stratifier(2, train_config={"networks": 1}, random_state=5, **TINY).fit(images)
    three = Stratifier(2, train_config={"networks": 3}, random_state=5, **TINY).fit(images)
    return one, three


def test_member_seeds_start_with_the_seed_and_are_distinct_and_repeatable():
    seeds = member_seeds(11, 4)
    assert seeds[0] == 11 and len(set(seeds)) == 4
    assert seeds == member_seeds(11, 4) and member_seeds(11, 2) == seeds[:2]
    assert member_seeds(12, 4)[1:] != seeds[1:]


def test_an_ensemble_of_one_network_is_the_single_network_fit(pair):
    one, three = pair
    assert not isinstance(one.model_, Ensemble) and isinstance(three.model_, Ensemble)
    first = three.model_.members[0].state_dict()
    for name, value in one.model_.state_dict().items():
        torch.testing.assert_close(first[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(three.embedding_[:, :4], one.embedding_)
    assert "network" not in one.history_


def test_the_ensemble_latent_is_its_networks_latents_side_by_side(images, pair):
    _, three = pair
    assert three.embedding_.shape == (len(images), 12) and three.model_.latent_dim == 12
    scaled = three._check_images(images[:10])
    by_hand = np.hstack([embed(member, scaled) for member in three.model_.members])
    np.testing.assert_allclose(three.transform(images[:10]), by_hand, rtol=0, atol=1e-6)
    assert three.clusterer_.blocks == 3
    assert three.history_.groupby("network").size().tolist() == [2, 2, 2]
    assert three.epochs_ == 2
    # the networks differ: their latents are not copies of each other
    assert not np.allclose(three.embedding_[:, :4], three.embedding_[:, 4:8])


def test_a_saved_ensemble_loads_and_predicts_identically(images, pair, tmp_path):
    _, three = pair
    loaded = Stratifier.load(three.save(tmp_path / "ensemble.stratify"))
    assert isinstance(loaded.model_, Ensemble) and len(loaded.model_) == 3
    np.testing.assert_array_equal(loaded.predict(images), three.predict(images))
    np.testing.assert_array_equal(loaded.transform(images), three.transform(images))


def test_an_ensemble_generates_through_its_first_network(images, pair):
    _, three = pair
    samples = three.sample(3, cluster=0, random_state=0)
    assert samples.shape == (3, *images.shape[1:])
    latents = np.random.default_rng(0).normal(size=(2, 12)).astype(np.float32)
    first = three.model_.members[0]
    with torch.no_grad():
        by_hand = torch.sigmoid(first.decode(torch.from_numpy(latents[:, :4]))).numpy()
    np.testing.assert_allclose(
        decode(three, latents), three._to_input_layout(by_hand), rtol=0, atol=1
    )


def test_a_resumed_ensemble_fit_equals_an_uninterrupted_one(images, tmp_path, monkeypatch):
    from stratify.training import trainer

    settings = {**TINY, "epochs": 3, "random_state": 0}
    config = {"networks": 2, "checkpoint_dir": str(tmp_path / "a")}
    reference = Stratifier(2, train_config=config, **settings).fit(images)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["network0", "network1"]
    original, calls = trainer.Trainer.train_epoch, []

    def train_epoch(self, data, current, total_steps):
        calls.append(current)
        if len(calls) == 5:  # network 1, its second epoch
            raise KeyboardInterrupt
        return original(self, data, current, total_steps)

    folder = str(tmp_path / "b")
    with monkeypatch.context() as patch:
        patch.setattr(trainer.Trainer, "train_epoch", train_epoch)
        with pytest.raises(KeyboardInterrupt):
            Stratifier(2, train_config={"networks": 2, "checkpoint_dir": folder}, **settings).fit(
                images
            )
    resumed = Stratifier(
        2, train_config={"networks": 2, "checkpoint_dir": folder, "resume": True}, **settings
    ).fit(images)
    np.testing.assert_array_equal(resumed.embedding_, reference.embedding_)
    np.testing.assert_array_equal(resumed.labels_, reference.labels_)
    assert resumed.history_.groupby("network")["epoch"].apply(list).tolist() == [
        [1, 2, 3],
        [1, 2, 3],
    ]


def test_bad_ensembles_are_refused():
    ae = build_model("ae", (1, 16, 16), latent_dim=4, width=4)
    with pytest.raises(ValueError, match=r"at least 2 networks in an Ensemble, got 1"):
        Ensemble([ae])
    other = build_model("ae", (1, 16, 16), latent_dim=6, width=4)
    with pytest.raises(ValueError, match=r"one latent_dim .* got latent_dim \[4, 6\]"):
        Ensemble([ae, other])
    with pytest.raises(ValueError, match=r"'networks' parameter of TrainConfig must be an int"):
        Stratifier(2, train_config={"networks": 0})._validate_params()


def test_the_model_card_names_the_ensemble(pair):
    from stratify.analysis.html_report import model_card

    one, three = pair
    assert model_card(three).loc["network", "value"] == (
        "an ensemble of 3 networks, each: autoencoder, 4-dimensional latent space"
    )
    assert model_card(one).loc["network", "value"] == "autoencoder, 4-dimensional latent space"
