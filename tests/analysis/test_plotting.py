"""Figures tell the truth: matched colours, one intensity scale, weights and rising terms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stratify.analysis import plotting


def test_strata_take_the_colour_of_their_matched_group():
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    labels = np.array([2, 2, 2, 0, 0, 1, 1, 1, 1, 1])  # stratum 2 = group 0, 0 = 1, 1 = 2
    strata, groups = plotting._matched_palettes(labels, truth)
    assert strata[2] == groups[0] and strata[0] == groups[1] and strata[1] == groups[2]
    extra = np.array([2, 2, 2, 0, 0, 3, 1, 1, 1, 1])  # a fourth stratum matched to no group
    strata, groups = plotting._matched_palettes(extra, truth)
    assert strata[3] not in groups.values()
    figure = plotting.plot_latent_space(
        np.random.default_rng(0).normal(size=(10, 4)),
        labels,
        truth,
        truth_name="true stratum",
        color_by={"site": np.array(list("ABABABABAB"))},
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "latent space (PCA), coloured by stratum",
        "latent space (PCA), coloured by true stratum",
        "latent space (PCA), coloured by site",
    ]


def test_images_share_one_intensity_scale():
    bright = np.full((1, 4, 4), 200, np.uint8)
    dim = np.full((1, 4, 4), 100, np.uint8)
    dim[0, 0, 0] = 0
    figure = plotting.plot_image_grid({"real": np.stack([bright]), "synthetic": np.stack([dim])})
    shown = [np.asarray(ax.images[0].get_array()) for ax in figure.axes if ax.images]
    np.testing.assert_allclose(shown[0], 200 / 255)  # not stretched to white
    np.testing.assert_allclose(shown[1][0, 1], 100 / 255)
    figure = plotting.plot_image_grid({"a": np.stack([dim]).astype(float)}, value_range=(0, 400))
    np.testing.assert_allclose(np.asarray(figure.axes[0].images[0].get_array())[0, 1], 0.25)


def test_training_curves_state_weights_and_flag_a_rising_term():
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "reconstruction": [0.6, 0.5, 0.4],
            "age": [4.86, 5.0, 5.15],
            "total": [7.0, 6.5, 6.4],
            "active_units": [3.0, 4.0, 4.0],
            "kl_dim_0": [0.1, 0.2, 0.3],
            "kl_weight": [0.1, 0.2, 0.2],
            "lr": [1e-3] * 3,
            "seconds": [1.0] * 3,
            "stage": ["representation"] * 3,
        }
    )
    figure = plotting.plot_history(history, {"reconstruction": 1.0, "age": 0.5})
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["reconstruction (weight 1)", "age (weight 0.5)\nROSE 4.86 -> 5.15", "total"]
    assert figure.axes[0].get_xlabel() == "epoch" and figure.axes[0].get_ylabel() == "term value"


def test_k_selection_plot_draws_each_candidate_and_marks_the_chosen_one(tmp_path):
    from stratify.cluster import StrataClusterer

    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [6, 0], [0, 6], [6, 6]], dtype=float)
    X = np.concatenate([c + rng.normal(size=(40, 2)) * 0.5 for c in centres])
    fitted = StrataClusterer("gmm", "auto", k_range=(2, 6), random_state=0).fit(X)
    table = fitted.cluster_selection_
    figure = plotting.plot_k_selection(fitted, path=tmp_path / "k.png")
    ax = figure.axes[0]
    curve, marker = ax.lines[0], ax.lines[1]
    np.testing.assert_array_equal(curve.get_xdata(), table["k"])
    np.testing.assert_allclose(curve.get_ydata(), table["score"])
    assert marker.get_xdata()[0] == fitted.n_clusters_ == 4  # four blobs: BIC finds them
    assert "BIC" in ax.get_ylabel() and (tmp_path / "k.png").is_file()
    with pytest.raises(ValueError, match="cluster_selection_ table"):
        plotting.plot_k_selection(StrataClusterer("gmm", 3, random_state=0).fit(X))


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 16, 16), (1, 8, 16, 16)])
def test_views_are_drawn_under_the_originals(shape):
    from stratify.data.augment import AugmentParams

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, *shape)).astype(np.uint8)
    figure = plotting.plot_views(images, n_images=3, random_state=1)
    axes = np.array(figure.axes).reshape(3, 3)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["original", "view 1", "view 2"]
    original = axes[0, 0].get_images()[0].get_array()
    middle = images[0, :, shape[1] // 2] if len(shape) == 4 else images[0]
    expected = middle[0] if shape[0] == 1 else np.moveaxis(middle, 0, -1)
    np.testing.assert_allclose(original, expected / 255.0, atol=1e-6)
    view = axes[1, 0].get_images()[0].get_array()
    assert not np.allclose(view, original)  # the default augmentation changes the image
    same = plotting.plot_views(images, AugmentParams.disabled(), n_images=2)
    grid = np.array(same.axes).reshape(3, 2)
    np.testing.assert_allclose(
        grid[1, 1].get_images()[0].get_array(), grid[0, 1].get_images()[0].get_array(), atol=1e-6
    )


def test_label_efficiency_draws_one_line_per_family_and_the_label_free_level():
    table = pd.DataFrame(
        {
            "dataset": ["d"] * 4,
            "family": ["strata", "strata", "supervised", "supervised"],
            "percent": [0, 1, 1, 100],
            "mean": [0.6, 0.8, 0.7, 0.9],
            "sd": [0.0, 0.02, 0.05, 0.01],
            "majority_rate": [0.5] * 4,
        }
    )
    figure = plotting.plot_label_efficiency(table)
    ax = figure.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["stratify, guided strata"].get_xydata(), [[1, 0.8]])
    np.testing.assert_allclose(lines["supervised ResNet-18"].get_xydata(), [[1, 0.7], [100, 0.9]])
    assert lines["label-free strata"].get_ydata()[0] == 0.6
    assert lines["majority class"].get_ydata()[0] == 0.5 and ax.get_xscale() == "log"
    with pytest.raises(ValueError, match=r"share of labels \(percent > 0\), got none"):
        plotting.plot_label_efficiency(table[table["percent"] == 0])
