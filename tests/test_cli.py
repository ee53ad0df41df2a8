"""The `stratify` command line."""

from __future__ import annotations

import re

import pytest

from stratify.cli import main


def test_demo_recovers_the_strata(capsys):
    assert main(["demo", "--n-samples", "300", "--epochs", "10", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    ari = float(re.search(r"ARI to the true strata:  Stratifier (-?[\d.]+)", out).group(1))
    assert ari > 0.8
    assert "300 synthetic patients" in out


def test_demo_quiet_prints_nothing(capsys):
    assert main(["demo", "--n-samples", "30", "--epochs", "1", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


def test_bad_value_is_one_line_on_stderr_and_exit_code_2(capsys):
    assert main(["demo", "--n-samples", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert "'n_samples' parameter of make_cohort" in captured.err
    assert "Traceback" not in captured.err


def test_unknown_subcommand_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["nonsense"])
    assert excinfo.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
