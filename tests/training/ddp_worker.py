"""Run under ``torchrun --nproc_per_node 2`` by ``test_distributed.py`` (not collected by pytest).

``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_worker.py OUT`` writes,
per rank, ``OUT/<part>_rank<r>.pt`` for the parts below; the test compares them with
single-process references computed in the test process (no process group there).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from stratify import distributed
from stratify.losses import (
    ClinicalContrastive,
    NTXent,
    SupCon,
    WSPContrastive,
    YAwareInfoNCE,
    build_objective,
)
from stratify.models import build_model
from stratify.training import TrainConfig, parallel, train
from stratify.training import trainer as trainer_module

N_LOSS = 7  # split 4 / 3 over two ranks: unequal shares on purpose
TRAIN_N = 40  # global batches of 16, 16 and 8 rows


def loss_terms() -> dict:
    """Every contrastive term, fresh (clinical with quantile bins fitted on the data)."""
    terms = {
        "ntxent": NTXent(temperature=0.2),
        "supcon": SupCon(temperature=0.2),
        "yaware": YAwareInfoNCE(["age", "score"], sigma=[5.0, 0.5], temperature=0.2),
        "wsp": WSPContrastive(sigma=0.2, temperature=0.2),
        "clinical": ClinicalContrastive(
            {"score": 1.0, "site": 0.5}, bins={"score": 2}, temperature=0.2
        ),
    }
    meta = loss_inputs()["metadata"]
    fit = {c: v.numpy() for c, v in meta.items()}
    fit["labels"] = loss_inputs()["labels"].numpy()
    for term in terms.values():
        term.fit(fit)
    return terms


def loss_inputs() -> dict:
    """The global batch of the loss test, float64, with NaN metadata and labels."""
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(N_LOSS, 5, generator=g, dtype=torch.float64)
    z2 = torch.randn(N_LOSS, 5, generator=g, dtype=torch.float64)
    age = torch.tensor([60.0, 62.0, float("nan"), 70.0, 61.0, 75.0, 69.0], dtype=torch.float64)
    score = torch.tensor([0.1, 0.4, 0.3, float("nan"), 0.9, 0.35, 0.2], dtype=torch.float64)
    site = torch.tensor([0.0, 1.0, 1.0, 0.0, 2.0, float("nan"), 1.0], dtype=torch.float64)
    position = torch.tensor([0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 0.5], dtype=torch.float64)
    labels = torch.tensor([0.0, 1.0, 0.0, float("nan"), 1.0, 1.0, 0.0], dtype=torch.float64)
    return {
        "z1": z1,
        "z2": z2,
        "labels": labels,
        "metadata": {"age": age, "score": score, "site": site, "position": position},
    }


def train_images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(TRAIN_N, 1, 8, 8), dtype=np.uint8)


def train_metadata() -> dict[str, np.ndarray]:
    age = np.random.default_rng(2).normal(60, 10, TRAIN_N)
    age[::7] = np.nan
    return {"age": age}


def flip_views(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic two-view augmentation (the same on any number of processes)."""
    return x.flip(-1), 1.0 - x


def train_setup(**config) -> tuple:
    """Model, objective (reconstruction + y-Aware with NaN ages), config of the training test."""
    torch.manual_seed(3)
    model = build_model("ae", (1, 8, 8), latent_dim=4, width=4, norm="batch", projection_dim=6)
    objective = build_objective("bce", contrastive=YAwareInfoNCE("age", sigma=5.0, temperature=0.5))
    options = {
        "epochs": 2,
        "batch_size": 8,
        "lr": 1e-2,
        "progress": False,
        "num_threads": 1,
        "device": "cpu",
    }
    options.update(config)
    return model, objective, TrainConfig(**options)


def run_train(**config) -> tuple[torch.nn.Module, object]:
    model, objective, cfg = train_setup(**config)
    result = train(
        model,
        objective,
        train_images(),
        config=cfg,
        metadata=train_metadata(),
        augment=flip_views,
        random_state=5,
    )
    return model, result


