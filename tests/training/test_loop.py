"""The training loop: determinism, resume, NaN detection, inputs, early stopping, embed."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from stratify.models import build_model
from stratify.training import NonFiniteLossError, TrainConfig, embed, train

from .conftest import SpyObjective, seeded_model

QUIET = {"progress": False, "batch_size": 16, "num_threads": 1}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _history(result):
    return result.history.drop(columns="seconds")


def _fit(model, images, epochs=3, requires=("x", "recon", "z1", "z2"), **kwargs):
    config = TrainConfig(epochs=epochs, **{**QUIET, **kwargs.pop("config", {})})
    return train(model, SpyObjective(requires), images, config=config, **kwargs)


def test_same_seed_same_weights_and_history(tiny_model, tiny_images):
    a, b, c = (copy.deepcopy(tiny_model) for _ in range(3))
    ra = _fit(a, tiny_images, random_state=3)
    rb = _fit(b, tiny_images, random_state=3)
    _fit(c, tiny_images, random_state=4)
    assert _same_weights(_weights(a), _weights(b))
    pd.testing.assert_frame_equal(_history(ra), _history(rb))
    assert not _same_weights(_weights(a), _weights(c))


def test_history_columns(tiny_model, tiny_images):
    result = _fit(tiny_model, tiny_images, epochs=2, random_state=0)
    # a VAE (seeded_model's default, latent_dim 4): posterior diagnostics after the terms
    assert list(result.history.columns) == [
        "epoch", "recon", "align", "bad", "total", "active_units",
        "kl_dim_0", "kl_dim_1", "kl_dim_2", "kl_dim_3", "lr", "seconds",
    ]  # fmt: skip
    assert result.history["epoch"].tolist() == [1, 2]
    assert result.device == "cpu" and result.num_threads == 1


def test_resume_after_interruption_equals_uninterrupted(tiny_model, tiny_images, tmp_path):
    extra = {"val_fraction": 0.25, "patience": 5, "lr": 3e-3, "warmup_epochs": 1.0}
    full = copy.deepcopy(tiny_model)
    ref = _fit(full, tiny_images, epochs=4, random_state=7, config=extra)

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise KeyboardInterrupt

    killed = copy.deepcopy(tiny_model)
    config = {**extra, "checkpoint_dir": str(tmp_path)}
    with pytest.raises(KeyboardInterrupt):
        _fit(killed, tiny_images, epochs=4, random_state=7, config=config,
             callbacks=[stop_after_two])  # fmt: skip
    resumed = build_model("vae", (1, 16, 16), latent_dim=4, width=4, projection_dim=4)
    out = _fit(resumed, tiny_images, epochs=4, config=config, resume_from=tmp_path)
    assert _same_weights(_weights(full), _weights(resumed))
    pd.testing.assert_frame_equal(_history(ref), _history(out))
    ckpt = torch.load(out.checkpoint_path, weights_only=True)
    assert ckpt["epoch"] == 4


def test_nan_loss_names_epoch_batch_and_term(tiny_model, tiny_images):
    before = _weights(tiny_model)
    objective = SpyObjective(("x", "recon"), nan_at=2)
    config = TrainConfig(epochs=2, **QUIET)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 2 of 3: term 'bad' is nan"):
        train(tiny_model, objective, tiny_images, config=config, random_state=0)
    after = _weights(tiny_model)
    assert all(torch.isfinite(v.float()).all() for v in after.values())
    assert not _same_weights(before, after)  # batch 1 was applied, batch 2 was not


def test_short_fit_lowers_the_loss(tiny_images):
    model = seeded_model("ae")
    config = TrainConfig(epochs=8, lr=3e-3, **QUIET)
    result = train(model, SpyObjective(("x", "recon")), tiny_images, config=config, random_state=0)
    totals = result.history["total"]
    assert totals.iloc[-1] < 0.9 * totals.iloc[0]


def test_only_required_inputs_are_computed(tiny_model, tiny_images):
    def no_views(x, generator):
        raise AssertionError("views were computed although no term needs them")

    objective = SpyObjective(("x", "recon"))
    train(tiny_model, objective, tiny_images, config=TrainConfig(epochs=1, **QUIET),
          augment=no_views, random_state=0)  # fmt: skip
    call = objective.calls[0]
    assert {"x", "recon", "mu", "logvar"} <= set(call) and "z1" not in call
    assert call["x"].dtype == torch.float32 and call["x"].max() <= 1

    objective = SpyObjective(("z1", "z2"))
    train(tiny_model, objective, tiny_images, config=TrainConfig(epochs=1, **QUIET), random_state=0)
    call = objective.calls[0]
    assert "recon" not in call and "mu" not in call
    assert call["z1"].shape == call["z2"].shape == (16, 4)


def test_without_the_clean_pass_the_first_view_stands_in_for_the_clean_batch():
    from stratify.data.augment import TwoViewAugment
    from stratify.training.step import Plan, step_loss

    x = torch.rand((6, 1, 16, 16), generator=torch.Generator().manual_seed(1))
    augment = TwoViewAugment()
    objective = SpyObjective(("x", "recon", "z1", "z2"))
    tiny_model = seeded_model("ae")  # an AE: the step decodes the mean, no draw
    encoded = []
    real_encode = tiny_model.encode
    tiny_model.encode = lambda t: encoded.append(t.shape[0]) or real_encode(t)
    batch = {"x": x, "metadata": {}, "labels": None}
    plan = Plan.of(objective, clean_pass=False)
    total, _ = step_loss(
        tiny_model, objective, batch, plan, augment, torch.Generator().manual_seed(3)
    )
    assert plan.view_stands_in and encoded == [12]  # two views, no clean batch
    # by hand: the same draws give the same views; view 1 is encoded, reconstructed, compared
    v1, v2 = augment(x, torch.Generator().manual_seed(3))
    call = objective.calls[0]
    torch.testing.assert_close(call["x"], v1)
    mu, _ = real_encode(torch.cat([v1, v2]))
    torch.testing.assert_close(call["mu"], mu[:6])
    torch.testing.assert_close(call["z1"], tiny_model.project(mu[:6]))
    recon = tiny_model.decode(mu[:6])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(recon, v1) + (
        (tiny_model.project(mu[:6]) - tiny_model.project(mu[6:])).pow(2).mean()
    )
    torch.testing.assert_close(total, expected)
    # the default encodes the clean batch beside the views, and reconstructs it
    encoded.clear()
    step_loss(tiny_model, objective, batch, Plan.of(objective), augment, torch.Generator())
    assert encoded == [18] and objective.calls[1]["x"] is x
    # without two-view terms there is no view to stand in: the clean batch is encoded
    plan = Plan.of(SpyObjective(("x", "recon")), clean_pass=False)
    assert not plan.view_stands_in


def test_train_without_the_clean_pass_fits_and_differs(tiny_images):
    config = TrainConfig(epochs=2, **QUIET)
    runs = {}
    for clean_pass in (True, False):
        model, objective = seeded_model(), SpyObjective(("x", "recon", "z1", "z2"))
        result = train(model, objective, tiny_images, random_state=0,
                       config=dataclasses.replace(config, clean_pass=clean_pass))  # fmt: skip
        runs[clean_pass] = result.history["total"].to_numpy()
        assert np.isfinite(runs[clean_pass]).all()
    assert not np.allclose(runs[True], runs[False])


def test_metadata_and_labels_are_fed_per_batch(tiny_model, tiny_images):
    n = len(tiny_images)
    age = np.arange(n, dtype=float)
    labels = np.where(np.arange(n) % 3 == 0, np.nan, np.arange(n) % 2)
    objective = SpyObjective(("z1", "z2", "labels", "metadata"), columns=("age",))
    train(tiny_model, objective, tiny_images, metadata={"age": age, "site": age},
          labels=labels, config=TrainConfig(epochs=1, **QUIET), random_state=0)  # fmt: skip
    seen_age = torch.cat([c["metadata"]["age"] for c in objective.calls])
    seen_labels = torch.cat([c["labels"] for c in objective.calls])
    assert sorted(seen_age.tolist()) == age.tolist()
    assert set(objective.calls[0]["metadata"]) == {"age"}
    assert torch.isnan(seen_labels).sum() == np.isnan(labels).sum()
    order = seen_age.long()
    np.testing.assert_array_equal(seen_labels.numpy(), labels[order.numpy()].astype(np.float32))


def test_input_errors(tiny_model, tiny_images):
    quick = TrainConfig(epochs=1, **QUIET)
    with pytest.raises(ValueError, match=r"column\(s\) \['age'\] read by the objective"):
        train(tiny_model, SpyObjective(("mu", "metadata"), columns=("age",)), tiny_images,
              metadata={"site": np.zeros(len(tiny_images))}, config=quick)  # fmt: skip
    with pytest.raises(ValueError, match=r"metadata\['age'\] of shape \(48,\)"):
        train(tiny_model, SpyObjective(("mu", "metadata"), columns=("age",)), tiny_images,
              metadata={"age": np.zeros(3)}, config=quick)  # fmt: skip
    with pytest.raises(ValueError, match="model selection"):
        train(tiny_model, SpyObjective(), tiny_images, config=TrainConfig(patience=2, **QUIET))
    with pytest.raises(ValueError, match="dimensions"):
        train(tiny_model, SpyObjective(), tiny_images[0], config=quick)
    no_decoder = build_model("ae", (1, 16, 16), encoder=torch.nn.Flatten(), latent_dim=2)
    with pytest.raises(ValueError, match="model with a decoder"):
        train(no_decoder, SpyObjective(("x", "recon")), tiny_images, config=quick)
    with pytest.raises(TypeError, match="TrainConfig"):
        train(tiny_model, SpyObjective(), tiny_images, config={"epochs": 1})


def test_validation_and_early_stopping(tiny_model, tiny_images):
    config = TrainConfig(epochs=30, lr=0.5, optimizer="sgd", patience=1, val_fraction=0.25,
                         **QUIET)  # fmt: skip
    objective = SpyObjective(("x", "recon"))
    result = train(tiny_model, objective, tiny_images, config=config, random_state=0)
    history = result.history
    assert "val_loss" in history and result.best_epoch is not None
    assert result.stopped_early and len(history) < 30
    assert history["val_loss"].min() == history.loc[result.best_epoch - 1, "val_loss"]


def test_explicit_validation_data(tiny_model, tiny_images):
    result = _fit(tiny_model, tiny_images[:32], epochs=2, val_images=tiny_images[32:],
                  random_state=0)  # fmt: skip
    assert result.history["val_loss"].notna().all() and result.best_epoch in (1, 2)


@pytest.mark.parametrize(
    "options",
    [
        {"optimizer": "sgd", "scheduler": "none", "grad_clip": 1.0},
        {"optimizer": "adamw", "weight_decay": 0.01, "warmup_epochs": 0.5, "drop_last": True},
    ],
)
def test_optimizers_schedules_and_clipping(tiny_model, tiny_images, options):
    result = _fit(tiny_model, tiny_images, epochs=2, config=options, random_state=0)
    assert np.isfinite(result.history["total"]).all()
    if options.get("scheduler") == "none":
        assert (result.history["lr"] == 1e-3).all()
    else:
        assert result.history["lr"].iloc[-1] < result.history["lr"].iloc[0]


def test_threads_are_restored(tiny_model, tiny_images):
    before = torch.get_num_threads()
    _fit(tiny_model, tiny_images, epochs=1, config={"num_threads": 1}, random_state=0)
    assert torch.get_num_threads() == before


def test_workers_give_the_same_fit(tiny_model, tiny_images):
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    _fit(a, tiny_images, epochs=1, random_state=1)
    _fit(b, tiny_images, epochs=1, random_state=1, config={"num_workers": 1})
    assert _same_weights(_weights(a), _weights(b))


def test_float_images_equal_uint8_images(tiny_model, tiny_images):
    a, b = copy.deepcopy(tiny_model), copy.deepcopy(tiny_model)
    _fit(a, tiny_images, epochs=1, random_state=1)
    _fit(b, tiny_images.astype(np.float32) / 255, epochs=1, random_state=1)
    for (k, va), vb in zip(_weights(a).items(), _weights(b).values(), strict=True):
        torch.testing.assert_close(va, vb, msg=k)


def test_embed_matches_per_sample_forward_and_restores_mode(tiny_model, tiny_images):
    tiny_model.train()
    latents = embed(tiny_model, tiny_images, batch_size=10)
    assert tiny_model.training
    assert latents.shape == (48, 4) and latents.dtype == np.float32
    tiny_model.eval()
    with torch.no_grad():
        for i in (0, 17, 47):
            x = torch.from_numpy(tiny_images[i : i + 1]).float() / 255
            np.testing.assert_allclose(latents[i], tiny_model.encode(x)[0][0].numpy(), atol=1e-5)
    tiny_model.eval()
    embed(tiny_model, tiny_images)
    assert not tiny_model.training
    with pytest.raises(ValueError, match="The 'batch_size' parameter of embed"):
        embed(tiny_model, tiny_images, batch_size=0)


def test_multistep_schedule_matches_torchs_multisteplr_at_the_milestone_epochs():
    from stratify.training.step import lr_at

    epochs, per_epoch = 100, 7
    config = TrainConfig(epochs=epochs, scheduler="multistep", lr=1e-3, **QUIET)
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[50, 75], gamma=0.1)
    for epoch in range(epochs):
        expected = optimizer.param_groups[0]["lr"]
        for b in range(per_epoch):
            got = lr_at(epoch * per_epoch + b, epochs * per_epoch, 0, config)
            assert got == pytest.approx(expected, rel=1e-12), (epoch, b)
        optimizer.step()
        reference.step()
    assert lr_at(49 * per_epoch, epochs * per_epoch, 0, config) == pytest.approx(1e-3)
    assert lr_at(50 * per_epoch, epochs * per_epoch, 0, config) == pytest.approx(1e-4)
    assert lr_at(75 * per_epoch, epochs * per_epoch, 0, config) == pytest.approx(1e-5)


def test_multistep_lr_in_the_history(tiny_model, tiny_images):
    result = _fit(
        tiny_model,
        tiny_images,
        epochs=8,
        random_state=0,
        config={"scheduler": "multistep", "milestones": (0.5, 0.75), "gamma": 0.5},
    )
    np.testing.assert_allclose(result.history["lr"], [1e-3] * 4 + [5e-4] * 2 + [2.5e-4] * 2)


@pytest.mark.parametrize("milestones", [(0.75, 0.5), (0.0, 0.5), (1.0,), "half"])
def test_milestones_must_be_increasing_fractions(milestones):
    with pytest.raises(ValueError, match="'milestones' parameter of TrainConfig"):
        TrainConfig(scheduler="multistep", milestones=milestones)


def test_restore_best_selects_on_the_val_score_without_stopping(tiny_model, tiny_images):
    scores = iter([0.2, 0.9, 0.5, 0.1])
    seen, modes = {}, []

    def val_score(model):
        modes.append(model.training)
        return next(scores)

    def keep(epoch, row):
        seen[epoch] = _weights(tiny_model)

    result = _fit(
        tiny_model,
        tiny_images,
        epochs=4,
        random_state=0,
        val_score=val_score,
        callbacks=[keep],
        config={"restore_best": True},
    )
    assert result.best_epoch == 2 and not result.stopped_early and len(result.history) == 4
    np.testing.assert_allclose(result.history["val_score"], [0.2, 0.9, 0.5, 0.1])
    assert _same_weights(_weights(tiny_model), seen[2])
    assert not _same_weights(seen[2], seen[4])
    assert modes == [False] * 4 and tiny_model.training


def test_restore_best_needs_validation_data_or_a_score(tiny_model, tiny_images):
    with pytest.raises(ValueError, match="model selection"):
        _fit(tiny_model, tiny_images, epochs=1, config={"restore_best": True})


def test_train_and_embed_hold_the_conv_weights_channels_last_on_cpu(tiny_model, tiny_images):
    def channels_last(model):  # a weight of one input channel is both: read them all
        convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        if all(w.is_contiguous(memory_format=torch.channels_last) for w in convs):
            return True
        assert all(w.is_contiguous() for w in convs)
        return False

    fresh = copy.deepcopy(tiny_model)
    assert not channels_last(fresh)
    _fit(tiny_model, tiny_images, epochs=1, random_state=0)
    assert channels_last(tiny_model)
    fresh.load_state_dict(tiny_model.state_dict())  # e.g. a loaded model: default layout
    assert not channels_last(fresh)
    latents = embed(fresh, tiny_images)
    assert channels_last(fresh)
    np.testing.assert_array_equal(latents, embed(tiny_model, tiny_images))
