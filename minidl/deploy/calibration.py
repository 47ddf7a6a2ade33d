"""Post-processed prediction: calibration, decision thresholds, test-time augmentation,
and predictions under a user-set condition.

Temperature scaling (Guo et al., 2017): one scalar T > 0 divides the logits z,
p = softmax(z / T), fitted on a validation set by minimising the negative log-likelihood

    NLL(T) = -(1/N) sum_n log softmax(z_n / T)[y_n].

NLL is convex in 1/T, so a golden-section search over log T finds the minimum. T > 1
softens an over-confident model; the argmax (the predicted class) never changes.

Expected calibration error with B equal-width confidence bins:

    ECE = sum_b (|bin_b| / N) |accuracy(bin_b) - mean confidence(bin_b)|

``reliability_diagram`` draws accuracy against confidence per bin (the diagonal is perfect
calibration), for several probability sets side by side (before/after).
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

import numpy as np

from .inference import predict

__all__ = ["softmax_np", "TemperatureScaler", "expected_calibration_error", "reliability_diagram",
           "best_threshold", "predict_with_threshold", "predict_with_rejection", "tta_predict",
           "shift_transforms", "predict_given"]


def softmax_np(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(z / T) along the last axis (NumPy, stable)."""
    z = np.asarray(z, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = np.asarray(logits, np.float64) / temperature
    m = z.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.mean(lse - z[np.arange(len(labels)), labels]))


class TemperatureScaler:
    """p = softmax(z / T) with T fitted on held-out logits by minimising the NLL."""

    def __init__(self, temperature: float = 1.0):
        self.temperature = float(temperature)

    def fit(self, logits: np.ndarray, labels: np.ndarray, bounds: tuple = (0.05, 20.0), iters: int = 60) -> "TemperatureScaler":
        """Golden-section search of log T in log(bounds) for the validation NLL; returns self."""
        logits, labels = np.asarray(logits), np.asarray(labels).astype(np.int64)
        if logits.ndim != 2 or labels.shape != (logits.shape[0],):
            raise ValueError(f"TemperatureScaler.fit: expected logits (N, K) and labels (N,), got "
                             f"{logits.shape} and {labels.shape}")
        a, b = math.log(bounds[0]), math.log(bounds[1])
        g = (math.sqrt(5) - 1) / 2
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = _nll(logits, labels, math.exp(c)), _nll(logits, labels, math.exp(d))
        for _ in range(iters):
            if fc < fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = _nll(logits, labels, math.exp(c))
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = _nll(logits, labels, math.exp(d))
        self.temperature = math.exp((a + b) / 2)
        return self

    def nll(self, logits: np.ndarray, labels: np.ndarray) -> float:
        """The mean negative log-likelihood of ``labels`` under softmax(logits / T)."""
        return _nll(logits, np.asarray(labels).astype(np.int64), self.temperature)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities softmax(logits / T), (N, K)."""
        return softmax_np(logits, self.temperature)


def _bins(probs: np.ndarray, labels: np.ndarray, n_bins: int):
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"expected probabilities (N, K) and labels (N,), got {probs.shape} and {labels.shape}")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.clip((conf * n_bins).astype(int), 0, n_bins - 1)  # bin b holds conf in [b/B, (b+1)/B)
    count = np.bincount(which, minlength=n_bins).astype(np.float64)
    acc = np.bincount(which, weights=correct, minlength=n_bins) / np.maximum(count, 1)
    mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / np.maximum(count, 1)
    return count, acc, mean_conf


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE = sum_b (n_b / N) |acc_b - conf_b| over ``n_bins`` equal-width confidence bins."""
    count, acc, conf = _bins(probs, labels, n_bins)
    return float(np.sum(count / count.sum() * np.abs(acc - conf)))


