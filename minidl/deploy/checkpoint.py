"""Model checkpoints for the command line: a state dict plus the architecture that reads it.

A checkpoint is a ``minidl.save`` file holding either a bare state dict or
``{"arch": {"name": "lenet"|"mlp", "kwargs": {...}}, "model": state_dict}``
(what ``save_model`` writes). For a bare LeNet5 or MLP state dict the architecture is
read off the weight shapes (``infer_arch``); only LeNet5's input size is ambiguous and is
found by trying sizes (8, 28, 32, then 4..64) or given explicitly.

An int8 model (``quantize_cli``) is saved by ``save_quantized`` as a packed file
(``minidl.deploy.packed``: all int8 weights in one blob, the int32 biases and zero points in
another, each stored in the smallest integer type that holds it exactly -- int16 biases and
int8 zero points for the digits LeNet --, the scales in a third; deflated) whose meta is ``{"format": "minidl.int8", "arch": ...}``,
and rebuilt by ``load_quantized``, which also reads the earlier ``minidl.save`` layout
(``{"format": "minidl.int8", "arch", "model"}`` with float32 biases, quantized on loading).
"""
from __future__ import annotations

import os

import numpy as np

from .. import nn
from ..models import MLP, LeNet5
from ..serialization import load, save
from .packed import is_packed_file, load_packed, save_packed
from .quantization import QuantizedConv2d, QuantizedLinear

__all__ = ["save_model", "infer_arch", "build_model", "load_model", "save_quantized", "load_quantized"]

_ARCHS = {"lenet": LeNet5, "mlp": MLP}


def save_model(model: nn.Module, path: str | os.PathLike, arch: dict | None = None) -> str:
    """Save ``model.state_dict()`` with its architecture (``arch`` or inferred for LeNet5/MLP)."""
    if arch is None:
        if isinstance(model, LeNet5):
            c1, c2 = model.features[0].out_channels, model.features[3].out_channels
            arch = {"name": "lenet", "kwargs": {
                "in_channels": model.in_channels, "num_classes": model.classifier[4].out_features,
                "input_size": model.input_size, "channels": [c1, c2],
                "hidden": [model.classifier[0].out_features, model.classifier[2].out_features]}}
        else:
            arch = infer_arch(model.state_dict())
    return save({"arch": arch, "model": model.state_dict()}, path)


def _lenet_features(s: int, c2: int) -> int:
    s1 = s // 2
    p2 = 0 if s1 >= 12 else 2
    s2 = (s1 + 2 * p2 - 4) // 2
    return c2 * s2 * s2 if s2 > 0 else -1


def infer_arch(sd: dict, input_size: int | None = None) -> dict:
    """{"name", "kwargs"} of the LeNet5 or MLP whose state dict is ``sd`` (by key names and shapes)."""
    keys = list(sd)
    if "features.0.weight" in keys and "classifier.4.weight" in keys:
        c1, cin = sd["features.0.weight"].shape[:2]
        c2 = sd["features.3.weight"].shape[0]
        h1, feats = sd["classifier.0.weight"].shape
        h2 = sd["classifier.2.weight"].shape[0]
        k = sd["classifier.4.weight"].shape[0]
        sizes = [input_size] if input_size else [8, 28, 32] + list(range(4, 65))
        for s in sizes:
            if _lenet_features(s, c2) == feats:
                return {"name": "lenet", "kwargs": {"in_channels": int(cin), "num_classes": int(k), "input_size": int(s),
                                                    "channels": [int(c1), int(c2)], "hidden": [int(h1), int(h2)]}}
        raise ValueError(f"infer_arch: no LeNet5 input size gives {feats} features after the convolutions"
                         + (f" (input_size={input_size})" if input_size else ""))
    linear = sorted((int(key.split(".")[0]), sd[key].shape) for key in keys
                    if key.endswith(".weight") and key.split(".")[0].isdigit() and sd[key].ndim == 2)
    if linear and linear[0][0] == 1:
        positions = [p for p, _ in linear]
        gaps = {b - a for a, b in zip(positions[:-1], positions[1:])}
        if len(gaps) > 1:
            raise ValueError(f"infer_arch: Linear layers at positions {positions} do not form an MLP")
        return {"name": "mlp", "kwargs": {"in_features": int(linear[0][1][1]),
                                          "hidden": [int(s[0]) for _, s in linear[:-1]],
                                          "num_classes": int(linear[-1][1][0]),
                                          "dropout": 0.1 if gaps == {3} else 0.0}}
    raise ValueError("infer_arch: the state dict is neither a LeNet5 (features.*/classifier.*) nor an MLP "
                     f"(1.weight, 3.weight, ...); its first keys: {keys[:4]}")


