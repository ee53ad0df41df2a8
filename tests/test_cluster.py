"""StrataClusterer: every backend, automatic k, new-sample assignment, estimator checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import Birch, MiniBatchKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from lab.backends import register
from stratify._constraints import invalid_values
from stratify.cluster import METHODS, StrataClusterer, Whitening

# the lab's research backends (agglomerative, spectral, head-sized, consensus,
# consensus-kmeans), registered into BACKENDS as a user registers their own
register()


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(240, centers=4, n_features=5, cluster_std=0.8, random_state=0)
    return X, y


@pytest.mark.parametrize("method", METHODS)
def test_every_backend_recovers_separated_blobs(blobs, method):
    X, y = blobs
    # the heads train one head set per candidate k: a narrower range keeps the test short,
    # with 4 at neither end of it (a selector stuck at an end still fails)
    k_range = (2, 5) if method.startswith("head") else (2, 10)
    clusterer = StrataClusterer(method, n_clusters="auto", k_range=k_range, random_state=0)
    clusterer.fit(X)
    assert clusterer.n_clusters_ == 4
    assert adjusted_rand_score(y, clusterer.labels_) > 0.95
    kept = clusterer.labels_ != -1
    np.testing.assert_array_equal(clusterer.predict(X)[kept][:60], clusterer.labels_[kept][:60])
    assert clusterer.cluster_centers_.shape == (4, 5)


def test_nearest_centroid_rule_matches_a_naive_loop(blobs):
    X, _ = blobs
    clusterer = StrataClusterer("agglomerative", 4).fit(X)
    new = np.random.default_rng(0).normal(scale=6, size=(30, 5))
    expected = []
    for x in new:
        distances = {k: np.sum((x - X[clusterer.labels_ == k].mean(axis=0)) ** 2) for k in range(4)}
        expected.append(min(distances, key=distances.get))
    np.testing.assert_array_equal(clusterer.predict(new), expected)


def test_auto_k_table_marks_the_best_score(blobs):
    X, _ = blobs
    silhouette = StrataClusterer("kmeans", "auto", k_range=(2, 6), random_state=0).fit(X)
    table = silhouette.cluster_selection_
    assert table["k"].tolist() == [2, 3, 4, 5, 6]
    assert (table["criterion"] == "silhouette").all()
    assert table.loc[table["selected"], "k"].item() == 4 == silhouette.n_clusters_
    assert table.loc[table["selected"], "score"].item() == table["score"].max()
    bic = StrataClusterer("gmm", "auto", k_range=(2, 6), random_state=0).fit(X)
    assert (
        bic.cluster_selection_.loc[bic.cluster_selection_["selected"], "score"].item()
        == bic.cluster_selection_["score"].min()
    )


def test_fixed_k_has_no_selection_table_and_refit_forgets(blobs):
    X, _ = blobs
    clusterer = StrataClusterer("kmeans", "auto", random_state=0).fit(X)
    assert hasattr(clusterer, "cluster_selection_")
    clusterer.set_params(n_clusters=3).fit(X)
    assert not hasattr(clusterer, "cluster_selection_")
    assert clusterer.n_clusters_ == 3


def test_gmm_probabilities(blobs):
    X, _ = blobs
    clusterer = StrataClusterer("gmm", 4, random_state=0).fit(X)
    proba = clusterer.predict_proba(X[:10])
    assert proba.shape == (10, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(proba.argmax(axis=1), clusterer.predict(X[:10]))
    assert clusterer.probabilities_.shape == (240,)


def test_hdbscan_noise_outliers_and_soft_membership(blobs):
    X, _ = blobs
    clusterer = StrataClusterer("hdbscan", "auto", random_state=0).fit(X)
    assert clusterer.outlier_scores_.shape == (240,)
    assert ((clusterer.probabilities_ >= 0) & (clusterer.probabilities_ <= 1)).all()
    far = np.full((1, 5), 1e3)
    assert clusterer.predict(far).tolist() == [-1]
    membership = clusterer.predict_proba(X[:5])
    assert membership.shape == (5, clusterer.n_clusters_)
    assert (clusterer.cluster_selection_["criterion"] == "dbcv").all()


def test_hdbscan_with_an_int_k_cuts_the_tree_at_k(blobs):
    X, y = blobs
    clusterer = StrataClusterer("hdbscan", 2, random_state=0).fit(X)
    assert clusterer.n_clusters_ == 2  # 4 blobs, but exactly the 2 strata asked for
    three = StrataClusterer("hdbscan", 4, random_state=0).fit(X)
    kept = three.labels_ >= 0
    assert three.n_clusters_ == 4 and adjusted_rand_score(y[kept], three.labels_[kept]) > 0.95


def test_a_k_hdbscan_cannot_cut_is_a_clear_error_and_no_auto_candidate(blobs, monkeypatch):
    import hdbscan.flat

    real = hdbscan.flat.HDBSCAN_flat

    def flat(X, n_clusters, **kwargs):  # hdbscan finds no cut for 3 clusters here
        if n_clusters == 3:
            raise RuntimeError("Could not find epsilon")
        return real(X, n_clusters=n_clusters, **kwargs)

    monkeypatch.setattr(hdbscan.flat, "HDBSCAN_flat", flat)
    X, _ = blobs
    with pytest.raises(
        ValueError,
        match=r"cut into, got n_clusters=3: hdbscan found no cut "
        r"\(Could not find epsilon\)",
    ):
        StrataClusterer("hdbscan", 3, random_state=0).fit(X)
    auto = StrataClusterer("hdbscan", "auto", k_range=(2, 5), random_state=0).fit(X)
    table = auto.cluster_selection_.set_index("k")
    assert np.isnan(table.loc[3, "score"]) and not table.loc[3, "selected"]
    assert table["score"].drop(index=3).notna().all() and auto.n_clusters_ != 3
    monkeypatch.setattr(
        hdbscan.flat,
        "HDBSCAN_flat",
        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no epsilon")),
    )
    with pytest.raises(ValueError, match=r"at least one candidate k in \(2, 3\).*none"):
        StrataClusterer("hdbscan", "auto", k_range=(2, 3), random_state=0).fit(X)


def test_manifold_step_clusters_the_umap_coordinates(blobs):
    X, y = blobs
    clusterer = StrataClusterer("gmm", 4, manifold="umap", manifold_dim=3, random_state=0).fit(X)
    assert clusterer.uses_manifold_
    assert clusterer.manifold_.embedding_.shape == (240, 3)
    assert clusterer.cluster_centers_.shape == (4, 3)  # centres live on the manifold
    assert adjusted_rand_score(y, clusterer.labels_) > 0.95
    # new samples go through the placement rule, then the GMM
    new = X[:40] + np.random.default_rng(0).normal(scale=0.1, size=(40, 5))
    expected = clusterer.estimator_.predict(clusterer.manifold_.transform(new))
    np.testing.assert_array_equal(clusterer.predict(new), expected)
    np.testing.assert_array_equal(clusterer.predict(new), clusterer.labels_[:40])
    # stored coordinates give the same strata without running UMAP
    again = StrataClusterer("gmm", 4, manifold="umap", manifold_dim=3, random_state=0).fit(
        X, manifold_embedding=clusterer.manifold_.embedding_
    )
    np.testing.assert_array_equal(again.labels_, clusterer.labels_)


def test_auto_manifold_keeps_the_more_stable_space_and_its_medoid_run():
    # two groups, each made of three tight sub-clumps: UMAP keeps the six clumps apart, and a
    # 2-cluster k-means on the manifold merges them one way or another depending on the run;
    # on the latents the two groups come out the same every time
    from sklearn.cluster import KMeans

    from stratify._random import draw_seeds
    from stratify.cluster import STABILITY_RUNS
    from stratify.cluster.manifold import ManifoldEmbedding

    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [0.6, 0], [0.3, 0.5], [6, 6], [6.6, 6], [6.3, 6.5]])
    X = np.concatenate([c + rng.normal(scale=0.05, size=(40, 2)) for c in centres])
    X = np.hstack([X, rng.normal(scale=0.01, size=(240, 2))])
    y = np.repeat([0, 1], 120)
    auto = StrataClusterer("kmeans", 2, manifold="auto", manifold_dim=2, random_state=0).fit(X)
    table = auto.manifold_selection_
    assert table["manifold"].tolist() == ["none", "umap"]
    seeds = draw_seeds(draw_seeds(0), STABILITY_RUNS)
    for row in table.itertuples():  # each space's runs by hand, and their mean pairwise ARI
        partitions = []
        for seed in seeds:
            space = (
                X
                if row.manifold == "none"
                else ManifoldEmbedding(2, random_state=seed).fit(X).embedding_
            )
            partitions.append(KMeans(2, n_init=10, random_state=seed).fit_predict(space))
        pairs = [
            adjusted_rand_score(partitions[i], partitions[j])
            for i in range(len(seeds))
            for j in range(len(seeds))
            if i != j
        ]
        assert row.stability == pytest.approx(np.mean(pairs))
        sums = [sum(adjusted_rand_score(p, q) for q in partitions) for p in partitions]
        assert row.seed == seeds[int(np.argmax(sums))]
    assert table.loc[0, "stability"] == pytest.approx(1.0)
    assert table["selected"].tolist() == [True, False] and not auto.uses_manifold_
    assert not hasattr(auto, "manifold_")
    assert adjusted_rand_score(y, auto.labels_) == 1.0


@pytest.mark.parametrize("method", ["kmeans", "agglomerative", "spectral"])
def test_every_backend_has_memberships_by_distance(blobs, method):
    X, _ = blobs
    clusterer = StrataClusterer(method, 4, normalize=False, whiten=False, random_state=0).fit(X)
    proba = clusterer.predict_proba(X[:20])
    # by hand: equal-weight isotropic Gaussians at the centres, the pooled variance
    centers = np.stack([X[clusterer.labels_ == k].mean(axis=0) for k in range(4)])
    squares = sum(((X[clusterer.labels_ == k] - centers[k]) ** 2).sum() for k in range(4))
    variance = squares / (len(X) * X.shape[1])
    assert clusterer.distance_variance_ == pytest.approx(variance)
    for row, x in zip(proba, X[:20], strict=True):
        density = np.exp(-((x - centers) ** 2).sum(axis=1) / (2 * variance))
        np.testing.assert_allclose(row, density / density.sum(), atol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if method != "kmeans":  # nearest-centroid predict: the argmax is the prediction
        np.testing.assert_array_equal(proba.argmax(axis=1), clusterer.predict(X[:20]))


def test_instances_are_cloned_and_used(blobs):
    X, y = blobs
    instance = MiniBatchKMeans(4, random_state=0, n_init=3)
    clusterer = StrataClusterer(instance).fit(X)
    assert clusterer.estimator_ is not instance and not hasattr(instance, "labels_")
    assert adjusted_rand_score(y, clusterer.predict(X)) > 0.95
    birch = StrataClusterer(Birch(n_clusters=4)).fit(X)  # Birch predicts natively too
    assert birch.predict(X[:5]).shape == (5,)


def test_same_seed_same_labels(blobs):
    X, _ = blobs
    a = StrataClusterer("spectral", 4, random_state=3).fit(X).labels_
    b = StrataClusterer("spectral", 4, random_state=3).fit(X).labels_
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"method": "dbscan"}, ValueError, r"'method' parameter of StrataClusterer .*'dbscan'"),
        ({"method": 3}, TypeError, r"a clusterer with a fit method\. Got 3 instead"),
        ({"n_clusters": 0}, ValueError, r"'n_clusters' .*\[1, inf\) or 'auto'\. Got 0 instead"),
        ({"manifold": "tsne"}, ValueError, r"'manifold' parameter of StrataClusterer .*'tsne'"),
        ({"n_clusters": "many"}, TypeError, r"'n_clusters' .*Got 'many' instead"),
        ({"k_range": (1, 5)}, ValueError, r"'k_range\[0\]' .*Got 1 instead"),
        ({"n_clusters": 500}, ValueError, r"at least n_clusters=500 samples, got 240"),
        (
            {"fit_samples": 1},
            ValueError,
            r"'fit_samples' .*\[2, inf\), 'auto' or None\. Got 1 ",
        ),
        ({"fit_samples": "half"}, TypeError, r"'fit_samples' .*Got 'half' instead"),
        ({"whiten": "yes"}, ValueError, r"'whiten' parameter of StrataClusterer .*'yes'"),
    ],
)
def test_bad_parameters(blobs, params, error, match):
    with pytest.raises(error, match=match):
        StrataClusterer(**params).fit(blobs[0])


def test_predict_checks_the_latent_dimension(blobs):
    clusterer = StrataClusterer("kmeans", 4, random_state=0).fit(blobs[0])
    with pytest.raises(ValueError, match="X has 3 features, but StrataClusterer is expecting 5"):
        clusterer.predict(np.zeros((2, 3)))


# ------------------------------------------------------------------ the large-N path


@pytest.mark.parametrize("method", METHODS)
def test_large_n_path_fits_a_seeded_subsample_and_assigns_the_rest(blobs, method):
    X, y = blobs
    clusterer = StrataClusterer(method, 4, fit_samples=100, random_state=0).fit(X)
    rows = clusterer.fit_rows_
    assert rows is not None and len(rows) == 100 and len(np.unique(rows)) == 100
    np.testing.assert_array_equal(rows, np.sort(rows))
    assert clusterer.labels_.shape == (240,)
    assert adjusted_rand_score(y, clusterer.labels_) > 0.95
    rest = np.setdiff1d(np.arange(240), rows)
    # the other samples are assigned exactly as new samples would be
    np.testing.assert_array_equal(clusterer.labels_[rest], clusterer.predict(X[rest]))
    # the centres are those of the fitted subsample's strata
    for k, centre in zip(clusterer._cluster_ids, clusterer.cluster_centers_, strict=True):
        fitted = X[rows][clusterer.labels_[rows] == k]
        np.testing.assert_allclose(centre, fitted.mean(axis=0))
    again = StrataClusterer(method, 4, fit_samples=100, random_state=0).fit(X)
    np.testing.assert_array_equal(again.fit_rows_, rows)


def test_large_n_path_keeps_probabilities_for_every_sample(blobs):
    X, _ = blobs
    gmm = StrataClusterer("gmm", 4, fit_samples=100, random_state=0).fit(X)
    np.testing.assert_allclose(gmm.probabilities_, gmm.predict_proba(X).max(axis=1))
    hdb = StrataClusterer("hdbscan", 4, fit_samples=120, random_state=0).fit(X)
    assert hdb.probabilities_.shape == (240,)
    assert np.isfinite(hdb.probabilities_).all()
    rest = np.setdiff1d(np.arange(240), hdb.fit_rows_)
    assert np.isnan(hdb.outlier_scores_[rest]).all()
    assert np.isfinite(hdb.outlier_scores_[hdb.fit_rows_]).all()


def test_fit_samples_defaults_per_backend(blobs):
    from stratify.cluster import BACKENDS

    assert BACKENDS["kmeans"].fit_samples is None  # linear in N: every sample
    assert BACKENDS["spectral"].fit_samples < BACKENDS["gmm"].fit_samples
    # below the size, and with fit_samples=None, every sample is fitted
    assert StrataClusterer("spectral", 4, random_state=0).fit(blobs[0]).fit_rows_ is None
    assert (
        StrataClusterer("gmm", 4, fit_samples=None, random_state=0).fit(blobs[0]).fit_rows_ is None
    )


def test_nearest_rule_in_chunks_matches_the_direct_distances():
    from stratify.cluster.backends import nearest as _nearest

    rng = np.random.default_rng(1)
    X, centers = rng.normal(size=(1000, 6)), rng.normal(size=(7, 6))
    ids = np.array([0, 1, 2, 4, 5, 8, 9])
    direct = ids[((X[:, None] - centers[None]) ** 2).sum(-1).argmin(axis=1)]
    np.testing.assert_array_equal(_nearest(X, centers, ids, chunk=64), direct)
    assert (_nearest(X, centers[:0], ids[:0]) == -1).all()


# ------------------------------------------------------------------------------ whitening
def _correlated(n: int = 400, seed: int = 0) -> np.ndarray:
    """Rows (n, 4) with very different variances along correlated directions."""
    rng = np.random.default_rng(seed)
    mixing = np.array(
        [[3.0, 1.0, 0.0, 0.0], [0.0, 0.5, 0.2, 0.0], [0.0, 0.0, 0.05, 0.01], [1.0, 0.0, 0.0, 2.0]]
    )
    return rng.normal(size=(n, 4)) @ mixing + np.array([1.0, -2.0, 0.5, 3.0])


def test_whitening_gives_zero_mean_unit_covariance():
    X = _correlated()
    white = Whitening().fit(X).transform(X)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(white, rowvar=False), np.eye(4), atol=1e-8)


def test_whitening_drops_directions_without_variance():
    X = _correlated()
    flat = np.hstack([X, np.full((len(X), 1), 7.0)])  # a constant fifth latent
    whitening = Whitening().fit(flat)
    assert whitening.components.shape == (4, 5) and whitening.variances.shape == (4,)
    assert np.isfinite(whitening.transform(flat)).all()


def test_whitening_maps_a_gaussian_back_to_the_latents():
    # the whitened data's own mean and covariance must map back to the data's (by hand)
    X = _correlated(seed=1)
    whitening = Whitening().fit(X)
    W = whitening.transform(X)
    mean, cov = whitening.inverse_gaussian(W.mean(axis=0), np.cov(W, rowvar=False))
    np.testing.assert_allclose(mean, X.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(cov, np.cov(X, rowvar=False), atol=1e-9)


def test_whitened_strata_predict_new_latents_through_the_same_map(blobs):
    X, y = blobs
    scaled = X * np.array([50.0, 1.0, 1.0, 1.0, 0.02])  # very unequal latent scales
    clusterer = StrataClusterer("gmm", 4, whiten=True, random_state=0).fit(scaled)
    assert isinstance(clusterer.whitening_, Whitening)
    np.testing.assert_array_equal(clusterer.predict(scaled), clusterer.labels_)
    # the backend sees the whitened coordinates, computed here by hand
    w = clusterer.whitening_
    by_hand = (scaled - w.mean) @ w.components.T / np.sqrt(w.variances)
    np.testing.assert_allclose(clusterer.transform_space(scaled), by_hand)
    np.testing.assert_array_equal(clusterer.estimator_.predict(by_hand), clusterer.labels_)
    assert adjusted_rand_score(y, clusterer.labels_) > 0.95
    assert StrataClusterer("gmm", 4, random_state=0).fit(scaled).whitening_ is None


@pytest.mark.parametrize(
    ("n", "k", "whitened"), [(200, 4, True), (199, 4, False), (100, 2, True), (99, 2, False)]
)
def test_auto_whitening_needs_ten_samples_per_dimension_per_stratum(n, k, whitened):
    X = np.random.default_rng(0).normal(size=(n, 5))  # 10 x 5 x k samples is the threshold
    clusterer = StrataClusterer("gmm", k, whiten="auto", random_state=0).fit(X)
    assert (clusterer.whitening_ is not None) is whitened


def test_auto_whitening_with_auto_k_counts_the_largest_candidate():
    X = np.random.default_rng(0).normal(size=(150, 5))
    assert (
        StrataClusterer("gmm", "auto", k_range=(2, 3), whiten="auto").fit(X).whitening_ is not None
    )
    assert StrataClusterer("gmm", "auto", k_range=(2, 4), whiten="auto").fit(X).whitening_ is None


def test_the_manifold_coordinates_are_not_whitened(blobs):
    X, _ = blobs
    clusterer = StrataClusterer(
        "gmm", 4, manifold="umap", manifold_dim=2, whiten=True, random_state=0
    ).fit(X)
    assert clusterer.uses_manifold_ and clusterer.whitening_ is None
    np.testing.assert_allclose(
        clusterer.transform_space(X[:5]), clusterer.manifold_.transform(X[:5])
    )


@pytest.mark.parametrize("manifold", ["umap", "auto"])
def test_auto_k_with_a_manifold_is_chosen_on_the_latents(blobs, manifold):
    X, y = blobs
    on_latents = StrataClusterer("gmm", "auto", random_state=0).fit(X)
    clusterer = StrataClusterer(
        "gmm", "auto", manifold=manifold, manifold_dim=2, random_state=0
    ).fit(X)
    pd.testing.assert_frame_equal(clusterer.cluster_selection_, on_latents.cluster_selection_)
    assert clusterer.n_clusters_ == on_latents.n_clusters_ == 4
    assert adjusted_rand_score(y, clusterer.labels_) > 0.95


@pytest.mark.parametrize(
    ("name", "value"),
    invalid_values(StrataClusterer._parameter_constraints),
    ids=lambda v: repr(v)[:30],
)
def test_values_the_constraint_table_refuses_fail_with_its_template(blobs, name, value):
    with pytest.raises((TypeError, ValueError)) as excinfo:
        StrataClusterer(**{name: value}).fit(blobs[0])
    message = str(excinfo.value)
    assert message.startswith(f"The '{name}' parameter of StrataClusterer must be ")
    assert message.endswith(f"Got {value!r} instead.")


def test_every_clusterer_parameter_has_a_constraint():
    assert set(StrataClusterer._parameter_constraints) | {"random_state"} == set(
        StrataClusterer().get_params()
    )
