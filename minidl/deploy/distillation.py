"""Knowledge distillation (Hinton, Vinyals and Dean, 2015): a small student learns from a
teacher's softened outputs as well as from the labels.

With student logits s, teacher logits t (N, K), labels y, temperature T and weight alpha:

    p_t = softmax(t / T),   log q_s = log_softmax(s / T)
    L = alpha T^2 (1/N) sum_n sum_k p_t[n, k] (log p_t[n, k] - log q_s[n, k])
        + (1 - alpha) cross_entropy(s, y)

The T^2 keeps the soft term's gradient on the same scale as the hard term's when T
changes (the gradient of the KL term w.r.t. s is (q_s - p_t) / T per sample).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import nn
from ..functional.loss import cross_entropy
from ..functional.reduce import log_softmax, softmax
from ..optim import Adam
from ..tensor import Tensor
from .inference import batch_to, predict

__all__ = ["distillation_loss", "distill"]


def distillation_loss(student_logits: Tensor, teacher_logits: Any, target: Any = None, temperature: float = 4.0,
                      alpha: float = 0.9) -> Tensor:
    """alpha T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) CE(s, y), averaged over the batch.

    student_logits (N, K) (differentiable), teacher_logits (N, K) (treated as constants),
    target (N,) class indices (required when alpha < 1). Returns a scalar Tensor.
    """
    if temperature <= 0:
        raise ValueError(f"distillation_loss: temperature must be > 0, got {temperature}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation_loss: alpha must be in [0, 1], got {alpha}")
    t_data = teacher_logits.data if isinstance(teacher_logits, Tensor) else np.asarray(teacher_logits)
    if tuple(t_data.shape) != tuple(student_logits.shape) or student_logits.ndim != 2:
        raise ValueError(f"distillation_loss: student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(t_data.shape)} must both be (N, K)")
    n = student_logits.shape[0]
    t = Tensor(t_data.astype(student_logits.dtype, copy=False))
    p_t = softmax(t / temperature, axis=1)
    log_p_t = log_softmax(t / temperature, axis=1)
    log_q_s = log_softmax(student_logits / temperature, axis=1)
    soft = (p_t * (log_p_t - log_q_s)).sum() * (temperature ** 2 / n)
    if alpha == 1.0:
        return soft * alpha
    if target is None:
        raise ValueError("distillation_loss: target labels are needed when alpha < 1")
    return soft * alpha + cross_entropy(student_logits, target) * (1.0 - alpha)


def distill(teacher: nn.Module, student: nn.Module, X: np.ndarray, y: np.ndarray, epochs: int = 20,
            lr: float = 1e-3, batch_size: int = 64, temperature: float = 4.0, alpha: float = 0.9,
            seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``student`` (in place) on (X, y) with ``distillation_loss`` against ``teacher``.

    The teacher runs in eval mode without a graph; the student uses Adam(lr). Returns the
    mean loss of each epoch.
    """
    from tqdm.auto import tqdm

    teacher_logits = predict(teacher, X, batch_size=512)
    opt = Adam(student.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    student.train()
    for _ in tqdm(range(epochs), desc="distill", disable=not progress, leave=False):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = distillation_loss(student(batch_to(X[idx], student)), batch_to(teacher_logits[idx], student),
                                     batch_to(y[idx], student), temperature, alpha)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(X))
    student.eval()
    return history

