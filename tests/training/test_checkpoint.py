"""Atomic, weights-only checkpoints."""

from __future__ import annotations

import pytest
import torch

from stratify.training import checkpoint as ckpt_module
from stratify.training import load_checkpoint, save_checkpoint


def test_roundtrip_with_weights_only(tmp_path):
    state = {"model": {"w": torch.arange(3.0)}, "rows": [{"epoch": 1, "total": 0.5}], "seed": 4}
    path = save_checkpoint(state, tmp_path / "ckpts")
    assert path.name == "last.pt"
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["model"]["w"], state["model"]["w"])
    assert load_checkpoint(tmp_path / "ckpts")["rows"] == state["rows"]


def test_interrupted_write_leaves_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    save_checkpoint({"epoch": 1}, tmp_path)

    def crash(obj, handle):
        handle.write(b"partial bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, tmp_path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(tmp_path)["epoch"] == 1


def test_missing_or_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint_dir of the interrupted fit"):
        load_checkpoint(tmp_path)
    torch.save({"something": 1}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="stratify checkpoint"):
        load_checkpoint(tmp_path / "last.pt")
