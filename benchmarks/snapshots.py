"""Snapshots along one default fit, against the incumbent (selection data, never test).

The default's strata still depend on the seed, and round 6 showed that the dependence is
the training trajectory's: the same seed at another float rounding moves the strata about
as much as another seed. Several networks average that out, but cost their training twice
(round 6's two networks did not fit the cost bar). A snapshot ensemble (Huang et al., 2017)
takes its members from one run: the weights at a few points of the default's own schedule
(cosine decay, no restart), each snapshot's latents one block of the default consensus, as
the estimator clusters an ensemble of networks. The training is the default fit's; only the
snapshots' embedding and the clustering are added.

One default fit per (set, seed) keeps its weights at every fraction of :data:`FRACTIONS`;
the candidates of :data:`SNAPSHOTS` are the blocks they take. The rule, :data:`RULE`, is
declared before any network of this round is fitted. It mends the agreement clause of
rounds 2-6 (:func:`choose`).

Usage::

    python benchmarks/snapshots.py --embed --seeds 0 1 2 3 4 \\
        --datasets pneumoniamnist breastmnist cohort digits
    python benchmarks/snapshots.py --embed --seeds 0 1 2 --datasets adrenalmnist3d
    python benchmarks/snapshots.py --seeds 0 1 2 3 4 --out benchmarks/results/snapshots.md
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from budget import ACC_MARGIN, ARI_MARGIN, per_set_lines, pick
from consensus_cut import _cache_file, score_latents
from faster_step import across
from recipe import (
    COST_IMAGES,
    COST_SECONDS,
    MIN_AGREEMENT,
    Column,
    agreement,
    candidate_table,
    round_main,
    spread,
)
from sklearn.metrics import adjusted_rand_score

import stratify._parts as parts  # where the estimator calls train
from lab.datasets import load_dataset
from lab.provenance import git_commit, header
from stratify import Stratifier
from stratify._atomic import write_text
from stratify.training.config import auto_epochs

#: The selection sets: the four 2D sets of the earlier rounds (seeds 0-4) and AdrenalMNIST3D
#: (seeds 0-2, see :data:`RULE`).
DATASETS = ["pneumoniamnist", "breastmnist", "cohort", "digits", "adrenalmnist3d"]
#: Samples of 28 x 28 values the network trains on: the default's (pinned).
BUDGET = 51_200
#: The candidates: the fractions of the run's epochs whose weights are its blocks.
SNAPSHOTS: dict[str, tuple[Fraction, ...]] = {
    "final": (Fraction(1),),
    "snap2": (Fraction(1, 2), Fraction(1)),
    "snap3": (Fraction(1, 3), Fraction(2, 3), Fraction(1)),
    "snap4": (Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)),
}
INCUMBENT = "final"
#: Every fraction a fit keeps, ascending (the cache's block order).
FRACTIONS = tuple(sorted({f for fractions in SNAPSHOTS.values() for f in fractions}))
#: The cache folder's variant name.
VARIANT = "snapshots"
#: The incumbent's slowest default fit of 2,000 PneumoniaMNIST images (fit_time.csv, rows at
#: bb37ee8): the cost clause's anchor.
ANCHOR_SECONDS = 99.4
#: A challenger's worst seed may lose this much val ACC on a set; agreement may be given up
#: on a set where the mean val ACC gains this much.
RUN_MARGIN, GAIN_MARGIN = 0.02, 0.02
#: The round that fitted the same networks before (seeds 0-2, the 2D sets): its strata.
ROUND6_STRATA = Path(__file__).parent / "results" / "faster_step-strata"
ROUND6_INCUMBENT = "b51.2k"

RULE = (
    "Declared before any network of this round was fitted. One default fit per (set, seed): "
    f"one network on {BUDGET:,} samples of 28 x 28 values, every setting the default's, whose "
    "weights are kept at 1/4, 1/3, 1/2, 2/3 and 3/4 of its epochs (rounded half up, at least "
    "1) and at its end. Candidates: `final` (the incumbent, the default fit itself), `snap2` "
    "(1/2 and the end), `snap3` (1/3, 2/3, the end), `snap4` (1/4, 1/2, 3/4, the end); each "
    "kept snapshot's latents are one block of the default consensus (`consensus-spectral` "
    "on the normalised latents, across blocks as the estimator clusters an ensemble). Sets: "
    "PneumoniaMNIST and BreastMNIST val (fit on train), the held-out cohort and the digits "
    "(transductive), seeds 0-4; AdrenalMNIST3D val (fit on train), seeds 0-2. Cost: a "
    f"candidate's slowest fit of {COST_IMAGES:,} 28-px images is estimated as the incumbent's "
    f"committed slowest ({ANCHOR_SECONDS:g} s, fit_time.csv at bb37ee8) times the ratio of the "
    "candidate's mean estimated seconds to the incumbent's in this round (training seconds on "
    "PneumoniaMNIST plus the candidate's embedding and clustering seconds scaled to "
    f"{COST_IMAGES:,} images), so that the machine's drift between sessions cancels; out "
    f"above {COST_SECONDS:.0f} s. A challenger is eligible when (1) its mean over sets of the "
    f"per-set mean val ACC is at least the incumbent's plus {ACC_MARGIN}; (2) on every set its "
    f"worst seed's val ACC is at least the incumbent's worst seed's minus {RUN_MARGIN} (a "
    "single run is not worse); (3) on every set its mean seed-pair ARI is at least the smaller "
    f"of {MIN_AGREEMENT} and the incumbent's, minus {ARI_MARGIN}, or its mean val ACC on that "
    f"set is at least the incumbent's plus {GAIN_MARGIN}. Clause (3)'s exception is new and "
    "was written after round 6, which showed the old clause protecting an incumbent that "
    "agreed on the wrong partition (the cohort); agreement may now be given up only for "
    "correctness on the same set. Of the eligible, the highest mean val ACC wins (within "
    "0.005 of it, the higher worst-set mean ACC); when none is eligible the incumbent stays. "
    f"The seed agreement bar ({MIN_AGREEMENT} on every set) is reported, met or missed."
)


def snapshot_epoch(epochs: int, fraction: Fraction) -> int:
    """The epoch after which a fit of ``epochs`` keeps the snapshot at ``fraction`` of it
    (rounded half up, at least 1)."""
    return max(1, math.floor(epochs * fraction + Fraction(1, 2)))


def check_distinct(epochs: int) -> None:
    """Raise before training when a candidate's snapshots would fall on one epoch."""
    for name, fractions in SNAPSHOTS.items():
        at = [snapshot_epoch(epochs, f) for f in fractions]
        if len(set(at)) < len(at):
            raise ValueError(
                f"Expected distinct snapshot epochs for {name}; a fit of {epochs} epochs "
                f"keeps them after epochs {at}."
            )


