"""A Transformer encoder classifier for token sequences, and the same encoder as a masked-
token (BERT-style) model, so that one can be pretrained and the other fine-tuned.

For token ids t (N, S) with padding id p (ignored by attention and by the pooling)::

    h_0 = E_tok[t] + E_pos[0..S-1]                         (N, S, D)
          (pooling "cls": a learned vector c is put in front, h_0 = [c + E_pos[0]; ...],
           and the token positions move to 1..S)
    h   = LayerNorm(TransformerEncoder(h_0))               (N, S, D), pre-norm layers
    z   = mean of h over the non-padding positions          (N, D)   (pooling "mean")
        = h at the cls position                              (N, D)   (pooling "cls")
    logits = head(z)                                        (N, K)

``MaskedTokenModel`` puts a Linear(D, V) on every position of h instead: it predicts the
tokens that ``mask_tokens`` hid (15% of the non-padding positions: 80% of them replaced by
the mask id, 10% by a random token, 10% kept, as in BERT), with cross-entropy on the
hidden positions only (targets -100 elsewhere).
"""
from __future__ import annotations

import numpy as np

from .. import nn
from ..backend import get_array_module
from ..creation import tensor as make_tensor
from ..functional.shape import broadcast_to, concat
from ..tensor import Tensor

__all__ = ["TransformerClassifier", "MaskedTokenModel", "mask_tokens"]


class TransformerClassifier(nn.Module):
    """Token + learned positional embeddings, a pre-norm ``nn.TransformerEncoder``, mean or
    CLS pooling and a Linear head (see the module docstring for the formulas).

    Args:
        vocab_size: V, token ids in [0, V). num_classes: K (the head's outputs).
        d_model: D. nhead: attention heads (D divisible by it). num_layers: encoder layers.
        dim_feedforward: hidden width of each layer's feed-forward block.
        max_len: longest sequence S accepted. dropout: in the encoder layers.
        pooling: "mean" (over non-padding tokens) or "cls" (a learned summary token).
        padding_idx: the padding token id (masked out of attention and pooling), or None.

    ``forward(tokens)``: tokens (N, S) integers -> (N, K) logits. ``encode(tokens)`` gives the
    per-token states (N, S, D); ``pool(tokens)`` the pooled features (N, D) the head reads.
    Sub-modules: ``token_embedding``, ``position_embedding``, ``encoder``, ``norm``, ``head``.
    """

    def __init__(self, vocab_size: int, num_classes: int, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                 dim_feedforward: int = 128, max_len: int = 64, dropout: float = 0.1, pooling: str = "mean",
                 padding_idx: int | None = 0) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes), ("d_model", d_model),
                            ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransformerClassifier: {name} must be a positive integer, got {value!r}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"TransformerClassifier: pooling must be 'mean' or 'cls', got {pooling!r}")
        if padding_idx is not None and not 0 <= padding_idx < vocab_size:
            raise ValueError(f"TransformerClassifier: padding_idx {padding_idx} is outside [0, {vocab_size})")
        self.vocab_size, self.d_model, self.max_len = vocab_size, d_model, max_len
        self.pooling, self.padding_idx = pooling, padding_idx
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)
        self.position_embedding = nn.Embedding(max_len + (pooling == "cls"), d_model)
        for emb in (self.token_embedding, self.position_embedding):
            nn.init.normal_(emb.weight, std=0.02)
            if emb.padding_idx is not None:
                emb.weight.data[emb.padding_idx] = 0
        if pooling == "cls":
            self.cls_token = nn.Parameter(np.zeros((1, 1, d_model), dtype=self.token_embedding.weight.dtype))
            nn.init.normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def _check_tokens(self, tokens) -> np.ndarray:
        ids = tokens.data if isinstance(tokens, Tensor) else tokens
        xp = get_array_module(ids) if hasattr(ids, "dtype") else np
        ids = xp.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"TransformerClassifier: expected integer tokens (N, S), got shape {tuple(ids.shape)} "
                             f"and dtype {ids.dtype}")
        if ids.shape[1] > self.max_len or ids.shape[1] == 0:
            raise ValueError(f"TransformerClassifier: sequence length {ids.shape[1]} is outside 1..max_len="
                             f"{self.max_len}")
        # one boolean leaves the device (the ids themselves only on the error path)
        if ids.size and bool(((ids < 0) | (ids >= self.vocab_size)).any()):
            raise ValueError(f"TransformerClassifier: token ids must lie in [0, {self.vocab_size}), got "
                             f"{int(ids.min())}..{int(ids.max())}")
        return ids

    def _padding_mask(self, ids):
        """(N, S) booleans, True at padding positions (None without a padding id)."""
        return None if self.padding_idx is None else ids == self.padding_idx

    def _states(self, ids) -> Tensor:
        """The final normed states (N, S', D), S' = S (+1 in front with CLS pooling)."""
        xp = get_array_module(ids)
        n, s = ids.shape
        h = self.token_embedding(ids)
        pad = self._padding_mask(ids)
        if self.pooling == "cls":
            h = concat([broadcast_to(self.cls_token, (n, 1, self.d_model)), h], axis=1)
            s += 1
            if pad is not None:
                pad = xp.concatenate([xp.zeros((n, 1), dtype=bool), pad], axis=1)
        h = h + self.position_embedding(xp.arange(s))
        if pad is not None:
            # a row of padding only has no key to attend to: let it see everything instead
            # (applied to every row, a no-op for the others: asking first would sync a GPU)
            pad = pad & ~pad.all(axis=1, keepdims=True)
        return self.norm(self.encoder(h, src_key_padding_mask=pad))

    def encode(self, tokens) -> Tensor:
        """Per-token states (N, S, D) (the CLS position, if any, left out)."""
        ids = self._check_tokens(tokens)
        h = self._states(ids)
        return h[:, 1:] if self.pooling == "cls" else h

    def pool(self, tokens) -> Tensor:
        """The pooled features z (N, D) that the head reads."""
        ids = self._check_tokens(tokens)
        h = self._states(ids)
        if self.pooling == "cls":
            return h[:, 0]
        xp = get_array_module(ids)
        keep = xp.ones(ids.shape, dtype=h.dtype) if self.padding_idx is None else (ids != self.padding_idx).astype(h.dtype)
        counts = xp.maximum(keep.sum(axis=1, keepdims=True), 1.0)
        weights = make_tensor((keep / counts)[:, :, None], device=h.device)
        return (h * weights).sum(axis=1)

    def forward(self, tokens) -> Tensor:
        return self.head(self.pool(tokens))


