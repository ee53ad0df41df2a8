"""Contrastive terms paired with their independent references, on random batches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stratify.losses import (
    ClinicalContrastive,
    EqualityKernel,
    GaussianKernel,
    KernelContrastive,
    LossTerm,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
)
from tests.losses import reference as ref


@dataclass
class Case:
    term: LossTerm
    inputs: dict[str, Any]  # "labels" and/or "metadata" (z1, z2 added by the tests)
    reference: Callable[[np.ndarray, np.ndarray], float]  # (z1, z2) float64 -> loss


def make_batch(n: int, rng: np.random.Generator, nan: bool = False) -> dict[str, np.ndarray]:
    """Metadata with continuous, categorical and positional columns (float64 numpy)."""
    meta = {
        "labels": rng.integers(0, 3, n).astype(float),
        "site": rng.integers(0, 3, n).astype(float),
        "age": rng.uniform(20, 80, n),
        "bmi": rng.normal(25, 4, n),
        "position": rng.uniform(0, 1, n),
    }
    if nan:
        for key, col in meta.items():
            col[0] = np.nan
            if n > 3:
                col[{"labels": 2, "site": 3, "age": 1, "bmi": 3, "position": 2}[key]] = np.nan
    return meta


def to_inputs(meta: dict[str, np.ndarray]) -> dict[str, Any]:
    columns = {k: torch.tensor(v, dtype=torch.float32) for k, v in meta.items() if k != "labels"}
    return {"labels": torch.tensor(meta["labels"], dtype=torch.float32), "metadata": columns}


def _f32(values: np.ndarray) -> np.ndarray:
    """The metadata as the library sees it (float32 tensors), back in float64."""
    return values.astype(np.float32).astype(np.float64)


CASE_NAMES = (
    "ntxent",
    "supcon",
    "supcon_nan",
    "supcon_binned_column",
    "yaware_gaussian_vector",
    "yaware_laplacian",
    "yaware_epanechnikov",
    "yaware_nan",
    "wsp",
    "wsp_nan",
    "clinical",
    "kernel_sum",
)


def make_case(name: str, n: int, rng: np.random.Generator) -> Case:
    meta = make_batch(n, rng, nan=name.endswith("_nan"))
    inputs = to_inputs(meta)
    m = {k: _f32(v) for k, v in meta.items()}

    def contrastive(kernel: ref.KernelFn, tau: float) -> Callable[[np.ndarray, np.ndarray], float]:
        return lambda z1, z2: ref.contrastive(z1, z2, kernel, tau)

    if name == "ntxent":
        return Case(NTXent(temperature=0.5), {}, contrastive(ref.none_kernel(), 0.5))
    if name in ("supcon", "supcon_nan"):
        return Case(
            SupCon(temperature=0.2), inputs, contrastive(ref.equality_kernel(m["labels"]), 0.2)
        )
    if name == "supcon_binned_column":
        edges = [35.0, 50.0, 65.0]
        codes = ref.bin_codes(m["age"], edges)
        return Case(
            SupCon("age", temperature=0.3, bins=edges),
            inputs,
            contrastive(ref.equality_kernel(codes), 0.3),
        )
    if name == "yaware_gaussian_vector":
        y = np.stack([m["age"], m["bmi"]], axis=1)
        return Case(
            YAwareInfoNCE(["age", "bmi"], sigma=[10.0, 3.0], temperature=0.1),
            inputs,
            contrastive(ref.radial_kernel(y, [10.0, 3.0], "gaussian"), 0.1),
        )
    if name == "yaware_laplacian":
        y = np.stack([m["age"], m["bmi"]], axis=1)
        return Case(
            YAwareInfoNCE(["age", "bmi"], sigma=[5.0, 2.0], kernel="laplacian", temperature=0.25),
            inputs,
            contrastive(ref.radial_kernel(y, [5.0, 2.0], "laplacian"), 0.25),
        )
    if name == "yaware_epanechnikov":
        y = np.stack([m["age"], m["bmi"]], axis=1)
        return Case(
            YAwareInfoNCE(["age", "bmi"], sigma=[25.0, 8.0], kernel="epanechnikov"),
            inputs,
            contrastive(ref.radial_kernel(y, [25.0, 8.0], "epanechnikov"), 0.2),
        )
    if name == "yaware_nan":
        return Case(
            YAwareInfoNCE("age", sigma=10.0, temperature=0.1),
            inputs,
            contrastive(ref.radial_kernel(m["age"], [10.0], "gaussian"), 0.1),
        )
    if name in ("wsp", "wsp_nan"):
        kernel = ref.product_kernel(
            ref.equality_kernel(m["site"]), ref.radial_kernel(m["position"], [0.2], "gaussian")
        )
        return Case(
            WSPContrastive("site", "position", sigma=0.2, temperature=0.1),
            inputs,
            contrastive(kernel, 0.1),
        )
    if name == "clinical":
        edges = [40.0, 60.0]
        k_site = ref.equality_kernel(m["site"])
        k_age = ref.equality_kernel(ref.bin_codes(m["age"], edges))
        return Case(
            ClinicalContrastive({"site": 0.7, "age": 0.3}, bins={"age": edges}, temperature=0.2),
            inputs,
            lambda z1, z2: (
                0.7 * ref.contrastive(z1, z2, k_site, 0.2)
                + 0.3 * ref.contrastive(z1, z2, k_age, 0.2)
            ),
        )
    if name == "kernel_sum":
        k_age = ref.radial_kernel(m["age"], [10.0], "gaussian")
        k_site = ref.equality_kernel(m["site"])
        return Case(
            KernelContrastive(GaussianKernel("age", 10.0) + EqualityKernel("site"), 0.15),
            inputs,
            contrastive(lambda i, j: 0.5 * (k_age(i, j) + k_site(i, j)), 0.15),
        )
    raise ValueError(name)
