"""Denoising autoencoder (Vincent et al., 2008): reconstruct the clean image from a corrupted copy.

    x~ = corrupt(x)                       (Gaussian noise, or masking: pixels set to 0 at random)
    h  = encoder(flatten(x~))             (N, code_dim)
    o  = decoder(h)                       (N, C, H, W) logits;  x^ = sigmoid(o)
    L  = mean_i sum_d BCE_with_logits(o_id, x_id)        (``loss="bce"``, pixels in [0, 1])
       = mean_i sum_d (sigmoid(o_id) - x_id)^2            (``loss="mse"``)

The target is the clean x, never x~, so the code cannot simply copy its input: it has to
learn what digits look like to undo the damage.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import no_grad
from ..nn import Linear, Module, ReLU, Sequential
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["corrupt", "DenoisingAutoencoder", "reconstruction_loss", "train_denoising_autoencoder"]

_NOISES = ("gaussian", "masking")


def corrupt(x: Any, noise: str = "gaussian", level: float = 0.3, rng: np.random.Generator | None = None,
            clip: bool = True) -> np.ndarray:
    """A corrupted copy of the array ``x`` (any shape), in x's dtype:

        gaussian: x + level * n,  n ~ N(0, 1) per pixel   (clipped to [0, 1] when ``clip``)
        masking:  x * m,          m ~ Bernoulli(1 - level) per pixel   (a share ``level`` set to 0)

    ``rng``: a NumPy Generator (default: minidl's seeded generator for x's array module).
    """
    if noise not in _NOISES:
        raise ValueError(f"corrupt: noise must be one of {_NOISES}, got {noise!r}")
    if not level >= 0 or (noise == "masking" and level > 1):
        raise ValueError(f"corrupt: level must be >= 0 (and <= 1 for masking), got {level}")
    arr = x.data if isinstance(x, Tensor) else x
    xp = backend.get_array_module(arr)
    arr = xp.asarray(arr)
    g = rng if rng is not None else backend.random_generator(xp)
    if noise == "gaussian":
        noisy = arr + level * xp.asarray(g.standard_normal(arr.shape))
        if clip:
            noisy = xp.clip(noisy, 0.0, 1.0)
    else:
        noisy = arr * xp.asarray(g.random(arr.shape) >= level)
    return noisy.astype(arr.dtype, copy=False)


def reconstruction_loss(output: Tensor, target: Tensor, loss: str = "bce") -> Tensor:
    """Mean over the batch of the per-image reconstruction error summed over pixels, -> scalar.

    ``"bce"``: sum_d BCE_with_logits(output_d, target_d) (output = logits, target in [0, 1]);
    ``"mse"``: sum_d (sigmoid(output_d) - target_d)^2. Shapes: both (N, ...).
    """
    if not isinstance(output, Tensor) or not isinstance(target, Tensor) or output.shape != target.shape:
        raise ValueError("reconstruction_loss: output and target must be Tensors of the same shape (N, ...), got "
                         f"{getattr(output, 'shape', type(output).__name__)} and "
                         f"{getattr(target, 'shape', type(target).__name__)}")
    n = output.shape[0]
    if loss == "bce":
        per_pixel = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    elif loss == "mse":
        diff = F.sigmoid(output) - target
        per_pixel = diff * diff
    else:
        raise ValueError(f"reconstruction_loss: loss must be 'bce' or 'mse', got {loss!r}")
    return per_pixel.reshape(n, -1).sum(axis=1).mean()


class DenoisingAutoencoder(Module):
    """MLP autoencoder for images (N, C, H, W) trained to undo ``corrupt``.

        encoder: flatten -> [Linear, ReLU] per width in ``hidden`` -> Linear -> ReLU   (N, code_dim)
        decoder: [Linear, ReLU] per reversed width -> Linear -> logits (N, C, H, W)

    ``forward(x)`` returns the logits of the reconstruction; ``denoise(x)`` the image
    sigmoid(logits) without a graph. The corruption (``noise``, ``level``) is applied by
    ``train_denoising_autoencoder``, not by forward, so forward is deterministic.
    """

    def __init__(self, image_shape: Sequence[int] = (1, 8, 8), code_dim: int = 32,
                 hidden: Sequence[int] = (128,), noise: str = "gaussian", level: float = 0.3) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"DenoisingAutoencoder: image_shape must be (C, H, W), got {tuple(image_shape)}")
        if isinstance(code_dim, bool) or not isinstance(code_dim, int) or code_dim < 1:
            raise ValueError(f"DenoisingAutoencoder: code_dim must be a positive integer, got {code_dim!r}")
        if noise not in _NOISES:
            raise ValueError(f"DenoisingAutoencoder: noise must be one of {_NOISES}, got {noise!r}")
        self.code_dim, self.noise, self.level = code_dim, noise, float(level)
        d = int(np.prod(self.image_shape))
        enc: list[Module] = []
        for a, b in zip([d, *hidden], [*hidden, code_dim]):
            enc += [Linear(a, b), ReLU()]
        dec: list[Module] = []
        widths = [code_dim, *reversed(tuple(hidden))]
        for a, b in zip(widths[:-1], widths[1:]):
            dec += [Linear(a, b), ReLU()]
        dec.append(Linear(widths[-1], d))
        self.encoder = Sequential(*enc)
        self.decoder = Sequential(*dec)

    def encode(self, x: Tensor) -> Tensor:
        """Images (N, C, H, W) -> codes (N, code_dim)."""
        if not isinstance(x, Tensor) or tuple(x.shape[1:]) != self.image_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"DenoisingAutoencoder: expected images (N, {', '.join(map(str, self.image_shape))}), "
                             f"got {got}")
        return self.encoder(x.reshape(x.shape[0], -1))

    def decode(self, h: Tensor) -> Tensor:
        """Codes (N, code_dim) -> reconstruction logits (N, C, H, W)."""
        if not isinstance(h, Tensor) or h.ndim != 2 or h.shape[1] != self.code_dim:
            got = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
            raise ValueError(f"DenoisingAutoencoder.decode: codes must have shape (N, {self.code_dim}), got {got}")
        return self.decoder(h).reshape(h.shape[0], *self.image_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def denoise(self, x: Tensor) -> Tensor:
        """sigmoid(forward(x)): the cleaned images (N, C, H, W), without a graph."""
        with no_grad():
            return F.sigmoid(self(x))


def train_denoising_autoencoder(model: DenoisingAutoencoder, images: Any, epochs: int = 30, batch_size: int = 64,
                                lr: float = 1e-3, loss: str = "bce", val_images: Any = None, seed: int = 0,
                                device: Any = "cpu", progress: bool = True) -> dict[str, list[float]]:
    """Adam on ``reconstruction_loss(model(corrupt(x)), x)`` with a fresh corruption of every
    batch (``model.noise`` at ``model.level``). Returns ``{"train_loss": [...], "val_loss": [...]}``
    per epoch (``val_loss``, with ``val_images``: the same loss on corrupted held-out images,
    the corruption seeded so every epoch sees the same damage)."""
    from tqdm.auto import tqdm

    X = np.asarray(images)
    if X.ndim != 4 or X.dtype.kind != "f":
        raise ValueError(f"train_denoising_autoencoder: images must be a float array (N, C, H, W), "
                         f"got shape {X.shape}, dtype {X.dtype}")
    rng = np.random.default_rng(seed)
    optimizer = Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"train_loss": []}
    if val_images is not None:
        Xv = np.asarray(val_images)
        Xv_noisy = corrupt(Xv, model.noise, model.level, np.random.default_rng(seed + 1))
        history["val_loss"] = []
    bar = tqdm(range(1, epochs + 1), desc="denoising AE", unit="epoch", disable=not progress)
    for _ in bar:
        model.train()
        order = rng.permutation(len(X))
        total = 0.0
        for start in range(0, len(X), batch_size):
            clean = X[order[start:start + batch_size]]
            noisy = corrupt(clean, model.noise, model.level, rng)
            value = reconstruction_loss(model(Tensor(backend.to_device(noisy, device))),
                                        Tensor(backend.to_device(clean, device)), loss)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            total += float(value.item()) * len(clean)
        history["train_loss"].append(total / len(X))
        if val_images is not None:
            model.eval()
            with no_grad():
                v = reconstruction_loss(model(Tensor(backend.to_device(Xv_noisy, device))),
                                        Tensor(backend.to_device(Xv, device)), loss)
            history["val_loss"].append(float(v.item()))
        bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}")
    return history