def build_model(arch: dict) -> nn.Module:
    """A fresh model of architecture ``arch`` ({"name": "lenet"|"mlp", "kwargs": {...}})."""
    name = arch.get("name")
    if name not in _ARCHS:
        raise ValueError(f"build_model: unknown architecture {name!r}; known: {', '.join(_ARCHS)}")
    kwargs = dict(arch.get("kwargs", {}))
    for key in ("channels", "hidden"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return _ARCHS[name](**kwargs)


def _read(path: str | os.PathLike) -> tuple[dict | None, dict]:
    obj = load(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        return obj.get("arch"), obj["model"]
    if isinstance(obj, dict) and all(isinstance(v, np.ndarray) for v in obj.values()):
        return None, obj
    raise ValueError(f"load_model: {os.fspath(path)!r} holds neither a state dict nor {{'arch', 'model'}}")


def load_model(path: str | os.PathLike, model: str | None = None, input_size: int | None = None) -> nn.Module:
    """The float model saved at ``path`` (in eval mode).

    ``model`` ("lenet"/"mlp") overrides the saved or inferred architecture name;
    ``input_size`` fixes LeNet5's input size when the checkpoint does not say."""
    arch, sd = _read(path)
    if arch is None or (model and arch.get("name") != model) or (input_size and arch.get("name") == "lenet"):
        arch = infer_arch(sd, input_size)
        if model and arch["name"] != model:
            raise ValueError(f"load_model: the checkpoint holds a {arch['name']} state dict, not a {model}")
    net = build_model(arch)
    net.load_state_dict(sd)
    return net.eval()


def save_quantized(qmodel: nn.Module, arch: dict, path: str | os.PathLike, compress: bool = True) -> str:
    """Save an int8 model (from ``quantize_model``) with the architecture of its float model
    as a packed file, deflated unless ``compress=False`` (stored plain when deflate cannot shrink it)."""
    return save_packed(qmodel.state_dict(), path, meta={"format": "minidl.int8", "arch": arch}, compress=compress)


def _read_quantized(path: str | os.PathLike) -> tuple[dict, dict]:
    """(arch, int8 state dict) from a packed file or the earlier minidl.save layout."""
    if is_packed_file(path):
        sd, meta = load_packed(path)
        obj = dict(meta, model=sd) if isinstance(meta, dict) else None
    else:
        obj = load(path)
    if not isinstance(obj, dict) or obj.get("format") != "minidl.int8" or not isinstance(obj.get("arch"), dict):
        raise ValueError(f"load_quantized: {os.fspath(path)!r} is not an int8 model saved by save_quantized")
    return obj["arch"], obj["model"]


def load_quantized(path: str | os.PathLike) -> nn.Module:
    """Rebuild an int8 model saved by ``save_quantized`` (in eval mode)."""
    arch, sd = _read_quantized(path)
    sd, net = dict(sd), build_model(arch).eval()
    for path_, parent in list(net.named_modules()):
        for name, child in list(parent._modules.items()):
            key = (path_ + "." if path_ else "") + name + "."
            if key + "weight_int8" not in sd or type(child) not in (nn.Linear, nn.Conv2d):
                continue
            bias = sd.pop(key + "bias", None)  # a float32 bias in the earlier layout
            bias = sd.get(key + "bias_int32", bias)
            args = (sd[key + "weight_int8"], sd[key + "weight_scale"], bias, sd[key + "input_scale"],
                    sd[key + "input_zero_point"])
            if type(child) is nn.Linear:
                q = QuantizedLinear(*args)
            else:
                q = QuantizedConv2d(*args, stride=child.stride, padding=child.padding, dilation=child.dilation,
                                    groups=child.groups)
            parent._modules[name] = q
            if q.bias_int32 is not None:
                sd[key + "bias_int32"] = q.bias_int32.data
    net.load_state_dict(sd)
    return net
