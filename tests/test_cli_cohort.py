"""A cohort of NIfTI files through the command line: ids, outcomes and the HTML report."""

from __future__ import annotations

import base64
import json
import re
import time
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from stratify import Stratifier, stability
from stratify.cli import main

nib = pytest.importorskip("nibabel")
pytest.importorskip("lifelines")

QUIET = ["--quiet", "--seed", "0"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """24 volumes of two kinds, a patient table in two row orders, a y-Aware config."""
    folder = tmp_path_factory.mktemp("nifti")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        kind = i % 2
        volume = rng.normal(size=(12, 12, 12)).astype(np.float32)
        if kind:
            volume[3:9, 3:9, 3:9] += 3.0
        else:
            volume[:, :6] += 2.0
        nib.save(
            nib.Nifti1Image(volume * 100, np.diag([1.5, 1.5, 1.5, 1.0])),
            str(folder / f"P{i:03d}.nii.gz"),
        )
        rows.append(
            {
                "patient_id": f"P{i:03d}",
                "age": 50 + 10 * kind + rng.normal(),
                "time": rng.exponential(10 if kind else 4),
                "event": int(rng.random() < 0.8),
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(folder / "T1.csv", index=False)
    table.sample(frac=1, random_state=1).to_csv(folder / "T2.csv", index=False)
    config = {
        "regularizers": {"age": {"kind": "yaware", "columns": "age", "sigma": 10.0}},
        "latent_dim": 8,
        "width": 4,
        "batch_size": 12,
    }
    (folder / "C.json").write_text(json.dumps(config))
    (folder / "volumes").mkdir()
    for file in folder.glob("*.nii.gz"):
        file.rename(folder / "volumes" / file.name)
    return folder


def _fit(folder, table, out, *extra):
    return main(
        [
            "fit",
            str(folder / "volumes"),
            "--metadata",
            str(folder / table),
            "--id-column",
            "patient_id",
            "--config",
            str(folder / "C.json"),
            "--n-clusters",
            "2",
            "--epochs",
            "1",
            "--out",
            str(out),
            *extra,
            *QUIET,
        ]
    )


def test_strata_per_patient_do_not_depend_on_the_table_order(cohort, tmp_path):
    predictions = []
    for table in ("T1.csv", "T2.csv"):
        model = tmp_path / f"{table}.pt"
        assert _fit(cohort, table, model) == 0
        out = tmp_path / f"{table}.predict.csv"
        assert (
            main(["predict", str(model), str(cohort / "volumes"), "--out", str(out), *QUIET]) == 0
        )
        predictions.append(pd.read_csv(out).set_index("patient_id"))
        fitted = Stratifier.load(model)
        assert fitted.ids_.tolist() == [f"P{i:03d}" for i in range(24)]
    first, second = predictions
    assert list(first.columns[:1]) == ["stratum"]
    pd.testing.assert_series_equal(first["stratum"], second.loc[first.index, "stratum"])
    # the rows follow the image files (sorted names), not either table's order
    table = pd.read_csv(cohort / "T1.csv")
    assert first.index.tolist() == table["patient_id"].tolist()


def test_a_table_missing_an_id_fails_fast_in_one_line(cohort, tmp_path, capsys):
    table = pd.read_csv(cohort / "T1.csv")
    table[table["patient_id"] != "P007"].to_csv(tmp_path / "missing.csv", index=False)
    (tmp_path / "missing.csv").rename(cohort / "missing.csv")
    start = time.perf_counter()
    assert _fit(cohort, "missing.csv", tmp_path / "m.pt") == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "without a metadata row: 'P007'" in err
    assert not (tmp_path / "m.pt").exists()
    # --allow-missing drops the image and fits the others, saying so in one line
    assert _fit(cohort, "missing.csv", tmp_path / "m.pt", "--allow-missing") == 0
    err = capsys.readouterr().err
    assert err == "stratify fit: warning: Dropped 1 image ids without a metadata row: 'P007'.\n"
    assert len(Stratifier.load(tmp_path / "m.pt").ids_) == 23


def test_metadata_by_row_order_is_refused_for_files(cohort, tmp_path, capsys):
    argv = ["fit", str(cohort / "volumes"), "--metadata", str(cohort / "T1.csv")]
    assert main([*argv, "--out", str(tmp_path / "m.pt"), *QUIET]) == 2
    assert "join the metadata by id with --id-column" in capsys.readouterr().err


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources, self.headings, self._in_h2 = [], [], False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])
        self._in_h2 = tag == "h2"

    def handle_data(self, data):
        if self._in_h2:
            self.headings.append(data)
            self._in_h2 = False


def test_describe_outcome_and_the_html_report(cohort, tmp_path):
    model = tmp_path / "m.pt"
    assert _fit(cohort, "T2.csv", model) == 0
    out = tmp_path / "describe"
    args = ["--metadata", str(cohort / "T2.csv"), "--id-column", "patient_id"]
    outcome = ["--outcome", "time,event"]
    assert main(["describe", str(model), *args, *outcome, "--out", str(out), *QUIET]) == 0
    logrank = json.loads((out / "logrank.json").read_text())
    assert set(logrank) == {"statistic", "p_value", "dof"} and logrank["dof"] == 1
    strata = pd.read_csv(out / "strata.csv")
    assert len(strata) == 24 and {"patient_id", "stratum", "age"} <= set(strata.columns)
    tests = pd.read_csv(out / "strata_tests.csv", index_col=0)
    assert bool(tests.loc["age", "used_in_training"])
    assert tests.loc["age", "training_role"] == "prior"
    # the outcome is analysed by the survival tables only, never as a metadata column
    assert not {"time", "event"} & set(tests.index)
    hazard = pd.read_csv(out / "hazard_ratios.csv")
    assert len(hazard) == 1 and (hazard["lower"] <= hazard["hazard_ratio"]).all()

    report = tmp_path / "report.html"
    argv = ["report", str(model), *args, *outcome, "--images", str(cohort / "volumes")]
    assert main([*argv, "--stability-resamples", "4", "--out", str(report), *QUIET]) == 0
    parser = _Images()
    parser.feed(report.read_text())
    assert len(parser.sources) >= 3
    for source in parser.sources:  # every figure inside the file, a real PNG
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("Cohort", "Stratum sizes", "Example images per stratum", "Model card"):
        assert heading in parser.headings
    assert any(h.startswith("Survival") for h in parser.headings)
    assert re.search(r"Used in training: age \(a prior\)", report.read_text())
    measured = stability(Stratifier.load(model), n_resamples=4, random_state=0)
    text = report.read_text()
    assert (
        f"mean adjusted Rand index with the strata {measured.resamples['ari'].mean():.3f}" in text
    )
    unstable = int((measured.patients[~np.isnan(measured.patients)] < 0.8).sum())
    assert f"{unstable} of {int((~np.isnan(measured.patients)).sum())} images" in text
    assert main([*argv, "--stability-resamples", "0", "--out", str(report), *QUIET]) == 0
    assert "mean adjusted Rand index with the strata" not in report.read_text()


@pytest.mark.parametrize(
    ("outcome", "match"),
    [("time", r"--outcome must be TIME,EVENT"), ("time,status", r"lacks"), ("age,event", None)],
)
def test_bad_outcomes_write_nothing(cohort, tmp_path, capsys, outcome, match):
    model = tmp_path / "m.pt"
    assert _fit(cohort, "T1.csv", model) == 0
    capsys.readouterr()
    out = tmp_path / "d"
    table = pd.read_csv(cohort / "T1.csv")
    if match is None:  # a negative time
        table.loc[3, "age"] = -1.0
        table.to_csv(tmp_path / "bad.csv", index=False)
        metadata, match = tmp_path / "bad.csv", r"non-negative survival times, got -1.0 in row"
    else:
        metadata = cohort / "T1.csv"
    argv = ["describe", str(model), "--metadata", str(metadata), "--id-column", "patient_id"]
    assert main([*argv, "--outcome", outcome, "--out", str(out), *QUIET]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not out.exists()


# ------------------------------------------------------------------ patients joined by id
@pytest.fixture(scope="module")
def fitted_with_ids(cohort, tmp_path_factory):
    model = tmp_path_factory.mktemp("ids") / "m.pt"
    assert _fit(cohort, "T1.csv", model) == 0
    return model


@pytest.mark.parametrize("command", ["describe", "report"])
def test_a_shuffled_table_joins_by_the_recorded_id_column(
    cohort, fitted_with_ids, tmp_path, command
):
    outs = []
    for name, extra in (("T1.csv", ["--id-column", "patient_id"]), ("T2.csv", [])):
        out = tmp_path / (name + (".html" if command == "report" else ""))
        argv = [command, str(fitted_with_ids), "--metadata", str(cohort / name), *extra]
        if command == "report":
            argv += ["--stability-resamples", "0"]
        assert main([*argv, "--out", str(out), *QUIET]) == 0
        outs.append(out)
    if command == "describe":  # T2 is T1 shuffled: by id, the same patient gets the same row
        first, second = (pd.read_csv(o / "strata.csv") for o in outs)
        pd.testing.assert_frame_equal(first, second)
        model = Stratifier.load(fitted_with_ids)
        by_hand = dict(zip(model.ids_, model.labels_, strict=True))
        assert [by_hand[i] for i in first["patient_id"]] == first["stratum"].tolist()
    else:
        tables = [re.sub(r"Generated [^<]*", "", o.read_text()) for o in outs]
        assert tables[0].count("<tr>") == tables[1].count("<tr>") > 0


def test_a_model_with_ids_and_no_id_column_is_refused_not_joined_by_order(
    cohort, fitted_with_ids, tmp_path, capsys
):
    bare = tmp_path / "bare.pt"
    bare.write_bytes(fitted_with_ids.read_bytes())  # no bare.source.json beside it
    argv = ["describe", str(bare), "--metadata", str(cohort / "T2.csv"), "--out", str(tmp_path)]
    assert main([*argv, *QUIET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fitted with patient ids: name the table's id column" in err


def test_zero_padded_ids_match_their_files(tmp_path, capsys):
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    (tmp_path / "png").mkdir()
    ids = [f"{i:03d}" for i in range(12)]
    for i in ids:
        pixels = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        image.fromarray(pixels).save(tmp_path / "png" / f"{i}.png")
    pd.DataFrame({"patient_id": ids, "age": rng.normal(60, 5, 12)}).to_csv(
        tmp_path / "t.csv", index=False
    )
    argv = ["fit", str(tmp_path / "png"), "--metadata", str(tmp_path / "t.csv")]
    argv += ["--id-column", "patient_id", "--epochs", "1", "--n-clusters", "2"]
    assert main([*argv, "--out", str(tmp_path / "m.pt"), *QUIET]) == 0
    assert Stratifier.load(tmp_path / "m.pt").ids_.tolist() == ids


@pytest.mark.parametrize(
    ("write", "match"),
    [
        (lambda t, p: t.to_csv(p, index=False, sep=";"), r"looks semicolon-separated; save it"),
        (
            lambda t, p: t.assign(site="Zürich").to_csv(p, index=False, encoding="cp1252"),
            r"is not UTF-8 text \(byte 0xfc .*save it as UTF-8",
        ),
    ],
)
def test_delimiter_and_encoding_are_named_with_the_fix(
    cohort, fitted_with_ids, tmp_path, capsys, write, match
):
    write(pd.read_csv(cohort / "T1.csv"), tmp_path / "t.csv")
    argv = ["describe", str(fitted_with_ids), "--metadata", str(tmp_path / "t.csv")]
    argv += ["--id-column", "patient_id", "--out", str(tmp_path / "d")]
    assert main([*argv, *QUIET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(match, err)


def test_a_table_matching_no_image_is_one_line_even_with_allow_missing(cohort, tmp_path, capsys):
    table = pd.read_csv(cohort / "T1.csv")
    table.assign(patient_id="X" + table["patient_id"]).to_csv(cohort / "none.csv", index=False)
    assert _fit(cohort, "none.csv", tmp_path / "m.pt", "--allow-missing") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "got none: 24 image ids without a metadata row" in err


def test_predicting_2d_images_with_a_volume_model_names_the_mismatch(
    fitted_with_ids, tmp_path, capsys
):
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "png").mkdir()
    for i in range(3):
        image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "png" / f"P{i}.png")
    argv = ["predict", str(fitted_with_ids), str(tmp_path / "png"), "--out", str(tmp_path / "p")]
    assert main([*argv, *QUIET]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the model was fitted on 3D volumes, but" in err and "holds 2D images" in err