@contextlib.contextmanager
def keeping_weights(kept: dict[Fraction, dict[str, Any]]) -> Iterator[None]:
    """While open, every network the estimator trains leaves a copy of its weights in
    ``kept`` after the epoch of each of :data:`FRACTIONS` (the last network's, for an
    ensemble): ``kept[fraction] = {"epoch": e, "weights": state_dict}``."""
    original = parts.train

    def train(model: Any, objective: Any, images: Any, *, config: Any, **kwargs: Any) -> Any:
        wanted = {f: snapshot_epoch(config.epochs, f) for f in FRACTIONS}

        def keep(epoch: int, row: dict[str, float]) -> None:
            for fraction, at in wanted.items():
                if at == epoch:
                    kept[fraction] = {"epoch": epoch, "weights": copy.deepcopy(model.state_dict())}

        callbacks = [*(kwargs.pop("callbacks", None) or ()), keep]
        return original(model, objective, images, config=config, callbacks=callbacks, **kwargs)

    parts.train = train
    try:
        yield
    finally:
        parts.train = original


def _cached(dataset: str, seed: int) -> Path:
    return _cache_file(dataset, seed, BUDGET, VARIANT)


def embed_snapshots(dataset: str, seed: int) -> None:
    """Fit the default on one (set, seed), keeping :data:`FRACTIONS`' snapshots, and cache
    each snapshot's latents of the training set and the scored split."""
    path = _cached(dataset, seed)
    if path.is_file():
        return
    data = load_dataset(dataset, seed=0, split="val")  # the same data for every seed
    images = data.train.images
    epochs = auto_epochs(len(images), int(np.prod(images.shape[1:])), BUDGET)
    check_distinct(epochs)
    model = Stratifier(data.n_classes, epochs=epochs, random_state=seed)
    kept: dict[Fraction, dict[str, Any]] = {}
    with warnings.catch_warnings(), keeping_weights(kept):
        warnings.simplefilter("ignore")
        model.fit(images)
    final = copy.deepcopy(model.model_.state_dict())
    train, scored, seconds = {}, {}, {}
    for fraction in reversed(FRACTIONS):  # the end first: the fit's own latents
        start = time.perf_counter()
        if fraction == 1:
            train[fraction] = model.embedding_
        else:
            model.model_.load_state_dict(kept[fraction]["weights"])
            train[fraction] = model.transform(images)
        scored[fraction] = (
            train[fraction] if data.transductive else model.transform(data.test.images)
        )
        seconds[fraction] = time.perf_counter() - start
    model.model_.load_state_dict(final)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(
        partial,
        fractions=np.array([str(f) for f in FRACTIONS]),
        snapshot_epochs=np.array([kept[f]["epoch"] for f in FRACTIONS]),
        train_blocks=np.stack([train[f] for f in FRACTIONS]).astype(np.float32),
        scored_blocks=np.stack([scored[f] for f in FRACTIONS]).astype(np.float32),
        embed_seconds_blocks=np.array([seconds[f] for f in FRACTIONS]),
        labels=np.asarray(data.test.labels),
        transductive=data.transductive,
        n_classes=data.n_classes,
        cluster_seed=model._cluster_seed,
        train_seconds=float(model.history_["seconds"].sum()),
        epochs=epochs,
        default_strata=model.labels_ if data.transductive else model.predict(data.test.images),
        commit=git_commit(),
    )
    partial.replace(path)
    print(f"{dataset} seed {seed}: cached {len(FRACTIONS)} snapshots", flush=True)


