"""MixMatch (Berthelot et al., 2019): guessed labels, sharpened, mixed up with labeled data.

One step, for a labeled batch (x_b, p_b) (p_b one-hot, B of them) and an unlabeled batch u_b:

1. augment:  xhat_b = aug(x_b);  uhat_{b,k} = aug(u_b) for k = 1..K
2. guess:    qbar_b = (1/K) sum_k softmax(f(uhat_{b,k}))              (no gradient)
3. sharpen:  q_b = qbar_b^(1/T) / sum_c qbar_{b,c}^(1/T)              (T -> 0: one-hot)
4. mix:      W = shuffle([Xhat; Uhat]) with targets [p; q; ...; q];
             lambda ~ Beta(alpha, alpha), lambda' = max(lambda, 1 - lambda),
             x' = lambda' x1 + (1 - lambda') x2,  p' = lambda' p1 + (1 - lambda') p2,
             X' = mix(Xhat, W[:B]),  U' = mix(Uhat, W[B:])
             (lambda' >= 1/2 keeps each mixed example closer to its own first input,
             so X' stays "labeled" and U' "unlabeled")
5. loss:     L_x = (1/|X'|) sum CE(p', f(x'))                      (soft-target cross-entropy)
             L_u = (1/(C |U'|)) sum ||q' - softmax(f(u'))||^2       (squared error, bounded)
             L = L_x + lambda_u w(t) L_u,  w(t) = min(t / ramp-up, 1)   (linear ramp-up)

The ramp-up keeps the noisy guesses of an untrained model from dominating the first steps.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .. import backend, creation
from ..autograd import no_grad
from ..data.dataset import _generator
from ..functional import cross_entropy, softmax
from ..nn import Module
from ..optim import Adam
from ..tensor import Tensor
from .pseudo_label import _check_sets, _device_of, weak_augment

__all__ = ["sharpen", "guess_labels", "mixup", "linear_rampup", "mixmatch_loss", "train_mixmatch"]


def sharpen(p: Any, T: float) -> Any:
    """Sharpen class distributions p (N, C): p_c^(1/T) / sum_c' p_c'^(1/T).

    T = 1 leaves p unchanged; T < 1 makes it more confident. Works on raw arrays or
    Tensors (differentiable then). Computed as softmax(log(p) / T) for stability.
    """
    if not T > 0:
        raise ValueError(f"sharpen: temperature T must be > 0, got {T}")
    if isinstance(p, Tensor):
        return softmax(p.clip(1e-30, None).log() / float(T), axis=-1)
    xp = backend.get_array_module(p)
    logp = xp.log(xp.maximum(p, 1e-30)) / T
    logp = logp - logp.max(axis=-1, keepdims=True)
    e = xp.exp(logp)
    return e / e.sum(axis=-1, keepdims=True)


def guess_labels(model: Module, views: list, T: float = 0.5) -> Any:
    """MixMatch's label guess for K augmented views of the same unlabeled batch.

    ``views``: K Tensors (or arrays) of shape (N, ...) holding aug_k(u). Returns the raw array
    sharpen((1/K) sum_k softmax(model(view_k)), T), (N, C), computed without gradient.
    """
    if not T > 0:
        raise ValueError(f"guess_labels: temperature T must be > 0, got {T}")
    if len(views) == 0:
        raise ValueError("guess_labels: needs at least one augmented view (K >= 1)")
    shapes = {tuple(v.shape) for v in views}
    if len(shapes) != 1:
        raise ValueError(f"guess_labels: all K views must have the same shape, got {sorted(shapes)}")
    with no_grad():
        mean = None
        for v in views:
            q = softmax(model(v if isinstance(v, Tensor) else creation.tensor(v)), axis=1).data
            mean = q if mean is None else mean + q
        mean = mean / len(views)
    return sharpen(mean, T)


def mixup(x1: Any, p1: Any, x2: Any, p2: Any, lam: float) -> tuple[Any, Any]:
    """MixMatch's mixup of two batches with lambda' = max(lam, 1 - lam):

        x = lambda' x1 + (1 - lambda') x2,   p = lambda' p1 + (1 - lambda') p2

    x1, x2 (N, ...) and p1, p2 (N, C), raw arrays. Returns (x, p).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"mixup: lam must be in [0, 1], got {lam}")
    if x1.shape != x2.shape or p1.shape != p2.shape:
        raise ValueError(f"mixup: the two batches must have the same shapes, got inputs {x1.shape} vs "
                         f"{x2.shape} and targets {p1.shape} vs {p2.shape}")
    lam = max(lam, 1.0 - lam)
    return lam * x1 + (1.0 - lam) * x2, lam * p1 + (1.0 - lam) * p2


def linear_rampup(step: int, rampup_steps: int) -> float:
    """w(t) = min(max(t / rampup_steps, 0), 1); 1 at once when rampup_steps == 0."""
    if rampup_steps < 0:
        raise ValueError(f"linear_rampup: rampup_steps must be >= 0, got {rampup_steps}")
    if rampup_steps == 0:
        return 1.0
    return float(min(max(step / rampup_steps, 0.0), 1.0))


