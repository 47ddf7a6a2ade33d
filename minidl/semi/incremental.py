"""Class-incremental learning: new classes arrive task by task, old data is gone.

Tasks t = 1..T each bring the training data of a few new classes; after each task the one
classifier must tell apart all the classes seen so far. Naive fine-tuning trains on the new
task's data alone and forgets the old classes almost entirely ("catastrophic forgetting"):
nothing in the loss keeps their logits up. Replay keeps a small exemplar memory of old
samples and mixes it into every later task's training data.

The memory has a fixed total budget K: with n classes seen it keeps m = floor(K / n)
exemplars per class, dropping the last ones of each class when new classes come in. The
exemplars of a class are chosen

- ``"random"``: uniformly without replacement, or
- ``"herding"`` (iCaRL, Rebuffi et al., 2017): greedily, so that the running mean of the
  chosen (L2-normalised) features stays closest to the class mean:
      p_k = argmin_x || mu - (phi(x) + sum_{j<k} phi(p_j)) / k ||,  mu = mean of phi over the class.

Both orders are prefixes of one ranking, so shrinking a class keeps its best exemplars.

Measures, from the accuracy matrix R[t, j] = test accuracy on task j's classes after
training task t (j <= t; prediction restricted to the classes seen up to t):

    final average accuracy  A = (1/T) sum_j R[T-1, j]
    forgetting              F = (1/(T-1)) sum_{j<T-1} (max_{l<T-1} R[l, j] - R[T-1, j])
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from .. import backend, creation
from ..autograd import no_grad
from ..data.dataset import _generator
from ..functional import cross_entropy
from ..nn import Module
from ..optim import Adam

__all__ = ["herding_order", "ExemplarMemory", "split_tasks", "average_accuracy", "forgetting",
           "train_incremental"]


def herding_order(features: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` exemplars of one class by herding, as row indices of features (n, d).

    Features are L2-normalised first; each step takes the unused row that brings the mean
    of the chosen rows closest to the class mean. Returns (min(m, n),) int64 indices.
    """
    phi = np.asarray(features, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[0] == 0:
        raise ValueError(f"herding_order: features must be a non-empty (n, d) array, got shape {phi.shape}")
    phi = phi / np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12)
    mu = phi.mean(axis=0)
    n = phi.shape[0]
    chosen: list[int] = []
    running = np.zeros_like(mu)
    available = np.ones(n, dtype=bool)
    for k in range(1, min(int(m), n) + 1):
        candidates = (running[None, :] + phi) / k                                 # (n, d)
        dist = ((mu[None, :] - candidates) ** 2).sum(axis=1)
        dist[~available] = np.inf
        i = int(dist.argmin())
        chosen.append(i)
        available[i] = False
        running += phi[i]
    return np.asarray(chosen, dtype=np.int64)


