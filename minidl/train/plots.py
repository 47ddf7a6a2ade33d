"""Plots saved as PNG files: learning curves and confusion matrices.

Drawn with matplotlib's object API on an Agg canvas, so nothing needs a display and the
global pyplot state (and backend) of the user's program is left alone.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["plot_learning_curves", "plot_confusion_matrix"]


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("minidl.train.plots needs matplotlib (pip install matplotlib)") from exc
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _pair_curves(history: Mapping[str, Sequence[float]]) -> list[tuple[str, Any, Any]]:
    """Group history keys into (metric, train values, validation values) triples.

    ``loss`` / ``train_loss`` pairs with ``val_loss``; a key found only with the ``val_``
    prefix is plotted alone.
    """
    names: list[str] = []
    train: dict[str, Any] = {}
    val: dict[str, Any] = {}
    for key, values in history.items():
        if key.startswith("val_"):
            metric, side = key[4:], val
        elif key.startswith("train_"):
            metric, side = key[6:], train
        else:
            metric, side = key, train
        if metric not in names:
            names.append(metric)
        side[metric] = values
    return [(m, train.get(m), val.get(m)) for m in names]


def plot_learning_curves(history: Mapping[str, Sequence[float]], path: str | os.PathLike,
                         title: str | None = None) -> str:
    """Plot training vs validation curves per metric, one panel each, and save a PNG.

    ``history`` maps names to one value per epoch, Keras-style: ``{"loss": [...],
    "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}`` (``train_`` prefixes
    are accepted too). Returns the path written.
    """
    if not isinstance(history, Mapping) or not history:
        raise ValueError("plot_learning_curves: history must be a non-empty dict of "
                         "{metric name: list of per-epoch values}")
    curves = _pair_curves(history)
    for metric, tr, va in curves:
        for label, values in (("train", tr), ("val", va)):
            if values is None:
                continue
            arr = np.asarray(values, dtype=np.float64)
            if arr.ndim != 1 or arr.size == 0:
                raise ValueError(f"plot_learning_curves: {label} {metric!r} must be a non-empty "
                                 f"list of numbers (one per epoch), got shape {arr.shape}")
    fig = _figure(4.5 * len(curves), 3.6)
    for i, (metric, tr, va) in enumerate(curves):
        ax = fig.add_subplot(1, len(curves), i + 1)
        for label, values, style in (("train", tr, "-o"), ("validation", va, "-s")):
            if values is not None:
                epochs = np.arange(1, len(values) + 1)
                ax.plot(epochs, np.asarray(values, dtype=np.float64), style, markersize=3,
                        label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(cm: Any, path: str | os.PathLike,
                          class_names: Sequence[str] | None = None, normalize: bool = False,
                          title: str = "Confusion matrix") -> str:
    """Draw a (K, K) confusion matrix (rows: true class, columns: predicted) as a PNG.

    Each cell shows its count (or, with ``normalize=True``, its fraction of the row, i.e.
    the recall of that class spread over the predictions). Returns the path written.
    """
    m = np.asarray(cm.numpy() if hasattr(cm, "numpy") and not isinstance(cm, np.ndarray)
                   else cm)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"plot_confusion_matrix: cm must be a square (K, K) matrix, got shape "
                         f"{m.shape}")
    k = m.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ValueError(f"plot_confusion_matrix: {len(class_names)} class names for a {k}x{k} "
                         "matrix")
    values = m.astype(np.float64)
    if normalize:
        rows = values.sum(axis=1, keepdims=True)
        values = np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    size = max(4.0, 0.5 * k + 2.0)
    fig = _figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(values, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=45 if max(len(n) for n in class_names) > 2 else 0,
                       ha="right" if max(len(n) for n in class_names) > 2 else "center")
    ax.set_yticklabels(class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    threshold = values.max() / 2.0 if values.size else 0.0
    if k <= 30:
        for i in range(k):
            for j in range(k):
                text = f"{values[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if values[i, j] > threshold else "black")
    fig.tight_layout()
    return _save(fig, path)
