"""The README's quick tour runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block(marker: str) -> str:
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if marker in b
    ]
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


def test_few_labels_example_runs_and_anchors_the_strata():
    import numpy as np

    namespace: dict = {}
    exec(compile(_block("guided = Stratifier("), str(README), "exec"), namespace)
    guided, y = namespace["guided"], namespace["y"]
    np.testing.assert_array_equal(guided.stratum_classes_, [0, 1, 2, -1])
    for c in range(3):
        assert set(guided.labels_[y == c]) == {c}


def test_extension_examples_run_and_are_picked_up():
    import torch

    from stratify.cluster import BACKENDS
    from stratify.losses import TERMS
    from stratify.losses.registry import distance_columns

    namespace: dict = {}
    try:
        for marker in ("class ExponentialAgeKernel", 'TERMS["exp-age"]', 'BACKENDS["birch"]'):
            exec(compile(_block(marker), str(README), "exec"), namespace)
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
