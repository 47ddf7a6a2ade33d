"""Pruning: global magnitude (unstructured) and structured (whole channels/neurons).

Unstructured, global: over the weights of all Linear and Conv2d layers together, the
fraction ``amount`` with the smallest |w| is set to zero:

    t = the amount-quantile of {|w|},   mask = |w| > t,   w <- w * mask

The masks are kept as (non-persistent) buffers ``weight_mask`` and re-applied by a forward
pre-hook before every forward, so fine-tuning with any optimizer keeps the pruned weights
at zero. ``remove_masks`` makes the pruning permanent (drops the hooks and buffers).

Structured: for a chain of layers (a Sequential-style model such as LeNet5 or MLP, whose
Linear/Conv2d layers feed each other in registration order) the output units with the
smallest L1 norm ``sum |W[c]|`` are removed from each hidden layer: the layer really
shrinks (fewer output channels/neurons), a BatchNorm after it loses the same channels, and
the next layer loses the matching inputs (for a Conv2d -> flatten -> Linear step, the
block of H*W features of each removed channel). The last layer keeps all its outputs.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .. import backend
from .. import nn
from ..tensor import Tensor

__all__ = ["global_magnitude_prune", "apply_masks", "remove_masks", "sparsity", "structured_prune",
           "prunable_layers", "count_parameters"]

PRUNABLE = (nn.Linear, nn.Conv2d)


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, layer) for every Linear and Conv2d, in registration order."""
    return [(p, m) for p, m in model.named_modules() if type(m) in PRUNABLE]


def _mask_hook(module: nn.Module, inputs: Any) -> None:
    module.weight.data *= module.weight_mask.data


def apply_masks(model: nn.Module) -> None:
    """Zero the pruned weights again (the forward pre-hooks do this before every forward)."""
    for _, m in prunable_layers(model):
        if getattr(m, "weight_mask", None) is not None:
            _mask_hook(m, ())