class MaskedTokenModel(nn.Module):
    """A masked-token model over a ``TransformerClassifier`` backbone: logits (N, S, V) =
    ``lm_head(backbone.encode(tokens))``. The backbone's own ``head`` is not used, so after
    pretraining ``model.backbone`` is a classifier whose encoder has learnt from the text.

    ``loss(tokens, targets)``: mean cross-entropy over the positions whose target is not -100.
    """

    def __init__(self, backbone: TransformerClassifier) -> None:
        super().__init__()
        if not isinstance(backbone, TransformerClassifier):
            raise TypeError(f"MaskedTokenModel: backbone must be a TransformerClassifier, got {type(backbone).__name__}")
        self.backbone = backbone
        self.lm_head = nn.Linear(backbone.d_model, backbone.vocab_size)

    def forward(self, tokens) -> Tensor:
        return self.lm_head(self.backbone.encode(tokens))

    def loss(self, tokens, targets) -> Tensor:
        """Cross-entropy of the hidden tokens: targets (N, S) with -100 where nothing was hidden.
        Only the hidden positions go through ``lm_head`` (the same value, a fraction of the work)."""
        from ..functional.loss import cross_entropy

        t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        ids = tokens.data if isinstance(tokens, Tensor) else np.asarray(tokens)
        if tuple(t.shape) != tuple(ids.shape):
            raise ValueError(f"MaskedTokenModel.loss: targets {tuple(t.shape)} must match tokens {tuple(ids.shape)}")
        xp = get_array_module(t)
        rows, cols = xp.nonzero(t != -100)
        if rows.size == 0:
            raise ValueError("MaskedTokenModel.loss: no position is hidden (every target is -100)")
        h = self.backbone.encode(tokens)
        return cross_entropy(self.lm_head(h[rows, cols]), t[rows, cols])


def mask_tokens(tokens: np.ndarray, mask_id: int, vocab_size: int, rng: np.random.Generator, p: float = 0.15,
                padding_idx: int | None = 0, special_ids: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking: pick each non-padding, non-special position with probability p (at
    least one per row that has a candidate); of the picked, 80% become ``mask_id``, 10% a
    random id in [first non-special id, V), 10% stay. Returns (inputs (N, S), targets (N, S))
    with targets = the original id at picked positions and -100 elsewhere."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.dtype.kind not in "iu":
        raise ValueError(f"mask_tokens: expected integer tokens (N, S), got shape {tokens.shape} and dtype {tokens.dtype}")
    if not 0.0 < p < 1.0:
        raise ValueError(f"mask_tokens: p must be in (0, 1), got {p}")
    excluded = set(special_ids) | {mask_id} | ({padding_idx} if padding_idx is not None else set())
    candidate = ~np.isin(tokens, list(excluded))
    picked = (rng.random(tokens.shape) < p) & candidate
    for i in np.flatnonzero(~picked.any(axis=1) & candidate.any(axis=1)):
        picked[i, rng.choice(np.flatnonzero(candidate[i]))] = True
    targets = np.where(picked, tokens, -100).astype(np.int64)
    inputs = tokens.astype(np.int64).copy()
    roll = rng.random(tokens.shape)
    inputs[picked & (roll < 0.8)] = mask_id
    randomize = picked & (roll >= 0.8) & (roll < 0.9)
    low = max(excluded) + 1 if excluded else 0
    inputs[randomize] = rng.integers(low, vocab_size, size=int(randomize.sum()))
    return inputs, targets
