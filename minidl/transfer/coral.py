"""Deep CORAL (Sun & Saenko, 2016): unsupervised domain adaptation by aligning covariances.

A network is trained on labelled source data while it also sees unlabelled data from a
shifted target domain. Besides the source cross-entropy, the CORAL term penalises the
difference between the second-order statistics of the two domains' activations::

    C(X) = (X - 1 mean(X))^T (X - 1 mean(X)) / (n - 1)        X (n, d)  ->  C (d, d)
    l_CORAL = ||C(S) - C(T)||_F^2 / (4 d^2)                      S (n_s, d), T (n_t, d)
    loss = CE(classifier(features(x_s)), y_s) + lambda * l_CORAL(a_s, a_t)

where a_s, a_t are the activations of the layer being aligned for a source and a target
batch (the class scores, the layer the paper aligns, or the penultimate features).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import creation
from ..autograd import no_grad
from ..functional.loss import cross_entropy
from ..nn import Module
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["covariance", "coral_loss", "train_deep_coral", "predict"]


def covariance(x: Tensor) -> Tensor:
    """Unbiased covariance of the rows of x (n, d): (x - mean)^T (x - mean) / (n - 1), (d, d)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"covariance: expected a Tensor, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"covariance: expected a batch (n, d) with n >= 2 rows, got shape {tuple(x.shape)}")
    centred = x - x.mean(axis=0, keepdims=True)
    return (centred.T @ centred) / (x.shape[0] - 1)


def coral_loss(source_features: Tensor, target_features: Tensor) -> Tensor:
    """The CORAL loss ||C_s - C_t||_F^2 / (4 d^2) between the covariances of source (n_s, d)
    and target (n_t, d) activations; a scalar Tensor. The batches may differ in size but not
    in d, and each needs at least 2 rows."""
    for name, t in (("source_features", source_features), ("target_features", target_features)):
        if not isinstance(t, Tensor):
            raise TypeError(f"coral_loss: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim != 2 or t.shape[0] < 2:
            raise ValueError(f"coral_loss: {name} must be a batch (n, d) with n >= 2, got shape {tuple(t.shape)}")
    d = source_features.shape[1]
    if target_features.shape[1] != d:
        raise ValueError(f"coral_loss: source and target features differ in width: {tuple(source_features.shape)} "
                         f"and {tuple(target_features.shape)}")
    diff = covariance(source_features) - covariance(target_features)
    return (diff * diff).sum() / (4.0 * d * d)


def train_deep_coral(features: Module, classifier: Module, X_source: np.ndarray, y_source: np.ndarray,
                     X_target: np.ndarray, coral_weight: float = 1.0, align: str = "logits", steps: int = 1000,
                     batch_size: int = 64, lr: float = 1e-3, seed: int | None = 0,
                     progress: bool = True) -> dict[str, list[float]]:
    """Train ``classifier(features(x))`` on labelled source data, aligned to unlabelled target data.

    Each step draws a source batch and a target batch of ``batch_size`` and takes one Adam
    step on CE(source logits, y) + coral_weight * coral_loss(a_s, a_t), with a = the class
    scores (``align="logits"``) or the output of ``features`` (``align="features"``).
    ``coral_weight=0`` is plain source-only training (the target batch is then skipped).

    Returns ``{"classification": [...], "coral": [...]}``, the two loss terms per step.
    """
    if align not in ("logits", "features"):
        raise ValueError(f"train_deep_coral: align must be 'logits' or 'features', got {align!r}")
    if coral_weight < 0:
        raise ValueError(f"train_deep_coral: coral_weight must be >= 0, got {coral_weight}")
    if len(X_source) != len(y_source):
        raise ValueError(f"train_deep_coral: X_source has {len(X_source)} examples but y_source {len(y_source)}")
    if batch_size < 2 or min(len(X_source), len(X_target)) < 2:
        raise ValueError(f"train_deep_coral: need batch_size >= 2 and >= 2 examples per domain, got batch_size "
                         f"{batch_size}, {len(X_source)} source and {len(X_target)} target examples")
    rng = np.random.default_rng(seed)
    params = list(features.parameters()) + list(classifier.parameters())
    opt = Adam(params, lr=lr)
    features.train()
    classifier.train()
    history: dict[str, list[float]] = {"classification": [], "coral": []}
    for _ in tqdm(range(steps), desc=f"Deep CORAL (lambda={coral_weight:g})", disable=not progress, leave=False):
        s_idx = rng.choice(len(X_source), size=batch_size, replace=batch_size > len(X_source))
        f_s = features(creation.tensor(X_source[s_idx]))
        logits_s = classifier(f_s)
        ce = cross_entropy(logits_s, creation.tensor(y_source[s_idx]))
        loss = ce
        coral_value = 0.0
        if coral_weight > 0:
            t_idx = rng.choice(len(X_target), size=batch_size, replace=batch_size > len(X_target))
            f_t = features(creation.tensor(X_target[t_idx]))
            a_s, a_t = (logits_s, classifier(f_t)) if align == "logits" else (f_s, f_t)
            coral = coral_loss(a_s, a_t)
            loss = ce + coral_weight * coral
            coral_value = coral.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["classification"].append(ce.item())
        history["coral"].append(coral_value)
    return history


def predict(features: Module, classifier: Module, X: Any) -> np.ndarray:
    """Class predictions argmax classifier(features(X)) (N,), in eval mode without a graph."""
    features.eval()
    classifier.eval()
    with no_grad():
        logits = classifier(features(creation.tensor(np.asarray(X))))
    features.train()
    classifier.train()
    return logits.numpy().argmax(axis=1)