def mixmatch_loss(logits_x: Tensor, targets_x: Any, logits_u: Tensor, targets_u: Any,
                  lambda_u: float, weight: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """L = L_x + lambda_u * weight * L_u for mixed logits and soft targets.

    L_x = mean_b (-sum_c p'_bc log softmax(z_b)_c) on (B, C); L_u = mean over (M, C) of
    (q'_bc - softmax(z_b)_c)^2. Targets are raw arrays or constant Tensors of the logits' shapes.
    Returns (L, L_x, L_u).
    """
    tx = targets_x if isinstance(targets_x, Tensor) else Tensor(targets_x)
    tu = targets_u if isinstance(targets_u, Tensor) else Tensor(targets_u)
    if tx.shape != logits_x.shape or tu.shape != logits_u.shape:
        raise ValueError(f"mixmatch_loss: targets must match the logits' shapes, got labeled {tx.shape} vs "
                         f"{logits_x.shape} and unlabeled {tu.shape} vs {logits_u.shape}")
    loss_x = cross_entropy(logits_x, tx.astype(logits_x.dtype))
    diff = softmax(logits_u, axis=1) - tu.astype(logits_u.dtype)
    loss_u = (diff * diff).mean()
    return loss_x + float(lambda_u) * float(weight) * loss_u, loss_x, loss_u


def train_mixmatch(model: Module, X_labeled: np.ndarray, y_labeled: np.ndarray, X_unlabeled: np.ndarray, *,
                   num_classes: int | None = None, steps: int = 1000, batch_size: int = 32, K: int = 2,
                   T: float = 0.5, alpha: float = 0.75, lambda_u: float = 75.0, rampup_steps: int | None = None,
                   lr: float = 3e-3, weight_decay: float = 0.0, augment: Callable = weak_augment,
                   seed: int | None = None, progress: bool = True) -> tuple[Module, dict]:
    """Train ``model`` in place with MixMatch; returns (model, history).

    Each step: B = ``batch_size`` labeled and B unlabeled images, K augmentations of the
    unlabeled ones (``augment(x, rng)`` on NumPy batches), label guessing with temperature
    T, mixup with Beta(alpha, alpha), and an Adam step on L_x + lambda_u w(t) L_u with a
    linear ramp-up over ``rampup_steps`` (default: the first 40% of ``steps``).
    ``history`` holds per-step ``loss``, ``loss_x``, ``loss_u`` and ``weight`` (w(t)).
    """
    if not T > 0:
        raise ValueError(f"train_mixmatch: temperature T must be > 0, got {T}")
    if not alpha > 0:
        raise ValueError(f"train_mixmatch: alpha of Beta(alpha, alpha) must be > 0, got {alpha}")
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"train_mixmatch: K (augmentations per unlabeled image) must be >= 1, got {K!r}")
    _check_sets("train_mixmatch", X_labeled, y_labeled, X_unlabeled)
    y_labeled = np.asarray(y_labeled)
    C = int(y_labeled.max()) + 1 if num_classes is None else int(num_classes)
    rampup = int(0.4 * steps) if rampup_steps is None else int(rampup_steps)
    rng = _generator(seed)
    device = _device_of(model)
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"loss": [], "loss_x": [], "loss_u": [], "weight": []}
    B = int(batch_size)
    eye = np.eye(C, dtype=X_labeled.dtype)
    model.train()
    for step in tqdm(range(steps), desc="MixMatch", disable=not progress, leave=False):
        li = rng.choice(len(X_labeled), size=B, replace=B > len(X_labeled))
        ui = rng.choice(len(X_unlabeled), size=B, replace=B > len(X_unlabeled))
        x_hat, p = augment(X_labeled[li], rng), eye[y_labeled[li]]
        u_hats = [augment(X_unlabeled[ui], rng) for _ in range(K)]
        q = backend.to_numpy(guess_labels(model, [creation.tensor(u, device=device) for u in u_hats], T))
        q = q.astype(X_labeled.dtype)
        all_x = np.concatenate([x_hat] + u_hats)                                 # (B + K B, ...)
        all_p = np.concatenate([p] + [q] * K)
        perm = rng.permutation(len(all_x))
        lam = float(rng.beta(alpha, alpha))
        mixed_x, mixed_p = mixup(all_x, all_p, all_x[perm], all_p[perm], lam)
        logits = model(creation.tensor(mixed_x.astype(X_labeled.dtype), device=device))
        targets = creation.tensor(mixed_p.astype(X_labeled.dtype), device=device)
        w = linear_rampup(step, rampup)
        loss, loss_x, loss_u = mixmatch_loss(logits[:B], targets[:B], logits[B:], targets[B:], lambda_u, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["loss_x"].append(loss_x.item())
        history["loss_u"].append(loss_u.item())
        history["weight"].append(w)
    return model, history
