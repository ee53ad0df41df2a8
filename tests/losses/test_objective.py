"""Objective: weighted total, per-term values, input bookkeeping, factories, docs example."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from stratify.losses import (
    INPUT_KEYS,
    BCEReconstruction,
    ClinicalContrastive,
    KLDivergence,
    MSEReconstruction,
    NTXent,
    Objective,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
    build_objective,
)
from stratify.losses import objective as objective_module

DOCS = Path(__file__).resolve().parents[2] / "docs" / "guide" / "losses.md"


def _inputs(n=6, logvar=True):
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.rand(n, 1, 5, 5, generator=gen),
        "recon": torch.randn(n, 1, 5, 5, generator=gen, requires_grad=True),
        "mu": torch.randn(n, 3, generator=gen, requires_grad=True),
        "logvar": torch.randn(n, 3, generator=gen, requires_grad=True) if logvar else None,
        "z1": torch.randn(n, 4, generator=gen, requires_grad=True),
        "z2": torch.randn(n, 4, generator=gen, requires_grad=True),
        "labels": torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0, float("nan")])[:n],
        "metadata": {
            "age": torch.rand(n, generator=gen) * 60 + 20,
            "site": torch.randint(0, 2, (n,), generator=gen).float(),
            "position": torch.rand(n, generator=gen),
        },
    }


def test_input_keys_contract():
    assert objective_module.INPUT_KEYS == INPUT_KEYS
    assert INPUT_KEYS == ("x", "recon", "mu", "logvar", "z1", "z2", "labels", "metadata")


def test_total_is_the_weighted_sum_of_the_terms():
    objective = Objective(
        {
            "bce": BCEReconstruction(),
            "kl": (KLDivergence(), 0.25),
            "nce": (NTXent(temperature=0.2), 2.0),
            "age": (YAwareInfoNCE("age", sigma=5.0), 0.0),
        }
    )
    inputs = _inputs()
    total, values = objective(inputs)
    assert list(values) == ["bce", "kl", "nce", "age"]
    assert all(v.shape == () and not v.requires_grad for v in values.values())
    expected = values["bce"] + 0.25 * values["kl"] + 2.0 * values["nce"] + 0.0 * values["age"]
    torch.testing.assert_close(total.detach(), expected)
    # each value is the term's own output
    torch.testing.assert_close(values["nce"], NTXent(0.2)(inputs["z1"], inputs["z2"]).detach())
    total.backward()
    assert inputs["z1"].grad is not None and inputs["recon"].grad is not None


def test_requires_columns_and_labels_are_unions():
    objective = Objective(
        {
            "mse": MSEReconstruction(),
            "wsp": WSPContrastive("site", "position"),
            "clinical": ClinicalContrastive({"age": 1.0, "site": 1.0}, bins={"age": [50.0]}),
        }
    )
    assert objective.requires == {"recon", "x", "z1", "z2", "metadata"}
    assert objective.metadata_columns == ("site", "position", "age")
    assert not objective.uses_labels
    with_labels = Objective({"supcon": SupCon(), "kl": KLDivergence()})
    assert with_labels.requires == {"z1", "z2", "labels", "mu", "logvar"}
    assert with_labels.metadata_columns == ()
    assert with_labels.uses_labels


def test_missing_input_is_named():
    objective = Objective({"bce": BCEReconstruction(), "kl": KLDivergence()})
    with pytest.raises(KeyError, match=re.escape("input 'logvar' is missing or None")):
        objective(_inputs(logvar=False))  # a plain AE has no logvar
    inputs = _inputs()
    del inputs["recon"]
    with pytest.raises(KeyError, match=re.escape("'recon' is missing or None; it is required by")):
        objective(inputs)


def test_missing_metadata_column_is_named():
    objective = Objective({"y": YAwareInfoNCE(["age", "weight"])})
    with pytest.raises(KeyError, match=re.escape("column(s) ['weight'] are missing")):
        objective(_inputs())


def test_fit_sets_quantile_bins():
    objective = Objective({"clinical": ClinicalContrastive({"age": 1.0}, bins={"age": 3})})
    with pytest.raises(RuntimeError, match="must be fitted first"):
        objective(_inputs())
    full_age = np.random.default_rng(0).uniform(20, 80, 100)
    total, _ = objective.fit({"age": full_age})(_inputs())
    assert torch.isfinite(total)


def test_build_objective_matches_hand_built():
    objective = build_objective(
        reconstruction="mse",
        beta=0.5,
        contrastive="simclr",
        temperature=0.3,
        contrastive_weight=2.0,
        regularizers={"age": (YAwareInfoNCE("age"), 0.1)},
        elements_per_sample=25,
    )
    assert list(objective.terms) == ["reconstruction", "kl", "contrastive", "age"]
    # per-pixel mean reconstruction: the KL weight is beta / P so that the pair is ELBO / P
    assert objective.weights == {
        "reconstruction": 1.0,
        "kl": 0.5 / 25,
        "contrastive": 2.0,
        "age": 0.1,
    }
    hand = Objective(
        {
            "reconstruction": MSEReconstruction(),
            "kl": (KLDivergence(), 0.5 / 25),
            "contrastive": (NTXent(0.3), 2.0),
            "age": (YAwareInfoNCE("age"), 0.1),
        }
    )
    inputs = _inputs()
    torch.testing.assert_close(objective(inputs)[0], hand(inputs)[0])


def test_build_objective_named_contrastive_terms():
    plain = build_objective("bce")
    assert list(plain.terms) == ["reconstruction"] and plain.requires == {"recon", "x"}
    supcon = build_objective(None, contrastive="supcon")
    assert isinstance(supcon.terms["contrastive"], SupCon) and supcon.uses_labels
    yaware = build_objective(None, contrastive="yaware", columns=["age"], sigma=3.0)
    assert yaware.metadata_columns == ("age",)
    assert yaware.terms["contrastive"].kernel.bandwidth == (3.0,)


def test_docs_example_runs():
    text = DOCS.read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "class WindowKernel" in b
    ]
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)
    total, values = namespace["total"], namespace["values"]
    assert set(values) == {"reconstruction", "age_sex"}
    torch.testing.assert_close(total, values["reconstruction"] + 0.5 * values["age_sex"])


def _naive_negative_elbo_per_sample(x, recon, mu, logvar):
    """-ELBO of each sample with a Bernoulli decoder, by loops over pixels and latents."""
    out = []
    for i in range(x.shape[0]):
        rec = 0.0
        for xv, rv in zip(x[i].reshape(-1).tolist(), recon[i].reshape(-1).tolist(), strict=True):
            p = 1.0 / (1.0 + math.exp(-rv))
            rec -= xv * math.log(p) + (1.0 - xv) * math.log(1.0 - p)
        kl = 0.0
        for m, lv in zip(mu[i].tolist(), logvar[i].tolist(), strict=True):
            kl += 0.5 * (m * m + math.exp(lv) - 1.0 - lv)
        out.append((rec, kl))
    return out


@pytest.mark.parametrize("spatial", [(5, 4), (3, 4, 2)], ids=["2d", "3d"])
@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_vae_objective_is_the_elbo_per_pixel(spatial, beta):
    gen = torch.Generator().manual_seed(1)
    n, pixels = 4, math.prod(spatial)
    inputs = {
        "x": torch.rand(n, 1, *spatial, generator=gen, dtype=torch.float64),
        "recon": torch.randn(n, 1, *spatial, generator=gen, dtype=torch.float64),
        "mu": torch.randn(n, 3, generator=gen, dtype=torch.float64),
        "logvar": torch.randn(n, 3, generator=gen, dtype=torch.float64),
    }
    per_sample = _naive_negative_elbo_per_sample(
        inputs["x"], inputs["recon"], inputs["mu"], inputs["logvar"]
    )
    objective = build_objective("bce", beta=beta, elements_per_sample=pixels)
    total, values = objective(inputs)
    expected = sum(rec + beta * kl for rec, kl in per_sample) / n / pixels
    assert total.item() == pytest.approx(expected, rel=1e-12)
    assert values["kl"].item() == pytest.approx(sum(kl for _, kl in per_sample) / n, rel=1e-12)
    summed = build_objective("bce", beta=beta, reduction="sum")
    assert summed(inputs)[0].item() == pytest.approx(expected * pixels, rel=1e-12)


def test_vae_objective_needs_the_number_of_pixels():
    with pytest.raises(
        ValueError,
        match=r"'elements_per_sample' parameter of build_objective"
        r" .*Got None",
    ):
        build_objective("bce", beta=1.0)
    assert "kl" not in build_objective("bce", beta=0.0).terms  # an AE needs none


def test_kl_warmup_rises_linearly_then_stays():
    objective = build_objective("bce", beta=2.0, elements_per_sample=10, kl_warmup=4)
    assert objective.warmup == {"kl": 4.0}
    for progress, share in [(0.0, 0.0), (1.0, 0.25), (2.5, 0.625), (4.0, 1.0), (9.0, 1.0)]:
        objective.set_progress(progress)
        weights = objective.current_weights()
        assert weights["kl"] == pytest.approx(0.2 * share)
        assert weights["reconstruction"] == 1.0
    inputs = _inputs()
    objective.set_progress(1.0)
    total, values = objective(inputs)
    assert total.item() == pytest.approx(
        values["reconstruction"].item() + 0.05 * values["kl"].item(), rel=1e-6
    )
    with pytest.raises(ValueError, match=r"'warmup' parameter of Objective .*Got 'kll'"):
        Objective({"kl": KLDivergence()}, warmup={"kll": 2.0})


def test_free_bits_clamp_each_dimension_from_below():
    mu = torch.tensor([[0.1, 2.0, 0.0], [-0.1, 1.0, 0.0]], dtype=torch.float64)
    logvar = torch.zeros(2, 3, dtype=torch.float64)
    # per-dimension KL averaged over the batch: 0.5 * mean(mu^2)
    per_dim = [0.5 * 0.01, 0.5 * 2.5, 0.0]
    assert KLDivergence()(mu, logvar).item() == pytest.approx(sum(per_dim))
    clamped = KLDivergence(free_bits=0.5)(mu, logvar).item()
    assert clamped == pytest.approx(sum(max(0.5, v) for v in per_dim))
    grad_mu = mu.clone().requires_grad_(True)
    KLDivergence(free_bits=0.5)(grad_mu, logvar).backward()
    # dimensions under the free bits get no gradient; the one above gets mu / N
    np.testing.assert_allclose(grad_mu.grad[:, 0].numpy(), 0.0)
    np.testing.assert_allclose(grad_mu.grad[:, 1].numpy(), mu[:, 1].numpy() / 2)
