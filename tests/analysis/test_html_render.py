"""The HTML report as a reader sees it: rendered by headless Chromium, every figure a real
image, the document's sections in order."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from stratify import Stratifier, make_cohort
from stratify.analysis.html_report import write_html_report
from stratify.cluster.backends import DEFAULT_BACKEND

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = [
    "Summary",
    "Cohort",
    "Stratum sizes",
    "Map of the strata",
    "Example images per stratum",
    "Metadata per stratum",
    "Survival",
    "Stability",
    "Caveats",
    "Model card",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    pytest.importorskip("lifelines")
    images, _, metadata = make_cohort(90, random_state=0)
    prior = {"age": {"kind": "yaware", "columns": "age", "sigma": 10.0}}
    model = Stratifier(
        3, regularizers=prior, latent_dim=8, width=4, epochs=2, batch_size=30, random_state=0
    ).fit(images, metadata=metadata)
    rng = np.random.default_rng(0)
    patients = metadata.assign(
        stratum=model.labels_, time=rng.exponential(10, 90), event=rng.integers(0, 2, 90)
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(
        model,
        path,
        metadata=patients.drop(columns="stratum"),
        patients=patients,
        outcome=("time", "event"),
        images=images,
        stability_resamples=3,
        time_unit="months",
    )
    return path, model


def test_the_report_reads_as_a_document(report):
    path, model = report
    text = path.read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", text)
    assert [next(s for s in SECTIONS if h.startswith(s)) for h in headings] == SECTIONS
    assert re.search(r"Generated \d{4}-\d\d-\d\d \d\d:\d\d", text)
    summary = re.search(r"<div class='summary'>(.*?)</div>", text, flags=re.S).group(1)
    sizes = np.bincount(model.labels_)
    for k, n in enumerate(sizes):  # one paragraph per stratum, its size from the labels
        assert f"Stratum {k} holds {n} images ({n / sizes.sum():.0%} of the cohort)" in summary
    assert "median survival" in summary and "months" in summary
    assert "(share)" in text and "Survival (time: time in months" in text
    card = re.search(r"<h2>Model card</h2>(.*)</table>", text, flags=re.S).group(1)
    assert card.count("<tr>") <= 20 and "verbose" not in card and "free_bits" not in card


def test_every_figure_is_a_decodable_png(report):
    from PIL import Image

    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', report[0].read_text())
    assert len(sources) >= 4
    for source in sources:
        picture = Image.open(io.BytesIO(base64.b64decode(source)))
        picture.verify()  # raises on a broken image
        assert picture.size[0] > 100 and picture.size[1] > 50


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: chromium)")
def test_chromium_renders_the_report(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            report[0].as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    picture = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert picture.shape == (2400, 1280)
    # a page with text and figures, not a blank or error page: many grey levels, ink
    assert len(np.unique(picture)) > 50 and (picture < 128).mean() > 0.01
    # the page uses its width: ink in the right half as well as the left
    assert (picture[:, 700:] < 200).mean() > 0.005


def test_synthetic_images_are_shown_only_when_they_look_like_their_strata(report, monkeypatch):
    from stratify.analysis import html_report

    path, model = report
    text = path.read_text()
    shown = "synthetic" in text and "Synthetic images (decoded" in text
    refused = "Synthetic images are not shown" in text
    assert shown != refused
    monkeypatch.setattr(html_report, "synthetic_fidelity", lambda model, images: 0.2)
    images = make_cohort(90, random_state=0).images
    write_html_report(model, path.with_name("low.html"), images=images, stability_resamples=0)
    low = path.with_name("low.html").read_text()
    assert "put only 20% of them back in their stratum (chance 33%; shown from 67%)" in low
    assert "stratum 0: synthetic" not in low
    monkeypatch.setattr(html_report, "synthetic_fidelity", lambda model, images: 0.9)
    write_html_report(model, path.with_name("high.html"), images=images, stability_resamples=0)
    assert "put 90% of them back in their stratum" in path.with_name("high.html").read_text()


def test_synthetic_fidelity_against_a_pixel_classifier_by_hand():
    from stratify.analysis.html_report import SYNTHETIC_CHECKED, synthetic_fidelity

    class Fake:
        labels_ = np.repeat([0, 1], 10)

        def sample(self, n, cluster, random_state):
            # stratum 0 is dark, stratum 1 bright; the fake decoder draws stratum 1 for both
            return np.full((n, 1, 4, 4), 200, np.uint8)

    dark, bright = np.zeros((10, 1, 4, 4), np.uint8), np.full((10, 1, 4, 4), 200, np.uint8)
    images = np.concatenate([dark, bright])
    images[:, 0, 0, 0] = np.arange(20)  # some spread for the classifier's scaling
    # every sample looks bright: those drawn for stratum 1 are faithful, those for 0 are not
    assert synthetic_fidelity(Fake(), images) == pytest.approx(0.5)
    assert SYNTHETIC_CHECKED == 20


def test_model_card_is_short_and_names_what_a_reader_needs(report):
    from stratify.analysis.html_report import model_card

    card = model_card(report[1])
    assert len(card) <= 20
    assert card.loc["metadata priors", "value"] == "age (yaware on age)"
    # the report's model was fitted with the default clusterer, named as the backend table does
    assert card.loc["clustering", "value"] == f"{DEFAULT_BACKEND} on the latents"
    assert not any(name.startswith("parameter ") for name in card.index)
    pd.testing.assert_index_equal(card.columns, pd.Index(["value"]))
