"""Loading a PyTorch ``state_dict`` into a minidl model, without PyTorch at run time.

minidl's layers keep PyTorch's parameter names and shapes (``Linear.weight`` (out, in),
``Conv2d.weight`` (out, in/groups, kh, kw), ``BatchNorm2d.running_mean`` ...), so a model
built with the same sub-module names takes a PyTorch state dict key for key. For the rest,
``name_map`` renames keys: a dict ``{torch key: minidl key}`` or a function of the torch key.

Values may be torch tensors (read through ``.detach().cpu().numpy()``, found by duck typing,
so torch is never imported), NumPy arrays, or anything ``numpy.asarray`` accepts
(``__array__``). Each is cast to the receiving parameter's dtype and put on its device.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Mapping

import numpy as np

from .. import backend
from ..nn import Module

__all__ = ["load_torch_state_dict", "to_numpy_array"]


def to_numpy_array(value: Any, key: str = "?") -> np.ndarray:
    """A NumPy array from a torch tensor (``.detach().cpu().numpy()``), a minidl Tensor,
    anything with ``.numpy()`` or ``__array__``, or a nested list. ``key`` names the entry
    in errors."""
    try:
        if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
            return np.asarray(value.detach().cpu().numpy())      # a torch tensor
        if hasattr(value, "numpy"):
            return np.asarray(value.numpy())
        return np.asarray(value)
    except Exception as e:   # noqa: BLE001 - any failure to read the value is reported by key
        raise TypeError(f"load_torch_state_dict: cannot read {key!r} ({type(value).__name__}) as an array: {e}") from e


def load_torch_state_dict(model: Module, state_dict: Mapping[str, Any],
                          name_map: Mapping[str, str] | Callable[[str], str | None] | None = None,
                          strict: bool = True, skip_num_batches_tracked: bool = False) -> Module:
    """Copy the weights of a PyTorch ``state_dict`` into ``model`` (in place) and return it.

    Args:
        model: a minidl Module whose parameters and buffers have the same names (after
            ``name_map``) and shapes as the PyTorch model's.
        state_dict: key -> tensor/array, e.g. ``torch_model.state_dict()``, or a dict of
            NumPy arrays saved from one (``{k: v.numpy() for k, v in sd.items()}``).
        name_map: renames torch keys: a dict (keys not in it keep their name) or a function
            returning the minidl key, or None to drop that entry.
        strict: every minidl parameter/buffer must be given and every given key used.
        skip_num_batches_tracked: ignore BatchNorm's ``num_batches_tracked`` counters (both
            the given ones and the model's, which then keep their values).

    Raises:
        KeyError: (strict) missing keys, naming each minidl key not found and each given
            key left unused.
        ValueError: a shape differs, naming the key, the expected and the given shape.
        TypeError: a value that cannot be read as an array, naming its key.
    """
    if not isinstance(model, Module):
        raise TypeError(f"load_torch_state_dict: model must be an nn.Module, got {type(model).__name__}")
    if not hasattr(state_dict, "items"):
        raise TypeError(f"load_torch_state_dict: state_dict must be a mapping of name -> array, got "
                        f"{type(state_dict).__name__}")
    if name_map is None:
        rename: Callable[[str], str | None] = lambda k: k  # noqa: E731
    elif callable(name_map):
        rename = name_map
    elif isinstance(name_map, Mapping):
        rename = lambda k: name_map.get(k, k)  # noqa: E731
    else:
        raise TypeError(f"load_torch_state_dict: name_map must be a dict or a function, got {type(name_map).__name__}")

    def skipped(key: str) -> bool:
        return skip_num_batches_tracked and key.rsplit(".", 1)[-1] == "num_batches_tracked"

    arrays: "OrderedDict[str, np.ndarray]" = OrderedDict()
    source: dict[str, str] = {}
    for torch_key, value in state_dict.items():
        key = rename(torch_key)
        if key is None or skipped(key):
            continue
        if key in arrays:
            raise ValueError(f"load_torch_state_dict: {source[key]!r} and {torch_key!r} both map to {key!r}")
        arrays[key] = to_numpy_array(value, torch_key)
        source[key] = torch_key

    own = OrderedDict((k, t) for k, t in model._state_items() if not skipped(k))
    label = lambda k: k if source.get(k, k) == k else f"{k} (torch key {source[k]!r})"  # noqa: E731
    bad_shape = [f"{label(k)}: the model has {tuple(t.data.shape)}, the state dict {arrays[k].shape}"
                 for k, t in own.items() if k in arrays and tuple(arrays[k].shape) != tuple(t.data.shape)]
    if bad_shape:
        raise ValueError(f"load_torch_state_dict into {type(model).__name__}: shape mismatch for " + "; ".join(bad_shape))
    missing = [k for k in own if k not in arrays]
    unused = [source[k] for k in arrays if k not in own]
    if strict and (missing or unused):
        parts = []
        if missing:
            parts.append("missing weights " + ", ".join(repr(k) for k in missing))
        if unused:
            parts.append("unexpected (unused) keys " + ", ".join(repr(k) for k in unused))
        raise KeyError(f"load_torch_state_dict into {type(model).__name__}: " + "; ".join(parts)
                       + "; pass name_map to rename keys")
    for k, t in own.items():
        if k in arrays:
            a = arrays[k]
            if a.dtype.kind not in "fiub":
                raise TypeError(f"load_torch_state_dict: {label(k)} has dtype {a.dtype}, not a number")
            t.data[...] = backend.to_device(a.astype(t.data.dtype, copy=False), backend.device_of(t.data))
    return model