def blocks(cached: Any, name: str) -> dict[str, Any]:
    """A candidate's latents from a cached fit: its snapshots' blocks side by side, in the
    fields :func:`consensus_cut.score_latents` reads (its embedding seconds: its snapshots'
    embeddings; the end's is the scored split's alone, as for a default fit)."""
    order = [str(f) for f in cached["fractions"]]
    index = [order.index(str(f)) for f in SNAPSHOTS[name]]
    return {
        **{key: cached[key] for key in ("labels", "transductive", "n_classes", "cluster_seed")},
        **{key: cached[key] for key in ("train_seconds", "commit")},
        "train": np.concatenate([cached["train_blocks"][i] for i in index], axis=1),
        "scored": np.concatenate([cached["scored_blocks"][i] for i in index], axis=1),
        "embed_seconds": float(sum(cached["embed_seconds_blocks"][i] for i in index)),
    }


def score_all(dataset: str, seed: int, out: Path) -> pd.DataFrame:
    """Every candidate on one cached (set, seed), clustered by the default consensus across
    its blocks."""
    cached = np.load(_cached(dataset, seed))
    rows = [
        score_latents(
            blocks(cached, name), dataset, seed, out, {name: across(len(SNAPSHOTS[name]))}
        ).assign(epochs=int(cached["epochs"]))
        for name in SNAPSHOTS
    ]
    return pd.concat(rows, ignore_index=True)


def choose(
    results: pd.DataFrame, agree: pd.DataFrame, incumbent: str = INCUMBENT
) -> tuple[pd.DataFrame, str]:
    """The candidates' table under :data:`RULE` and the chosen candidate.

    Unlike :func:`budget.choose`, a set's agreement may fall under its floor where the
    challenger's mean val ACC on that set gains :data:`GAIN_MARGIN` (agreement on a wrong
    partition is not protected), every set's worst seed must keep the incumbent's worst
    within :data:`RUN_MARGIN`, and the cost is read relative to the incumbent in the same
    round, anchored at :data:`ANCHOR_SECONDS`.
    """
    per_set = results.groupby(["candidate", "dataset"])["val_acc"]
    mean_acc, worst_run = per_set.mean().unstack(), per_set.min().unstack()
    ari = agree.pivot(index="candidate", columns="dataset", values="ari")
    table = candidate_table(results, agree)
    ratio = table["seconds_2000"] / table.loc[incumbent, "seconds_2000"]
    table["slowest_2000"] = ANCHOR_SECONDS * ratio
    table["within_cost"] = table["slowest_2000"] <= COST_SECONDS
    table["beats_acc"] = table["mean_acc"] >= table.loc[incumbent, "mean_acc"] + ACC_MARGIN
    table["keeps_worst_run"] = (worst_run >= worst_run.loc[incumbent] - RUN_MARGIN).all(axis=1)
    floor = np.minimum(MIN_AGREEMENT, ari.loc[incumbent]) - ARI_MARGIN
    gains = mean_acc >= mean_acc.loc[incumbent] + GAIN_MARGIN
    table["keeps_agreement"] = ((ari >= floor) | gains).all(axis=1)
    table["agrees"] = table["worst_ari"] >= MIN_AGREEMENT
    clauses = ["within_cost", "beats_acc", "keeps_worst_run", "keeps_agreement"]
    return table, pick(table, clauses, incumbent)


