"""make_cohort: determinism, layout, and that the cohort is the fair test it claims to be."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from stratify.data import make_cohort, volumes_to_slices


def _spectrum(images: np.ndarray) -> np.ndarray:
    """Translation-invariant features: log-magnitude of the 2D Fourier transform per image.

    Textures carry a random phase per patient, so raw pixels are a poor input for a linear
    classifier; the magnitude spectrum is the simple, standard fix.
    """
    spectrum = np.abs(np.fft.rfft2(images.astype(np.float64) / 255.0, axes=(-2, -1)))
    return np.log1p(spectrum).reshape(len(images), -1)


def _cv_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    classifier = make_pipeline(PCA(30, random_state=0), LogisticRegression(max_iter=3000))
    return cross_val_score(classifier, features, labels, cv=3).mean()


@pytest.fixture(scope="module")
def cohort():
    return make_cohort(900, random_state=0)


def test_same_seed_same_cohort_other_seed_other_cohort():
    a, b, c = (make_cohort(60, random_state=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.strata, b.strata)
    pd.testing.assert_frame_equal(a.metadata, b.metadata)
    assert not np.array_equal(a.images, c.images)
    generator = np.random.default_rng(3)
    np.testing.assert_array_equal(make_cohort(60, random_state=generator).images, a.images)


def test_layout_and_columns(cohort):
    images, strata, metadata = cohort
    assert images.shape == (900, 1, 28, 28) and images.dtype == np.uint8
    assert strata.dtype == np.int64 and np.bincount(strata).tolist() == [300, 300, 300]
    assert list(metadata.columns) == ["patient_id", "age", "site", "weak_label"]
    assert metadata["patient_id"].is_unique
    assert isinstance(metadata["site"].dtype, pd.CategoricalDtype)
    assert list(metadata["site"].cat.categories) == ["A", "B", "C"]
    assert set(metadata["weak_label"].dropna().unique()) == {0.0, 1.0}
    for column in ("age", "weak_label"):  # 10 % missing: 90 expected, binomial sd 9
        assert 60 <= metadata[column].isna().sum() <= 120
    assert metadata["site"].notna().all()


def test_3d_mode_and_sizes():
    images, strata, _ = make_cohort(8, mode="3d", size=20, n_strata=4, random_state=0)
    assert images.shape == (8, 1, 20, 20, 20) and images.dtype == np.uint8
    assert np.bincount(strata).tolist() == [2, 2, 2, 2]
    assert make_cohort(4, size=64, random_state=0).images.shape == (4, 1, 64, 64)


def test_a_supervised_classifier_recovers_the_strata_but_not_from_site(cohort):
    images, strata, metadata = cohort
    image_accuracy = _cv_accuracy(_spectrum(images[:, 0]), strata)
    site = OneHotEncoder().fit_transform(metadata[["site"]])
    site_accuracy = cross_val_score(LogisticRegression(), site, strata, cv=3).mean()
    assert image_accuracy > 0.9  # chance is 1/3
    assert site_accuracy < 1 / 3 + 0.07


def test_mean_intensity_inside_the_organ_does_not_identify_strata(cohort):
    images, strata, metadata = cohort
    # Same site, same age band: only the texture differs, and it is centred on the organ.
    keep = (metadata["site"] == "A").to_numpy() & metadata["age"].between(45, 60).to_numpy()
    brightness = images[keep, 0].mean(axis=(1, 2))
    means = [brightness[strata[keep] == k].mean() for k in range(3)]
    assert max(means) - min(means) < 2  # grey levels; the textures themselves span +-60


def test_age_is_correlated_with_strata_and_shrinks_the_organ(cohort):
    images, strata, metadata = cohort
    age = metadata["age"].to_numpy()
    observed = ~np.isnan(age)
    assert stats.spearmanr(age[observed], strata[observed])[0] > 0.4
    # Smooth stratum, quietest site: organ area is a clean threshold count.
    keep = observed & (strata == 0) & (metadata["site"] == "A").to_numpy()
    area = (images[keep, 0] > 0.3 * 255).sum(axis=(1, 2))
    rho, p_value = stats.spearmanr(age[keep], area)
    assert rho < -0.5 and p_value < 1e-4  # the rest of the spread is the shape jitter


def test_site_is_independent_of_strata_but_shifts_intensity(cohort):
    images, strata, metadata = cohort
    table = pd.crosstab(metadata["site"], strata)
    assert stats.chi2_contingency(table)[1] > 0.01
    background = images[:, 0, :3, :3].mean(axis=(1, 2))
    per_site = [background[(metadata["site"] == s).to_numpy()].mean() for s in "ABC"]
    assert per_site[0] > per_site[1] > per_site[2]


def test_weak_label_is_the_disease_status_with_noise(cohort):
    _, strata, metadata = cohort
    weak = metadata["weak_label"].to_numpy()
    observed = ~np.isnan(weak)
    agreement = (weak[observed] == (strata[observed] > 0)).mean()
    assert 0.75 <= agreement <= 0.85  # label_noise=0.2


def test_3d_texture_lives_in_the_central_slices():
    volumes, strata, _metadata = make_cohort(90, mode="3d", n_sites=1, random_state=1)
    slices, frame = volumes_to_slices(volumes, labels=strata)
    features = _spectrum(slices[:, 0])
    labels = frame["label"].to_numpy()

    def accuracy(low, high):
        keep = frame["position"].between(low, high).to_numpy()
        return _cv_accuracy(features[keep], labels[keep])

    assert accuracy(0.45, 0.55) > 0.9
    assert accuracy(0.0, 0.12) < 0.6  # end slices: no texture, only age-driven size


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"n_samples": 0},
            ValueError,
            r"'n_samples' parameter of make_cohort must be an int "
            r"in the range \[1, inf\)\. Got 0 instead\.",
        ),
        ({"n_samples": 10.0}, TypeError, r"'n_samples' .*Got 10\.0 instead"),
        ({"n_strata": 7}, ValueError, r"'n_strata' .*\[2, 6\]\. Got 7"),
        ({"mode": "4d"}, ValueError, r"'mode' .*among \{'2d', '3d'\}\. Got '4d'"),
        ({"size": 8}, ValueError, r"'size' .*\[16, 256\]\. Got 8"),
        ({"label_noise": 0.6}, ValueError, r"'label_noise' .*\[0, 0\.5\]\. Got 0\.6"),
        ({"missing_rate": 1.0}, ValueError, r"'missing_rate' .*\[0, 1\)\. Got 1\.0"),
        ({"random_state": "seed"}, TypeError, r"random_state .*got str"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_cohort(**kwargs)