class ExemplarMemory:
    """A replay memory with a fixed total ``budget`` shared equally by the classes seen.

    ``add_classes(X, y, features=None)`` ranks the samples of each new class in y (herding
    on ``features`` (N, d), default the flattened X, or random) and then trims every class
    to m = budget // (classes seen) exemplars. ``data()`` returns (X_mem, y_mem) NumPy
    arrays; ``len(memory)`` <= budget always.
    """

    def __init__(self, budget: int, selection: str = "herding", seed: int | np.random.Generator | None = None) -> None:
        if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
            raise ValueError(f"ExemplarMemory: budget must be a positive integer, got {budget!r}")
        if selection not in ("herding", "random"):
            raise ValueError(f"ExemplarMemory: selection must be 'herding' or 'random', got {selection!r}")
        self.budget = int(budget)
        self.selection = selection
        self.rng = _generator(seed)
        self.exemplars: dict[int, np.ndarray] = {}            # class -> (m_c, ...) ranked samples

    @property
    def classes(self) -> list[int]:
        return sorted(self.exemplars)

    def per_class(self, n_classes: int | None = None) -> int:
        """m = budget // n, n = the number of classes seen (or given)."""
        n = len(self.exemplars) if n_classes is None else n_classes
        return self.budget // max(n, 1)

    def add_classes(self, X: np.ndarray, y: np.ndarray, features: np.ndarray | None = None) -> None:
        X, y = np.asarray(X), np.asarray(y)
        if y.ndim != 1 or len(y) != len(X) or y.dtype.kind not in "iu":
            raise ValueError(f"ExemplarMemory.add_classes: y must be ({len(X)},) integer labels, got shape "
                             f"{y.shape} and dtype {y.dtype}")
        feats = X.reshape(len(X), -1) if features is None else np.asarray(features)
        if feats.shape[0] != len(X):
            raise ValueError(f"ExemplarMemory.add_classes: features have {feats.shape[0]} rows for "
                             f"{len(X)} samples")
        new = [int(c) for c in np.unique(y)]
        seen = [c for c in new if c in self.exemplars]
        if seen:
            raise ValueError(f"ExemplarMemory.add_classes: classes {seen} are already in memory; "
                             "class-incremental tasks bring new classes only")
        m = self.per_class(len(self.exemplars) + len(new))
        if m == 0:
            raise ValueError(f"ExemplarMemory: a budget of {self.budget} cannot hold one exemplar for each of "
                             f"{len(self.exemplars) + len(new)} classes")
        for c in new:
            idx = np.flatnonzero(y == c)
            if self.selection == "herding":
                order = idx[herding_order(feats[idx], m)]
            else:
                order = self.rng.permutation(idx)[:m]
            self.exemplars[c] = X[order].copy()
        for c in self.exemplars:
            self.exemplars[c] = self.exemplars[c][:m]

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """All exemplars (M, ...) and their labels (M,) int64, classes in increasing order."""
        if not self.exemplars:
            raise ValueError("ExemplarMemory.data: the memory is empty; add_classes first")
        X = np.concatenate([self.exemplars[c] for c in self.classes])
        y = np.concatenate([np.full(len(self.exemplars[c]), c, dtype=np.int64) for c in self.classes])
        return X, y

    def __len__(self) -> int:
        return sum(len(v) for v in self.exemplars.values())

    def __repr__(self) -> str:
        return (f"ExemplarMemory(budget={self.budget}, selection={self.selection!r}, classes={self.classes}, "
                f"size={len(self)})")


def split_tasks(classes: Sequence[int] | int, classes_per_task: int) -> list[list[int]]:
    """Consecutive groups of ``classes_per_task`` classes: split_tasks(10, 2) ->
    [[0, 1], [2, 3], ..., [8, 9]]. ``classes`` is a count or an ordered list of class ids."""
    order = list(range(classes)) if isinstance(classes, (int, np.integer)) else [int(c) for c in classes]
    if classes_per_task < 1 or len(order) % classes_per_task:
        raise ValueError(f"split_tasks: {len(order)} classes do not split into tasks of {classes_per_task}")
    return [order[i:i + classes_per_task] for i in range(0, len(order), classes_per_task)]


def average_accuracy(R: np.ndarray) -> float:
    """A = mean_j R[T-1, j]: the mean accuracy over all tasks after the last one."""
    R = np.asarray(R, dtype=np.float64)
    return float(R[-1].mean())


def forgetting(R: np.ndarray) -> float:
    """F = mean_{j < T-1} (max_{l < T-1} R[l, j] - R[T-1, j]); 0 for a single task.
    Entries R[l, j] with j > l (tasks not yet seen) are ignored."""
    R = np.asarray(R, dtype=np.float64)
    T = R.shape[0]
    if T < 2:
        return 0.0
    drops = [np.nanmax(R[j:T - 1, j]) - R[T - 1, j] for j in range(T - 1)]
    return float(np.mean(drops))


