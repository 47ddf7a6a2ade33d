"""Evaluation metrics for classification and regression.

Inputs may be NumPy arrays, CuPy arrays, minidl Tensors or lists; everything is computed
in NumPy. Classification metrics take integer class labels ``y_true`` (N,) and either
predicted labels ``y_pred`` (N,) or scores/logits (N, K), from which the predicted label is
the arg-max. ``get_metric(name)`` looks a metric up by name.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["accuracy", "top_k_accuracy", "precision_recall_f1", "precision", "recall",
           "f1_score", "confusion_matrix", "mean_squared_error", "mean_absolute_error",
           "r2_score", "get_metric", "METRICS"]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy") and callable(x.numpy):             # minidl (or torch) Tensor
        return np.asarray(x.numpy())
    if hasattr(x, "get") and hasattr(x, "__cuda_array_interface__"):   # CuPy array
        return x.get()
    return np.asarray(x)


def _labels(x: Any, name: str, op: str, num_classes: int | None = None) -> np.ndarray:
    """Validate integer class labels: 1-D, integer (or bool) dtype, in [0, num_classes)."""
    a = _to_numpy(x)
    if a.ndim != 1:
        raise ValueError(f"{op}: {name} must be a 1-D array of class labels, got shape {a.shape}")
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must hold integer class labels, got dtype {a.dtype}"
                        + ("; round or cast them (e.g. y.astype(np.int64)) if they are whole "
                           "numbers" if a.dtype.kind == "f" else ""))
    if a.size and a.min() < 0:
        raise ValueError(f"{op}: {name} has a negative class label ({a.min()}); labels must "
                         "be 0..K-1")
    if num_classes is not None and a.size and a.max() >= num_classes:
        raise ValueError(f"{op}: {name} has class label {a.max()} but num_classes is "
                         f"{num_classes}; labels must be in 0..{num_classes - 1}")
    return a.astype(np.int64, copy=False)


def _predicted_labels(y_pred: Any, op: str, num_classes: int | None) -> np.ndarray:
    a = _to_numpy(y_pred)
    if a.ndim == 2:                           # scores (N, K): take the arg-max
        if num_classes is not None and a.shape[1] != num_classes:
            raise ValueError(f"{op}: scores have {a.shape[1]} columns but num_classes is "
                             f"{num_classes}")
        return a.argmax(axis=1).astype(np.int64)
    return _labels(a, "y_pred", op, num_classes)


def _pair(y_true: Any, y_pred: Any, op: str,
          num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    t = _labels(y_true, "y_true", op, num_classes)
    p = _predicted_labels(y_pred, op, num_classes)
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"{op}: y_true has {t.shape[0]} samples but y_pred has {p.shape[0]}")
    if t.size == 0:
        raise ValueError(f"{op}: no samples (empty arrays)")
    return t, p


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct predictions: ``mean(y_pred == y_true)``.

    y_true (N,) int labels; y_pred (N,) labels or (N, K) scores (arg-max taken).
    """
    t, p = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(t == p))


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores.

    y_true (N,) int labels in 0..K-1; scores (N, K). With k >= K every sample counts.
    Ties are broken by a stable sort (lower class index first among equal scores).
    """
    s = _to_numpy(scores)
    if s.ndim != 2:
        raise ValueError(f"top_k_accuracy: scores must be (N, K), got shape {s.shape}")
    if k < 1:
        raise ValueError(f"top_k_accuracy: k must be >= 1, got {k}")
    t = _labels(y_true, "y_true", "top_k_accuracy", s.shape[1])
    if t.shape[0] != s.shape[0]:
        raise ValueError(f"top_k_accuracy: y_true has {t.shape[0]} samples but scores has "
                         f"{s.shape[0]} rows")
    if t.size == 0:
        raise ValueError("top_k_accuracy: no samples (empty arrays)")
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == t[:, None], axis=1)))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` = number of samples of true class i predicted as class j.

    Returns (K, K) int64 with ``K = num_classes`` or, if None, ``max(label) + 1``.
    Rows are true classes, columns predictions (scikit-learn's convention).
    """
    t, p = _pair(y_true, y_pred, "confusion_matrix", num_classes)
    k = num_classes if num_classes is not None else int(max(t.max(), p.max())) + 1
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def precision_recall_f1(y_true: Any, y_pred: Any, average: str | None = "macro",
                        num_classes: int | None = None) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 score.

    Per class c, with TP/FP/FN counted one-vs-rest: ``precision = TP / (TP + FP)``,
    ``recall = TP / (TP + FN)``, ``F1 = 2 P R / (P + R)``; a 0/0 counts as 0.

    average:
        ``"macro"``: unweighted mean of the per-class values over the classes that occur in
        ``y_true`` or ``y_pred`` (all of 0..num_classes-1 if num_classes is given).
        ``"micro"``: from the summed counts (for single-label data all three equal accuracy).
        ``None``: arrays of per-class values.
    """
    op = "precision_recall_f1"
    if average not in ("macro", "micro", None):
        raise ValueError(f"{op}: average must be 'macro', 'micro' or None, got {average!r}")
    t, p = _pair(y_true, y_pred, op, num_classes)
    cm = confusion_matrix(t, p, num_classes)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    if num_classes is None:
        present = np.union1d(t, p)
        tp, fp, fn = tp[present], fp[present], fn[present]

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)

    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    prec = ratio(tp, tp + fp)
    rec = ratio(tp, tp + fn)
    f1 = ratio(2 * prec * rec, prec + rec)
    if average is None:
        return prec, rec, f1
    return float(prec.mean()), float(rec.mean()), float(f1.mean())


def precision(y_true: Any, y_pred: Any, average: str = "macro") -> float:
    """Precision ``TP / (TP + FP)``, averaged as in ``precision_recall_f1``."""
    return precision_recall_f1(y_true, y_pred, average)[0]


def recall(y_true: Any, y_pred: Any, average: str = "macro") -> float:
    """Recall ``TP / (TP + FN)``, averaged as in ``precision_recall_f1``."""
    return precision_recall_f1(y_true, y_pred, average)[1]


def f1_score(y_true: Any, y_pred: Any, average: str = "macro") -> float:
    """F1 ``2 P R / (P + R)``, averaged as in ``precision_recall_f1``."""
    return precision_recall_f1(y_true, y_pred, average)[2]


def _regression_pair(y_true: Any, y_pred: Any, op: str) -> tuple[np.ndarray, np.ndarray]:
    t = _to_numpy(y_true).astype(np.float64)
    p = _to_numpy(y_pred).astype(np.float64)
    if t.shape != p.shape:
        raise ValueError(f"{op}: y_true has shape {t.shape} but y_pred has shape {p.shape}; "
                         "they must match exactly (reshape one of them)")
    if t.size == 0:
        raise ValueError(f"{op}: no samples (empty arrays)")
    if t.ndim not in (1, 2):
        raise ValueError(f"{op}: expected (N,) or (N, outputs) arrays, got shape {t.shape}")
    return t, p


def mean_squared_error(y_true: Any, y_pred: Any) -> float:
    """``MSE = mean((y_pred - y_true)^2)`` over all elements; y (N,) or (N, outputs)."""
    t, p = _regression_pair(y_true, y_pred, "mean_squared_error")
    return float(np.mean((p - t) ** 2))


def mean_absolute_error(y_true: Any, y_pred: Any) -> float:
    """``MAE = mean(|y_pred - y_true|)`` over all elements; y (N,) or (N, outputs)."""
    t, p = _regression_pair(y_true, y_pred, "mean_absolute_error")
    return float(np.mean(np.abs(p - t)))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``R2 = 1 - sum((y - f)^2) / sum((y - mean(y))^2)``.

    For (N, outputs) arrays, the unweighted mean of the per-output R2. An output whose
    true values are constant scores 1 if predicted exactly, else 0 (scikit-learn's choice).
    """
    t, p = _regression_pair(y_true, y_pred, "r2_score")
    if t.shape[0] < 2:
        raise ValueError("r2_score: needs at least 2 samples (R2 is undefined for one)")
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0),
                  np.where(ss_res == 0, 1.0, 0.0))
    return float(r2.mean())


