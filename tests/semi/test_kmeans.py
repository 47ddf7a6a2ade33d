"""K-means against scikit-learn, k-means++ seeding, prediction consistency, cluster-then-label."""
import numpy as np
import pytest
from sklearn.cluster import KMeans as SkKMeans

import minidl
from minidl.data import load_digits, make_blobs
from minidl.semi.kmeans import KMeans, cluster_then_label, kmeans_plusplus


def _blobs(seed=0, n=300, k=4):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(k, 2))
    X = np.concatenate([c + rng.normal(0, 1.0, size=(n // k, 2)) for c in centers])
    return X, centers


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_inertia_within_1_percent_of_sklearn_on_blobs(seed):
    X, _ = _blobs(seed, k=5)
    ours = KMeans(5, n_init=5, random_state=seed).fit(X)
    ref = SkKMeans(5, n_init=5, random_state=seed).fit(X)
    assert ours.inertia_ <= 1.01 * ref.inertia_
    direct = ((X - ours.cluster_centers_[ours.labels_]) ** 2).sum()
    np.testing.assert_allclose(ours.inertia_, direct, rtol=1e-10)


def test_inertia_within_1_percent_of_sklearn_on_digits():
    X, _ = load_digits()
    X = X.reshape(len(X), -1).astype(np.float64)[:600]
    ours = KMeans(10, n_init=3, random_state=0).fit(X)
    ref = SkKMeans(10, n_init=3, random_state=0).fit(X)
    assert abs(ours.inertia_ / ref.inertia_ - 1) < 0.01


def test_centers_are_the_means_of_their_clusters():
    X, _ = _blobs(3, k=4)
    km = KMeans(4, n_init=2, random_state=0).fit(X)
    for j in range(4):
        np.testing.assert_allclose(km.cluster_centers_[j], X[km.labels_ == j].mean(axis=0), atol=1e-8)


def test_kmeans_plusplus_picks_spread_seeds():
    # Four tight, far-apart blobs: k-means++ puts one seed in each blob almost always;
    # uniform seeding leaves a blob empty in most draws (P(all 4 hit) = 4!/4^4 ~ 0.09).
    rng = np.random.default_rng(0)
    centers = np.array([[-20.0, -20.0], [-20.0, 20.0], [20.0, -20.0], [20.0, 20.0]])
    X = np.concatenate([c + rng.normal(0, 0.5, size=(100, 2)) for c in centers])
    blob_of = np.repeat(np.arange(4), 100)
    hits_pp = hits_uniform = 0
    for trial in range(30):
        _, idx = kmeans_plusplus(X, 4, random_state=trial)
        hits_pp += len(set(blob_of[idx])) == 4
        hits_uniform += len(set(blob_of[rng.choice(400, 4, replace=False)])) == 4
    assert hits_pp == 30
    assert hits_uniform < 15
    # and the seeds are farther apart than uniform picks on average
    seeds, _ = kmeans_plusplus(X, 4, random_state=0)
    d = np.linalg.norm(seeds[:, None] - seeds[None], axis=-1)
    assert d[np.triu_indices(4, 1)].min() > 30.0


def test_predict_transform_and_labels_are_consistent():
    X, _ = _blobs(1, k=3)
    km = KMeans(3, n_init=3, random_state=0)
    labels = km.fit_predict(X)
    np.testing.assert_array_equal(km.predict(X), labels)
    dist = km.transform(X)
    assert dist.shape == (len(X), 3)
    np.testing.assert_array_equal(dist.argmin(axis=1), labels)
    ref = np.linalg.norm(X[:, None, :] - km.cluster_centers_[None], axis=-1)
    np.testing.assert_allclose(dist, ref, atol=1e-8)
    np.testing.assert_allclose(-km.score(X), km.inertia_, rtol=1e-10)


def test_same_seed_same_result_and_tensor_input():
    X, _ = _blobs(2, k=3)
    a = KMeans(3, n_init=2, random_state=7).fit(X)
    b = KMeans(3, n_init=2, random_state=7).fit(minidl.tensor(X))
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_)


def test_random_init_and_array_init():
    X, centers = _blobs(4, k=3)
    km = KMeans(3, init=centers, random_state=0).fit(X)
    assert km.inertia_ <= 1.01 * SkKMeans(3, n_init=3, random_state=0).fit(X).inertia_
    km_r = KMeans(3, init="random", n_init=5, random_state=0).fit(X)
    assert np.isfinite(km_r.inertia_)


def test_empty_cluster_is_reseeded():
    X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0]])
    init = np.array([[0.05, 0.0], [100.0, 100.0]])          # the second centre gets no point
    km = KMeans(2, init=init).fit(X)
    assert sorted(np.bincount(km.labels_, minlength=2)) == [2, 2]


def test_more_clusters_than_samples_is_a_clear_error():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"n_clusters=5 is more than the number of samples n_samples=3"):
        KMeans(5).fit(X)
    with pytest.raises(ValueError, match="more than the number of samples"):
        cluster_then_label(X[:1], X[1:], np.array([0, 1]), n_clusters=4)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="n_clusters must be a positive integer"):
        KMeans(0)
    with pytest.raises(ValueError, match="init must be"):
        KMeans(2, init="farthest")
    with pytest.raises(ValueError, match="2-D array"):
        KMeans(2).fit(np.zeros((4, 1, 2, 2)))
    with pytest.raises(RuntimeError, match="call fit"):
        KMeans(2).predict(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(np.array([[0.0, np.nan], [1.0, 1.0]]))


def test_cluster_then_label_recovers_blob_labels():
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.5, seed=0)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    rng = np.random.default_rng(0)
    lab = np.concatenate([rng.choice(np.flatnonzero(y == c), 2, replace=False) for c in range(3)])
    unl = np.setdiff1d(np.arange(len(y)), lab)
    pred = cluster_then_label(X[unl], X[lab], y[lab], n_clusters=6, random_state=0)
    assert pred.shape == (len(unl),)
    assert (pred == y[unl]).mean() > 0.9


def test_kmeans_on_each_device_matches_the_numpy_run(device):
    from minidl import backend

    X, _ = _blobs(5, k=3)
    ref = KMeans(3, n_init=2, random_state=0).fit(X)
    km = KMeans(3, n_init=2, random_state=0).fit(backend.to_device(X, device))
    assert backend.device_of(km.cluster_centers_) == backend.Device(device)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-9)
    np.testing.assert_array_equal(backend.to_numpy(km.predict(backend.to_device(X, device))), ref.labels_)
