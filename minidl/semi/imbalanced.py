"""Learning from imbalanced classes: class weights, the focal loss, a class-balanced sampler.

When a few classes hold most of the samples, plain cross-entropy spends its gradient on
them and the rare classes are predicted poorly. Three standard remedies:

- re-weight the loss per class (``class_weights``, passed as ``F.cross_entropy(weight=)``),
- down-weight the easy, well-classified samples (``focal_loss``),
- re-sample so that every class is seen equally often (``ClassBalancedSampler``).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import backend
from ..data.dataset import _generator
from ..functional import log_softmax
from ..tensor import Tensor

__all__ = ["class_weights", "focal_loss", "ClassBalancedSampler"]


def _labels(y: Any, op: str) -> np.ndarray:
    y = y.data if isinstance(y, Tensor) else y
    y = np.asarray(backend.to_numpy(y) if not isinstance(y, (list, tuple)) else y)
    if y.ndim != 1 or y.size == 0 or y.dtype.kind not in "iu":
        raise ValueError(f"{op}: labels must be a non-empty 1-D integer array, got shape {y.shape} "
                         f"and dtype {y.dtype}")
    if y.min() < 0:
        raise ValueError(f"{op}: labels must be >= 0, got {int(y.min())}")
    return y.astype(np.int64)


def class_weights(y: Any, num_classes: int | None = None, scheme: str = "inverse",
                  beta: float = 0.999) -> np.ndarray:
    """Per-class loss weights (C,) float32 from the labels y (N,) with counts n_c.

    - ``"inverse"``: w_c = N / (C' n_c), C' the number of classes present (scikit-learn's
      "balanced"): a class with the average count gets 1, a class 10x rarer gets 10x more.
    - ``"effective"`` (Cui et al., 2019): the effective number of samples
      E_c = (1 - beta^n_c) / (1 - beta), w_c = 1 / E_c, rescaled so that the weights of
      the present classes sum to C'. beta -> 0 gives equal weights, beta -> 1 "inverse".

    A class with no sample gets weight 0. ``num_classes`` defaults to max(y) + 1.
    """
    y = _labels(y, "class_weights")
    C = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if C <= y.max():
        raise ValueError(f"class_weights: num_classes={C} but the labels go up to {int(y.max())}")
    counts = np.bincount(y, minlength=C).astype(np.float64)
    present = counts > 0
    w = np.zeros(C, dtype=np.float64)
    if scheme == "inverse":
        w[present] = y.size / (present.sum() * counts[present])
    elif scheme == "effective":
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"class_weights: beta must be in [0, 1), got {beta}")
        effective = (1.0 - beta ** counts[present]) / (1.0 - beta)
        w[present] = 1.0 / effective
        w[present] *= present.sum() / w[present].sum()
    else:
        raise ValueError(f"class_weights: scheme must be 'inverse' or 'effective', got {scheme!r}")
    return w.astype(np.float32)


def focal_loss(logits: Tensor, target: Any, gamma: float = 2.0, alpha: Any = None,
               reduction: str = "mean") -> Tensor:
    """The multi-class focal loss (Lin et al., 2017) of logits (N, C) and class indices (N,).

        p_t = softmax(logits)[n, t_n]
        loss_n = -alpha_{t_n} (1 - p_t)^gamma log p_t

    ``gamma`` >= 0 focuses on hard samples (gamma = 0 and alpha = None is cross-entropy);
    ``alpha`` is None (1 for all), a float (the same for all classes) or per-class weights
    (C,). ``reduction``: ``"mean"`` (over N), ``"sum"`` or ``"none"`` ((N,)). Built from
    differentiable ops, so gradients of any order flow to the logits:

        d loss_n / d z_c = alpha_t [gamma (1-p_t)^(gamma-1) p_t log p_t - (1-p_t)^gamma] (1[c=t] - p_c)
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"focal_loss: logits must be a Tensor (N, C), got {type(logits).__name__}")
    if logits.ndim != 2 or logits.dtype.kind != "f":
        raise ValueError(f"focal_loss: logits must be a floating (N, C) Tensor, got shape {logits.shape} "
                         f"and dtype {logits.dtype}")
    if not gamma >= 0:
        raise ValueError(f"focal_loss: gamma must be >= 0, got {gamma}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"focal_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    N, C = logits.shape
    xp = backend.get_array_module(logits.data)
    t = target.data if isinstance(target, Tensor) else xp.asarray(target)
    if t.shape != (N,) or t.dtype.kind not in "iu":
        raise ValueError(f"focal_loss: target must be ({N},) integer class indices for logits {logits.shape}, "
                         f"got shape {tuple(t.shape)} and dtype {t.dtype}")
    if N and (int(t.min()) < 0 or int(t.max()) >= C):
        raise ValueError(f"focal_loss: target class indices must be in [0, {C}), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    onehot = (t[:, None] == xp.arange(C)[None, :]).astype(logits.dtype)           # (N, C)
    log_pt = (log_softmax(logits, axis=1) * Tensor(onehot)).sum(axis=1)             # (N,)
    pt = log_pt.exp()
    loss = -log_pt if gamma == 0 else -((1.0 - pt) ** float(gamma)) * log_pt
    if alpha is not None:
        a = xp.asarray(backend.to_numpy(alpha.data) if isinstance(alpha, Tensor) else alpha,
                       dtype=logits.dtype)
        if a.ndim == 0:
            a = xp.full((C,), float(a), dtype=logits.dtype)
        if a.shape != (C,):
            raise ValueError(f"focal_loss: alpha must be a number or ({C},) per-class weights, got shape "
                             f"{tuple(a.shape)}")
        loss = loss * Tensor(a[t])
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class ClassBalancedSampler:
    """Draws indices so that every class comes up equally often, for ``DataLoader(sampler=)``.

    Each draw picks a class uniformly among the classes present, then a sample of that
    class uniformly: P(i) = 1 / (C' n_{y_i}). With ``replacement=True`` (default) there are
    ``num_samples`` independent draws per epoch (default: N). With ``replacement=False`` each
    epoch takes min_c n_c samples of every class without repeats (undersampling), shuffled;
    ``num_samples`` must then be left None.

    Args:
        labels: (N,) integer class labels of the dataset.
        num_samples: draws per epoch (``len(sampler)``).
        replacement: see above.
        seed: seed of the sampler's own ``numpy.random.Generator`` (None: from minidl's
            global generator, which ``minidl.manual_seed`` resets).
    """

    def __init__(self, labels: Any, num_samples: int | None = None, replacement: bool = True,
                 seed: int | np.random.Generator | None = None) -> None:
        y = _labels(labels, "ClassBalancedSampler")
        self.classes, inverse, self.counts = np.unique(y, return_inverse=True, return_counts=True)
        self.members = [np.flatnonzero(inverse == j) for j in range(self.classes.size)]
        self.replacement = bool(replacement)
        if not self.replacement:
            if num_samples is not None:
                raise ValueError("ClassBalancedSampler: num_samples is fixed to C' * min_c n_c when "
                                 "replacement=False; leave it None")
            self.num_samples = int(self.classes.size * self.counts.min())
        else:
            n = y.size if num_samples is None else num_samples
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"ClassBalancedSampler: num_samples must be a positive integer, got {n!r}")
            self.num_samples = int(n)
        self.rng = _generator(seed)

    def __iter__(self) -> Iterator[int]:
        if self.replacement:
            cls = self.rng.integers(self.classes.size, size=self.num_samples)
            picks = np.empty(self.num_samples, dtype=np.int64)
            for j, members in enumerate(self.members):
                where = np.flatnonzero(cls == j)
                picks[where] = members[self.rng.integers(members.size, size=where.size)]
            return iter(picks.tolist())
        per_class = int(self.counts.min())
        picks = np.concatenate([self.rng.choice(m, size=per_class, replace=False) for m in self.members])
        return iter(self.rng.permutation(picks).tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
