"""``load(path) -> nn.Module``: build a trainable minidl module from an ONNX graph.

The graph's nodes become a ``GraphModule`` that runs them in order. Nodes with weights
become real minidl layers holding those weights as Parameters, so that the module can be
fine-tuned with any minidl optimizer:

    Gemm (B an initializer, transB=1)   -> nn.Linear         Conv              -> nn.Conv2d
    ConvTranspose                       -> nn.ConvTranspose2d MaxPool/AveragePool -> pools
    GlobalAveragePool                   -> nn.AdaptiveAvgPool2d(1)
    BatchNormalization                  -> nn.BatchNorm1d/2d (by the input's rank)
    LayerNormalization                  -> nn.LayerNorm       Gather(initializer, ids) -> nn.Embedding

Every other supported node (Relu, Sigmoid, Tanh, LeakyRelu, Elu, Softplus, Erf, Exp, Log,
Sqrt, Abs, Neg, Softmax, LogSoftmax, Identity, Dropout, Flatten, Reshape, Transpose,
Concat, Add, Sub, Mul, Div, Pow, Max, Min, MatMul, Clip, Cast, ReduceSum, Constant) runs as
the matching minidl op; a floating initializer of more than one value becomes a Parameter of
the module (named after the initializer); scalars and integer arrays stay constants. An unsupported op raises ``OnnxImportError`` naming it and
the node. The module is returned in eval mode (BatchNorm uses its running statistics, as
ONNX inference does); call ``.train()`` to fine-tune.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

import numpy as np

from .. import backend
from .. import functional as F
from .. import nn
from ..tensor import Tensor

__all__ = ["load", "GraphModule", "OnnxImportError", "IMPORTERS"]


class OnnxImportError(RuntimeError):
    """Raised for an ONNX node minidl cannot run (naming its op type and node name)."""


def _safe(name: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z_]", "_", name)
    return s if s and not s[0].isdigit() else "v_" + s


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(op: str, pads: list) -> tuple:
    pads = list(pads) if pads else [0, 0, 0, 0]
    if pads[:2] != pads[2:]:
        raise OnnxImportError(f"{op}: asymmetric pads {pads} are not supported")
    return int(pads[0]), int(pads[1])


class GraphModule(nn.Module):
    """A module that runs an ONNX graph node by node.

    ``layers`` (a ModuleDict) holds the layers made from weighted nodes; ``params`` holds
    the other floating initializers as Parameters; integer initializers (shapes, axes) are
    kept as constants. ``forward(*inputs)`` takes the graph inputs in order and returns the
    output (a tuple for several outputs).
    """

    def __init__(self, input_names: list, output_names: list) -> None:
        super().__init__()
        self.layers = nn.ModuleDict()
        self.params = nn.Module()
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.steps: list = []        # (op_type, input names, output name, layer key or None, run(values, layer))
        self.constants: dict = {}    # value name -> NumPy array (not learned)
        self.param_of: dict = {}     # value name -> attribute name in self.params
        self.absorbed: set = set()   # initializers that live inside a layer (read there, not here)

    def value(self, env: dict, name: str) -> Any:
        if name in env:
            return env[name]
        if name in self.absorbed:
            return None
        if name in self.param_of:
            return getattr(self.params, self.param_of[name])
        if name in self.constants:  # on the device the inputs came on
            return Tensor(backend.to_device(self.constants[name], env["__device__"]))
        raise KeyError(f"GraphModule: value {name!r} is used before it is computed")

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"GraphModule: expected {len(self.input_names)} inputs "
                             f"({', '.join(self.input_names)}), got {len(inputs)}")
        env: dict = {n: (x if isinstance(x, Tensor) else Tensor(np.asarray(x))) for n, x in zip(self.input_names, inputs)}
        env["__device__"] = env[self.input_names[0]].device if self.input_names else "cpu"
        for op_type, ins, out, key, run in self.steps:
            env[out] = run([self.value(env, n) if n else None for n in ins], self.layers[key] if key else None)
        outs = tuple(env[n] if n in env else self.value(env, n) for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs


# ------------------------------------------------------------------------ node importers
# Each takes (graph module, node, attributes, initializers, ranks) and returns the node's step,
# run(values, layer) -> Tensor (layer: the node's minidl layer, or None for a plain op).

def _call_layer(values: list, layer: nn.Module) -> Tensor:
    """A weighted node's step: run its layer (looked up by the module at call time, so that
    copies and swapped layers, e.g. quantized ones, are the ones that run)."""
    return layer(values[0])


def _weight(inits: dict, name: str, op: str) -> np.ndarray:
    if name not in inits:
        raise OnnxImportError(f"{op}: weight {name!r} must be an initializer to become a minidl layer")
    return inits[name]


def _set(p: Any, array: np.ndarray) -> None:
    p.data[...] = array.astype(p.data.dtype)


def _layer(gm: GraphModule, node, module: nn.Module) -> nn.Module:
    key = _safe(node.name or node.output[0])
    while key in gm.layers:
        key += "_"
    gm.layers[key] = module
    return module


def _im_gemm(gm, node, at, inits, ranks):
    alpha, beta = at.get("alpha", 1.0), at.get("beta", 1.0)
    if node.input[1] in inits and at.get("transB", 0) == 1 and not at.get("transA", 0) and alpha == 1 and beta == 1 \
            and (len(node.input) < 3 or node.input[2] in inits):
        w = inits[node.input[1]]
        b = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
        if b is not None and b.shape != (w.shape[0],):
            b = None if b.size != w.shape[0] else b.reshape(w.shape[0])
        lin = _layer(gm, node, nn.Linear(w.shape[1], w.shape[0], bias=b is not None, dtype=w.dtype))
        _set(lin.weight, w)
        if b is not None:
            _set(lin.bias, b)
        return _call_layer

    def run(v):
        a = v[0].T if at.get("transA", 0) else v[0]
        b = v[1].T if at.get("transB", 0) else v[1]
        y = (a @ b) * alpha if alpha != 1 else a @ b
        if len(v) > 2 and v[2] is not None:
            y = y + (v[2] * beta if beta != 1 else v[2])
        return y
    return run


def _im_conv(gm, node, at, inits, ranks):
    w = _weight(inits, node.input[1], "Conv")
    b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if len(w.shape) != 4:
        raise OnnxImportError(f"Conv {node.name!r}: only 2-D convolutions are supported, weight shape {w.shape}")
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise OnnxImportError(f"Conv {node.name!r}: auto_pad is not supported")
    group = int(at.get("group", 1))
    conv = _layer(gm, node, nn.Conv2d(w.shape[1] * group, w.shape[0], tuple(w.shape[2:]),
                                      stride=tuple(at.get("strides", [1, 1])), padding=_sym_pads("Conv", at.get("pads")),
                                      dilation=tuple(at.get("dilations", [1, 1])), groups=group,
                                      bias=b is not None, dtype=w.dtype))
    _set(conv.weight, w)
    if b is not None:
        _set(conv.bias, b)
    return _call_layer


def _im_conv_transpose(gm, node, at, inits, ranks):
    w = _weight(inits, node.input[1], "ConvTranspose")
    b = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if "output_shape" in at:
        raise OnnxImportError(f"ConvTranspose {node.name!r}: the output_shape attribute is not supported")
    group = int(at.get("group", 1))
    conv = _layer(gm, node, nn.ConvTranspose2d(
        w.shape[0], w.shape[1] * group, tuple(w.shape[2:]), stride=tuple(at.get("strides", [1, 1])),
        padding=_sym_pads("ConvTranspose", at.get("pads")), output_padding=tuple(at.get("output_padding", [0, 0])),
        groups=group, bias=b is not None, dilation=tuple(at.get("dilations", [1, 1])), dtype=w.dtype))
    _set(conv.weight, w)
    if b is not None:
        _set(conv.bias, b)
    return _call_layer


def _im_max_pool(gm, node, at, inits, ranks):
    if at.get("ceil_mode", 0) or len(node.output) > 1:
        raise OnnxImportError(f"MaxPool {node.name!r}: ceil_mode and the indices output are not supported")
    k = tuple(at["kernel_shape"])
    _layer(gm, node, nn.MaxPool2d(k, tuple(at.get("strides", [1, 1])), _sym_pads("MaxPool", at.get("pads")),
                                  tuple(at.get("dilations", [1, 1]))))
    return _call_layer


def _im_avg_pool(gm, node, at, inits, ranks):
    if at.get("ceil_mode", 0):
        raise OnnxImportError(f"AveragePool {node.name!r}: ceil_mode is not supported")
    _layer(gm, node, nn.AvgPool2d(tuple(at["kernel_shape"]), tuple(at.get("strides", [1, 1])),
                                  _sym_pads("AveragePool", at.get("pads")),
                                  count_include_pad=bool(at.get("count_include_pad", 0))))
    return _call_layer


def _im_global_avg_pool(gm, node, at, inits, ranks):
    _layer(gm, node, nn.AdaptiveAvgPool2d(1))
    return _call_layer


def _im_batch_norm(gm, node, at, inits, ranks):
    scale, bias, mean, var = (_weight(inits, n, "BatchNormalization") for n in node.input[1:5])
    rank = ranks.get(node.input[0], 4)
    cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
    bn = _layer(gm, node, cls(scale.shape[0], eps=float(at.get("epsilon", 1e-5)),
                              momentum=1.0 - float(at.get("momentum", 0.9)), dtype=scale.dtype))
    for p, a in ((bn.weight, scale), (bn.bias, bias), (bn.running_mean, mean), (bn.running_var, var)):
        _set(p, a)
    return _call_layer


def _im_layer_norm(gm, node, at, inits, ranks):
    scale = _weight(inits, node.input[1], "LayerNormalization")
    bias = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    axis = int(at.get("axis", -1))
    rank = ranks.get(node.input[0])
    if axis >= 0 and rank is not None:
        axis -= rank
    if axis != -scale.ndim:
        raise OnnxImportError(f"LayerNormalization {node.name!r}: axis {at.get('axis', -1)} must cover exactly "
                              f"the scale's {scale.ndim} trailing dimensions")
    ln = _layer(gm, node, nn.LayerNorm(scale.shape, eps=float(at.get("epsilon", 1e-5)), bias=bias is not None,
                                       dtype=scale.dtype))
    _set(ln.weight, scale)
    if bias is not None:
        _set(ln.bias, bias)
    return _call_layer


def _im_gather(gm, node, at, inits, ranks):
    if node.input[0] in inits and at.get("axis", 0) == 0 and inits[node.input[0]].ndim == 2 \
            and inits[node.input[0]].dtype.kind == "f":
        w = inits[node.input[0]]
        emb = _layer(gm, node, nn.Embedding(w.shape[0], w.shape[1], dtype=w.dtype))
        _set(emb.weight, w)
        return lambda v, layer: layer(Tensor(v[1].data.astype(np.int64)))
    axis = int(at.get("axis", 0))
    return lambda v: F.getitem(v[0], (slice(None),) * (axis % v[0].ndim) + (v[1].data.astype(np.int64),))


def _reshape(v):
    x, shape = v[0], [int(s) for s in v[1].data]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(*shape)


def _flatten(at):
    def run(v):
        x = v[0]
        axis = int(at.get("axis", 1)) % max(x.ndim, 1) if x.ndim else 0
        lead = int(np.prod(x.shape[:axis])) if axis else 1
        return x.reshape(lead, -1)
    return run


def _clip(v):
    x = v[0]
    lo = float(v[1].data.reshape(-1)[0]) if len(v) > 1 and v[1] is not None else None
    hi = float(v[2].data.reshape(-1)[0]) if len(v) > 2 and v[2] is not None else None
    return F.clip(x, lo, hi)


def _reduce_sum(at):
    def run(v):
        axes = tuple(int(a) for a in v[1].data) if len(v) > 1 and v[1] is not None else None
        if axes == () and at.get("noop_with_empty_axes", 0):
            return v[0]
        return v[0].sum(axis=axes or None, keepdims=bool(at.get("keepdims", 1)))
    return run


def _simple(fn: Callable) -> Callable:
    return lambda gm, node, at, inits, ranks: fn


def _with_attrs(make: Callable) -> Callable:
    return lambda gm, node, at, inits, ranks: make(at)


def _elu(at):
    return lambda v: F.elu(v[0], float(at.get("alpha", 1.0)))


def _cast(at):
    from onnx import helper
    dt = helper.tensor_dtype_to_np_dtype(at["to"])
    return lambda v: v[0].astype(dt)


IMPORTERS: dict[str, Callable] = {
    "Gemm": _im_gemm, "Conv": _im_conv, "ConvTranspose": _im_conv_transpose, "MaxPool": _im_max_pool,
    "AveragePool": _im_avg_pool, "GlobalAveragePool": _im_global_avg_pool,
    "BatchNormalization": _im_batch_norm, "LayerNormalization": _im_layer_norm, "Gather": _im_gather,
    "Relu": _simple(lambda v: F.relu(v[0])), "Sigmoid": _simple(lambda v: F.sigmoid(v[0])),
    "Tanh": _simple(lambda v: F.tanh(v[0])), "Softplus": _simple(lambda v: F.softplus(v[0])),
    "Erf": _simple(lambda v: F.erf(v[0])), "Exp": _simple(lambda v: F.exp(v[0])),
    "Log": _simple(lambda v: F.log(v[0])), "Sqrt": _simple(lambda v: F.sqrt(v[0])),
    "Abs": _simple(lambda v: F.abs(v[0])), "Neg": _simple(lambda v: -v[0]),
    "Identity": _simple(lambda v: v[0]), "Dropout": _simple(lambda v: v[0]),
    "Add": _simple(lambda v: v[0] + v[1]), "Sub": _simple(lambda v: v[0] - v[1]),
    "Mul": _simple(lambda v: v[0] * v[1]), "Div": _simple(lambda v: v[0] / v[1]),
    "Pow": _simple(lambda v: v[0] ** v[1]), "MatMul": _simple(lambda v: F.matmul(v[0], v[1])),
    "Max": _simple(lambda v: F.maximum(v[0], v[1])), "Min": _simple(lambda v: F.minimum(v[0], v[1])),
    "Reshape": _simple(_reshape), "Clip": _simple(_clip),
    "LeakyRelu": _with_attrs(lambda at: lambda v: F.leaky_relu(v[0], float(at.get("alpha", 0.01)))),
    "Elu": _with_attrs(_elu), "Cast": _with_attrs(_cast), "Flatten": _with_attrs(_flatten),
    "Softmax": _with_attrs(lambda at: lambda v: F.softmax(v[0], int(at.get("axis", -1)))),
    "LogSoftmax": _with_attrs(lambda at: lambda v: F.log_softmax(v[0], int(at.get("axis", -1)))),
    "Transpose": _with_attrs(lambda at: lambda v: v[0].transpose(*at["perm"]) if "perm" in at else v[0].transpose()),
    "Concat": _with_attrs(lambda at: lambda v: F.concat(list(v), axis=int(at["axis"]))),
    "ReduceSum": _with_attrs(_reduce_sum),
}
"""ONNX op type -> importer (the default ONNX domain, opset 13 to 21 semantics)."""

_LAYER_INPUTS = {"Gemm": (1, 2), "Conv": (1, 2), "ConvTranspose": (1, 2), "BatchNormalization": (1, 2, 3, 4),
                 "LayerNormalization": (1, 2)}


def load(path: str | os.PathLike | Any) -> GraphModule:
    """Build a ``GraphModule`` from the ONNX file at ``path`` (or an ``onnx.ModelProto``).

    Raises ``OnnxImportError`` naming the first unsupported op (checked for every node
    before any layer is built).
    """
    import onnx
    from onnx import numpy_helper

    proto = path if isinstance(path, onnx.ModelProto) else onnx.load(os.fspath(path))
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception:  # shape inference is only used to learn ranks; the graph still loads
        pass
    graph = proto.graph
    unsupported = [f"{n.op_type} (node {n.name or n.output[0]!r})" for n in graph.node
                   if n.op_type not in IMPORTERS and n.op_type != "Constant" or n.domain not in ("", "ai.onnx")]
    if unsupported:
        raise OnnxImportError("load: unsupported ONNX op(s): " + ", ".join(unsupported)
                              + "; supported: " + ", ".join(sorted(IMPORTERS)))
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    ranks = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    init_names = set(inits)
    inputs = [i.name for i in graph.input if i.name not in init_names]
    gm = GraphModule(inputs, [o.name for o in graph.output])

    absorbed = set()  # initializers that became a layer's weights
    for node in graph.node:
        if node.op_type == "Constant":
            at = _attrs(node)
            if "value" not in at:
                raise OnnxImportError(f"Constant {node.name!r}: only the 'value' attribute is supported")
            inits[node.output[0]] = numpy_helper.to_array(at["value"])
            continue
        at = _attrs(node)
        before = set(gm.layers.keys())
        run = IMPORTERS[node.op_type](gm, node, at, inits, ranks)
        added = [k for k in gm.layers.keys() if k not in before]
        if added:
            for i in _LAYER_INPUTS.get(node.op_type, (0,) if node.op_type == "Gather" else ()):
                if i < len(node.input):
                    absorbed.add(node.input[i])
            gm.steps.append((node.op_type, list(node.input), node.output[0], added[0], run))
        else:
            gm.steps.append((node.op_type, list(node.input), node.output[0], None, _wrap_plain(node, run)))

    used = {n for step in gm.steps for n in step[1]} | set(gm.output_names)
    for name, arr in inits.items():
        if name not in used:
            continue
        if name in absorbed:
            continue
        if arr.dtype.kind == "f" and arr.size > 1:
            attr = _safe(name)
            gm.params.register_parameter(attr, nn.Parameter(arr.copy()))
            gm.param_of[name] = attr
        else:
            gm.constants[name] = arr
    gm.absorbed = absorbed
    return gm.eval()


def _wrap_plain(node, run: Callable) -> Callable:
    """Run a plain op, re-raising failures with the node that caused them."""
    def step(values, layer=None):
        try:
            return run(values)
        except (ValueError, TypeError, IndexError) as e:
            raise type(e)(f"ONNX node {node.op_type} {node.name or node.output[0]!r}: {e}") from e
    return step
