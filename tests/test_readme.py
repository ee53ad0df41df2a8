"""The README's and the guide's code runs as written.

Every ``python`` block of the README and of the documentation pages runs here, each page's
blocks in order in one namespace (a page builds on its earlier blocks); the blocks whose
results the pages describe are then checked against what they say.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)


def _blocks(page: Path) -> list[str]:
    return PYTHON_BLOCK.findall(page.read_text())


def _block(marker: str, page: Path = README) -> str:
    blocks = [b for b in _blocks(page) if marker in b]
    assert len(blocks) == 1, f"expected one block of {page.name} containing {marker!r}"
    return blocks[0]


def _run(code: str, page: Path, namespace: dict) -> None:
    from stratify import DataNotFoundError

    try:
        exec(compile(code, str(page), "exec"), namespace)
    except DataNotFoundError as error:  # a data page's block, without the official files
        pytest.skip(f"{page.name}: {error}")


def test_every_page_with_code_is_collected():
    with_code = {p.relative_to(ROOT).as_posix() for p in PAGES if _blocks(p)}
    assert {"README.md", "docs/extending.md", "docs/guide/losses.md"} <= with_code


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if _blocks(p) and p not in (README, ROOT / "docs" / "extending.md")],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_page_code_runs(page, tmp_path, monkeypatch, request):
    text = page.read_text()
    if "load_medmnist(" in text:  # the official files, where the tests find them
        monkeypatch.setenv("STRATIFY_DATA", str(request.getfixturevalue("medmnist_root")))
    if "load_mnist_test(" in text:
        monkeypatch.setenv("STRATIFY_MNIST", str(request.getfixturevalue("mnist_root")))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in _blocks(page):
        _run(code, page, namespace)


def test_quick_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    _run(_block("model = Stratifier("), README, namespace)
    assert namespace["synthetic"].shape == (8, 1, 28, 28)
    assert (tmp_path / "stratifier.pt").is_file()
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(namespace["new_strata"], namespace["assigned"]) > 0.8


def test_few_labels_example_runs_and_anchors_the_strata():
    import numpy as np

    namespace: dict = {}
    _run(_block("guided = Stratifier("), README, namespace)
    guided, y = namespace["guided"], namespace["y"]
    np.testing.assert_array_equal(guided.stratum_classes_, [0, 1, 2, -1])
    for c in range(3):
        assert set(guided.labels_[y == c]) == {c}


def test_readme_has_no_other_python_block():
    assert len(_blocks(README)) == 2  # the tour and the few labels, both checked above


def test_extension_examples_run_and_are_picked_up():
    import torch

    from stratify.cluster import BACKENDS
    from stratify.losses import TERMS
    from stratify.losses.registry import distance_columns

    page = ROOT / "docs" / "extending.md"
    assert len(_blocks(page)) == 3
    namespace: dict = {}
    try:
        for marker in ("class ExponentialAgeKernel", 'TERMS["exp-age"]', 'BACKENDS["birch"]'):
            _run(_block(marker, page), page, namespace)
        # the kernel: a finite loss, NaN age handled by the base class, a distance column
        assert torch.isfinite(namespace["loss"])
        assert distance_columns(namespace["term"]) == {"age"}
        # the regularizer kind reaches the Stratifier's objective and trains
        import numpy as np
        import pandas as pd

        rng = np.random.default_rng(0)
        fitted = (
            namespace["with_age"]
            .set_params(
                epochs=1,
                latent_dim=4,
                width=4,
                batch_size=8,
                random_state=0,
                n_clusters=2,
            )
            .fit(
                rng.integers(0, 256, (16, 1, 28, 28), dtype=np.uint8),
                metadata=pd.DataFrame({"age": rng.normal(60, 10, 16)}),
            )
        )
        objective = fitted.objective_
        assert type(objective.terms["age"]).__name__ == "AgeContrastive"
        assert objective.weights["age"] == 0.5
        assert np.isfinite(fitted.history_["age"]).all()
        # the backend clusters and assigns new samples by its own predict
        strata = namespace["strata"]
        assert strata.n_clusters_ == 3 and strata.labels_.shape == (300,)
        latents = namespace["latents"]
        assert (strata.predict(latents[:20]) == strata.estimator_.predict(latents[:20])).all()
        from stratify import Stratifier

        Stratifier(clusterer="birch")._validate_params()  # accepted by name
    finally:
        TERMS.pop("exp-age", None)
        BACKENDS.pop("birch", None)
