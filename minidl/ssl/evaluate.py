"""How good is a frozen encoder? Two standard measures of self-supervised representations.

- ``linear_probe``: train only a linear softmax classifier on the frozen features of the
  labelled images (optionally also of augmented copies of them, as SimCLR's linear
  evaluation trains on random crops); report its test accuracy. High when the classes are
  linearly separable in feature space.
- ``knn_accuracy``: label each test image by a vote of its k most similar labelled images
  (cosine similarity of features); no training at all.

The encoder is run in eval mode (BatchNorm uses its running statistics) without recording
a graph, and is restored to its previous mode afterwards.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..data.dataset import _generator
from ..nn import Linear, Module
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["extract_features", "linear_probe", "knn_accuracy"]


def _numpy(x: Any) -> np.ndarray:
    return x.numpy() if isinstance(x, Tensor) else np.asarray(x)


def extract_features(encoder: Module, X: Any, batch_size: int = 512) -> np.ndarray:
    """``encoder(X)`` for images X (N, ...) in eval mode, without gradients: (N, D) NumPy."""
    X = _numpy(X)
    if X.shape[0] == 0:
        raise ValueError("extract_features: no images (X has 0 rows)")
    was_training = encoder.training
    encoder.eval()
    try:
        with no_grad():
            parts = [encoder(Tensor(X[i:i + batch_size])).numpy() for i in range(0, X.shape[0], batch_size)]
    finally:
        encoder.train(was_training)
    feats = np.concatenate(parts)
    return feats.reshape(feats.shape[0], -1)


def _labels(op: str, X: Any, y: Any, name: str) -> np.ndarray:
    y = _numpy(y)
    if y.ndim != 1 or y.shape[0] != len(X) or y.dtype.kind not in "iu":
        raise ValueError(f"{op}: {name} must be (N,) integer class labels, one per image of X "
                         f"(N = {len(X)}); got shape {y.shape} and dtype {y.dtype}")
    return y.astype(np.int64)


def linear_probe(encoder: Module, X_train: Any, y_train: Any, X_test: Any, y_test: Any,
                 epochs: int = 300, lr: float = 0.01, weight_decay: float = 1e-2, seed: int | None = 0,
                 num_classes: int | None = None, augment: Callable[[np.ndarray], np.ndarray] | None = None,
                 views: int = 0) -> float:
    """Test accuracy of a linear classifier trained on the frozen encoder's features.

    The training features are those of ``X_train`` (N, ...) and, with ``augment`` (a batch
    transform) and ``views = V > 0``, also those of V augmented copies of ``X_train``
    (labels repeated): N (V + 1) rows. Features are standardised with the training rows'
    mean and std, then a softmax regression ``logits = W h + b`` is fitted by full-batch
    Adam on the cross-entropy (plus L2 ``weight_decay``) for ``epochs`` steps. Returns the
    fraction of ``X_test`` classified correctly. ``num_classes`` defaults to max label + 1.
    """
    op = "linear_probe"
    y_tr = _labels(op, _numpy(X_train), y_train, "y_train")
    y_te = _labels(op, _numpy(X_test), y_test, "y_test")
    if isinstance(views, bool) or not isinstance(views, int) or views < 0 or (views > 0 and augment is None):
        raise ValueError(f"{op}: views must be an integer >= 0, and > 0 only with an augment transform; "
                         f"got views={views!r}, augment={augment!r}")
    if views > 0:
        X_np = _numpy(X_train)
        X_train = np.concatenate([X_np] + [augment(X_np) for _ in range(views)])
        y_tr = np.tile(y_tr, views + 1)
    h_tr, h_te = extract_features(encoder, X_train), extract_features(encoder, X_test)
    mean, std = h_tr.mean(axis=0), h_tr.std(axis=0) + 1e-6
    h_tr, h_te = (h_tr - mean) / std, (h_te - mean) / std
    k = int(max(y_tr.max(), y_te.max()) + 1) if num_classes is None else int(num_classes)
    rng = _generator(seed)
    clf = Linear(h_tr.shape[1], k)
    bound = 1.0 / np.sqrt(h_tr.shape[1])
    clf.weight.data[...] = rng.uniform(-bound, bound, clf.weight.shape)
    clf.bias.data[...] = 0.0
    optimizer = Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    inputs, targets = Tensor(h_tr.astype(np.float32)), Tensor(y_tr)
    for _ in range(epochs):
        loss = F.cross_entropy(clf(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with no_grad():
        predicted = clf(Tensor(h_te.astype(np.float32))).numpy().argmax(axis=1)
    return float(np.mean(predicted == y_te))


def knn_accuracy(encoder: Module, X_train: Any, y_train: Any, X_test: Any, y_test: Any, k: int = 5) -> float:
    """Test accuracy of a k-nearest-neighbour vote in the frozen encoder's feature space.

    Similarity is the cosine of the features; each test image takes the label most
    common among its ``k`` most similar training images (ties go to the label whose
    neighbours are more similar in total). Returns the fraction classified correctly.
    """
    op = "knn_accuracy"
    y_tr = _labels(op, _numpy(X_train), y_train, "y_train")
    y_te = _labels(op, _numpy(X_test), y_test, "y_test")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(y_tr):
        raise ValueError(f"{op}: k must be an integer in [1, {len(y_tr)}] (the number of training images), got {k!r}")
    h_tr, h_te = extract_features(encoder, X_train), extract_features(encoder, X_test)
    h_tr = h_tr / np.maximum(np.linalg.norm(h_tr, axis=1, keepdims=True), 1e-12)
    h_te = h_te / np.maximum(np.linalg.norm(h_te, axis=1, keepdims=True), 1e-12)
    sim = h_te @ h_tr.T                                              # (N_test, N_train)
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]         # (N_test, k)
    classes = int(max(y_tr.max(), y_te.max()) + 1)
    votes = np.zeros((len(y_te), classes))
    rows = np.arange(len(y_te))[:, None]
    np.add.at(votes, (rows, y_tr[nearest]), 1.0)
    similarity = np.zeros_like(votes)
    np.add.at(similarity, (rows, y_tr[nearest]), np.take_along_axis(sim, nearest, axis=1))
    # Votes are whole numbers; the total similarity (< k) added at a scale below one vote breaks ties.
    predicted = np.argmax(votes + similarity / (2.0 * k + 1.0), axis=1)
    return float(np.mean(predicted == y_te))
