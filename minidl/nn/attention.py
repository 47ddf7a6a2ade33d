"""``MultiheadAttention``: h attention heads over learnt projections, PyTorch's layer.

For query, key and value sequences and embedding size E split over h heads of size
d = E / h:

    Q = query W_q^T + b_q,  K = key W_k^T + b_k,  V = value W_v^T + b_v
    head_i = softmax(Q_i K_i^T / sqrt(d) + M) V_i        (Q_i: the i-th block of d columns)
    out    = concat(head_1, ..., head_h) W_o^T + b_o

W_q, W_k, W_v are the three (E, E) blocks of ``in_proj_weight`` (3E, E) and b_q, b_k, b_v
of ``in_proj_bias`` (3E,); W_o, b_o are ``out_proj`` (a ``Linear(E, E)``). M is the
additive mask built from ``attn_mask`` and ``key_padding_mask``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..functional.attention import additive_attention_mask, attention, causal_mask
from ..functional.linalg import linear
from ..tensor import Tensor
from . import init
from .linear import Linear
from .module import Module
from .parameter import Parameter

__all__ = ["MultiheadAttention"]


def _array(x: Any):
    return x.data if isinstance(x, Tensor) else x


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al., 2017) with PyTorch's parameters and masks.

    ``MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False)``;
    parameters ``in_proj_weight`` (3E, E), Xavier-uniform; ``in_proj_bias`` (3E,), zeros;
    ``out_proj`` = ``Linear(E, E)`` with a zero bias. Query, key and value all have
    ``embed_dim`` features (PyTorch's ``kdim``/``vdim``/``add_bias_kv``/``add_zero_attn``
    are not supported).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)``:

    - query (L, N, E), key and value (S, N, E); (N, L, E)/(N, S, E) with ``batch_first``;
      or unbatched (L, E)/(S, E).
    - ``key_padding_mask`` (N, S) (or (S,) unbatched): boolean, True = this key is padding
      and is ignored; or floating, added to the scores.
    - ``attn_mask`` (L, S) or (N*num_heads, L, S): boolean, True = query i may *not*
      attend to key j; or floating, added to the scores. ``is_causal=True`` without an
      ``attn_mask`` builds the causal mask (key j hidden from query i when j > i); PyTorch
      treats it only as a hint and needs the mask too.
    - Dropout with probability ``dropout`` acts on the attention weights in training mode.

    Returns ``(attn_output, attn_weights)``: attn_output shaped like query; attn_weights
    (N, L, S) averaged over heads, (N, num_heads, L, S) with ``average_attn_weights=False``
    ((L, S) / (num_heads, L, S) unbatched), or None when ``need_weights=False``. A query
    whose keys are all masked gets zero weights and output where PyTorch gives NaN.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 batch_first: bool = False):
        super().__init__()
        for what, v in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"MultiheadAttention: {what} must be a positive integer, got {v!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be a probability in [0, 1), got {dropout!r}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.batch_first = bool(batch_first)
        dtype = backend.default_dtype()
        self.in_proj_weight = Parameter(np.zeros((3 * embed_dim, embed_dim), dtype=dtype))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def _check_inputs(self, query: Any, key: Any, value: Any) -> bool:
        for what, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"MultiheadAttention: {what} must be a Tensor, got {type(t).__name__}")
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(
                "MultiheadAttention: query, key and value must all be 3-d (batched) or all 2-d "
                f"(unbatched), got shapes {query.shape}, {key.shape}, {value.shape}"
            )
        for what, t in (("query", query), ("key", key), ("value", value)):
            if t.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"MultiheadAttention: expected {what} with embed_dim={self.embed_dim} features in its "
                    f"last dimension, got shape {t.shape}"
                )
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: key {key.shape} and value {value.shape} must have the same length and batch")
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[batch_axis] != key.shape[batch_axis]:
            raise ValueError(
                f"MultiheadAttention: query {query.shape} and key {key.shape} have different batch sizes "
                f"(batch_first={self.batch_first})"
            )
        return query.ndim == 3

    def _mask(self, attn_mask: Any, key_padding_mask: Any, is_causal: bool, n: int, L: int, S: int,
              like: Tensor) -> Any:
        """The additive mask, broadcastable to the scores (N, h, L, S), or None."""
        h = self.num_heads
        if is_causal and attn_mask is None:
            attn_mask = ~causal_mask(L, S, backend.get_array_module(like.data))  # True where blocked
        mask = None
        if attn_mask is not None:
            shape = tuple(np.shape(_array(attn_mask)))
            if shape == (L, S):
                pass
            elif shape == (n * h, L, S):
                attn_mask = attn_mask.reshape(n, h, L, S)
            else:
                raise ValueError(
                    f"MultiheadAttention: attn_mask must have shape (L, S) = {(L, S)} or (N*num_heads, L, S) = "
                    f"{(n * h, L, S)}, got {shape}"
                )
            mask = additive_attention_mask(attn_mask, True, like, "MultiheadAttention")
        if key_padding_mask is not None:
            shape = tuple(np.shape(_array(key_padding_mask)))
            if shape != (n, S):
                raise ValueError(
                    f"MultiheadAttention: key_padding_mask must have shape (N, S) = {(n, S)}, got {shape}"
                )
            pad = additive_attention_mask(key_padding_mask, True, like, "MultiheadAttention")
            pad = pad.reshape(n, 1, 1, S)
            mask = pad if mask is None else (pad + mask if isinstance(pad, Tensor) else mask + pad)
        return mask

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple:
        batched = self._check_inputs(query, key, value)
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.reshape(1, -1) if isinstance(key_padding_mask, Tensor) \
                    else backend.get_array_module(key_padding_mask).reshape(key_padding_mask, (1, -1))
        elif not self.batch_first:
            query, key, value = query.transpose(1, 0, 2), key.transpose(1, 0, 2), value.transpose(1, 0, 2)
        n, L, E = query.shape
        S = key.shape[1]
        h, d = self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias

        def project(x: Tensor, i: int) -> Tensor:
            """x (N, T, E) -> the i-th projection split in heads, (N, h, T, d)."""
            wi = w[i * E:(i + 1) * E]
            bi = b[i * E:(i + 1) * E] if b is not None else None
            return linear(x, wi, bi).reshape(n, x.shape[1], h, d).transpose(0, 2, 1, 3)

        q, k, v = project(query, 0), project(key, 1), project(value, 2)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, n, L, S, q)
        p = self.dropout if self.training else 0.0
        heads, weights = attention(q, k, v, mask, p)           # (N, h, L, d), (N, h, L, S)
        out = self.out_proj(heads.transpose(0, 2, 1, 3).reshape(n, L, E))
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(1, 0, 2)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return out, (weights if batched else weights.squeeze(0))

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.batch_first:
            s += ", batch_first=True"
        return s
