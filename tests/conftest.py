"""Shared fixtures: where the official data files are, and small synthetic inputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def _data_folder(env_var: str, fallback: Path, needed: str) -> Path:
    folder = Path(os.environ[env_var]) if os.environ.get(env_var) else fallback
    if not (folder / needed).is_file():
        pytest.skip(
            f"official data file {needed} not found in {folder}; set {env_var} to the folder "
            "holding it to run this test"
        )
    return folder


@pytest.fixture(scope="session")
def medmnist_root() -> Path:
    """Folder with the official pneumoniamnist, breastmnist and adrenalmnist3d files."""
    return _data_folder("STRATIFY_DATA", SHARED_DATA / "medmnist", "pneumoniamnist.npz")


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """Folder with the MNIST test set idx files."""
    return _data_folder("STRATIFY_MNIST", SHARED_DATA / "mnist", "t10k-images-idx3-ubyte.gz")


@pytest.fixture
def isolated_data_env(monkeypatch, tmp_path):
    """No STRATIFY_* variables and a HOME of its own, so default folders are empty."""
    monkeypatch.delenv("STRATIFY_DATA", raising=False)
    monkeypatch.delenv("STRATIFY_MNIST", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def interrupt_at():
    """``interrupt_at(patch, epoch)``: make the training loop raise KeyboardInterrupt when it
    starts ``epoch`` (after the checkpoint of the epoch before), until ``patch`` (a
    ``monkeypatch`` or one of its contexts) is undone."""
    from stratify.training import trainer

    original = trainer.Trainer.train_epoch

    def apply(patch, epoch):
        def train_epoch(self, data, current, total_steps):
            if current == epoch:
                raise KeyboardInterrupt
            return original(self, data, current, total_steps)

        patch.setattr(trainer.Trainer, "train_epoch", train_epoch)

    return apply


@pytest.fixture
def two_groups():
    """``two_groups(n_per, shape, seed=0) -> (images, labels)``: dark uint8 images with a
    bright left half (class 0) or a bright right half (class 1), shuffled."""

    import numpy as np

    def _two_groups(n_per, shape, seed=0):
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 40, size=(2 * n_per, *shape)).astype(np.uint8)
        half = shape[-1] // 2
        images[:n_per, ..., :half] += 180
        images[n_per:, ..., half:] += 180
        labels = np.repeat([0, 1], n_per)
        order = rng.permutation(2 * n_per)
        return images[order], labels[order]

    return _two_groups
