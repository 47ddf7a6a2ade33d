"""The Transformer encoder: ``TransformerEncoderLayer`` and a stack of them,
``TransformerEncoder``, with PyTorch's sub-module names so weights copy across.

One layer, post-norm (the original Transformer, ``norm_first=False``):

    x = LayerNorm1(x + Dropout1(SelfAttention(x)))
    x = LayerNorm2(x + Dropout2(Linear2(Dropout(act(Linear1(x))))))

pre-norm (``norm_first=True``, easier to train deep):

    x = x + Dropout1(SelfAttention(LayerNorm1(x)))
    x = x + Dropout2(Linear2(Dropout(act(Linear1(LayerNorm2(x))))))
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from ..functional.elementwise import gelu, relu
from ..tensor import Tensor
from .attention import MultiheadAttention
from .containers import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder"]

_ACTIVATIONS = {"relu": relu, "gelu": gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a position-wise feed-forward network, each wrapped in a
    residual connection and layer normalisation (see the module docstring for the order).

    ``TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation="relu", layer_norm_eps=1e-5, batch_first=False, norm_first=False,
    bias=True)``; ``activation`` is "relu", "gelu" or a callable (a Module is registered).
    Sub-modules as PyTorch's: ``self_attn`` (MultiheadAttention), ``linear1`` (d_model ->
    dim_feedforward), ``dropout``, ``linear2`` (dim_feedforward -> d_model), ``norm1``,
    ``norm2``, ``dropout1``, ``dropout2``.

    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``: src
    (S, N, d_model), or (N, S, d_model) with ``batch_first``, or unbatched (S, d_model);
    ``src_mask`` (S, S) or (N*nhead, S, S) and ``src_key_padding_mask`` (N, S) follow
    ``MultiheadAttention`` (boolean True = masked, or floating additive). Returns a tensor
    shaped like src.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable = "relu", layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True):
        super().__init__()
        if isinstance(dim_feedforward, bool) or not isinstance(dim_feedforward, int) or dim_feedforward <= 0:
            raise ValueError(f"TransformerEncoderLayer: dim_feedforward must be a positive integer, got {dim_feedforward!r}")
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise ValueError(
                    f"TransformerEncoderLayer: activation should be 'relu' or 'gelu' (or a callable), got {activation!r}"
                )
            activation = _ACTIVATIONS[activation]
        elif not callable(activation):
            raise TypeError(f"TransformerEncoderLayer: activation must be a string or a callable, got {type(activation).__name__}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation
        self.batch_first = bool(batch_first)

    def _sa_block(self, x: Tensor, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Tensor:
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False,
                                attn_mask=attn_mask, is_causal=is_causal)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src: Tensor, src_mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool = False) -> Tensor:
        if not isinstance(src, Tensor):
            raise TypeError(f"TransformerEncoderLayer: src must be a Tensor, got {type(src).__name__}")
        d_model = self.self_attn.embed_dim
        if src.ndim not in (2, 3) or src.shape[-1] != d_model:
            layout = "(N, S, d_model)" if self.batch_first else "(S, N, d_model)"
            raise ValueError(
                f"TransformerEncoderLayer: expected src of shape {layout} or (S, d_model) with "
                f"d_model={d_model}, got {src.shape}"
            )
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerEncoder(Module):
    """A stack of ``num_layers`` independent copies of ``encoder_layer`` (deep copies, as
    PyTorch makes: same starting weights, trained separately), then an optional ``norm``.

    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)`` passes the same
    masks to every layer; shapes as ``TransformerEncoderLayer``. Sub-modules: ``layers``
    (a ModuleList) and ``norm``.
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"TransformerEncoder: num_layers must be a positive integer, got {num_layers!r}")
        self.layers = ModuleList([_copy_module(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src: Tensor, mask: Any = None, src_key_padding_mask: Any = None,
                is_causal: bool | None = None) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=bool(is_causal))
        if self.norm is not None:
            x = self.norm(x)
        return x


def _copy_module(module: Module) -> Module:
    """A deep copy of ``module`` on the same device as the original's parameters."""
    clone = copy.deepcopy(module)
    first = next(iter(module.parameters()), None)
    if first is not None:
        clone.to(first.device)
    return clone
