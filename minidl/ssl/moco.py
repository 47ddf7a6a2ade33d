"""MoCo v2 (He et al., 2020; Chen et al., 2020): contrast each query against its key and a
long queue of keys from earlier batches, the keys made by a slowly moving copy of the
encoder.

    q = normalize(g_q(f_q(view1)))          query encoder: trained by gradient descent
    k = normalize(g_k(f_k(view2)))          key encoder: no gradient, follows by EMA
    loss = info_nce(q, k, queue, temperature)
    theta_k <- m theta_k + (1 - m) theta_q  after every step
    queue <- push(queue, k)                 first in, first out, fixed size K

The queue decouples the number of negatives from the batch size; the momentum keeps the
keys in the queue consistent with each other although they were made at different steps.
Here the loss is symmetrised (each view is once the query and once the key), which uses
each batch twice.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..functional.loss import normalize
from ..functional.shape import concat
from ..nn import Module, Sequential
from ..tensor import Tensor
from .augment import TwoViews
from .encoders import feature_dim_of, projection_head
from .losses import info_nce
from .momentum import ema_update_, momentum_copy
from .pretraining import as_images, run_pretraining

__all__ = ["KeyQueue", "MoCo", "pretrain"]


class KeyQueue:
    """A first-in-first-out queue of the K most recent keys, each a D-vector.

    Stored as a ring buffer ``keys`` (K, D) with ``ptr`` the slot of the oldest key, which
    the next push overwrites first. ``ordered()`` lists the keys oldest first. Starts full
    of random unit vectors (as MoCo does), so the loss has negatives from the first step.
    """

    def __init__(self, size: int, dim: int, seed: int | np.random.Generator | None = 0, dtype: Any = np.float32):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"KeyQueue: size must be a positive integer, got {size!r}")
        rng = np.random.default_rng(seed)
        keys = rng.standard_normal((size, dim))
        self.keys = (keys / np.linalg.norm(keys, axis=1, keepdims=True)).astype(dtype)
        self.ptr = 0

    def __len__(self) -> int:
        return self.keys.shape[0]

    def to(self, device: Any) -> "KeyQueue":
        """Keep the ring buffer on ``device`` (where the keys are made), so pushing is a
        device-side copy and the loss reads the queue without a transfer."""
        self.keys = backend.to_device(self.keys, device)
        return self

    def tensor(self, like: Tensor) -> Tensor:
        """The buffer as a constant Tensor on ``like``'s device (moved there once if needed)."""
        if backend.device_of(self.keys) != backend.device_of(like.data):
            self.to(backend.device_of(like.data))
        return Tensor(self.keys)

    def push(self, new_keys: Any) -> None:
        """Append ``new_keys`` (n, D), dropping the n oldest keys (only the last K if n > K)."""
        new = new_keys.data if isinstance(new_keys, Tensor) else new_keys
        if backend.get_array_module(new) is np:
            new = np.asarray(new)
        if new.ndim != 2 or new.shape[1] != self.keys.shape[1]:
            raise ValueError(f"KeyQueue.push: keys must be (n, {self.keys.shape[1]}), got shape {new.shape}")
        if backend.device_of(new) != backend.device_of(self.keys):
            self.to(backend.device_of(new))
        xp = backend.get_array_module(self.keys)
        size = len(self)
        if new.shape[0] > size:
            new = new[-size:]
        slots = (self.ptr + xp.arange(new.shape[0])) % size
        self.keys[slots] = new.astype(self.keys.dtype, copy=False)
        self.ptr = int((self.ptr + new.shape[0]) % size)

    def ordered(self) -> Any:
        """The keys oldest first (K, D), on the queue's device."""
        return backend.get_array_module(self.keys).roll(self.keys, -self.ptr, axis=0)


class MoCo(Module):
    """MoCo v2: a query network (encoder + projector), its momentum copy for keys, a queue.

    Args:
        encoder: maps images to (N, encoder.feature_dim) features.
        projection_dim, hidden_dim: the MLP head (MoCo v2: Linear-ReLU-Linear, no BN).
        queue_size: K, the number of negatives kept. Keep it a small fraction of the data
            set: a queue longer than an epoch holds the image's own key from the last
            epoch as a "negative" (256 for the 1,347 training digits).
        momentum: m of the key encoder's update ``theta_k <- m theta_k + (1 - m) theta_q``.
        temperature: InfoNCE's temperature.
    """

    def __init__(self, encoder: Module, projection_dim: int = 64, hidden_dim: int = 128, queue_size: int = 256,
                 momentum: float = 0.99, temperature: float = 0.2, seed: int | None = 0) -> None:
        super().__init__()
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"MoCo: momentum must be in [0, 1], got {momentum}")
        self.encoder = encoder
        self.query_net = Sequential(encoder, projection_head(feature_dim_of(encoder, "MoCo"), hidden_dim,
                                                             projection_dim, batch_norm=False))
        self.key_net = momentum_copy(self.query_net)
        self.queue = KeyQueue(queue_size, projection_dim, seed)
        self.momentum = float(momentum)
        self.temperature = float(temperature)

    def keys(self, x: Tensor) -> Tensor:
        """Unit keys from the momentum network, without gradient: (N, projection_dim)."""
        with no_grad():
            return normalize(self.key_net(x), dim=1)

    def forward(self, view1: Tensor, view2: Tensor) -> Tensor:
        both = concat([view1, view2], axis=0)
        n = view1.shape[0]
        q = normalize(self.query_net(both), dim=1)                   # queries: view1 then view2
        k = self.keys(concat([view2, view1], axis=0))                 # each query's key: the other view
        loss = info_nce(q, k, self.queue.tensor(q), self.temperature)
        self._pending_keys = k.data[:n]  # one key per image enters the queue after the step
        return loss

    def after_step(self, step: int, total_steps: int) -> None:
        """The momentum update of the key network, then the new keys into the queue."""
        ema_update_(self.key_net, self.query_net, self.momentum)
        self.queue.push(self._pending_keys)


def pretrain(encoder: Module, unlabeled_data: Any, epochs: int = 30, batch_size: int = 256, lr: float = 2e-3,
             seed: int | None = 0, progress: bool = True, *, temperature: float = 0.2, momentum: float = 0.99,
             queue_size: int = 256, projection_dim: int = 64, hidden_dim: int = 128, weight_decay: float = 1e-5,
             views: TwoViews | None = None, history: list | None = None) -> Module:
    """Pretrain ``encoder`` with MoCo v2 on ``unlabeled_data`` (N, C, H, W) and return it.

    Adam with a cosine-decayed learning rate; after each step the key network moves by the
    EMA rule and the batch's keys enter the queue. The mean loss of each epoch is appended
    to ``history`` if given. The key network, the queue and the head are discarded.
    """
    images = as_images(unlabeled_data, "moco.pretrain")
    model = MoCo(encoder, projection_dim, hidden_dim, queue_size, momentum, temperature, seed)
    run_pretraining(model, images, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                    seed=seed, views=views, progress=progress, desc="MoCo", history=history)
    encoder.eval()
    return encoder