def reliability_diagram(prob_sets: Sequence[np.ndarray], labels: np.ndarray, path: str | os.PathLike,
                        titles: Sequence[str] | None = None, n_bins: int = 10) -> str:
    """Save a PNG with one reliability diagram per probability set (e.g. before/after scaling):
    bars of per-bin accuracy against confidence, the diagonal, and the ECE in each title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(titles) if titles else [f"model {i}" for i in range(len(prob_sets))]
    fig, axes = plt.subplots(1, len(prob_sets), figsize=(4.2 * len(prob_sets), 4.2), squeeze=False)
    edges = np.linspace(0, 1, n_bins + 1)
    for ax, probs, title in zip(axes[0], prob_sets, titles):
        count, acc, conf = _bins(probs, labels, n_bins)
        ece = expected_calibration_error(probs, labels, n_bins)
        shown = count > 0
        ax.bar(edges[:-1][shown], acc[shown], width=1.0 / n_bins, align="edge", edgecolor="k", alpha=0.7,
               label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ax.plot(conf[shown], acc[shown], "ko", ms=3)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"{title}\nECE = {ece:.3f}")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------ decision thresholds

def best_threshold(scores: np.ndarray, labels: np.ndarray, metric: str = "f1") -> float:
    """The threshold t on a binary score (predict 1 when score >= t) that maximises
    ``metric`` on (scores, labels): "f1", "accuracy" or "youden" (TPR - FPR)."""
    scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).ravel().astype(bool)
    if metric not in ("f1", "accuracy", "youden"):
        raise ValueError(f"best_threshold: metric must be 'f1', 'accuracy' or 'youden', got {metric!r}")
    best, best_t = -np.inf, 0.5
    for t in np.unique(scores):
        pred = scores >= t
        tp, fp = np.sum(pred & labels), np.sum(pred & ~labels)
        fn, tn = np.sum(~pred & labels), np.sum(~pred & ~labels)
        if metric == "f1":
            value = 2 * tp / max(2 * tp + fp + fn, 1)
        elif metric == "accuracy":
            value = (tp + tn) / len(labels)
        else:
            value = tp / max(tp + fn, 1) - fp / max(fp + tn, 1)
        if value > best:
            best, best_t = value, float(t)
    return best_t


def predict_with_threshold(probs: np.ndarray, threshold: float, positive: int = 1) -> np.ndarray:
    """Binary decision: 1 where probs[:, positive] (or a 1-D score) >= threshold, else 0."""
    probs = np.asarray(probs)
    score = probs[:, positive] if probs.ndim == 2 else probs
    return (score >= threshold).astype(np.int64)


def predict_with_rejection(probs: np.ndarray, threshold: float, reject: int = -1) -> np.ndarray:
    """argmax where the top probability reaches ``threshold``, else ``reject`` (abstain)."""
    probs = np.asarray(probs)
    out = probs.argmax(axis=1)
    out[probs.max(axis=1) < threshold] = reject
    return out


# ------------------------------------------------------------------------ test-time augmentation

def shift_transforms(pixels: int = 1) -> list[Callable[[np.ndarray], np.ndarray]]:
    """Identity plus the four shifts by ``pixels`` (zero filled) of (N, C, H, W) images."""
    def shift(dy: int, dx: int) -> Callable:
        def f(x: np.ndarray) -> np.ndarray:
            out = np.zeros_like(x)
            h, w = x.shape[-2:]
            out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
            return out
        return f
    p = pixels
    return [lambda x: x, shift(p, 0), shift(-p, 0), shift(0, p), shift(0, -p)]


def tta_predict(model: Any, X: np.ndarray, transforms: Sequence[Callable] | None = None,
                batch_size: int = 256) -> np.ndarray:
    """Test-time augmentation: the mean of softmax(model(t(X))) over ``transforms`` (N, K)."""
    transforms = list(transforms) if transforms else shift_transforms()
    total = None
    for t in transforms:
        p = softmax_np(predict(model, t(np.asarray(X)), batch_size=batch_size))
        total = p if total is None else total + p
    return total / len(transforms)


# ------------------------------------------------------------------------ conditional prediction

def predict_given(probs_or_logits: np.ndarray, allowed: Sequence[int] | np.ndarray) -> np.ndarray:
    """The most likely class among those ``allowed`` by a user-set condition.

    ``allowed``: class indices allowed for every sample, or a boolean (N, K) mask allowing
    a different set per sample (e.g. "the digit is even", or the classes a form field can
    take). Works on probabilities or logits (argmax is the same)."""
    scores = np.asarray(probs_or_logits, dtype=np.float64)
    allowed = np.asarray(allowed)
    if allowed.dtype == bool:
        mask = np.broadcast_to(allowed, scores.shape)
    else:
        mask = np.zeros(scores.shape[-1], dtype=bool)
        mask[allowed.astype(int)] = True
        mask = np.broadcast_to(mask, scores.shape)
    if not mask.any(axis=-1).all():
        raise ValueError("predict_given: the condition allows no class for some samples")
    return np.where(mask, scores, -np.inf).argmax(axis=-1)
