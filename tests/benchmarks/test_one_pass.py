"""The one-pass round (benchmarks/one_pass.py): what it fits, in which order, under which
settings, and which cached fits it scores."""

from __future__ import annotations

import one_pass
import pytest

from stratify.training.config import config_from


def test_the_incumbent_is_refitted_just_before_the_challenger_on_the_cost_set(monkeypatch):
    calls = []
    monkeypatch.setattr(one_pass, "embed", lambda *args: calls.append(args))
    one_pass.embed_all("pneumoniamnist", 3)
    one_pass.embed_all("breastmnist", 3)
    assert [(c[0], c[2], c[3]) for c in calls] == [
        ("pneumoniamnist", 51_200, "cleanpass"),
        ("pneumoniamnist", 76_800, "onepass"),
        ("breastmnist", 76_800, "onepass"),
    ]
    assert all(c[1] == 3 for c in calls)


@pytest.mark.parametrize(
    ("variant", "clean_pass"), [(one_pass.REFIT, True), (one_pass.ONE_PASS, False)]
)
def test_the_variants_set_the_clean_pass_and_nothing_else(variant, clean_pass):
    _, settings = variant
    assert set(settings) == {"train_config"}
    config = config_from({}, settings["train_config"], "Stratifier")
    assert config.clean_pass is clean_pass
    assert set(settings["train_config"]) == {"clean_pass"}


def test_a_set_is_ready_when_both_candidates_fits_are_cached(monkeypatch, tmp_path):
    monkeypatch.setattr(one_pass, "_cache_file", lambda d, s, b, v: tmp_path / f"{d}-{b}-{v}")
    monkeypatch.setattr(one_pass, "round7_cache", lambda d, s: tmp_path / f"{d}-round7")
    (tmp_path / "breastmnist-76800-onepass").touch()
    assert not one_pass.ready("breastmnist", 0)
    (tmp_path / "breastmnist-round7").touch()
    assert one_pass.ready("breastmnist", 0)
    # on the cost set the incumbent's refit is needed, not round 7's fit
    (tmp_path / "pneumoniamnist-76800-onepass").touch()
    (tmp_path / "pneumoniamnist-round7").touch()
    assert not one_pass.ready("pneumoniamnist", 0)
    (tmp_path / "pneumoniamnist-51200-cleanpass").touch()
    assert one_pass.ready("pneumoniamnist", 0)
