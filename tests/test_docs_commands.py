"""Every command of the README's and the guide's shell blocks runs as written.

The blocks are read from the pages, each ``stratify ...`` command (continuation lines joined,
comments dropped) runs through :func:`stratify.cli.main` in a folder holding the files the
pages name (``scans/``, ``clinical.csv``, ``images.npz``, ...), in page order, and must exit
0. The install and test commands (``pip ...``, ``pytest``) are what ``.ci/run`` itself runs
on a fresh machine, and ``torchrun`` commands run in ``tests/training/test_distributed.py``.
Training is shortened (one epoch, a small demo) so that the commands' parsing, inputs and
outputs are what is tested here; commands that read a whole MedMNIST split run in the slow
selection.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from stratify import make_cohort
from stratify.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", flags=re.S)
#: Commands run elsewhere: the install and the test suite by .ci/run on a fresh machine;
#: the command line under torchrun by tests/training/test_distributed.py (two processes).
RUN_ELSEWHERE = ("pip", "pytest", "torchrun")


def commands(page: Path) -> list[list[str]]:
    """The ``stratify`` commands of a page's shell blocks, as argument lists."""
    found = []
    for block in SHELL_BLOCK.findall(page.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            for part in (p.strip() for p in line.split("&&")):
                words = shlex.split(part)
                if not words:
                    continue
                assert words[0] in ("stratify", *RUN_ELSEWHERE), f"{page.name}: {part!r}"
                if words[0] == "stratify":
                    found.append(words[1:])
    return found


def test_the_reader_joins_lines_and_drops_comments(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "```bash\npip install x && stratify demo   # a comment\n"
        "stratify fit a/ --window -1,2 \\\n    --out m.pt\n```\n"
    )
    assert commands(page) == [["demo"], ["fit", "a/", "--window", "-1,2", "--out", "m.pt"]]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder with the files the pages name, and training shortened to one epoch."""
    pytest.importorskip("PIL")
    pytest.importorskip("lifelines")
    from PIL import Image

    from stratify import demo
    from stratify.training import config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "AUTO_EPOCH_SAMPLES", 1)  # epochs="auto": one epoch
    run_demo = demo.run_demo
    monkeypatch.setattr(
        demo, "run_demo", lambda n, strata, epochs, out, **kw: run_demo(60, strata, 1, out, **kw)
    )
    images, strata, metadata = make_cohort(48, random_state=0)
    ids = [f"P{i:03d}" for i in range(len(images))]
    for folder, chosen in (("scans", ids), ("new_scans", ids[:8])):
        (tmp_path / folder).mkdir()
        for i in chosen:
            Image.fromarray(images[ids.index(i), 0]).save(tmp_path / folder / f"{i}.png")
    rng = np.random.default_rng(0)
    table = metadata.assign(
        patient_id=ids, time=rng.exponential(10, len(ids)).round(1), event=strata % 2
    )
    for name in ("clinical.csv", "patients.csv"):
        table.to_csv(name, index=False)
    metadata.to_csv("meta.csv", index=False)
    np.savez("images.npz", images=images)
    np.savez("new_images.npz", images=images[:8])
    small = {"latent_dim": 8, "width": 4, "batch_size": 16, "epochs": 1}
    prior = {"age": {"kind": "yaware", "columns": "age", "sigma": 10.0}}
    Path("config.json").write_text(json.dumps({**small, "regularizers": prior}))
    return tmp_path


def _run(page: Path, argv: list[str], capsys: pytest.CaptureFixture) -> None:
    if argv[0] == "fit" and "--epochs" in argv:  # the checkpoint example: 50 -> 2 epochs
        argv = [*argv]
        argv[argv.index("--epochs") + 1] = "2"
    code = main([*argv, "--quiet"])
    assert code == 0, f"{page.name}: stratify {' '.join(argv)}\n{capsys.readouterr().err}"


@pytest.mark.parametrize(
    "page",
    [p for p in PAGES if commands(p)],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_every_documented_command_runs(page, workspace, capsys):
    for argv in commands(page):
        if "--medmnist" not in argv:  # those read a whole MedMNIST split: the slow test
            _run(page, argv, capsys)


@pytest.mark.slow
@pytest.mark.data
def test_every_documented_medmnist_command_runs(workspace, capsys, medmnist_root, monkeypatch):
    from stratify import DataNotFoundError
    from stratify.data import load_medmnist

    monkeypatch.setenv("STRATIFY_DATA", str(medmnist_root))
    ran = 0
    for page in PAGES:
        for argv in (a for a in commands(page) if "--medmnist" in a):
            try:
                load_medmnist(argv[argv.index("--medmnist") + 1], split="train")
            except DataNotFoundError as error:
                pytest.skip(f"{page.name}: {error}")
            _run(page, argv, capsys)
            ran += 1
    assert ran >= 1
