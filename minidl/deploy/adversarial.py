"""Adversarial examples and adversarial training, built on input gradients.

FGSM (Goodfellow et al., 2015), one step of size eps in the sign of the input gradient:

    x_adv = clip(x + eps sign(dL/dx), lo, hi)

PGD (Madry et al., 2018), ``steps`` steps of size alpha, each projected back onto the L-inf
ball of radius eps around x (from a random start inside the ball):

    x_{k+1} = clip(Proj_{|x' - x|_inf <= eps}(x_k + alpha sign(dL/dx_k)), lo, hi)

Adversarial training minimises (1 - w) L(x, y) + w L(x_adv, y), with x_adv made against
the current model at every step. The gradient with respect to the input comes from
``minidl.grad``, so the parameters' ``.grad`` is never touched by an attack.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .. import nn
from ..autograd import grad
from ..functional.loss import cross_entropy
from ..optim import Adam
from ..tensor import Tensor
from .. import backend
from .inference import batch_to, predict

__all__ = ["fgsm", "pgd", "accuracy_under_attack", "adversarial_training"]


def _input_gradient(model: Callable, x: np.ndarray, y: np.ndarray, loss_fn: Callable) -> np.ndarray:
    """dL/dx as a NumPy array (computed on the model's device)."""
    xt = batch_to(np.array(x, copy=True), model).requires_grad_()
    loss = loss_fn(model(xt), batch_to(y, model))
    (g,) = grad(loss, xt)
    return backend.to_numpy(g.data)


class _eval_mode:
    """Run a module in eval mode inside the block, restoring each sub-module's mode after."""

    def __init__(self, model: Any):
        self.model = model

    def __enter__(self):
        if isinstance(self.model, nn.Module):
            self.modes = [(m, m.training) for m in self.model.modules()]
            self.model.eval()

    def __exit__(self, *exc):
        if isinstance(self.model, nn.Module):
            for m, mode in self.modes:
                object.__setattr__(m, "training", mode)
        return False


def fgsm(model: Callable, x: Any, y: Any, eps: float, loss_fn: Callable = cross_entropy,
         clip: tuple | None = (0.0, 1.0)) -> np.ndarray:
    """x_adv = clip(x + eps sign(dL/dx)): x (N, ...) inputs, y (N,) labels; returns x_adv (N, ...).

    The model runs in eval mode; ``clip=None`` leaves the input range unbounded."""
    if eps < 0:
        raise ValueError(f"fgsm: eps must be >= 0, got {eps}")
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    with _eval_mode(model):
        g = _input_gradient(model, x, y, loss_fn)
    x_adv = x + eps * np.sign(g).astype(x.dtype)
    return np.clip(x_adv, *clip).astype(x.dtype) if clip is not None else x_adv


def pgd(model: Callable, x: Any, y: Any, eps: float, alpha: float | None = None, steps: int = 10,
        random_start: bool = True, loss_fn: Callable = cross_entropy, clip: tuple | None = (0.0, 1.0),
        seed: int = 0) -> np.ndarray:
    """Projected gradient descent in the L-inf ball of radius eps (step alpha, default eps/4)."""
    if eps < 0 or steps < 1:
        raise ValueError(f"pgd: need eps >= 0 and steps >= 1, got eps={eps}, steps={steps}")
    alpha = eps / 4 if alpha is None else alpha
    x = np.asarray(x.data if isinstance(x, Tensor) else x)
    y = np.asarray(y.data if isinstance(y, Tensor) else y)
    rng = np.random.default_rng(seed)
    x_adv = x + rng.uniform(-eps, eps, x.shape).astype(x.dtype) if random_start else x.copy()
    if clip is not None:
        x_adv = np.clip(x_adv, *clip)
    with _eval_mode(model):
        for _ in range(steps):
            g = _input_gradient(model, x_adv, y, loss_fn)
            x_adv = np.clip(x_adv + alpha * np.sign(g), x - eps, x + eps)
            if clip is not None:
                x_adv = np.clip(x_adv, *clip)
    return x_adv.astype(x.dtype)


def accuracy_under_attack(model: Callable, X: np.ndarray, y: np.ndarray, epsilons: Sequence[float],
                          attack: str = "fgsm", batch_size: int = 256, **attack_kwargs: Any) -> dict[float, float]:
    """{eps: accuracy on attacked X} for each eps (eps = 0 is the clean accuracy)."""
    attacks = {"fgsm": fgsm, "pgd": pgd}
    if attack not in attacks:
        raise ValueError(f"accuracy_under_attack: attack must be 'fgsm' or 'pgd', got {attack!r}")
    out = {}
    for eps in epsilons:
        correct = 0
        for start in range(0, len(X), batch_size):
            xb, yb = X[start:start + batch_size], y[start:start + batch_size]
            xa = attacks[attack](model, xb, yb, eps, **attack_kwargs) if eps > 0 else xb
            correct += int((predict(model, xa).argmax(axis=1) == yb).sum())
        out[float(eps)] = correct / len(X)
    return out


def adversarial_training(model: nn.Module, X: np.ndarray, y: np.ndarray, eps: float, epochs: int = 10,
                         lr: float = 1e-3, batch_size: int = 64, attack: str = "fgsm", adv_weight: float = 0.5,
                         pgd_steps: int = 5, seed: int = 0, progress: bool = True) -> list[float]:
    """Train ``model`` in place on (1 - w) CE(x) + w CE(x_adv) with Adam(lr); x_adv is made by
    ``attack`` ("fgsm" or "pgd") against the current model. Returns the mean loss per epoch."""
    from tqdm.auto import tqdm

    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"adversarial_training: attack must be 'fgsm' or 'pgd', got {attack!r}")
    opt = Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in tqdm(range(epochs), desc="adversarial training", disable=not progress, leave=False):
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = X[idx], y[idx]
            if attack == "fgsm":
                xa = fgsm(model, xb, yb, eps)
            else:
                xa = pgd(model, xb, yb, eps, steps=pgd_steps, seed=seed + epoch * 7919 + start)
            model.train()
            opt.zero_grad()
            target = batch_to(yb, model)
            loss = cross_entropy(model(batch_to(xb, model)), target) * (1.0 - adv_weight) + \
                cross_entropy(model(batch_to(xa, model)), target) * adv_weight
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(X))
    model.eval()
    return history
