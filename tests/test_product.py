"""The product's shape: what the package holds, its surface, and the answers for names of
earlier versions (CHANGELOG.md, 0.2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stratify import Stratifier, io
from stratify._params import REMOVED_PARAMETERS
from stratify.cluster.backends import REMOVED_BACKENDS

PACKAGE = Path(__file__).resolve().parents[1] / "stratify"
TINY = {"latent_dim": 8, "width": 4, "epochs": 1, "batch_size": 16}


def _fresh(code: str) -> str:
    """Run ``code`` in a new interpreter (the lab, imported by other tests, registers its
    research backends into this process's BACKENDS)."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_the_product_ships_six_backends_and_no_lab():
    out = _fresh(
        "import sys, stratify.cli, stratify.estimator, stratify.analysis.html_report\n"
        "from stratify.cluster import BACKENDS\n"
        "print(sorted(BACKENDS)); print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lab', 'benchmarks') or 'baselines' in m or 'stratify.benchmark' in m))"
    )
    backends, lab = out.splitlines()
    assert backends == str(["consensus-spectral", "eac", "gmm", "hdbscan", "head", "kmeans"])
    assert lab == "[]"
    assert not (PACKAGE / "benchmark").exists() and not (PACKAGE / "baselines.py").exists()


def test_at_most_25_parameters_each_settable_one_way():
    params = Stratifier().get_params(deep=False)
    assert len(params) <= 25
    from stratify.training import TrainConfig

    fields = set(TrainConfig.__dataclass_fields__)
    both = sorted(set(params) & fields)
    assert both == ["batch_size", "device", "epochs", "lr"]  # refused in train_config
    for name in both:
        with pytest.raises(ValueError, match=rf"sets '{name}'.*expected Stratifier\({name}="):
            Stratifier(train_config={name: 1}).fit(np.zeros((4, 8, 8), np.uint8))


def _module_graph() -> dict[str, set[str]]:
    """Module -> the stratify modules it imports when it is imported (top level, outside
    ``if TYPE_CHECKING``), from the source."""

    def name_of(path: Path) -> str:
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name_of(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            for sub in ast.walk(node) if isinstance(node, (ast.Import, ast.ImportFrom)) else ():
                if isinstance(sub, ast.ImportFrom) and sub.module:
                    targets = [sub.module] + [f"{sub.module}.{a.name}" for a in sub.names]
                else:
                    targets = [a.name for a in getattr(sub, "names", [])]
                edges |= {t for t in targets if t in modules and t != name}
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the import graph, or None. A package importing its own submodules (or a
    submodule its package's names) is the usual re-export, not a cycle of responsibilities.
    """
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for target in sorted(graph[module]):
            if module.startswith(target + ".") or target.startswith(module + "."):
                continue
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_the_cycle_finder_on_graphs_worked_by_hand():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert _cycle({"p": {"p.x"}, "p.x": {"p"}}) is None  # a package and its submodule


def test_no_import_cycle():
    graph = _module_graph()
    assert graph["stratify.estimator"] >= {"stratify._params", "stratify._parts"}
    assert _cycle(graph) is None


@pytest.mark.parametrize("name", sorted(REMOVED_PARAMETERS))
def test_a_removed_parameter_is_named_with_its_successor(name):
    with pytest.raises(
        TypeError,
        match=rf"The '{name}' parameter of Stratifier was (removed|moved) in stratify 0\.2",
    ):
        Stratifier(**{name: 1})
    with pytest.raises(TypeError, match=rf"'{name}' parameter of Stratifier was"):
        Stratifier().set_params(**{name: 1})


def test_an_unknown_parameter_is_pythons_own_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'colour'"):
        Stratifier(colour=1)


@pytest.mark.parametrize("name", sorted(REMOVED_BACKENDS))
def test_a_removed_backend_is_named_before_training(name):
    images = np.zeros((6, 8, 8), np.uint8)
    in_process = __import__("stratify.cluster", fromlist=["BACKENDS"]).BACKENDS
    registered = in_process.pop(name, None)  # the lab may have registered it here
    try:
        with pytest.raises(
            ValueError, match=rf"Got '{name}' instead\. '{name}' was removed in stratify 0\.2"
        ):
            Stratifier(2, clusterer=name, **TINY).fit(images)
    finally:
        if registered is not None:
            in_process[name] = registered


def test_a_model_saved_with_removed_parameters_loads_and_predicts_the_same(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 1, 16, 16), dtype=np.uint8)
    model = Stratifier(2, clusterer="kmeans", random_state=0, **TINY).fit(images)
    path = model.save(tmp_path / "new.pt")
    params, state, fitted = io.read(path)
    old = {
        **params,
        "whiten": False,
        "normalize": True,
        "manifold_dim": 10,
        "self_training_epochs": 0,
        "self_training_weight": 1.0,
        "free_bits": 0.0,
        "stop_agreement": 0.9,
        "resume": False,
    }
    io.write(tmp_path / "old.pt", old, state, fitted)
    loaded = Stratifier.load(tmp_path / "old.pt")
    assert loaded.train_config == {"stop_agreement": 0.9}
    assert not set(REMOVED_PARAMETERS) & set(loaded.get_params())
    np.testing.assert_array_equal(loaded.predict(images), model.predict(images))
