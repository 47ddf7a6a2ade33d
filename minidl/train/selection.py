"""Model selection: hold-out splits, k-fold cross-validation, and the error report.

The three errors a practitioner reads side by side:

* training error: how well the model fits what it saw;
* validation error: what guided choices (early stopping, hyper-parameters), so it is
  slightly optimistic;
* test (out-of-sample) error: measured once, at the end, on data never used for any
  choice; the honest estimate of performance on new data.

``error_report`` puts them in one table and flags over-fitting and under-fitting.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["train_val_test_split", "KFold", "StratifiedKFold", "cross_validate",
           "ErrorReport", "error_report"]


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and callable(x.numpy):
        return np.asarray(x.numpy())
    return np.asarray(x)


def _indexable(X: Any) -> Any:
    """X itself if it can be indexed by an integer array (array, Tensor), else an array."""
    return np.asarray(X) if isinstance(X, (list, tuple)) else X


def _count(size: float | int, n: int, name: str, op: str) -> int:
    """A size given as a fraction in [0, 1) (of n, rounded) or as a whole number of samples."""
    if isinstance(size, (float, np.floating)):
        if not 0.0 <= size < 1.0:
            raise ValueError(f"{op}: {name} as a fraction must be in [0, 1), got {size}")
        return int(round(size * n))
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool) and 0 <= size <= n:
        return int(size)
    raise ValueError(f"{op}: {name} must be a fraction in [0, 1) or a sample count in "
                     f"[0, {n}], got {size!r}")


def _class_labels(y: np.ndarray, op: str) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"{op}: stratifying needs 1-D class labels y, got shape {y.shape}")
    if y.dtype.kind not in "iub":
        raise TypeError(f"{op}: stratifying needs integer class labels, got dtype {y.dtype}; "
                        "pass stratify=False for regression targets")
    return y


def _stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation in which every prefix holds each class in proportion (within one).

    Within class c (n_c samples, shuffled), its j-th sample gets the key
    ``(j + u_c) / n_c`` with one random offset ``u_c ~ U[0, 1)`` per class; sorting all
    samples by key spreads each class evenly along the order.
    """
    keys = np.empty(y.shape[0], dtype=np.float64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        keys[members] = (np.arange(members.size) + rng.random()) / members.size
    tie_break = rng.random(y.shape[0])
    return np.lexsort((tie_break, keys))


def train_val_test_split(X: Any, y: Any, val_size: float | int = 0.15,
                         test_size: float | int = 0.15, stratify: bool = True,
                         seed: int | np.random.Generator | None = None) -> tuple:
    """Split samples at random into training, validation and test sets.

    Sizes are fractions of N (rounded to whole samples) or sample counts; the training set
    gets the rest. With ``stratify=True`` (y must be class labels) every split holds each
    class in the same proportion as the whole, to within one sample.

    Args:
        X: (N, ...) array (or anything indexable by an integer array, e.g. a Tensor).
        y: (N,) labels or targets.

    Returns:
        ``(X_train, X_val, X_test, y_train, y_val, y_test)``.
    """
    op = "train_val_test_split"
    y_np = _as_numpy(y)
    n = len(y_np)
    if len(X) != n:
        raise ValueError(f"{op}: X has {len(X)} samples but y has {n}")
    if n == 0:
        raise ValueError(f"{op}: no samples to split")
    n_val = _count(val_size, n, "val_size", op)
    n_test = _count(test_size, n, "test_size", op)
    if n_val + n_test >= n:
        raise ValueError(f"{op}: val ({n_val}) + test ({n_test}) samples leave no training "
                         f"samples out of {n}")
    rng = np.random.default_rng(seed)
    if stratify:
        order = _stratified_order(_class_labels(y_np, op), rng)
    else:
        order = rng.permutation(n)
    test_idx = np.sort(order[:n_test])
    val_idx = np.sort(order[n_test:n_test + n_val])
    train_idx = np.sort(order[n_test + n_val:])
    X_np = _indexable(X)
    return (X_np[train_idx], X_np[val_idx], X_np[test_idx],
            y_np[train_idx], y_np[val_idx], y_np[test_idx])


class KFold:
    """K-fold splitter: the samples are cut into ``n_splits`` consecutive folds (after a
    seeded shuffle if ``shuffle``); each fold is the validation set once, the rest train.

    The first ``N % n_splits`` folds have ``N // n_splits + 1`` samples, the others
    ``N // n_splits`` (as scikit-learn's KFold). ``split`` yields index arrays
    ``(train_idx, val_idx)``.
    """

    def __init__(self, n_splits: int = 5, shuffle: bool = False,
                 seed: int | np.random.Generator | None = None) -> None:
        if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) \
                or n_splits < 2:
            raise ValueError(f"{type(self).__name__}: n_splits must be an integer >= 2, "
                             f"got {n_splits!r}")
        self.n_splits = int(n_splits)
        self.shuffle = bool(shuffle)
        self.seed = seed

    def _check_n(self, n: int) -> None:
        if self.n_splits > n:
            raise ValueError(f"{type(self).__name__}: cannot make {self.n_splits} folds out of "
                             f"{n} samples")

    def _fold_of_each_sample(self, X: Any, y: Any) -> np.ndarray:
        n = len(X)
        self._check_n(n)
        order = np.random.default_rng(self.seed).permutation(n) if self.shuffle \
            else np.arange(n)
        sizes = np.full(self.n_splits, n // self.n_splits)
        sizes[: n % self.n_splits] += 1
        fold = np.empty(n, dtype=np.int64)
        fold[order] = np.repeat(np.arange(self.n_splits), sizes)
        return fold

    def split(self, X: Any, y: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, val_idx)`` for each of the ``n_splits`` folds (sorted indices)."""
        fold = self._fold_of_each_sample(X, y)
        for k in range(self.n_splits):
            yield np.flatnonzero(fold != k), np.flatnonzero(fold == k)

    def get_n_splits(self) -> int:
        return self.n_splits


class StratifiedKFold(KFold):
    """K-fold splitter that keeps each class's proportion in every fold (to within one).

    Samples are sorted by class (shuffled within each class if ``shuffle``) and dealt to
    the folds in turn, like cards, the deal continuing from class to class; hence fold
    sizes differ by at most one and each class is spread as evenly as possible. (The fold
    assignment differs from scikit-learn's, the guarantees are the same.)
    """

    def _fold_of_each_sample(self, X: Any, y: Any) -> np.ndarray:
        if y is None:
            raise ValueError("StratifiedKFold.split: needs the class labels y")
        y = _class_labels(_as_numpy(y), "StratifiedKFold")
        n = len(y)
        if len(X) != n:
            raise ValueError(f"StratifiedKFold.split: X has {len(X)} samples but y has {n}")
        self._check_n(n)
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < self.n_splits:
            warnings.warn(f"StratifiedKFold: class {classes[counts.argmin()]} has only "
                          f"{counts.min()} samples, fewer than n_splits={self.n_splits}; some "
                          "folds will lack it", stacklevel=3)
        rng = np.random.default_rng(self.seed)
        deal = []
        for c in classes:
            members = np.flatnonzero(y == c)
            deal.append(rng.permutation(members) if self.shuffle else members)
        deal = np.concatenate(deal)
        fold = np.empty(n, dtype=np.int64)
        fold[deal] = np.arange(n) % self.n_splits
        return fold


def cross_validate(make_model_and_fit_fn: Callable[..., Any], X: Any, y: Any, k: int = 5,
                   stratified: bool = True, shuffle: bool = True,
                   seed: int | np.random.Generator | None = 0) -> dict[str, np.ndarray]:
    """k-fold cross-validation.

    For each fold, calls ``make_model_and_fit_fn(X_train, y_train, X_val, y_val)``, which
    builds a fresh model, trains it on the training part and returns its score(s) on the
    validation part: a number, or a dict ``{name: number}``.

    Returns ``{name: array of k per-fold scores}`` (the name is ``"score"`` when the
    function returns a number). Take ``.mean()`` and ``.std()`` for the summary.
    """
    y_np = _as_numpy(y)
    if len(X) != len(y_np):
        raise ValueError(f"cross_validate: X has {len(X)} samples but y has {len(y_np)}")
    splitter = (StratifiedKFold if stratified else KFold)(k, shuffle=shuffle, seed=seed)
    X_np = _indexable(X)
    results: dict[str, list[float]] = {}
    for fold, (tr, va) in enumerate(splitter.split(X_np, y_np)):
        out = make_model_and_fit_fn(X_np[tr], y_np[tr], X_np[va], y_np[va])
        scores = out if isinstance(out, dict) else {"score": out}
        if fold > 0 and set(scores) != set(results):
            raise ValueError(f"cross_validate: fold {fold} returned scores {sorted(scores)} "
                             f"but earlier folds returned {sorted(results)}")
        for name, value in scores.items():
            try:
                results.setdefault(name, []).append(float(value))
            except (TypeError, ValueError) as exc:
                raise TypeError(f"cross_validate: fold {fold} returned {name}={value!r}; "
                                "expected a number") from exc
    return {name: np.asarray(v) for name, v in results.items()}


@dataclass
class ErrorReport:
    """Training, validation and test error side by side, with a diagnosis.

    ``overfitting``: ``val_err - train_err > gap_threshold`` (the model fits the training
    data much better than data it did not train on).
    ``underfitting``: ``train_err > high_error_threshold`` (it cannot even fit the training
    data: too little capacity, too little training, or a too strong regulariser).
    ``test_gap``: ``test_err - val_err > gap_threshold``: the validation error was an
    optimistic guide (it was used for too many choices, or the sets differ).
    """

    train_err: float
    val_err: float
    test_err: float | None
    gap_threshold: float
    high_error_threshold: float
    overfitting: bool = field(init=False)
    underfitting: bool = field(init=False)
    test_gap: bool = field(init=False)

    def __post_init__(self) -> None:
        self.overfitting = self.val_err - self.train_err > self.gap_threshold
        self.underfitting = self.train_err > self.high_error_threshold
        self.test_gap = self.test_err is not None and \
            self.test_err - self.val_err > self.gap_threshold

    @property
    def verdicts(self) -> list[str]:
        """One line per problem found, or a single 'good fit' line."""
        lines = []
        if self.underfitting:
            lines.append(f"UNDER-FITTING: training error {self.train_err:.4f} is above "
                         f"{self.high_error_threshold:.4f}; use a bigger model, train longer "
                         "or regularise less")
        if self.overfitting:
            lines.append(f"OVER-FITTING: validation error exceeds training error by "
                         f"{self.val_err - self.train_err:.4f} (> {self.gap_threshold:.4f}); "
                         "use more data or augmentation, regularise more, or stop earlier")
        if self.test_gap:
            lines.append(f"TEST GAP: test error exceeds validation error by "
                         f"{self.test_err - self.val_err:.4f} (> {self.gap_threshold:.4f}); "
                         "the validation error was optimistic")
        if not lines:
            lines.append("good fit: small gap between training and validation error, low "
                         "training error")
        return lines

    def __str__(self) -> str:
        test = "-" if self.test_err is None else f"{self.test_err:.4f}"
        rows = [
            f"{'':24s}{'error':>10s}",
            f"{'training':24s}{self.train_err:>10.4f}",
            f"{'validation':24s}{self.val_err:>10.4f}",
            f"{'test (out-of-sample)':24s}{test:>10s}",
            "",
        ]
        return "\n".join(rows + self.verdicts)


def error_report(train_err: float, val_err: float, test_err: float | None = None,
                 gap_threshold: float = 0.03, high_error_threshold: float = 0.10,
                 verbose: bool = True) -> ErrorReport:
    """Training, validation and test error side by side, flagging over- and under-fitting.

    The errors are numbers on one scale, e.g. classification error rates ``1 - accuracy``
    (the defaults suit those) or losses (then choose thresholds for their scale).

    Default thresholds (error rates): over-fitting when validation error exceeds training
    error by more than ``gap_threshold = 0.03`` (3 percentage points); under-fitting when
    training error exceeds ``high_error_threshold = 0.10`` (10%). See ``ErrorReport``.
    Prints the table when ``verbose`` and returns the ``ErrorReport``.
    """
    values = {"train_err": train_err, "val_err": val_err}
    if test_err is not None:
        values["test_err"] = test_err
    for name, v in values.items():
        if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
            raise ValueError(f"error_report: {name} must be a finite number, got {v!r}")
    report = ErrorReport(float(train_err), float(val_err),
                         None if test_err is None else float(test_err),
                         float(gap_threshold), float(high_error_threshold))
    if verbose:
        print(report)
    return report
