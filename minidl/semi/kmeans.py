"""K-means clustering (Lloyd's algorithm with k-means++ seeding), and cluster-then-label.

K-means looks for k centres c_1..c_k that minimise the inertia

    J = sum_n min_j ||x_n - c_j||^2.

Lloyd's algorithm alternates two steps until the centres stop moving:

    assign:  z_n = argmin_j ||x_n - c_j||^2             (N,)   for X (N, D), C (k, D)
    update:  c_j = mean{ x_n : z_n = j }                (k, D)

Both steps are whole-array operations: the squared distances come from
``||x||^2 - 2 x c^T + ||c||^2`` (one matrix product, (N, k)), the new centres from
``onehot(z)^T X / counts``; they run on NumPy or CuPy arrays alike. A cluster left empty is
re-seeded with the point farthest from its centre, so that k clusters always remain.

k-means++ (Arthur and Vassilvitskii, 2007) picks the first centre uniformly, then each next
one with probability proportional to D(x)^2, the squared distance to the nearest centre
chosen so far; the "greedy" variant draws ``2 + ln k`` candidates per step and keeps the
one that lowers the inertia most. Seeds are spread out, and Lloyd starts near a good optimum.

``cluster_then_label`` is the simplest semi-supervised method: cluster labeled and
unlabeled points together, name each cluster by the majority label of the labeled points
inside it, and give every unlabeled point its cluster's name.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor

__all__ = ["KMeans", "kmeans_plusplus", "cluster_then_label"]


def _as_2d_array(X: Any, op: str, name: str = "X"):
    """The raw array of X (a Tensor, NumPy/CuPy array or nested list), checked to be (N, D) floats."""
    data = X.data if isinstance(X, Tensor) else X
    if not hasattr(data, "shape"):
        data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"{op}: {name} must be a 2-D array (n_samples, n_features), got shape "
                         f"{tuple(data.shape)}; flatten images first, e.g. X.reshape(len(X), -1)")
    if data.dtype.kind not in "fiub":
        raise TypeError(f"{op}: {name} must hold numbers, got dtype {data.dtype}")
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    xp = backend.get_array_module(data)
    if not bool(xp.isfinite(data).all()):
        raise ValueError(f"{op}: {name} contains NaN or infinite values")
    return data


def _squared_distances(X, centers, x_sq=None):
    """||x_n - c_j||^2 for all n, j: (N, k), clipped at 0 against rounding."""
    xp = backend.get_array_module(X)
    if x_sq is None:
        x_sq = (X * X).sum(axis=1)
    c_sq = (centers * centers).sum(axis=1)
    d2 = x_sq[:, None] - 2.0 * (X @ centers.T) + c_sq[None, :]
    return xp.maximum(d2, 0.0)


def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return backend.random_generator(np)
    return np.random.default_rng(random_state)


def kmeans_plusplus(X: Any, n_clusters: int, random_state: Any = None,
                    n_local_trials: int | None = None) -> tuple[Any, np.ndarray]:
    """Greedy k-means++ seeding: returns (centers (k, D), indices (k,) of the chosen points).

    c_1 is a uniformly drawn point; for j = 2..k, ``n_local_trials`` candidates are drawn
    with P(x_n) = D(x_n)^2 / sum_m D(x_m)^2 (D: distance to the nearest centre so far) and
    the candidate giving the smallest sum_n min(D(x_n)^2, ||x_n - cand||^2) is kept.
    ``n_local_trials`` defaults to 2 + floor(ln k); 1 gives plain k-means++.
    """
    X = _as_2d_array(X, "kmeans_plusplus")
    n = X.shape[0]
    _check_n_clusters("kmeans_plusplus", n_clusters, n)
    xp = backend.get_array_module(X)
    rng = _rng(random_state)
    trials = 2 + int(math.log(n_clusters)) if n_local_trials is None else int(n_local_trials)
    if trials < 1:
        raise ValueError(f"kmeans_plusplus: n_local_trials must be >= 1, got {n_local_trials}")
    x_sq = (X * X).sum(axis=1)
    indices = [int(rng.integers(n))]
    closest = _squared_distances(X, X[indices], x_sq)[:, 0]                      # D(x)^2, (N,)
    for _ in range(1, n_clusters):
        weights = backend.to_numpy(closest).astype(np.float64)
        total = weights.sum()
        if total <= 0:          # every point already sits on a centre: pick among the rest
            remaining = np.setdiff1d(np.arange(n), indices)
            candidates = rng.choice(remaining, size=min(trials, remaining.size), replace=False)
        else:
            candidates = rng.choice(n, size=trials, p=weights / total)
        d2 = _squared_distances(X, X[xp.asarray(candidates)], x_sq)               # (N, trials)
        new_closest = xp.minimum(closest[:, None], d2)
        best = int(backend.to_numpy(new_closest.sum(axis=0)).argmin())
        indices.append(int(candidates[best]))
        closest = new_closest[:, best]
    idx = np.asarray(indices)
    return X[xp.asarray(idx)].copy(), idx


def _check_n_clusters(op: str, n_clusters: Any, n_samples: int) -> None:
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ValueError(f"{op}: n_clusters must be a positive integer, got {n_clusters!r}")
    if n_clusters > n_samples:
        raise ValueError(f"{op}: n_clusters={n_clusters} is more than the number of samples "
                         f"n_samples={n_samples}; each cluster needs at least one point")


def _lloyd(X, centers, max_iter: int, tol: float):
    """Lloyd iterations from ``centers``; returns (centers, labels, inertia, n_iter)."""
    xp = backend.get_array_module(X)
    n, k = X.shape[0], centers.shape[0]
    x_sq = (X * X).sum(axis=1)
    arange_k = xp.arange(k)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        d2 = _squared_distances(X, centers, x_sq)
        labels = d2.argmin(axis=1)
        onehot = (labels[:, None] == arange_k[None, :]).astype(X.dtype)          # (N, k)
        counts = onehot.sum(axis=0)
        sums = onehot.T @ X                                                     # (k, D)
        empty = backend.to_numpy(counts == 0)
        if empty.any():
            # Re-seed each empty cluster with the point farthest from its own centre.
            far = d2[xp.arange(n), labels]
            order = backend.to_numpy(xp.argsort(-far))
            for j, point in zip(np.flatnonzero(empty), order):
                sums[j] = X[int(point)]
                counts[j] = 1
        new_centers = sums / counts[:, None]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if shift <= tol:
            break
    # A last assignment makes labels and inertia those of the returned centres.
    d2 = _squared_distances(X, centers, x_sq)
    labels = d2.argmin(axis=1)
    inertia = float(d2[xp.arange(n), labels].sum())
    return centers, labels, inertia, n_iter


class KMeans:
    """K-means clustering with scikit-learn's interface.

    Args:
        n_clusters: k, the number of clusters.
        n_init: number of runs from different seeds; the run with the lowest inertia is kept.
        max_iter: Lloyd iterations per run at most.
        tol: a run stops when sum_j ||c_j^new - c_j||^2 <= tol * mean_d Var(X[:, d])
            (scikit-learn's relative tolerance).
        init: ``"k-means++"`` (greedy k-means++), ``"random"`` (k distinct points drawn
            uniformly) or an array of initial centres (k, D) (then one run is made).
        random_state: int seed, ``numpy.random.Generator`` or None (minidl's global generator).

    After ``fit(X)`` with X (N, D) (NumPy or CuPy; a Tensor's array is used):
    ``cluster_centers_`` (k, D), ``labels_`` (N,), ``inertia_`` (float: sum of squared
    distances to the nearest centre), ``n_iter_``. Arrays live on X's device.
    """

    def __init__(self, n_clusters: int = 8, *, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4,
                 init: str | Any = "k-means++", random_state: Any = None) -> None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
            raise ValueError(f"KMeans: n_clusters must be a positive integer, got {n_clusters!r}")
        if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
            raise ValueError(f"KMeans: n_init must be a positive integer, got {n_init!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
            raise ValueError(f"KMeans: max_iter must be a positive integer, got {max_iter!r}")
        if not tol >= 0:
            raise ValueError(f"KMeans: tol must be >= 0, got {tol}")
        if isinstance(init, str) and init not in ("k-means++", "random"):
            raise ValueError(f"KMeans: init must be 'k-means++', 'random' or an array of centres, got {init!r}")
        self.n_clusters = int(n_clusters)
        self.n_init = int(n_init)
        self.max_iter = int(max_iter)
        self.tol = float(tol)
        self.init = init
        self.random_state = random_state

    def _initial_centers(self, X, rng: np.random.Generator):
        xp = backend.get_array_module(X)
        if isinstance(self.init, str) and self.init == "k-means++":
            return kmeans_plusplus(X, self.n_clusters, rng)[0]
        if isinstance(self.init, str):              # "random"
            idx = rng.choice(X.shape[0], size=self.n_clusters, replace=False)
            return X[xp.asarray(idx)].copy()
        centers = _as_2d_array(self.init, "KMeans", "init")
        if centers.shape != (self.n_clusters, X.shape[1]):
            raise ValueError(f"KMeans: init centres must have shape (n_clusters, n_features) = "
                             f"({self.n_clusters}, {X.shape[1]}), got {tuple(centers.shape)}")
        return xp.asarray(centers, dtype=X.dtype).copy()

    def fit(self, X: Any, y: Any = None) -> "KMeans":
        """Cluster X (N, D); keeps the best of ``n_init`` runs. Returns self."""
        X = _as_2d_array(X, "KMeans.fit")
        _check_n_clusters("KMeans.fit", self.n_clusters, X.shape[0])
        rng = _rng(self.random_state)
        tol = self.tol * float(X.var(axis=0).mean())
        runs = 1 if not isinstance(self.init, str) else self.n_init
        best = None
        for _ in range(runs):
            result = _lloyd(X, self._initial_centers(X, rng), self.max_iter, tol)
            if best is None or result[2] < best[2]:
                best = result
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = best
        self.n_features_in_ = X.shape[1]
        return self

    def _check_fitted(self, X: Any, op: str):
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError(f"KMeans.{op}: call fit(X) first")
        X = _as_2d_array(X, f"KMeans.{op}")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"KMeans.{op}: X has {X.shape[1]} features, but the model was fitted on "
                             f"{self.n_features_in_}")
        return X

    def predict(self, X: Any):
        """Index of the nearest centre for each row of X: (N,) int."""
        X = self._check_fitted(X, "predict")
        return _squared_distances(X, self.cluster_centers_.astype(X.dtype)).argmin(axis=1)

    def fit_predict(self, X: Any, y: Any = None):
        """``fit(X).labels_``."""
        return self.fit(X).labels_

    def transform(self, X: Any):
        """Euclidean distance of each row of X to each centre: (N, k)."""
        X = self._check_fitted(X, "transform")
        xp = backend.get_array_module(X)
        return xp.sqrt(_squared_distances(X, self.cluster_centers_.astype(X.dtype)))

    def fit_transform(self, X: Any, y: Any = None):
        """``fit(X).transform(X)``."""
        return self.fit(X).transform(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the inertia of X under the fitted centres (higher is better, as in scikit-learn)."""
        X = self._check_fitted(X, "score")
        return -float(_squared_distances(X, self.cluster_centers_.astype(X.dtype)).min(axis=1).sum())

    def __repr__(self) -> str:
        return (f"KMeans(n_clusters={self.n_clusters}, n_init={self.n_init}, max_iter={self.max_iter}, "
                f"tol={self.tol}, init={self.init if isinstance(self.init, str) else 'array'!r})")


def cluster_then_label(X_unlabeled: Any, X_labeled: Any, y_labeled: Any, n_clusters: int, *,
                       n_init: int = 10, random_state: Any = None) -> np.ndarray:
    """Labels for ``X_unlabeled`` (M, D) from K-means on all points and the labeled ones.

    1. Fit KMeans(n_clusters) on the stacked rows [X_labeled; X_unlabeled] ((L + M), D).
    2. Name cluster j by the most frequent label among the labeled points in it (ties: the
       smallest label); a cluster holding no labeled point takes the name of the nearest
       centre that has one.
    3. Each unlabeled point gets the name of its cluster.

    Returns an (M,) NumPy int64 array. ``y_labeled`` (L,) holds non-negative class ids.
    """
    Xu = backend.to_numpy(_as_2d_array(X_unlabeled, "cluster_then_label", "X_unlabeled"))
    Xl = backend.to_numpy(_as_2d_array(X_labeled, "cluster_then_label", "X_labeled"))
    yl = np.asarray(backend.to_numpy(y_labeled.data if isinstance(y_labeled, Tensor) else y_labeled))
    if Xu.shape[1] != Xl.shape[1]:
        raise ValueError(f"cluster_then_label: X_unlabeled has {Xu.shape[1]} features but X_labeled has "
                         f"{Xl.shape[1]}")
    if yl.shape != (Xl.shape[0],) or yl.dtype.kind not in "iu" or (yl.size and yl.min() < 0):
        raise ValueError(f"cluster_then_label: y_labeled must be ({Xl.shape[0]},) non-negative integer labels, "
                         f"got shape {yl.shape} and dtype {yl.dtype}")
    if Xl.shape[0] == 0:
        raise ValueError("cluster_then_label: at least one labeled point is needed to name the clusters")
    X = np.concatenate([Xl, Xu]).astype(np.float64)
    _check_n_clusters("cluster_then_label", n_clusters, X.shape[0])
    km = KMeans(n_clusters, n_init=n_init, random_state=random_state).fit(X)
    labels = np.asarray(km.labels_)
    n_classes = int(yl.max()) + 1
    votes = np.zeros((n_clusters, n_classes), dtype=np.int64)
    np.add.at(votes, (labels[:len(yl)], yl), 1)
    has_label = votes.sum(axis=1) > 0
    names = votes.argmax(axis=1)
    centers = np.asarray(km.cluster_centers_)
    labeled_clusters = np.flatnonzero(has_label)
    for j in np.flatnonzero(~has_label):
        d2 = ((centers[labeled_clusters] - centers[j]) ** 2).sum(axis=1)
        names[j] = names[labeled_clusters[d2.argmin()]]
    return names[labels[len(yl):]].astype(np.int64)