def _top5(y_true: Any, scores: Any) -> float:
    return top_k_accuracy(y_true, scores, k=5)


def _micro(index: int) -> Callable[[Any, Any], float]:
    def metric(y_true: Any, y_pred: Any) -> float:
        return precision_recall_f1(y_true, y_pred, "micro")[index]
    return metric


METRICS: dict[str, Callable[..., Any]] = {
    "accuracy": accuracy,
    "top_k_accuracy": top_k_accuracy,
    "top5_accuracy": _top5,
    "precision": precision,
    "recall": recall,
    "f1": f1_score,
    "f1_macro": f1_score,
    "precision_micro": _micro(0),
    "recall_micro": _micro(1),
    "f1_micro": _micro(2),
    "confusion_matrix": confusion_matrix,
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "mae": mean_absolute_error,
    "mean_absolute_error": mean_absolute_error,
    "r2": r2_score,
    "r2_score": r2_score,
}


def get_metric(name: str | Callable[..., Any]) -> Callable[..., Any]:
    """The metric function called ``name`` (a callable is returned as it is).

    Known names: the keys of ``METRICS`` (accuracy, top_k_accuracy, top5_accuracy,
    precision, recall, f1, f1_macro, precision_micro, recall_micro, f1_micro,
    confusion_matrix, mse, mae, r2 and the long forms of the last three).
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"get_metric: expected a metric name (str) or a callable, got "
                        f"{type(name).__name__}")
    key = name.lower()
    if key not in METRICS:
        close = difflib.get_close_matches(key, METRICS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"get_metric: unknown metric {name!r}.{hint} Known metrics: "
                         f"{', '.join(sorted(METRICS))}")
    return METRICS[key]
