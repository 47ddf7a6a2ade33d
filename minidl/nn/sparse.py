"""``Embedding``: a lookup table of learnable vectors, indexed by integers."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..functional.embedding import embedding
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """y = weight[indices]: indices (*) integers in [0, num_embeddings) -> y (*, embedding_dim).

    ``weight`` (num_embeddings, embedding_dim) starts as N(0, 1), PyTorch's default, with
    the row ``padding_idx`` (if given) set to zero; that row never receives a gradient.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 _weight: Any = None, device: Any = None, dtype: Any = None):
        super().__init__()
        for name, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"Embedding: {name} must be a positive integer, got {v!r}")
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings {num_embeddings}")
            padding_idx = padding_idx % num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            xp = backend.array_module_for(device or "cpu")
            dt = backend.default_dtype() if dtype is None else np.dtype(dtype)
            self.weight = Parameter(xp.zeros((self.num_embeddings, self.embedding_dim), dtype=dt))
            self.reset_parameters()
        else:
            w = _weight.data if isinstance(_weight, Tensor) else _weight
            if tuple(w.shape) != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {tuple(w.shape)}, expected "
                                 f"({self.num_embeddings}, {self.embedding_dim})")
            self.weight = Parameter(w)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True, padding_idx: int | None = None) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` (V, D); frozen (no gradient) by default."""
        w = embeddings.data if isinstance(embeddings, Tensor) else embeddings
        if w.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {tuple(w.shape)}")
        m = cls(w.shape[0], w.shape[1], padding_idx=padding_idx, _weight=w.copy())
        m.weight.requires_grad = not freeze
        return m

    def reset_parameters(self) -> None:
        """weight ~ N(0, 1), padding row zero."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, indices: Any) -> Tensor:
        return embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s if self.padding_idx is None else s + f", padding_idx={self.padding_idx}"
