"""The README's quick tour runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
              if marker in b]
    assert len(blocks) == 1, f"expected one README block containing {marker!r}"
    return blocks[0]


def test_quick_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_block("model = Stratifier("), str(README), "exec"), namespace)
    assert namespace["synthetic"].shape == (8, 1, 28, 28)
    assert (tmp_path / "stratifier.pt").is_file()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(namespace["new_strata"], namespace["assigned"]) > 0.8
