"""The loop with the real loss library, metadata kernels, the synthetic cohort and 3D volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stratify.data import make_cohort
from stratify.losses import build_objective
from stratify.models import build_model
from stratify.training import TrainConfig, embed, train

QUIET = {"progress": False, "batch_size": 32, "num_threads": 1}


def _model(kind, shape, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(kind, shape, latent_dim=4, width=4, projection_dim=8)


def test_vae_with_contrastive_and_metadata_kernel_on_the_cohort():
    cohort = make_cohort(96, size=16, random_state=0)
    age = cohort.metadata["age"].to_numpy(dtype=float)
    objective = build_objective(
        reconstruction="bce",
        beta=0.1,
        contrastive="yaware",
        columns="age",
        sigma=5.0,
        elements_per_sample=16 * 16,
    )
    model = _model("vae", (1, 16, 16))
    config = TrainConfig(epochs=6, lr=3e-3, **QUIET)
    result = train(model, objective, cohort.images, metadata={"age": age}, config=config,
                   random_state=0)  # fmt: skip
    history = result.history
    assert {"reconstruction", "kl", "contrastive", "total"} <= set(history.columns)
    assert history["total"].iloc[-1] < history["total"].iloc[0]
    latents = embed(model, cohort.images)
    assert latents.shape == (96, 4) and np.isfinite(latents).all()


def test_simclr_without_decoder_on_a_custom_encoder():
    encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2), torch.nn.Flatten())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("ae", (1, 16, 16), latent_dim=4, encoder=encoder)
    images = make_cohort(64, size=16, random_state=1).images
    objective = build_objective(reconstruction=None, contrastive="simclr", temperature=0.2)
    result = train(model, objective, images, config=TrainConfig(epochs=2, **QUIET),
                   random_state=0)  # fmt: skip
    assert list(result.history.columns[:2]) == ["epoch", "contrastive"]


def test_3d_volumes_train_with_two_views():
    volumes = make_cohort(8, mode="3d", size=16, random_state=0).images
    model = _model("ae", tuple(volumes.shape[1:]))
    objective = build_objective(reconstruction="mse", contrastive="simclr")
    config = TrainConfig(epochs=1, batch_size=4, progress=False, num_threads=1)
    result = train(model, objective, volumes, config=config, random_state=0)
    assert np.isfinite(result.history["total"]).all()


def test_objective_that_needs_no_model_output_is_rejected():
    class LabelsOnly:
        requires = frozenset({"labels"})
        metadata_columns = ()

    with pytest.raises(ValueError, match="needs model outputs"):
        train(_model("ae", (1, 16, 16)), LabelsOnly(), np.zeros((4, 1, 16, 16), np.uint8),
              config=TrainConfig(epochs=1, **QUIET))  # fmt: skip
