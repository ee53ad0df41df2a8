"""A synthetic patient cohort: the embedded default that needs no download.

The cohort is built to be a fair test of stratification, not an easy one:

* the **strata** differ in image *structure* (texture of the organ), never in mean intensity:
  every texture is centred on the organ before it is added;
* **age** is correlated with the strata and changes the image in a known way (the organ
  shrinks with age);
* **site** (scanner) is independent of the strata and adds a nuisance: a gain, an offset and a
  noise level per site, which is what a naive pixel clustering latches on to;
* **weak_label** is a noisy binary "disease" label, as a cheap radiological read would give;
* age and weak_label have missing values (NaN).

In 3D the stratum's texture fills only the central part of the organ along the depth axis, so
end slices carry no stratum information, as a lesion seen on some slices only. Slices taken
with :func:`stratify.data.volumes_to_slices` then carry a meaningful position.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from stratify._validation import check_in_range, check_option

__all__ = ["PATTERNS", "Cohort", "make_cohort"]


class Cohort(NamedTuple):
    """A synthetic cohort: ``images, strata, metadata = make_cohort(...)``.

    Attributes
    ----------
    images : numpy.ndarray of uint8, shape (N, 1, H, W) or (N, 1, D, H, W)
    strata : numpy.ndarray of int64, shape (N,)
        The ground-truth stratum of each patient.
    metadata : pandas.DataFrame
        Columns ``patient_id``, ``age``, ``site``, ``weak_label`` (see :func:`make_cohort`).
    """

    images: np.ndarray
    strata: np.ndarray
    metadata: pd.DataFrame


Coords = list[np.ndarray]  # local coordinates, one (n, *spatial) array per axis (x, y[, z])


def _smooth(coords: Coords, rng: np.random.Generator) -> np.ndarray:
    return np.zeros_like(coords[0])


def _stripes(coords: Coords, rng: np.random.Generator) -> np.ndarray:
    phase = _per_sample(rng.uniform(0, 2 * np.pi, len(coords[0])), coords[0].ndim)
    return np.sin(2 * np.pi * 3.0 * coords[0] + phase)


def _diagonal(coords: Coords, rng: np.random.Generator) -> np.ndarray:
    phase = _per_sample(rng.uniform(0, 2 * np.pi, len(coords[0])), coords[0].ndim)
    return np.sin(2 * np.pi * 3.0 * (coords[0] + coords[1]) / np.sqrt(2) + phase)


def _rings(coords: Coords, rng: np.random.Generator) -> np.ndarray:
    phase = _per_sample(rng.uniform(0, 2 * np.pi, len(coords[0])), coords[0].ndim)
    radius = np.sqrt(sum(c**2 for c in coords))
    return np.cos(2 * np.pi * 2.5 * radius + phase)


def _checker(coords: Coords, rng: np.random.Generator) -> np.ndarray:
    out = np.ones_like(coords[0])
    for axis in coords:
        phase = _per_sample(rng.uniform(0, 2 * np.pi, len(axis)), axis.ndim)
        out = out * np.sin(2 * np.pi * 2.0 * axis + phase)
    return out


def _spots(coords: Coords, rng: np.random.Generator, n_spots: int = 5) -> np.ndarray:
    n, ndim = len(coords[0]), len(coords)
    out = np.zeros_like(coords[0])
    for _ in range(n_spots):
        direction = rng.normal(size=(n, ndim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        centre = direction * 0.65 * rng.uniform(0, 1, (n, 1)) ** (1 / ndim)
        dist2 = sum((c - _per_sample(centre[:, i], c.ndim)) ** 2 for i, c in enumerate(coords))
        out += np.exp(-dist2 / (2 * 0.12**2))
    return out


PATTERNS: dict[str, Callable[[Coords, np.random.Generator], np.ndarray]] = {
    "smooth": _smooth,
    "stripes": _stripes,
    "spots": _spots,
    "rings": _rings,
    "checker": _checker,
    "diagonal": _diagonal,
}
"""Stratum ``k`` gets the ``k``-th texture of this table (up to 6 strata)."""

BACKGROUND = 0.08
ORGAN = 0.55
RADIUS = 0.62
ATROPHY = 0.006  # relative shrink of the organ radius per year of age above 50


def _per_sample(values: np.ndarray, ndim: int) -> np.ndarray:
    return values.reshape((-1,) + (1,) * (ndim - 1))


def _as_generator(random_state: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise TypeError(
        "Expected random_state to be None, an int or a numpy.random.Generator, got "
        f"{type(random_state).__name__}."
    )


def _render(
    strata: np.ndarray,
    age: np.ndarray,
    site: np.ndarray,
    spatial: tuple[int, ...],
    n_sites: int,
    texture_contrast: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw the images of one chunk of patients as floats in [0, 1], shape (n, *spatial)."""
    n, ndim = len(strata), len(spatial)
    # Global axes in [-1, 1], ordered (x, y[, z]) = (last, second last[, first]) array axes.
    grids = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in spatial], indexing="ij")
    axes = [g[None] for g in reversed(grids)]

    radius = RADIUS * np.clip(1 - ATROPHY * (age - 50), 0.6, 1.3)
    stretch = 1 + rng.uniform(-0.12, 0.12, (n, ndim))
    centre = rng.uniform(-0.1, 0.1, (n, ndim))
    local = [
        (axis - _per_sample(centre[:, i], ndim + 1)) / _per_sample(radius * stretch[:, i], ndim + 1)
        for i, axis in enumerate(axes)
    ]
    mask = 1 / (1 + np.exp(-12 * (1 - sum(c**2 for c in local))))

    texture = np.zeros((n, *spatial), dtype=np.float32)
    names = list(PATTERNS)
    for k in np.unique(strata):
        rows = strata == k
        texture[rows] = PATTERNS[names[k]]([c[rows] for c in local], rng)
    if ndim == 3:  # the pattern lives in the central part of the organ along depth only
        texture *= np.exp(-((local[2] / 0.5) ** 4))
    weight = mask / mask.sum(axis=tuple(range(1, ndim + 1)), keepdims=True)
    texture -= (texture * weight).sum(axis=tuple(range(1, ndim + 1)), keepdims=True)
    scale = np.sqrt((texture**2 * weight).sum(axis=tuple(range(1, ndim + 1)), keepdims=True))
    texture = np.divide(texture, scale, out=np.zeros_like(texture), where=scale > 1e-6)

    image = BACKGROUND + mask * (ORGAN - BACKGROUND + texture_contrast * texture)
    gain = np.linspace(0.8, 1.2, n_sites)[site]
    offset = np.linspace(0.08, -0.08, n_sites)[site]
    noise = np.linspace(0.02, 0.10, n_sites)[site]
    image = _per_sample(gain, ndim + 1) * image + _per_sample(offset, ndim + 1)
    image += _per_sample(noise, ndim + 1) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 1)


