"""The loop every self-supervised method shares: two augmented views of each batch of
unlabeled images, the method's loss on them, one optimizer step, repeat.

A method is an ``nn.Module`` whose ``forward(view1, view2)`` returns the loss; it may
define ``after_step(step, total_steps)`` for what follows each optimizer step (a momentum
update, a queue push). The optimizer is Adam on the parameters that require a gradient
(momentum networks are frozen and skipped), with the learning rate decayed to zero by a
cosine over all steps.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..data.dataset import _generator
from ..nn import Module
from ..optim import Adam
from ..optim.lr_scheduler import CosineAnnealingLR
from ..tensor import Tensor
from .augment import TwoViews, digits_augmentation

__all__ = ["as_images", "run_pretraining"]


def as_images(data: Any, op: str) -> np.ndarray:
    """Unlabeled images as a NumPy array (N, C, H, W), float32 unless given as float64:
    accepts an array, a Tensor, or a dataset whose items are images or (image, label) pairs."""
    if isinstance(data, Tensor):
        data = data.numpy()
    elif not isinstance(data, np.ndarray) and hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        items = [data[i] for i in range(len(data))]
        data = np.stack([np.asarray(it[0] if isinstance(it, tuple) else it) for it in items])
    data = np.asarray(data)
    if data.ndim != 4:
        raise ValueError(f"{op}: unlabeled_data must be images (N, C, H, W), got shape {data.shape}")
    # float64 stays float64 (as for minidl.tensor); anything else becomes float32.
    return np.ascontiguousarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32)


def run_pretraining(method: Module, images: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                    weight_decay: float = 0.0, seed: int | None = 0, views: TwoViews | None = None,
                    progress: bool = True, desc: str = "pretrain", history: list | None = None) -> list[float]:
    """Train ``method`` (forward(view1, view2) -> loss) on ``images`` (N, C, H, W).

    Each epoch visits the images in a fresh random order, in batches of ``batch_size``
    (a last batch of fewer than 2 images is dropped: contrastive losses and BatchNorm need
    two). ``views`` makes the two views (default: ``TwoViews(digits_augmentation())``);
    ``seed`` fixes the order and the augmentations. Returns (and appends to ``history``,
    if given) the mean loss of each epoch.
    """
    op = desc
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"{op}: epochs must be a positive integer, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"{op}: batch_size must be an integer >= 2 (two images at least), got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"{op}: lr must be positive, got {lr}")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"{op}: needs at least 2 unlabeled images, got {n}")
    rng = _generator(seed)
    if views is None:
        views = TwoViews(digits_augmentation(seed=rng))
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = Adam(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = sum(1 for start in range(0, n, batch_size) if min(batch_size, n - start) >= 2)
    total = epochs * steps_per_epoch
    scheduler = CosineAnnealingLR(optimizer, T_max=total)
    losses = [] if history is None else history
    after_step = getattr(method, "after_step", None)
    method.train()
    bar = _progress_bar(epochs, desc, progress)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(n)
        total_loss, count = 0.0, 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            if idx.size < 2:
                continue
            v1, v2 = views(images[idx])
            loss = method(Tensor(v1), Tensor(v2))
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"{op}: the loss became {value} at step {step}; lower lr")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if after_step is not None:
                after_step(step, total)
            total_loss += value * idx.size
            count += idx.size
        losses.append(total_loss / count)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.update(1)
    bar.close()
    return losses


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="epoch", disable=not enabled, leave=False)
