"""The resumable per-(dataset, seed) accumulation of the benchmark scripts."""

from __future__ import annotations

import pandas as pd
import pytest

from lab.store import accumulate


def test_accumulate_skips_runs_already_in_the_csv_and_writes_after_each(tmp_path, capsys):
    path = tmp_path / "rows.csv"
    calls = []

    def compute(dataset, seed):
        calls.append((dataset, seed))
        if (dataset, seed) == ("b", 1):
            raise RuntimeError("stopped")
        return pd.DataFrame({"dataset": [dataset] * 2, "seed": [seed] * 2, "value": [seed, -seed]})

    runs = [("a", 0), ("a", 1), ("b", 1)]
    with pytest.raises(RuntimeError, match="stopped"):
        accumulate(path, runs, compute)
    written = pd.read_csv(path)  # the two finished runs were kept when the third failed
    assert sorted(set(zip(written["dataset"], written["seed"], strict=True))) == [
        ("a", 0),
        ("a", 1),
    ]
    calls.clear()
    results = accumulate(
        path,
        [("a", 0), ("a", 1), ("b", 2)],
        compute,
        lambda d, s, rows: f"{d}/{s}: {len(rows)} rows",
    )
    assert calls == [("b", 2)]  # only the run the CSV lacked
    assert capsys.readouterr().out == "b/2: 2 rows\n"
    assert len(results) == 6 and results.equals(pd.read_csv(path))
    assert accumulate(path, [], compute).equals(results)  # no runs: the CSV as it is
