"""The faster-step round (benchmarks/faster_step.py): its candidates and their clusterers."""

from __future__ import annotations

import faster_step
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from stratify._random import draw_seeds
from stratify.cluster import StrataClusterer


def test_every_candidate_spends_the_incumbents_or_the_faster_steps_samples():
    totals = {networks * budget for networks, budget in faster_step.CONFIGS}
    assert totals == {51_200, 76_800}
    names = [faster_step.candidate(*config) for config in faster_step.CONFIGS]
    assert names == ["b51.2k", "b76.8k", "m2-b38.4k"]
    assert faster_step.INCUMBENT == "b51.2k"


def test_an_ensemble_is_cached_apart_with_its_networks():
    assert faster_step.variant(1) == ("", None)
    assert faster_step.variant(2) == ("networks2", {"train_config": {"networks": 2}})


@pytest.mark.parametrize("networks", [1, 2])
def test_the_clusterer_is_the_estimators_default_over_the_networks_blocks(networks):
    # the estimator clusters m networks' latents with the default backend and blocks=m; the
    # backend draws its seed from random_state, the round's builder takes the seed as given
    x, _ = make_blobs(120, n_features=4 * networks, centers=3, random_state=0)
    ours = faster_step.across(networks)(3, draw_seeds(5)).fit(x)
    default = StrataClusterer(
        "consensus-spectral", 3, normalize=True, blocks=networks, random_state=5
    ).fit(x)
    np.testing.assert_array_equal(ours.labels_, default.labels_)
    assert len(np.unique(ours.labels_)) == 3


def test_layout_lines_compare_the_same_seed_before_and_after(tmp_path, monkeypatch):
    monkeypatch.setattr(faster_step, "BEFORE_LAYOUT", tmp_path / "cut_space.md")
    out = tmp_path / "faster_step.md"
    old = np.array([0, 0, 1, 1])
    new = {0: np.array([1, 1, 0, 0]), 1: np.array([0, 1, 0, 1])}  # renamed; crossed
    for seed in (0, 1):
        for folder, name, labels in (
            ("cut_space-strata", "latents-gmm20-spectral", old),
            ("faster_step-strata", faster_step.INCUMBENT, new[seed]),
        ):
            path = tmp_path / folder / "digits" / name
            path.mkdir(parents=True, exist_ok=True)
            np.save(path / f"seed{seed}.npy", labels)
    lines = faster_step.layout_lines(out, [0, 1])
    # by hand: a renamed partition is the same (1); the crossed one has ARI -0.5
    assert "| digits | 1.000 / -0.500 |" in lines
    assert "| pneumoniamnist |  |" in lines  # no strata: nothing claimed
