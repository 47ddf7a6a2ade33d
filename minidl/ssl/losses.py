"""The losses of self-supervised learning, as differentiable functions of embeddings.

Contrastive losses pull two views of one image together and push other images away:

- ``nt_xent``  (SimCLR): every view of a batch against every other view of the batch.
- ``info_nce`` (MoCo): each query against its key and a queue of negative keys.

Non-contrastive losses have no negatives; a predictor and a stop-gradient (BYOL, SimSiam)
or balanced cluster assignments (SwAV) keep the embeddings from collapsing to a constant:

- ``byol_loss``:    2 - 2 cos(p, sg(z)), the MSE between unit vectors.
- ``simsiam_loss``: -cos(p, sg(z)).
- ``swav_loss``:    swapped prediction of Sinkhorn-Knopp codes (``sinkhorn_knopp``).

``sg`` is the stop-gradient (``Tensor.detach``). Embeddings are (N, D) Tensors, one row
per image; every loss returns a scalar Tensor (the mean over the batch).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..functional.loss import cosine_similarity, normalize
from ..functional.reduce import log_softmax, logsumexp
from ..functional.shape import concat
from ..tensor import Tensor, _as_array_like, _new_tensor

__all__ = ["nt_xent", "info_nce", "byol_loss", "simsiam_loss", "sinkhorn_knopp", "swav_loss"]


# --------------------------------------------------------------------------- checks

def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else _new_tensor(_as_array_like(x), False, None, 0)


def _embeddings(op: str, x: Any, name: str, what: str = "(N, D) embeddings") -> Tensor:
    t = _as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{op}: {name} must be {what}, one row per sample; got shape {t.shape}")
    if t.dtype.kind != "f":
        raise TypeError(f"{op}: {name} must be floating point, got dtype {t.dtype}")
    return t


def _two_views(op: str, a: Any, b: Any, names: tuple[str, str]) -> tuple[Tensor, Tensor]:
    a, b = _embeddings(op, a, names[0]), _embeddings(op, b, names[1])
    if a.shape != b.shape:
        raise ValueError(f"{op}: {names[0]} and {names[1]} must have the same shape (N, D), one row per "
                         f"image in both; got {a.shape} and {b.shape}")
    return a, b


def _check_positive(op: str, value: float, name: str) -> float:
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{op}: {name} must be a positive number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- contrastive

def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """SimCLR's normalized-temperature cross-entropy over the 2N views of a batch.

    The rows of ``z1`` and ``z2`` (N, D) are two views of the same N images. With
    ``u = normalize([z1; z2])`` (2N, D) and ``s_ij = u_i . u_j / temperature``, view i's
    positive is the other view of its image, ``p(i) = (i + N) mod 2N``, and

        loss = 1/(2N) sum_i [ -s_i,p(i) + log sum_{j != i} exp(s_ij) ]

    (a softmax cross-entropy over the 2N - 1 other views, with 2N - 2 negatives).
    Needs N >= 2 (with one image there are no negatives). Returns a scalar.
    """
    op = "nt_xent"
    z1, z2 = _two_views(op, z1, z2, ("z1", "z2"))
    tau = _check_positive(op, temperature, "temperature")
    n = z1.shape[0]
    if n < 2:
        raise ValueError(f"{op}: needs a batch of at least 2 images (the other images are the negatives); "
                         f"got z1 and z2 of shape {z1.shape}")
    u = normalize(concat([z1, z2], axis=0), dim=1)
    s = (u @ u.T) * (1.0 / tau)
    rows = np.arange(2 * n)
    positive = (rows + n) % (2 * n)
    # Row i of `others` lists every column except i (a view is not compared with itself):
    # columns j < i stay j, columns j >= i shift to j + 1.
    cols = np.arange(2 * n - 1)
    others = np.where(cols[None, :] < rows[:, None], cols[None, :], cols[None, :] + 1)
    log_denominator = logsumexp(s[rows[:, None], others], axis=1)
    return (log_denominator - s[rows, positive]).mean()


def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float = 0.07) -> Tensor:
    """MoCo's InfoNCE: each query against its own key (positive) and a queue of negatives.

    ``q`` and ``k`` are (N, D): query i and key i are two views of image i; ``queue`` is
    (K, D), keys of earlier batches. All three are L2-normalised along D first (MoCo feeds
    unit vectors already; normalising again changes nothing). With logits
    ``l_i = [q_i . k_i, q_i . queue_1, ..., q_i . queue_K] / temperature``:

        loss = 1/N sum_i [ -l_i0 + log sum_j exp(l_ij) ]

    i.e. cross-entropy with the positive as class 0. Gradients flow into all three inputs;
    MoCo computes ``k`` and ``queue`` without gradients (momentum encoder). Returns a scalar.
    """
    op = "info_nce"
    q, k = _two_views(op, q, k, ("q", "k"))
    queue = _embeddings(op, queue, "queue")
    tau = _check_positive(op, temperature, "temperature")
    if queue.shape[1] != q.shape[1]:
        raise ValueError(f"{op}: queue must be (K, D) with D = {q.shape[1]} (the width of q and k); "
                         f"got shape {queue.shape}")
    if queue.shape[0] < 1:
        raise ValueError(f"{op}: the queue of negatives is empty (shape {queue.shape}); "
                         "it needs at least one key")
    q, k, queue = normalize(q, dim=1), normalize(k, dim=1), normalize(queue, dim=1)
    positive = (q * k).sum(axis=1, keepdims=True)               # (N, 1)
    negatives = q @ queue.T                                      # (N, K)
    logits = concat([positive, negatives], axis=1) * (1.0 / tau)  # (N, 1 + K)
    return (logsumexp(logits, axis=1) - logits[:, 0]).mean()


# --------------------------------------------------------------------------- non-contrastive

def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """BYOL's regression loss between an online prediction and a target projection.

    ``p`` and ``z`` are (N, D); ``z`` (the target network's output) is detached, so no
    gradient reaches it:

        loss = 1/N sum_i || p_i/||p_i|| - sg(z_i)/||z_i|| ||^2 = 1/N sum_i (2 - 2 cos(p_i, z_i))

    In [0, 4]; 0 when every prediction points along its target. Returns a scalar.
    """
    p, z = _two_views("byol_loss", p, z, ("p", "z"))
    return (2.0 - 2.0 * cosine_similarity(p, z.detach(), dim=1)).mean()


def simsiam_loss(p: Tensor, z: Tensor) -> Tensor:
    """SimSiam's negative cosine similarity with a stop-gradient on the target.

    ``p`` (the predictor's output) and ``z`` (the other view's projection) are (N, D):

        loss = -1/N sum_i cos(p_i, sg(z_i))

    In [-1, 1]; no gradient reaches ``z`` (the stop-gradient is what prevents collapse).
    Returns a scalar.
    """
    p, z = _two_views("simsiam_loss", p, z, ("p", "z"))
    return -cosine_similarity(p, z.detach(), dim=1).mean()


# --------------------------------------------------------------------------- SwAV

def sinkhorn_knopp(scores: Tensor, epsilon: float = 0.05, iters: int = 3) -> Tensor:
    """Soft, equipartitioned assignments of N samples to K prototypes (no gradient).

    ``scores`` is (N, K) (sample-prototype similarities). Starting from
    ``Q = exp(scores / epsilon)``, ``iters`` rounds of alternate scaling make every
    prototype receive a total mass of 1/K and every sample a mass of 1/N:

        Q <- Q / (K * Q.sum(over samples))    then    Q <- Q / (N * Q.sum(over prototypes))

    and the result is ``N * Q`` (N, K): each row a distribution over prototypes, the
    prototypes used equally over the batch. Computed in the log domain (the same
    arithmetic, no overflow or underflow for small ``epsilon``). Returns a constant Tensor.
    """
    op = "sinkhorn_knopp"
    scores = _embeddings(op, scores, "scores", "(N, K) similarities to K prototypes")
    eps = _check_positive(op, epsilon, "epsilon")
    if isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"{op}: iters must be an integer >= 1, got {iters!r}")
    xp = backend.get_array_module(scores.data)
    n, k = scores.shape
    log_q = scores.data.astype(np.float64) / eps

    def log_sum(a, axis):
        m = a.max(axis=axis, keepdims=True)
        return m + xp.log(xp.exp(a - m).sum(axis=axis, keepdims=True))

    for _ in range(int(iters)):
        log_q = log_q - log_sum(log_q, axis=0) - math.log(k)  # each prototype: mass 1/K
        log_q = log_q - log_sum(log_q, axis=1) - math.log(n)  # each sample: mass 1/N
    codes = xp.exp(log_q + math.log(n)).astype(scores.dtype)
    return _new_tensor(codes, False, None, 0)


def swav_loss(scores1: Tensor, scores2: Tensor, temperature: float = 0.1, sinkhorn_iters: int = 3,
              epsilon: float = 0.05, codes: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """SwAV's swapped prediction: predict one view's cluster code from the other view.

    ``scores1``, ``scores2`` (N, K) are the two views' similarities to K prototypes
    (unit embeddings times unit prototypes). The codes ``q_v = sinkhorn_knopp(scores_v,
    epsilon, sinkhorn_iters)`` are targets without gradient; with
    ``p_v = softmax(scores_v / temperature)`` over prototypes,

        loss = -1/(2N) sum_i [ q2_i . log p1_i + q1_i . log p2_i ]

    ``codes=(q1, q2)`` supplies the codes instead of computing them (for tests, or a
    queue-augmented Sinkhorn). Returns a scalar.
    """
    op = "swav_loss"
    s1, s2 = _two_views(op, scores1, scores2, ("scores1", "scores2"))
    tau = _check_positive(op, temperature, "temperature")
    if codes is None:
        with no_grad():
            q1 = sinkhorn_knopp(s1.detach(), epsilon, sinkhorn_iters)
            q2 = sinkhorn_knopp(s2.detach(), epsilon, sinkhorn_iters)
    else:
        if len(codes) != 2:
            raise ValueError(f"{op}: codes must be a pair (q1, q2), got {len(codes)} items")
        q1, q2 = (_as_tensor(q).detach() for q in codes)
        if q1.shape != s1.shape or q2.shape != s1.shape:
            raise ValueError(f"{op}: codes must have the scores' shape {s1.shape}; got {q1.shape} and {q2.shape}")
    log_p1 = log_softmax(s1 * (1.0 / tau), axis=1)
    log_p2 = log_softmax(s2 * (1.0 / tau), axis=1)
    cross = (q2 * log_p1).sum(axis=1) + (q1 * log_p2).sum(axis=1)
    return cross.mean() * -0.5