def choice_lines(table: pd.DataFrame, chosen: str, incumbent: str = INCUMBENT) -> list[str]:
    """The chosen candidate and :func:`choose`'s table, in Markdown."""
    yes = {True: "yes", False: "no"}
    lines = [
        f"**Chosen: {chosen}**" + (" (the incumbent stays)." if chosen == incumbent else "."),
        "",
        "| candidate | mean val ACC | worst set | worst seed-pair ARI | est. slowest s "
        f"(2,000 images) | within cost | ACC >= incumbent + {ACC_MARGIN} | worst run kept "
        f"| agreement kept | agrees >= {MIN_AGREEMENT} |",
        "|---|---:|---:|---:|---:|:---:|:---:|:---:|:---:|:---:|",
    ]
    for name, row in table.sort_values("mean_acc", ascending=False).iterrows():
        own = "(incumbent)" if name == incumbent else None
        lines.append(
            f"| {name} | {row['mean_acc']:.3f} | {row['worst_acc']:.3f} | {row['worst_ari']:.3f} "
            f"| {row['slowest_2000']:.0f} | {yes[bool(row['within_cost'])]} "
            f"| {own or yes[bool(row['beats_acc'])]} "
            f"| {own or yes[bool(row['keeps_worst_run'])]} "
            f"| {own or yes[bool(row['keeps_agreement'])]} | {yes[bool(row['agrees'])]} |"
        )
    return lines


def repeat_lines(out: Path, seeds: list[int]) -> list[str]:
    """The incumbent's strata here against round 6's (the same network seed, data, budget
    and clustering, fitted at an earlier commit): adjusted Rand index per set and seed."""
    here = out.parent / f"{out.stem}-strata"
    rows = []
    for dataset in DATASETS:
        pairs = []
        for seed in seeds:
            old = ROUND6_STRATA / dataset / ROUND6_INCUMBENT / f"seed{seed}.npy"
            new = here / dataset / INCUMBENT / f"seed{seed}.npy"
            if old.is_file() and new.is_file():
                pairs.append(f"{adjusted_rand_score(np.load(old), np.load(new)):.3f}")
        if pairs:
            rows.append(f"| {dataset} | {' / '.join(pairs)} |")
    return [
        "",
        "The incumbent refitted: its strata here against round 6's "
        f"([{ROUND6_STRATA.name.removesuffix('-strata')}.md]"
        f"({ROUND6_STRATA.name.removesuffix('-strata')}.md)), the same set, data, seed and "
        "clustering; adjusted Rand index per seed (1: the same partition).",
        "",
        "| set | ARI per seed |",
        "|---|---|",
        *rows,
    ]


def write_round(
    out: Path,
    results: pd.DataFrame,
    seeds: list[int],
    *,
    title: str,
    script: str,
    cached_by: str,
    rule: str,
    incumbent: str,
    columns: dict[str, Column],
    tail: list[str],
) -> None:
    """A round's report under :func:`choose`'s rule: its header, how its fits were cached
    (``cached_by``, then the commits of its rows' networks), the rule, the choice, the per-set
    table of ``columns`` and the lines of ``tail``."""
    agree = agreement(out, results)
    table, chosen = choose(results, agree, incumbent)
    lines = [
        *header(title, script, results, seeds, "2 CPU cores, no GPU"),
        f"Fits cached by {cached_by} at "
        + ", ".join(sorted(results["network_commit"].unique()))
        + ".",
        "",
        rule,
        "",
        *choice_lines(table, chosen, incumbent),
        *per_set_lines(results, agree, columns),
        *tail,
    ]
    write_text("\n".join(lines) + "\n", out)


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    write_round(
        out,
        results,
        seeds,
        title="Snapshots along one default fit, against the incumbent (selection data, never test)",
        script="benchmarks/snapshots.py",
        cached_by="`python benchmarks/snapshots.py --embed`",
        rule=RULE,
        incumbent=INCUMBENT,
        columns={
            "worst seed's ACC": lambda group: f"{group['val_acc'].min():.3f}",
            "cluster s": spread("cluster_seconds", 1),
            "est. s": spread("fit_seconds_2000", 0),
            "epochs": lambda group: str(int(group["epochs"].iloc[0])),
        },
        tail=repeat_lines(out, seeds),
    )


def main() -> int:
    return round_main(
        __doc__,
        "benchmarks/results/snapshots.md",
        DATASETS,
        score_all,
        report,
        embed_snapshots,
        lambda d, s: _cached(d, s).is_file(),
    )


if __name__ == "__main__":
    raise SystemExit(main())