def make_cohort(
    n_samples: int = 600,
    *,
    n_strata: int = 3,
    mode: str = "2d",
    size: int = 28,
    n_sites: int = 3,
    label_noise: float = 0.2,
    missing_rate: float = 0.1,
    texture_contrast: float = 0.22,
    random_state: int | np.random.Generator | None = None,
) -> Cohort:
    """Generate a synthetic patient cohort with known strata and realistic metadata.

    How each part is generated (``k`` is the patient's stratum, ``K = n_strata``):

    * ``strata``: balanced, ``k = i mod K`` shuffled.
    * images: a bright ellipse (the organ) on a dark background, centre jittered by up to 0.1
      and axes stretched by up to 12 %. Stratum ``k`` fills the organ with the ``k``-th
      texture of :data:`PATTERNS` (smooth, stripes, spots, rings, checker, diagonal), scaled
      to the organ, centred to zero mean and unit RMS inside it, so strata share the same
      mean intensity. In 3D the texture fades out beyond half the organ's depth.
    * ``age`` (years): ``N(45 + 10 k, 8)`` clipped to [18, 90], so correlated with strata.
      Known effect: the organ's radius is ``0.62 (1 - 0.006 (age - 50))`` (image
      half-widths), it shrinks with age. ``missing_rate`` of the values are NaN (the image
      still used the true age).
    * ``site``: uniform over ``n_sites`` scanners "A", "B", ..., independent of the strata.
      Nuisance: intensity gain from 0.8 to 1.2, offset from +0.08 to -0.08 and Gaussian
      noise from 0.02 to 0.10 (in [0, 1] units), linearly across sites.
    * ``weak_label``: 1 if ``k > 0`` ("disease") else 0, flipped with probability
      ``label_noise``; ``missing_rate`` of the values are NaN.
    * ``patient_id``: "P00000", "P00001", ...

    Parameters
    ----------
    n_samples : int, default=600
        Number of patients.
    n_strata : int, default=3
        Number of ground-truth strata, 2 to 6.
    mode : {"2d", "3d"}, default="2d"
        2D images (N, 1, size, size) or 3D volumes (N, 1, size, size, size).
    size : int, default=28
        Side of the image or volume, 16 to 256.
    n_sites : int, default=3
        Number of acquisition sites, 1 to 26.
    label_noise : float, default=0.2
        Probability of flipping the weak label, in [0, 0.5].
    missing_rate : float, default=0.1
        Fraction of NaN in ``age`` and ``weak_label``, in [0, 1).
    texture_contrast : float, default=0.22
        RMS amplitude of the stratum texture inside the organ, in [0, 1] intensity units.
        Lower it to make the strata harder to see; 0 makes them invisible in the images.
    random_state : int, numpy.random.Generator or None
        Seed; the same seed gives the same cohort.

    Returns
    -------
    Cohort
        ``images`` uint8 (N, 1, H, W) or (N, 1, D, H, W); ``strata`` int64 (N,);
        ``metadata`` DataFrame with ``patient_id`` (str), ``age`` (float, NaN missing),
        ``site`` (categorical), ``weak_label`` (float 0/1, NaN missing). The column
        descriptions are also in ``metadata.attrs["columns"]``.

    Examples
    --------
    >>> images, strata, metadata = make_cohort(90, random_state=0)
    >>> images.shape, images.dtype
    ((90, 1, 28, 28), dtype('uint8'))
    """
    owner = "make_cohort"
    n_samples = check_in_range(n_samples, "n_samples", owner, kind=int, low=1)
    n_strata = check_in_range(n_strata, "n_strata", owner, kind=int, low=2, high=len(PATTERNS))
    check_option(mode, "mode", owner, {"2d", "3d"})
    size = check_in_range(size, "size", owner, kind=int, low=16, high=256)
    n_sites = check_in_range(n_sites, "n_sites", owner, kind=int, low=1, high=26)
    label_noise = check_in_range(label_noise, "label_noise", owner, low=0, high=0.5)
    missing_rate = check_in_range(missing_rate, "missing_rate", owner, low=0, high=1, closed="left")
    texture_contrast = check_in_range(texture_contrast, "texture_contrast", owner, low=0, high=1)
    rng = _as_generator(random_state)

    strata = rng.permutation(np.arange(n_samples) % n_strata).astype(np.int64)
    age = np.clip(rng.normal(45 + 10 * strata, 8), 18, 90)
    site = rng.integers(0, n_sites, n_samples)
    flip = rng.random(n_samples) < label_noise
    weak_label = np.where(flip, strata == 0, strata > 0).astype(np.float64)

    spatial = (size,) * (3 if mode == "3d" else 2)
    chunk = max(1, 2**20 // int(np.prod(spatial)))
    images = np.empty((n_samples, 1, *spatial), dtype=np.uint8)
    for start in range(0, n_samples, chunk):
        rows = slice(start, start + chunk)
        pixels = _render(
            strata[rows], age[rows], site[rows], spatial, n_sites, texture_contrast, rng
        )
        images[rows, 0] = np.rint(pixels * 255).astype(np.uint8)

    observed_age = np.where(rng.random(n_samples) < missing_rate, np.nan, np.round(age, 1))
    weak_label[rng.random(n_samples) < missing_rate] = np.nan
    site_names = [chr(ord("A") + s) for s in range(n_sites)]
    metadata = pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n_samples)],
            "age": observed_age,
            "site": pd.Categorical.from_codes(site, categories=site_names),
            "weak_label": weak_label,
        }
    )
    metadata.attrs["columns"] = {
        "patient_id": "patient identifier",
        "age": "years, N(45 + 10 k, 8) clipped to [18, 90]; shrinks the organ; NaN = missing",
        "site": "scanner, independent of strata; gain, offset and noise nuisance",
        "weak_label": f"1 if stratum > 0, flipped with p={label_noise}; NaN = missing",
    }
    return Cohort(images, strata, metadata)
