"""The declared selection rules of the benchmark scripts, on frames worked out by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest


def _script(name):
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).parents[2] / "benchmarks" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _anchoring_rows(scores):
    """Rows of anchoring.csv: ``scores[name] = (val ACC on set a, on set b, min share)``."""
    rows = []
    for name, (a, b, share) in scores.items():
        for dataset, acc in (("a", a), ("b", b)):
            rows.append(
                {
                    "dataset": dataset,
                    "seed": 0,
                    "anchoring": name,
                    "val_acc": acc,
                    "val_min_share": share,
                    "test_acc": 0.0,
                }
            )
    return pd.DataFrame(rows)


def test_the_anchoring_rule_needs_a_margin_a_worst_set_and_no_collapsed_stratum():
    script = _script("anchoring")
    names = script.CANDIDATES
    base = {n: (0.70, 0.70, 0.3) for n in names}
    # higher by exactly the margin (not more): the mixture, listed first, stays
    tie = dict(base, **{names[1]: (0.705, 0.705, 0.3)})
    assert script.choose(_anchoring_rows(tie))[0] == "gmm"
    # the best mean, but one set worse than the mixture's worst by more than the margin
    lopsided = dict(base, **{names[2]: (0.95, 0.68, 0.3), names[3]: (0.75, 0.72, 0.3)})
    assert script.choose(_anchoring_rows(lopsided))[0] == names[3]
    # the highest of all, but a stratum under MIN_SHARE somewhere: out
    collapsed = dict(lopsided, **{names[4]: (0.99, 0.99, script.MIN_SHARE / 2)})
    chosen, table = script.choose(_anchoring_rows(collapsed))
    assert chosen == names[3]
    assert table.set_index("anchoring").loc[names[4], "min_share"] == script.MIN_SHARE / 2


def _trajectory(dataset, seed, accs, agreements):
    return pd.DataFrame(
        {
            "dataset": dataset,
            "seed": seed,
            "epoch": range(1, len(accs) + 1),
            "budget": len(accs),
            "fraction": [e / len(accs) for e in range(1, len(accs) + 1)],
            "train_seconds": range(1, len(accs) + 1),
            "knn_agreement": agreements,
            "val_acc": accs,
            "git_commit": "0123abc",
        }
    )


def test_the_stopping_rule_takes_the_earliest_threshold_within_both_tolerances(tmp_path):
    script = _script("stopping")
    runs = pd.concat(
        [
            # agreement crosses 0.6 at check 2 (val 0.80) and 0.9 at check 3 (0.85); full 0.86
            _trajectory("a", 0, [0.5, 0.80, 0.85, 0.86], [0.1, 0.6, 0.9, 0.95]),
            # crosses 0.6 and 0.9 at check 2 (0.90 = its full budget's)
            _trajectory("b", 0, [0.5, 0.90, 0.90, 0.90], [0.2, 0.9, 0.97, 0.99]),
        ]
    )
    chosen, table = script.choose(runs)
    # t <= 0.60 stops set a at 0.80 (0.06 below its full budget: past the set tolerance);
    # t in 0.65..0.90 stops it at check 3 (0.85, within both), the smallest is 0.65
    assert chosen == 0.65
    row = table[table["threshold"] == 0.65].iloc[0]
    assert row["mean_acc"] == (0.85 + 0.90) / 2 and row["fraction"] == (3 / 4 + 2 / 4) / 2
    out = tmp_path / "stopping.md"
    script.report(runs, ["a", "b"], [0, 1], out)
    assert "Partial: 2 of 4 (set, seed) runs; no threshold is chosen" in out.read_text()
    script.report(runs, ["a", "b"], [0], out)
    assert "**Chosen: t = 0.65.**" in out.read_text()
    # a grid cut at 0.6 (a rescoring run) has no passing candidate: the full budget stays
    chosen, table = script.choose(runs, (0.5, 0.55, 0.6))
    assert chosen is None and list(table["threshold"].iloc[:3]) == [0.5, 0.55, 0.6]
    assert pd.isna(table["threshold"].iloc[3]) and len(table) == 4


def _fit_time_rows(seconds, dataset="pneumoniamnist-2000"):
    return pd.DataFrame(
        [
            {
                "dataset": dataset,
                "seed": seed,
                "n_train": 2000,
                "networks": 1,
                "epochs_run": 13,
                "batch_size": 256,
                "fit_seconds": value,
                "test_acc": 0.8,
                "test_nmi": 0.3,
                "git_commit": "abc",
            }
            for seed, value in enumerate(seconds)
        ]
    )


def _bar_cell(text, name):
    """The (slowest s, verdict) cells of one set's row in fit_time.md."""
    row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    return cells[2], cells[3]


def test_the_fit_time_bar_is_judged_on_the_slowest_seed(tmp_path):
    script = _script("fit_time")
    out = tmp_path / "fit_time.md"
    script.report(_fit_time_rows([100.0, 110.0, 119.0]), [0, 1, 2], out)
    assert _bar_cell(out.read_text(), "pneumoniamnist-2000") == ("119", "met")
    # a mean under the bar does not hide one seed over it
    script.report(_fit_time_rows([80.0, 90.0, 121.0]), [0, 1, 2], out)
    assert _bar_cell(out.read_text(), "pneumoniamnist-2000") == ("121", "missed")
    # each set against its own bar; a set not run says so
    script.report(_fit_time_rows([500.0], "cohort-300"), [0], out)
    text = out.read_text()
    assert _bar_cell(text, "cohort-300") == ("500", "met")
    assert _bar_cell(text, "adrenalmnist3d_64-1188") == ("not run", "")