def part_losses(world, out: Path) -> None:
    inputs = loss_inputs()
    rows = parallel.shard(torch.arange(N_LOSS), world)
    results = {}
    for name, term in loss_terms().items():
        z1 = inputs["z1"][rows].clone().requires_grad_(True)
        z2 = inputs["z2"][rows].clone().requires_grad_(True)
        meta = {c: v[rows] for c, v in inputs["metadata"].items()}
        with distributed.collective(world):
            value = term(z1, z2, metadata=meta, labels=inputs["labels"][rows])
            share = value * world.size * len(rows) / N_LOSS
            share.backward()
        results[name] = {"share": share.detach(), "grad_z1": z1.grad, "grad_z2": z2.grad}
    torch.save({"rows": rows, "terms": results}, out / f"losses_rank{world.rank}.pt")


def part_train(world, out: Path) -> None:
    model, result = run_train()
    torch.save(
        {
            "state": model.state_dict(),
            "history": result.history.to_dict("list"),
            "world_size": result.world_size,
            "bn_type": type(model.encoder).__name__,
            "norm_types": sorted({type(m).__name__ for m in model.modules()}),
        },
        out / f"train_rank{world.rank}.pt",
    )


class _Stop(Exception):
    pass


def part_resume(world, out: Path) -> None:
    folder = out / "checkpoints"
    writes: list[int] = []
    original = trainer_module.save_checkpoint

    def counting(state, path):
        writes.append(world.rank)
        return original(state, path)

    trainer_module.save_checkpoint = counting

    def stop_after_two(epoch, row):
        if epoch == 2:
            raise _Stop

    model, objective, cfg = train_setup(epochs=3, checkpoint_dir=str(folder))
    try:
        train(
            model,
            objective,
            train_images(),
            config=cfg,
            metadata=train_metadata(),
            augment=flip_views,
            random_state=5,
            callbacks=[stop_after_two],
        )
    except _Stop:
        pass
    model, objective, cfg = train_setup(epochs=3, checkpoint_dir=str(folder))
    resumed = train(
        model,
        objective,
        train_images(),
        config=cfg,
        metadata=train_metadata(),
        augment=flip_views,
        resume_from=folder,
    )
    trainer_module.save_checkpoint = original
    straight, _ = run_train(epochs=3)
    torch.save(
        {
            "resumed": model.state_dict(),
            "straight": straight.state_dict(),
            "epochs": list(resumed.history["epoch"]),
            "writes": writes,
        },
        out / f"resume_rank{world.rank}.pt",
    )


def part_stratifier(world, out: Path) -> None:
    from stratify import Stratifier

    images = train_images()
    model = Stratifier(
        n_clusters=2,
        latent_dim=4,
        width=4,
        epochs=2,
        batch_size=8,
        random_state=0,
        device="cpu",
        train_config={"num_threads": 1},
    ).fit(images)
    if distributed.is_main_process():
        model.save(out / "stratifier.joblib")
    params = torch.cat([p.detach().flatten() for p in model.model_.parameters()])
    torch.save(
        {
            "labels": model.labels_,
            "params": params,
            "embedding": model.embedding_,
            "predict": model.predict(images[:5]),
        },
        out / f"stratifier_rank{world.rank}.pt",
    )


def part_cli(world, out: Path) -> None:
    from stratify.cli import main as cli

    code = cli(
        [
            "fit",
            str(out / "images.npy"),
            "--out",
            str(out / "cli_model.pt"),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--n-clusters",
            "2",
            "--seed",
            "0",
            "--device",
            "cpu",
        ]
    )
    torch.save({"code": code}, out / f"cli_rank{world.rank}.pt")


PARTS = {
    "losses": part_losses,
    "train": part_train,
    "resume": part_resume,
    "stratifier": part_stratifier,
    "cli": part_cli,
}


def main() -> None:
    out = Path(sys.argv[1])
    world, _ = parallel.join("cpu")
    assert world is not None, "run me under torchrun with 2 processes"
    for name in sys.argv[2:] or list(PARTS):
        PARTS[name](world, out)


if __name__ == "__main__":
    main()
