"""Embedding lookup: ``embedding(indices, weight, padding_idx=None)``.

    y[..., :] = weight[indices[...], :]       indices (*) integers, weight (V, D) -> y (*, D)
    dweight[v] = sum of dy[...] over every position where indices == v   (scatter-add)

The row ``padding_idx`` receives no gradient. The scatter-add is itself a ``Function``
whose backward is the lookup again, so gradients of gradients work.
"""
from __future__ import annotations

from .. import backend
from ..autograd import Function
from ..tensor import Tensor, _new_tensor

__all__ = ["embedding"]


class Embedding(Function):
    """y = weight[indices];  dweight = scatter_add(dy at indices), padding row zeroed."""

    def __init__(self, indices, padding_idx: int | None):
        self.indices, self.padding_idx = indices, padding_idx

    def forward(self, weight):
        return weight[self.indices]

    def backward(self, gy):
        num = self.inputs[0].shape[0]
        return EmbeddingGrad(self.indices, num, self.padding_idx)(gy)


class EmbeddingGrad(Function):
    """gw = scatter_add of g (*, D) into a (V, D) zero matrix at ``indices``;
    its backward is the lookup gg[indices] (zero where indices == padding_idx)."""

    def __init__(self, indices, num: int, padding_idx: int | None):
        self.indices, self.num, self.padding_idx = indices, num, padding_idx

    def forward(self, g):
        xp = backend.get_array_module(g)
        d = g.shape[-1]
        gw = xp.zeros((self.num, d), dtype=g.dtype)
        backend.scatter_add(gw, self.indices.reshape(-1), g.reshape(-1, d))
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return gw

    def backward(self, ggw):
        gg = Embedding(self.indices, self.padding_idx)(ggw)
        if self.padding_idx is not None:
            keep = (self.indices != self.padding_idx)[..., None].astype(ggw.dtype)
            gg = gg * _new_tensor(keep, False, None, 0)
        return gg


def embedding(indices, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` (V, D) picked by integer ``indices`` (*) -> (*, D).

    ``padding_idx`` (may be negative, counted from the end) names a row that gets no gradient.
    """
    if not isinstance(weight, Tensor):
        weight = Tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}")
    idx = indices.data if isinstance(indices, Tensor) else indices
    xp = backend.get_array_module(weight.data)
    idx = xp.asarray(idx) if not isinstance(idx, xp.ndarray) else idx
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    num = weight.shape[0]
    # One boolean leaves the device per call (a GPU gathers out-of-range rows silently).
    outside = (idx < 0) | (idx >= num)
    if idx.size and bool(outside.any()):
        bad = int(idx[outside].ravel()[0])
        raise IndexError(f"embedding: index {bad} is out of range for {num} embeddings (valid: 0..{num - 1})")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {num} embeddings")
        padding_idx = padding_idx % num
    return Embedding(idx, padding_idx)(weight)