def global_magnitude_prune(model: nn.Module, amount: float) -> dict[str, np.ndarray]:
    """Zero the fraction ``amount`` (0 <= amount < 1) of smallest-magnitude weights over all
    Linear/Conv2d layers of ``model``, in place, and keep them zero through fine-tuning.

    Biases are not pruned. Weights already pruned stay pruned (calling it again with a
    larger amount prunes further). Returns {layer path: mask (bool, the weight's shape)}.
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"global_magnitude_prune: amount must be in [0, 1), got {amount}")
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("global_magnitude_prune: the model has no Linear or Conv2d layer")
    weights = [backend.to_numpy(m.weight.data) for _, m in layers]
    mags = np.concatenate([np.abs(w).ravel() for w in weights])
    k = int(round(amount * mags.size))
    keep = np.ones(mags.size, dtype=bool)
    keep[np.argsort(mags, kind="stable")[:k]] = False  # exactly k weights, the smallest |w| first
    masks = {}
    offset = 0
    for (path, m), w in zip(layers, weights):
        mask = keep[offset:offset + w.size].reshape(w.shape).copy()
        offset += w.size
        old = getattr(m, "weight_mask", None)
        if old is not None:
            mask &= backend.to_numpy(old.data).astype(bool)
        masks[path] = mask
        xp = backend.get_array_module(m.weight.data)
        t = Tensor(backend.to_device(mask.astype(w.dtype), backend.device_of(m.weight.data)))
        if old is None:
            m.register_buffer("weight_mask", t, persistent=False)
            m._prune_hook = m.register_forward_pre_hook(_mask_hook)
        else:
            m.weight_mask = t
        m.weight.data *= xp.asarray(m.weight_mask.data)
    return masks


def remove_masks(model: nn.Module) -> None:
    """Make pruning permanent: the zeros stay, the masks and their hooks go."""
    for _, m in prunable_layers(model):
        if getattr(m, "weight_mask", None) is not None:
            _mask_hook(m, ())
            m._prune_hook.remove()
            del m._prune_hook
            del m.weight_mask


def sparsity(model: nn.Module) -> float:
    """The fraction of zero entries over the weights of all Linear and Conv2d layers."""
    layers = prunable_layers(model)
    total = sum(m.weight.data.size for _, m in layers)
    zeros = sum(int((backend.to_numpy(m.weight.data) == 0).sum()) for _, m in layers)
    return zeros / max(total, 1)


# ------------------------------------------------------------------------ structured

def _chain(model: nn.Module) -> list[tuple[nn.Module, nn.Module | None]]:
    """[(prunable layer, the BatchNorm right after it or None)] in registration order."""
    mods = [m for _, m in model.named_modules() if not m._modules]
    chain = []
    for i, m in enumerate(mods):
        if type(m) in PRUNABLE:
            bn = None
            for nxt in mods[i + 1:]:
                if isinstance(nxt, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    bn = nxt
                    break
                if type(nxt) in PRUNABLE:
                    break
            chain.append((m, bn))
        elif isinstance(m, (nn.ConvTranspose2d, nn.Embedding, nn.LayerNorm)):
            raise ValueError(f"structured_prune: a {type(m).__name__} in the chain is not supported "
                             "(only Linear/Conv2d/BatchNorm chains)")
    return chain


def _out_units(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _keep_units(m: nn.Module, amount: float) -> np.ndarray:
    """Indices (sorted) of the output units with the largest L1 norm, keeping round((1 - amount) n) >= 1."""
    w = backend.to_numpy(m.weight.data).reshape(_out_units(m), -1)
    n_keep = max(1, int(round((1.0 - amount) * w.shape[0])))
    norms = np.abs(w).sum(axis=1)
    return np.sort(np.argsort(-norms, kind="stable")[:n_keep])


def _param(array: np.ndarray, like: Tensor) -> nn.Parameter:
    p = nn.Parameter(backend.to_device(np.ascontiguousarray(array), backend.device_of(like.data)))
    p.requires_grad = like.requires_grad
    return p


def _shrink_outputs(m: nn.Module, keep: np.ndarray) -> None:
    m.weight = _param(backend.to_numpy(m.weight.data)[keep], m.weight)
    if m.bias is not None:
        m.bias = _param(backend.to_numpy(m.bias.data)[keep], m.bias)
    if isinstance(m, nn.Linear):
        m.out_features = len(keep)
    else:
        m.out_channels = len(keep)


def _shrink_bn(bn: nn.Module, keep: np.ndarray) -> None:
    for name in ("weight", "bias"):
        p = getattr(bn, name)
        if p is not None:
            setattr(bn, name, _param(backend.to_numpy(p.data)[keep], p))
    for name in ("running_mean", "running_var"):
        b = getattr(bn, name)
        if b is not None:
            setattr(bn, name, Tensor(np.ascontiguousarray(backend.to_numpy(b.data)[keep])))
    bn.num_features = len(keep)


def _shrink_inputs(m: nn.Module, keep: np.ndarray, prev_units: int) -> None:
    w = backend.to_numpy(m.weight.data)
    if isinstance(m, nn.Conv2d):
        if m.groups != 1:
            raise ValueError("structured_prune: grouped convolutions are not supported")
        m.weight = _param(w[:, keep], m.weight)
        m.in_channels = len(keep)
        return
    per_unit, rem = divmod(m.in_features, prev_units)
    if rem:
        raise ValueError(f"structured_prune: Linear({m.in_features}, ...) follows a layer with {prev_units} "
                         "outputs; its inputs are not a whole number of features per unit")
    cols = (keep[:, None] * per_unit + np.arange(per_unit)[None, :]).ravel()
    m.weight = _param(w[:, cols], m.weight)
    m.in_features = len(cols)


def structured_prune(model: nn.Module, amount: float, inplace: bool = False) -> nn.Module:
    """Remove the fraction ``amount`` of output units (lowest L1 norm) of every hidden
    Linear/Conv2d of a chain model, shrinking the layers that follow; see the module
    docstring. Returns the smaller model (a copy unless ``inplace``).
    """
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"structured_prune: amount must be in [0, 1), got {amount}")
    model = model if inplace else copy.deepcopy(model)
    chain = _chain(model)
    if len(chain) < 2:
        raise ValueError("structured_prune: needs at least two Linear/Conv2d layers in a chain")
    for (layer, bn), (nxt, _) in zip(chain[:-1], chain[1:]):
        units = _out_units(layer)
        keep = _keep_units(layer, amount)
        _shrink_outputs(layer, keep)
        if bn is not None:
            _shrink_bn(bn, keep)
        _shrink_inputs(nxt, keep, units)
    return model


def count_parameters(model: nn.Module) -> int:
    """The number of scalar parameters (what structured pruning shrinks)."""
    return int(sum(p.data.size for p in model.parameters()))

