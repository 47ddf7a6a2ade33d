"""Scaled dot-product attention, the core of every attention layer.

For queries Q (..., L, E), keys K (..., S, E) and values V (..., S, Ev):

    scores = Q K^T * scale + M          (..., L, S), scale = 1 / sqrt(E) by default
    A      = softmax(scores, axis=-1)   each query's weights over the S keys sum to 1
    out    = A V                        (..., L, Ev)

M is an additive mask: 0 where a query may look at a key, -inf where it may not. The op is
composed of differentiable Tensor ops (matmul, softmax), so gradients of gradients work.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor
from .dropout import dropout
from .elementwise import where
from .linalg import matmul
from .reduce import softmax

__all__ = ["scaled_dot_product_attention"]


def _array(x: Any):
    return x.data if isinstance(x, Tensor) else x


def additive_attention_mask(mask: Any, true_means_masked: bool, like: Tensor, op: str) -> Any:
    """Turn an attention mask into the additive form M used by attention.

    A boolean mask becomes 0 where attention is allowed and -inf where it is blocked;
    ``true_means_masked`` says which: PyTorch's ``nn.MultiheadAttention`` blocks where the
    mask is True, ``F.scaled_dot_product_attention`` lets through where it is True.
    A floating mask is already additive and is returned as it is (a Tensor stays a Tensor,
    so a learnt bias keeps its gradient). Arrays come back with ``like``'s dtype, on
    ``like``'s device (a NumPy mask may be used with CuPy tensors).
    """
    if mask is None:
        return None
    if isinstance(mask, Tensor) and mask.dtype.kind == "f":
        return mask
    arr = _array(mask)
    if backend.get_array_module(arr) is not backend.get_array_module(like.data):
        arr = backend.to_device(arr, backend.device_of(like.data))
    xp = backend.get_array_module(arr)
    arr = xp.asarray(arr)
    dtype = like.dtype
    if arr.dtype == np.bool_:
        blocked = arr if true_means_masked else ~arr
        return xp.where(blocked, xp.asarray(-np.inf, dtype=dtype), xp.asarray(0.0, dtype=dtype))
    if arr.dtype.kind != "f":
        raise TypeError(f"{op}: an attention mask must be boolean or floating, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def attention(query: Tensor, key: Tensor, value: Tensor, mask: Any = None, dropout_p: float = 0.0,
              scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Attention with an additive ``mask`` (or None); returns (output, weights after dropout).

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev), mask broadcastable to
    (..., L, S); output (..., L, Ev), weights (..., L, S). A query whose keys are all
    masked gets all-zero weights (and a zero output), as PyTorch's
    ``F.scaled_dot_product_attention`` gives, rather than 0/0.
    """
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = matmul(query, key.mT) * scale
    if mask is not None:
        try:
            np.broadcast_shapes(tuple(np.shape(_array(mask))), scores.shape)
        except ValueError:
            raise ValueError(
                f"attention: a mask of shape {tuple(np.shape(_array(mask)))} does not broadcast to the "
                f"attention scores of shape {scores.shape} (batch..., L queries, S keys)"
            ) from None
        # A query whose keys are all blocked would get 0/0; it gets zero weights instead.
        # On the host, skip that work when no query is dead; on a GPU, asking would cost a
        # device-to-host sync per call, so the (cheap, mask-sized) fix is always applied.
        xp = backend.get_array_module(_array(mask))
        dead = (_array(mask) == -math.inf).all(axis=-1, keepdims=True)  # (isneginf: CuPy >= 13 only)
        any_dead = bool(dead.any()) if xp is np else True
        if any_dead:
            mask = where(dead, xp.zeros((), dtype=scores.dtype), mask)
        scores = scores + mask
    weights = softmax(scores, axis=-1)
    if mask is not None and any_dead:
        weights = weights * (~dead).astype(weights.dtype)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, True)
    return matmul(weights, value), weights


def causal_mask(L: int, S: int, xp=np) -> Any:
    """Boolean (L, S) mask, True where query i may see key j, i.e. j <= i (top-left aligned)."""
    return xp.tril(xp.ones((L, S), dtype=bool))


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
) -> Tensor:
    """softmax(Q K^T * scale + M) V, PyTorch's ``F.scaled_dot_product_attention``.

    Shapes: query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); the
    leading axes broadcast. ``attn_mask`` broadcastable to (..., L, S): boolean, where
    **True means the query may attend to the key** (as in PyTorch's function, the opposite
    of ``nn.MultiheadAttention``'s masks), or floating, added to the scores. ``is_causal``
    lets query i see keys j <= i only (not together with ``attn_mask``). ``scale`` defaults
    to 1/sqrt(E). Dropout with probability ``dropout_p`` is applied to the attention
    weights whenever ``dropout_p > 0`` (pass 0 in evaluation). A query whose keys are all
    masked gets a zero output, as in PyTorch.
    """
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(
                f"scaled_dot_product_attention: {name} must have at least 2 dimensions (..., length, features), "
                f"got shape {t.shape}"
            )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"scaled_dot_product_attention: query {query.shape} and key {key.shape} must share the last "
            "(embedding) dimension"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: key {key.shape} and value {value.shape} must have the same "
            "length (second-to-last dimension)"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1), got {dropout_p}")
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
        attn_mask = causal_mask(query.shape[-2], key.shape[-2], backend.get_array_module(query.data))
    mask = additive_attention_mask(attn_mask, False, query, "scaled_dot_product_attention")
    out, _ = attention(query, key, value, mask, dropout_p, scale)
    return out