def _validation_rows(scores):
    """Rows of the validation profile: ``scores[name] = ((acc set a, acc set b), share)``,
    one seed, the same share in every row."""
    return pd.DataFrame(
        [
            {"method": name, "dataset": d, "seed": 0, "acc": acc, "min_share": share}
            for name, (accs, share) in scores.items()
            for d, acc in zip(("a", "b"), accs, strict=True)
        ]
    )


def test_the_default_rule_drops_tiny_strata_and_breaks_ties_by_the_worst_set():
    script = _script("choose_default")
    rows = _validation_rows(
        {
            "collapsed": ((0.99, 0.99), 0.01),  # best ACC, but a 1 % stratum: out
            "even": ((0.80, 0.80), 0.3),  # mean 0.800, worst 0.80
            "uneven": ((0.90, 0.703), 0.3),  # mean 0.8015: within 0.005, worst 0.703
            "low": ((0.70, 0.70), 0.3),
        }
    )
    chosen, table = script.choose(rows, ["collapsed", "even", "uneven", "low"], ["a", "b"], [0])
    assert chosen == "even"
    assert table.set_index("candidate").loc["collapsed", "out"] == "a stratum under 5%"
    # beyond the tie the higher mean wins whatever its worst set
    rows = _validation_rows({"even": ((0.80, 0.80), 0.3), "uneven": ((0.95, 0.70), 0.3)})
    assert script.choose(rows, ["even", "uneven"], ["a", "b"], [0])[0] == "uneven"
    # a candidate without a row of every (set, seed) is not chosen
    partial = rows[~((rows["method"] == "uneven") & (rows["dataset"] == "b"))]
    chosen, table = script.choose(partial, ["even", "uneven"], ["a", "b"], [0])
    assert chosen == "even"
    assert table.set_index("candidate").loc["uneven", "out"] == "missing runs"
    # rows from before the stratum sizes were recorded cannot pass the first test
    rows.loc[rows["method"] == "uneven", "min_share"] = float("nan")
    assert script.choose(rows, ["even", "uneven"], ["a", "b"], [0])[0] == "even"


def test_priors_selection_takes_the_best_validation_score_and_breaks_ties_by_grid_order():
    priors = _script("priors")
    grid = {
        ("yaware", "cohort-informative"): [
            {"weight": 1.0, "sigma_sd": 0.25},
            {"weight": 1.0, "sigma_sd": 0.5},
            {"weight": 3.0, "sigma_sd": 0.25},
        ],
        ("clinical", "cohort-informative"): [{"weight": 1.0}, {"weight": 3.0}],
        ("wsp", "adrenal-wsp"): [
            {"weight": 1.0, "sigma_sd": 0.25},
            {"weight": 3.0, "sigma_sd": 0.25},
        ],
        ("yaware", "cohort-faint"): [
            {"weight": 1.0, "sigma_sd": 0.25},
            {"weight": 1.0, "sigma_sd": 0.5},
        ],
    }
    rows = [
        # y-Aware: the best is sigma 0.5 sd at weight 1
        ("yaware", "cohort-informative", 0.25, 1.0, 0.70, None),
        ("yaware", "cohort-informative", 0.5, 1.0, 0.75, None),
        ("yaware", "cohort-informative", 0.25, 3.0, 0.74, None),
        # clinical: a tie, so the first listed (weight 1) wins
        ("clinical", "cohort-informative", None, 1.0, 0.80, None),
        ("clinical", "cohort-informative", None, 3.0, 0.80, None),
        # WSP is judged by validation AUC, not ACC
        ("wsp", "adrenal-wsp", 0.25, 1.0, 0.90, 0.60),
        ("wsp", "adrenal-wsp", 0.25, 3.0, 0.70, 0.65),
        # the same prior on another setting has its own choice, from its own rows only
        ("yaware", "cohort-faint", 0.25, 1.0, 0.62, None),
        ("yaware", "cohort-faint", 0.5, 1.0, 0.61, None),
    ]
    columns = ["method", "setting", "sigma_sd", "weight", "val_acc", "val_auc"]
    selection = pd.DataFrame(rows, columns=columns)
    specs = priors.chosen(selection, grid)
    assert specs == {
        ("yaware", "cohort-informative"): {"weight": 1.0, "sigma_sd": 0.5},
        ("clinical", "cohort-informative"): {"weight": 1.0},
        ("wsp", "adrenal-wsp"): {"weight": 3.0, "sigma_sd": 0.25},
        ("yaware", "cohort-faint"): {"weight": 1.0, "sigma_sd": 0.25},
    }
    missing = selection[selection["method"] != "clinical"]
    with pytest.raises(ValueError, match=r"selection run of clinical .* on cohort-informative"):
        priors.chosen(missing, grid)


def test_priors_report_only_names_the_missing_csv(tmp_path, monkeypatch, capsys):
    priors = _script("priors")
    out = tmp_path / "priors.md"
    monkeypatch.setattr("sys.argv", ["priors.py", "--report-only", "--out", str(out)])
    with pytest.raises(SystemExit):
        priors.main()
    assert f"--report-only reads {tmp_path / 'priors.csv'}; no such file" in capsys.readouterr().err
    assert not out.exists()
