"""Distributed training on the CPU (gloo): two processes under torchrun against one process.

One torchrun launch (``ddp_worker.py``, module fixture) runs every part on two ranks; the
references are computed here, in a single process without a process group.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from stratify import Stratifier, distributed
from stratify.training import load_checkpoint, train
from stratify.training.parallel import GroupBatchNorm, shard

WORKER = Path(__file__).with_name("ddp_worker.py")
WORLD = 2


def _load_worker():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    np.save(out / "images.npy", worker.train_images())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={WORLD}",
            str(WORKER),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (out / "log.txt").write_text(done.stdout + done.stderr)
    return out


def _both(out: Path, part: str) -> list[dict]:
    return [torch.load(out / f"{part}_rank{r}.pt", weights_only=False) for r in range(WORLD)]


# ------------------------------------------------------------------ contrastive terms


@pytest.mark.parametrize("name", ["ntxent", "supcon", "yaware", "wsp", "clinical"])
def test_contrastive_terms_match_the_global_batch(ranks, name):
    inputs = worker.loss_inputs()
    term = worker.loss_terms()[name]
    z1 = inputs["z1"].clone().requires_grad_(True)
    z2 = inputs["z2"].clone().requires_grad_(True)
    reference = term(z1, z2, metadata=inputs["metadata"], labels=inputs["labels"])
    reference.backward()
    results = _both(ranks, "losses")
    shares = torch.stack([r["terms"][name]["share"] for r in results])
    # the ranks' shares average to the loss of the global batch ...
    torch.testing.assert_close(shares.mean(), reference.detach(), rtol=0, atol=1e-6)
    # ... and each rank's input gradient, after DDP's division by the world size, is the
    # global batch's gradient for its rows
    for r in results:
        rows = r["rows"]
        got = r["terms"][name]
        torch.testing.assert_close(got["grad_z1"] / WORLD, z1.grad[rows], rtol=0, atol=1e-6)
        torch.testing.assert_close(got["grad_z2"] / WORLD, z2.grad[rows], rtol=0, atol=1e-6)
    assert [len(r["rows"]) for r in results] == [4, 3]  # unequal shares were exercised


def test_loss_shards_are_disjoint_and_cover_the_batch(ranks):
    rows = torch.cat([r["rows"] for r in _both(ranks, "losses")])
    assert rows.tolist() == list(range(worker.N_LOSS))


# ------------------------------------------------------------------ training steps


def test_two_processes_train_like_one_on_the_global_batch(ranks):
    model, result = worker.run_train(batch_size=2 * 8)  # one process, the global batch
    reference = model.state_dict()
    for r in _both(ranks, "train"):
        assert r["world_size"] == WORLD
        assert set(r["state"]) == set(reference)
        for key, value in reference.items():
            torch.testing.assert_close(
                r["state"][key].double(), value.double(), rtol=0, atol=1e-5, msg=key
            )
        # the logged terms are those of the global batches, averaged over the ranks
        for column in ("total", "reconstruction", "contrastive"):
            np.testing.assert_allclose(r["history"][column], result.history[column], rtol=1e-5)
        # BatchNorm was synchronised during the fit and is plain BatchNorm afterwards
        assert "BatchNorm2d" in r["norm_types"]
        assert "GroupBatchNorm" not in r["norm_types"]


def test_every_rank_ends_with_the_same_weights(ranks):
    a, b = _both(ranks, "train")
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key


# ------------------------------------------------------------------ checkpoints


def test_resume_in_the_middle_of_a_distributed_run(ranks):
    for r in _both(ranks, "resume"):
        assert r["epochs"] == [1, 2, 3]
        for key, value in r["straight"].items():
            torch.testing.assert_close(r["resumed"][key], value, rtol=0, atol=1e-6, msg=key)


def test_only_rank_zero_writes_checkpoints(ranks):
    zero, one = _both(ranks, "resume")
    assert zero["writes"] and set(zero["writes"]) == {0}
    assert one["writes"] == []
    leftovers = [p.name for p in (ranks / "checkpoints").iterdir()]
    assert leftovers == ["last.pt"]
    assert load_checkpoint(ranks / "checkpoints")["world_size"] == WORLD


def test_resume_with_another_number_of_processes_is_refused(ranks, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / "last.pt").write_bytes((ranks / "checkpoints" / "last.pt").read_bytes())
    model, objective, config = worker.train_setup(epochs=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"written by a fit on 2 process.*runs on 1"):
        train(
            model,
            objective,
            worker.train_images(),
            config=config,
            metadata=worker.train_metadata(),
            augment=worker.flip_views,
            resume_from=folder,
        )
    for key, value in before.items():
        assert torch.equal(model.state_dict()[key], value)


# ------------------------------------------------------------------ the estimator


def test_stratifier_fit_under_torchrun(ranks):
    a, b = _both(ranks, "stratifier")
    assert torch.equal(a["params"], b["params"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
    np.testing.assert_array_equal(a["predict"], b["predict"])
    loaded = Stratifier.load(ranks / "stratifier.joblib")
    # the model written by rank 0 gives, in one process, what the ranks computed
    np.testing.assert_array_equal(loaded.predict(worker.train_images()[:5]), a["predict"])
    np.testing.assert_allclose(
        loaded.transform(worker.train_images()), a["embedding"], rtol=1e-5, atol=1e-6
    )


def test_cli_fit_under_torchrun_writes_once(ranks):
    assert [r["code"] for r in _both(ranks, "cli")] == [0, 0]
    log = (ranks / "log.txt").read_text()
    assert log.count("model: ") == 1  # the summary is printed by rank 0 only
    loaded = Stratifier.load(ranks / "cli_model.pt")
    assert loaded.history_["epoch"].tolist() == [1]
    assert (ranks / "cli_model.history.csv").is_file()


# ------------------------------------------------------------------ single-process units


def test_shard_splits_in_near_equal_contiguous_parts():
    world = distributed.World(rank=1, size=3)
    assert shard(torch.arange(8), world).tolist() == [3, 4, 5]
    assert shard(torch.arange(8), None).tolist() == list(range(8))


def test_collectives_are_identities_without_a_world():
    x = torch.randn(3, 2)
    assert distributed.current() is None
    gathered, offset = distributed.gather(x)
    assert gathered is x and offset == 0
    assert distributed.all_reduce_sum(x) is x
    assert distributed.gather_objects("a") == ["a"]
    assert distributed.is_main_process()


def test_group_batchnorm_on_one_rank_is_batchnorm():
    # its formulas (two-pass statistics, unbiased running variance, momentum) are
    # nn.BatchNorm's; the two-rank test above checks the synchronisation itself
    torch.manual_seed(0)
    norm = torch.nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    reference = torch.nn.BatchNorm2d(3, momentum=0.3)
    reference.load_state_dict(norm.state_dict())
    group = GroupBatchNorm(norm, distributed.World(0, 1))
    x = torch.randn(5, 3, 4, 4) * 3 + 1
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    y1, y2 = group.train()(x1), reference.train()(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    weights = torch.arange(y1.numel(), dtype=torch.float32).view_as(y1)
    (y1 * weights).sum().backward()
    (y2 * weights).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)
    assert int(norm.num_batches_tracked) == 1
    torch.testing.assert_close(group.eval()(x), reference.eval()(x), rtol=1e-5, atol=1e-5)