def _accuracy_by_task(model: Module, X: np.ndarray, y: np.ndarray, tasks: list[list[int]], seen: list[int],
                      device: Any, batch: int = 512) -> list[float]:
    model.eval()
    with no_grad():
        logits = np.concatenate([backend.to_numpy(model(creation.tensor(X[i:i + batch], device=device)).data)
                                 for i in range(0, len(X), batch)])
    model.train()
    masked = np.full_like(logits, -np.inf)
    masked[:, seen] = logits[:, seen]
    pred = masked.argmax(axis=1)
    return [float((pred[np.isin(y, task)] == y[np.isin(y, task)]).mean()) for task in tasks]


def train_incremental(model: Module, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                      y_test: np.ndarray, tasks: list[list[int]], *, memory: ExemplarMemory | None = None,
                      epochs: int = 20, batch_size: int = 32, lr: float = 1e-3,
                      augment: Callable | None = None, feature_fn: Callable | None = None,
                      seed: int | None = None, progress: bool = True) -> dict:
    """Learn ``tasks`` (lists of class ids) one after another with one classifier.

    For task t: the training set is the task's samples, plus ``memory.data()`` when a memory
    is given (replay; with ``memory=None`` this is naive fine-tuning); ``epochs`` passes with
    a fresh Adam optimizer and cross-entropy over all outputs; then the new classes enter
    the memory (herding on ``feature_fn(X)`` (N, d) if given, else on the pixels) and the
    model is tested on every task so far, predicting among the classes seen.

    Returns a dict: ``R`` (T, T) accuracy matrix (NaN above the diagonal),
    ``average_accuracy`` (A), ``forgetting`` (F), ``average_accuracy_curve`` (A after each
    task: the mean of R[t, :t+1]).
    """
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    for name, X, y in (("train", X_train, y_train), ("test", X_test, y_test)):
        if y.ndim != 1 or len(X) != len(y) or y.dtype.kind not in "iu":
            raise ValueError(f"train_incremental: {name} labels must be ({len(X)},) integers, got shape "
                             f"{y.shape} and dtype {y.dtype}")
    flat = [c for task in tasks for c in task]
    if len(set(flat)) != len(flat):
        raise ValueError(f"train_incremental: a class appears in more than one task: {tasks}")
    for c in flat:
        if not (y_train == c).any() or not (y_test == c).any():
            raise ValueError(f"train_incremental: class {c} has no training or no test samples")
    rng = _generator(seed)
    device = next(iter(model.parameters())).device if list(model.parameters()) else "cpu"
    T = len(tasks)
    R = np.full((T, T), np.nan)
    seen: list[int] = []
    for t in tqdm(range(T), desc="tasks", disable=not progress, leave=False):
        in_task = np.isin(y_train, tasks[t])
        X_t, y_t = X_train[in_task], y_train[in_task]
        if memory is not None and len(memory):
            X_mem, y_mem = memory.data()
            X_fit, y_fit = np.concatenate([X_t, X_mem]), np.concatenate([y_t, y_mem])
        else:
            X_fit, y_fit = X_t, y_t
        opt = Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            order = rng.permutation(len(X_fit))
            for i in range(0, len(order), batch_size):
                idx = order[i:i + batch_size]
                xb = X_fit[idx] if augment is None else augment(X_fit[idx], rng)
                loss = cross_entropy(model(creation.tensor(xb, device=device)),
                                     creation.tensor(y_fit[idx], device=device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        seen += tasks[t]
        if memory is not None:
            feats = None if feature_fn is None else backend.to_numpy(feature_fn(X_t))
            memory.add_classes(X_t, y_t, feats)
        R[t, :t + 1] = _accuracy_by_task(model, X_test, y_test, tasks[:t + 1], seen, device)
    return {
        "R": R,
        "average_accuracy": average_accuracy(R),
        "forgetting": forgetting(R),
        "average_accuracy_curve": [float(np.mean(R[t, :t + 1])) for t in range(T)],
    }
