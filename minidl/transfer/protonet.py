"""Prototypical networks (Snell, Swersky & Zemel, 2017) for few-shot classification.

An N-way K-shot episode draws N classes and, from each, K labelled "support" examples and
Q "query" examples. An encoder f maps every example to a vector; each class's prototype is
the mean of its support embeddings, and a query is classified by its squared Euclidean
distance to the prototypes::

    c_n = (1/K) sum_{i : y_i = n} f(x_i)                 prototypes (N, D)
    logits[q, n] = -||f(x_q) - c_n||^2                  (Q_total, N)
    p(y = n | x_q) = softmax_n(logits[q])

Training (episodic) minimises the cross-entropy of the query predictions over random
episodes from the training classes; evaluation runs episodes on classes the encoder never
saw, so the classifier for them is built from the K support examples alone.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import creation
from ..autograd import no_grad
from ..functional.loss import cross_entropy
from ..nn import Module
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["sample_episode", "prototypes", "prototypical_logits", "prototypical_loss", "train_protonet",
           "evaluate_protonet"]


def _positive_int(name: str, value: Any, op: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{op}: {name} must be a positive integer, got {value!r}")
    return int(value)


def sample_episode(labels: np.ndarray, n_way: int, k_shot: int, q_query: int, rng: np.random.Generator,
                   classes: Any = None) -> dict[str, np.ndarray]:
    """Draw one N-way K-shot episode with Q queries per class from a labelled set.

    Args:
        labels: (M,) class of every example. n_way, k_shot, q_query: N, K, Q.
        rng: NumPy generator. classes: the classes to draw from (default: all in ``labels``).

    Returns a dict of int64 arrays: ``classes`` (N,) the chosen classes; ``support`` (N K,)
    and ``query`` (N Q,) indices into ``labels``, class-major and disjoint;
    ``support_labels`` (N K,) and ``query_labels`` (N Q,) the episode's labels 0..N-1.
    """
    op = "sample_episode"
    n_way, k_shot, q_query = (_positive_int(n, v, op) for n, v in (("n_way", n_way), ("k_shot", k_shot),
                                                                    ("q_query", q_query)))
    labels = np.asarray(labels)
    pool = np.unique(labels) if classes is None else np.unique(np.asarray(classes))
    if len(pool) < n_way:
        raise ValueError(f"{op}: {n_way}-way episodes need at least {n_way} classes, got {len(pool)}: {pool.tolist()}")
    chosen = rng.choice(pool, size=n_way, replace=False)
    support, query = [], []
    for c in chosen:
        members = np.flatnonzero(labels == c)
        if len(members) < k_shot + q_query:
            raise ValueError(f"{op}: class {c} has {len(members)} examples, fewer than k_shot + q_query = "
                             f"{k_shot + q_query}")
        picked = rng.choice(members, size=k_shot + q_query, replace=False)
        support.append(picked[:k_shot])
        query.append(picked[k_shot:])
    return {"classes": chosen.astype(np.int64), "support": np.concatenate(support).astype(np.int64),
            "query": np.concatenate(query).astype(np.int64),
            "support_labels": np.repeat(np.arange(n_way), k_shot).astype(np.int64),
            "query_labels": np.repeat(np.arange(n_way), q_query).astype(np.int64)}


def prototypes(support_embeddings: Tensor, support_labels: Any, n_way: int) -> Tensor:
    """Class means c_n = mean of the rows of ``support_embeddings`` (S, D) whose label is n:
    (N, D), computed as M @ E with M[n, i] = [y_i = n] / #{i : y_i = n}, so it differentiates.
    Every class 0..n_way-1 must have at least one support example."""
    labels = np.asarray(support_labels.numpy() if isinstance(support_labels, Tensor) else support_labels)
    if support_embeddings.ndim != 2 or labels.shape != (support_embeddings.shape[0],):
        raise ValueError(f"prototypes: expected embeddings (S, D) and labels (S,), got {tuple(support_embeddings.shape)} "
                         f"and {labels.shape}")
    counts = np.bincount(labels, minlength=n_way) if labels.size else np.zeros(n_way, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= n_way):
        raise ValueError(f"prototypes: labels must lie in 0..{n_way - 1}, got range [{labels.min()}, {labels.max()}]")
    if (counts == 0).any():
        raise ValueError(f"prototypes: classes {np.flatnonzero(counts == 0).tolist()} have no support example")
    mean = (np.arange(n_way)[:, None] == labels[None, :]) / counts[:, None]
    mean_op = creation.tensor(mean.astype(support_embeddings.dtype), device=support_embeddings.device)
    return mean_op @ support_embeddings


def prototypical_logits(query_embeddings: Tensor, protos: Tensor) -> Tensor:
    """logits[q, n] = -||x_q - c_n||^2 = -(||x_q||^2 - 2 x_q . c_n + ||c_n||^2):
    query (Q, D), prototypes (N, D) -> (Q, N)."""
    if query_embeddings.ndim != 2 or protos.ndim != 2 or query_embeddings.shape[1] != protos.shape[1]:
        raise ValueError(f"prototypical_logits: expected query (Q, D) and prototypes (N, D) with the same D, got "
                         f"{tuple(query_embeddings.shape)} and {tuple(protos.shape)}")
    q2 = (query_embeddings * query_embeddings).sum(axis=1, keepdims=True)      # (Q, 1)
    c2 = (protos * protos).sum(axis=1).reshape(1, -1)                           # (1, N)
    return 2.0 * (query_embeddings @ protos.T) - q2 - c2


def prototypical_loss(support_embeddings: Tensor, support_labels: Any, query_embeddings: Tensor,
                      query_labels: Any, n_way: int) -> tuple[Tensor, float]:
    """Cross-entropy of the query labels under softmax(prototypical_logits), and the
    accuracy of argmax(logits) on the queries. Returns (loss, accuracy)."""
    logits = prototypical_logits(query_embeddings, prototypes(support_embeddings, support_labels, n_way))
    target = np.asarray(query_labels)
    loss = cross_entropy(logits, creation.tensor(target, device=logits.device))
    accuracy = float((logits.numpy().argmax(axis=1) == target).mean())
    return loss, accuracy


def _episode_loss(encoder: Module, X: np.ndarray, episode: dict, n_way: int, device: str) -> tuple[Tensor, float]:
    """Encode the support and query images of one episode in a single batch and score it."""
    idx = np.concatenate([episode["support"], episode["query"]])
    emb = encoder(creation.tensor(X[idx], device=device))
    n_support = len(episode["support"])
    return prototypical_loss(emb[:n_support], episode["support_labels"], emb[n_support:], episode["query_labels"],
                             n_way)


def train_protonet(encoder: Module, X: np.ndarray, y: np.ndarray, episodes: int = 1000, n_way: int = 5,
                   k_shot: int = 5, q_query: int = 15, lr: float = 1e-3, seed: int | None = 0,
                   device: str = "cpu", progress: bool = True) -> list[float]:
    """Episodic training: ``episodes`` Adam steps, each on one N-way K-shot episode drawn
    from (X, y). The learning rate is halved every quarter of the run. Returns the loss per
    episode."""
    episodes = _positive_int("episodes", episodes, "train_protonet")
    if len(X) != len(y):
        raise ValueError(f"train_protonet: X has {len(X)} examples but y has {len(y)} labels")
    rng = np.random.default_rng(seed)
    opt = Adam(encoder.parameters(), lr=lr)
    encoder.train()
    losses = []
    bar = tqdm(range(episodes), desc="prototypical network", disable=not progress, leave=False)
    for step in bar:
        opt.param_groups[0]["lr"] = lr * 0.5 ** (4 * step // episodes)
        loss, _ = _episode_loss(encoder, X, sample_episode(y, n_way, k_shot, q_query, rng), n_way, device)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return losses


def evaluate_protonet(encoder: Module | None, X: np.ndarray, y: np.ndarray, episodes: int = 600, n_way: int = 5,
                      k_shot: int = 5, q_query: int = 15, seed: int | None = 0,
                      device: str = "cpu") -> tuple[float, float]:
    """Mean query accuracy over ``episodes`` random N-way K-shot episodes drawn from (X, y),
    and the half-width of its 95% confidence interval (1.96 standard errors).

    ``encoder=None`` classifies the raw inputs (flattened) by their nearest prototype, the
    reference that shows what the learned embedding adds. The encoder runs in eval mode.
    """
    episodes = _positive_int("episodes", episodes, "evaluate_protonet")
    rng = np.random.default_rng(seed)
    flat = X.reshape(len(X), -1)
    if encoder is not None:
        encoder.eval()
    accs = []
    with no_grad():
        for _ in range(episodes):
            ep = sample_episode(y, n_way, k_shot, q_query, rng)
            if encoder is None:
                idx = np.concatenate([ep["support"], ep["query"]])
                emb = creation.tensor(flat[idx].astype(np.float64))
                n_s = len(ep["support"])
                _, acc = prototypical_loss(emb[:n_s], ep["support_labels"], emb[n_s:], ep["query_labels"], n_way)
            else:
                _, acc = _episode_loss(encoder, X, ep, n_way, device)
            accs.append(acc)
    if encoder is not None:
        encoder.train()
    accs = np.asarray(accs)
    half_width = 1.96 * accs.std(ddof=1) / math.sqrt(len(accs)) if len(accs) > 1 else 0.0
    return float(accs.mean()), float(half_width)
