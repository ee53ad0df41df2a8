"""How often ``n_clusters="auto"`` finds the true number of classes on the shared datasets.

For every dataset and seed the default Stratifier's network is trained once (without labels,
the full profile's epochs), then its latents are re-clustered with ``n_clusters="auto"``
(candidates k = 2..10) by each backend's own criterion, with and without the manifold step:

========================  ===================================================
configuration             criterion that picks k
========================  ===================================================
``gmm``                   BIC of the Gaussian mixture on the normalised latents
``gmm + umap``            BIC on the UMAP coordinates
``kmeans``                silhouette on the latents
``kmeans + umap``         silhouette on the UMAP coordinates
``hdbscan + umap``        DBCV of HDBSCAN's flat clusterings on the UMAP coordinates
========================  ===================================================

Each (dataset, seed) is appended to the CSV beside ``--out`` and skipped on restart; the
report gives the chosen k per seed, the share of runs that found the true k, and a figure of
every criterion curve of seed 0. Usage::

    python benchmarks/choose_k.py --seeds 0 1 2 --out benchmarks/results/choose_k.md
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from lab.provenance import git_commit, header, run_seeded, seeded_parser
from stratify._atomic import write_csv, write_text
from stratify.cluster import StrataClusterer

DATASETS = ("cohort", "pneumoniamnist", "breastmnist", "mnist")
#: (backend, manifold) pairs, in the report's order.
CONFIGS = (
    ("gmm", None),
    ("gmm", "umap"),
    ("kmeans", None),
    ("kmeans", "umap"),
    ("hdbscan", "umap"),
)
BATCH = 256
#: Candidates of n_clusters="auto": StrataClusterer's default k_range.
K_RANGE = StrataClusterer().k_range


def _name(backend: str, manifold: str | None) -> str:
    return backend if manifold is None else f"{backend} + {manifold}"


def _rows(dataset: str, seed: int) -> list[dict]:
    from lab.datasets import load_dataset
    from lab.profiles import PROFILES, per_dataset
    from stratify import Stratifier
    from stratify.analysis.metrics import cluster_accuracy

    data = load_dataset(dataset, seed=seed)
    epochs = int(per_dataset(PROFILES["full"]["epochs"], dataset))
    start = time.perf_counter()
    model = Stratifier(
        data.n_classes,
        epochs=epochs,
        batch_size=BATCH,
        random_state=seed,
        device="cpu",
    ).fit(data.train.images)
    fit_seconds = time.perf_counter() - start
    truth = data.train.labels
    rows, on_manifold = [], None
    for backend, manifold in CONFIGS:
        start = time.perf_counter()
        base = on_manifold if manifold is not None and on_manifold is not None else model
        chosen = base.recluster(
            backend, "auto", manifold="keep" if base is on_manifold else manifold
        )
        if manifold is not None and on_manifold is None:
            on_manifold = chosen  # its UMAP coordinates serve the other backends
        table = chosen.cluster_selection_
        rows.append(
            {
                "dataset": dataset,
                "seed": seed,
                "config": _name(backend, manifold),
                "true_k": data.n_classes,
                "chosen_k": int(chosen.n_clusters_),
                "found": int(chosen.n_clusters_) == data.n_classes,
                "criterion": str(table["criterion"].iloc[0]),
                "acc": cluster_accuracy(truth, chosen.labels_),
                "scores": json.dumps(
                    {int(k): float(s) for k, s in zip(table["k"], table["score"], strict=True)}
                ),
                "n_train": len(truth),
                "epochs": epochs,
                "network_seconds": fit_seconds,
                "selection_seconds": time.perf_counter() - start,
                "git_commit": git_commit(),
            }
        )
    return rows


def run(seeds: list[int], csv: Path) -> pd.DataFrame:
    done = pd.read_csv(csv) if csv.is_file() else pd.DataFrame()
    for seed in seeds:
        for dataset in DATASETS:
            if not done.empty and ((done["dataset"] == dataset) & (done["seed"] == seed)).any():
                continue
            rows = _rows(dataset, seed)
            print(
                f"{dataset} seed {seed}: "
                + ", ".join(f"{r['config']} k={r['chosen_k']}" for r in rows),
                flush=True,
            )
            done = pd.concat([done, pd.DataFrame(rows)], ignore_index=True)
            write_csv(done, csv, index=False)
    return done


def _figure(results: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stratify.analysis.plotting import save_figure

    first = results[results["seed"] == results["seed"].min()]
    configs = list(dict.fromkeys(first["config"]))
    datasets = list(dict.fromkeys(first["dataset"]))
    figure, axes = plt.subplots(
        len(datasets),
        len(configs),
        figsize=(2.6 * len(configs), 2.2 * len(datasets)),
        squeeze=False,
    )
    for i, dataset in enumerate(datasets):
        for j, config in enumerate(configs):
            ax = axes[i, j]
            row = first[(first["dataset"] == dataset) & (first["config"] == config)]
            if row.empty:
                ax.axis("off")
                continue
            row = row.iloc[0]
            scores = {int(k): v for k, v in json.loads(row["scores"]).items()}
            ax.plot(list(scores), list(scores.values()), marker=".", color="#08306b")
            ax.axvline(row["true_k"], color="grey", linestyle="--", linewidth=1)
            ax.plot(
                [row["chosen_k"]],
                [scores[int(row["chosen_k"])]],
                marker="o",
                fillstyle="none",
                markersize=10,
                color="#cb181d",
            )
            ax.set_xticks(list(scores))
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(f"{config}\n({row['criterion']})", fontsize=9)
            if j == 0:
                ax.set_ylabel(dataset, fontsize=9)
    figure.suptitle(
        "criterion per candidate k (seed 0): dashed = true k, circle = chosen", fontsize=9
    )
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)


def report(results: pd.DataFrame, seeds: list[int], out: Path) -> None:
    lines = [
        *header(
            'How often n_clusters="auto" finds the true number of classes',
            "benchmarks/choose_k.py",
            results,
            seeds,
            "2 CPU cores, no GPU",
        ),
        "The default Stratifier's network per dataset and seed (trained without labels, the "
        'full profile\'s epochs), re-clustered with `n_clusters="auto"` over k = 2..10 by '
        "each backend's criterion (BIC: lowest; silhouette and DBCV: highest), on the "
        "normalised latents or on the UMAP coordinates. Cells: the chosen k of each seed; "
        "ACC: Hungarian accuracy of the auto strata on the training split (k chosen, so "
        "extra strata count as errors).",
        "",
        "| dataset | true k | " + " | ".join(_name(b, m) for b, m in CONFIGS) + " |",
        "|---|---:|" + "---|" * len(CONFIGS),
    ]
    for dataset, group in results.groupby("dataset", sort=False):
        cells = []
        for backend, manifold in CONFIGS:
            part = group[group["config"] == _name(backend, manifold)].sort_values("seed")
            ks = [f"{k}*" if k == K_RANGE[1] else str(k) for k in part["chosen_k"]]
            cells.append(", ".join(ks) + f" (ACC {part['acc'].mean():.2f})" if len(part) else "–")
        lines.append(f"| {dataset} | {int(group['true_k'].iloc[0])} | " + " | ".join(cells) + " |")
    hits = results.groupby("config", sort=False)["found"].agg(["sum", "count"])
    lines += [
        "",
        f"\\* the largest candidate ({K_RANGE[1]}): the best score lies at the edge "
        "of the range, so the criterion may prefer more strata beyond it; a true k of "
        f"{K_RANGE[1]} (MNIST) found this way says little.",
        "",
        "True k found, over all datasets and seeds: "
        + "; ".join(f"{config} {int(r['sum'])}/{int(r['count'])}" for config, r in hits.iterrows())
        + ".",
        "",
        "![criterion curves](choose_k.png)",
        "",
        "Per run (with every candidate's score): `choose_k.csv` beside this file.",
        "",
    ]
    write_text("\n".join(lines), out)
    _figure(results, out.with_suffix(".png"))


def main() -> int:
    parser = seeded_parser(__doc__.splitlines()[0], "benchmarks/results/choose_k.md")
    return run_seeded(run, report, parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
