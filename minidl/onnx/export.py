"""``export(model, example_input, path)``: write a minidl model as an ONNX graph.

How the graph is found (tracing in two layers):

1. Every supported layer (``Linear``, ``Conv2d``, ``BatchNorm2d``, ``ReLU``, ...; the table
   ``MODULE_EXPORTERS``) gets a forward hook for the duration of one forward pass on
   ``example_input``. The hook records the layer, the Tensors it received and the Tensor it
   returned. A minidl layer of a kind that cannot be exported (an LSTM, attention, ...) is
   refused before the pass runs; a user's own module is traced through the ops it runs.
2. After the pass, the autograd graph is walked back from the output: a Tensor recorded by
   a hook becomes that layer's ONNX node(s) (the ops inside the layer are not visited); any
   other Tensor made by an op (the ``reshape`` between features and classifier, an ``add``
   of a residual, a ``concat``...) becomes the node of its ``Function`` (the table
   ``FUNCTION_EXPORTERS``); a leaf becomes an initializer (parameters keep their
   state-dict names) or the graph input.

So the pass records the graph exactly as the model computes it; the walk needs gradients to
be recorded, so the example input and all parameters require grad during the trace (their
flags are restored afterwards) and the model runs in eval mode (its modes are restored).
Any unsupported op raises ``OnnxExportError`` naming it, and the model is checked with
``onnx.checker`` before a single byte is written; the file is then written atomically.

Dynamic batch: with ``dynamic_batch=True`` the first dimension of inputs and outputs is the
symbolic ``"batch"`` and a reshape whose first dimension equals the input's copies it
(ONNX ``Reshape`` with 0), so the file runs on any batch size.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Any, Callable, Sequence

import numpy as np

from .. import backend, nn
from ..autograd import enable_grad
from ..functional import elementwise as E
from ..functional import linalg as L
from ..functional import reduce as R
from ..functional import shape as S
from ..functional import activation as A
from ..tensor import Tensor

__all__ = ["export", "OnnxExportError", "MODULE_EXPORTERS", "FUNCTION_EXPORTERS", "to_model_proto"]


class OnnxExportError(RuntimeError):
    """Raised for a layer or op that has no ONNX translation (nothing is written)."""


def _onnx():
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a declared optional dependency
        raise ImportError("minidl.onnx needs the 'onnx' package: pip install onnx") from None
    return onnx


def _pair(v: Any) -> tuple:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class _GraphBuilder:
    """Collects nodes and initializers, handing out unique value names."""

    def __init__(self, onnx, param_names: dict):
        self.onnx = onnx
        self.nodes: list = []
        self.initializers: dict[str, np.ndarray] = {}
        self.param_names = param_names  # id(Tensor) -> state-dict name
        self._by_id: dict[int, str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def param(self, t: Tensor) -> str:
        """The initializer holding Tensor ``t`` (a parameter keeps its state-dict name)."""
        if id(t) not in self._by_id:
            name = self.param_names.get(id(t)) or self.fresh("const")
            self.initializers[name] = backend.to_numpy(t.data)
            self._by_id[id(t)] = name
        return self._by_id[id(t)]

    def const(self, array: Any, hint: str = "const") -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.asarray(array)
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out


# ------------------------------------------------------------------------ layer exporters
# Each takes (builder, module, input names, input Tensors, output Tensor) and returns the
# name of the value holding the layer's output.

def _linear_op(g: _GraphBuilder, x: str, x_ndim: int, w: str, b: str | None, hint: str) -> str:
    """y = x W^T + b: Gemm for a 2-D input, MatMul(x, W^T) + b otherwise."""
    if x_ndim == 2:
        return g.op("Gemm", [x, w] + ([b] if b else []), hint, transB=1)
    wt = g.op("Transpose", [w], hint + "_wT", perm=[1, 0])
    y = g.op("MatMul", [x, wt], hint)
    return g.op("Add", [y, b], hint) if b else y


def _ex_linear(g, m, names, xs, y):
    return _linear_op(g, names[0], xs[0].ndim, g.param(m.weight), g.param(m.bias) if m.bias is not None else None,
                      "linear")


def _require_4d(m, xs):
    if xs[0].ndim != 4:
        raise OnnxExportError(f"{type(m).__name__}: only batched (N, C, H, W) inputs can be exported, "
                              f"got shape {tuple(xs[0].shape)}")


def _conv_pads(m) -> list:
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return [0, 0, 0, 0]
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
        return [total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2]
    ph, pw = m.padding
    return [ph, pw, ph, pw]


def _ex_conv2d(g, m, names, xs, y):
    _require_4d(m, xs)
    inputs = [names[0], g.param(m.weight)] + ([g.param(m.bias)] if m.bias is not None else [])
    return g.op("Conv", inputs, "conv", kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=_conv_pads(m), dilations=list(m.dilation), group=m.groups)


def _ex_conv_transpose2d(g, m, names, xs, y):
    _require_4d(m, xs)
    inputs = [names[0], g.param(m.weight)] + ([g.param(m.bias)] if m.bias is not None else [])
    ph, pw = m.padding
    return g.op("ConvTranspose", inputs, "convT", kernel_shape=list(m.kernel_size), strides=list(m.stride),
                pads=[ph, pw, ph, pw], dilations=list(m.dilation), group=m.groups,
                output_padding=list(_pair(m.output_padding)))


def _ex_max_pool(g, m, names, xs, y):
    _require_4d(m, xs)
    if m.return_indices:
        raise OnnxExportError("MaxPool2d(return_indices=True) cannot be exported")
    ph, pw = _pair(m.padding)
    return g.op("MaxPool", [names[0]], "maxpool", kernel_shape=list(_pair(m.kernel_size)),
                strides=list(_pair(m.stride)), pads=[ph, pw, ph, pw], dilations=list(_pair(m.dilation)))


def _ex_avg_pool(g, m, names, xs, y):
    _require_4d(m, xs)
    ph, pw = _pair(m.padding)
    return g.op("AveragePool", [names[0]], "avgpool", kernel_shape=list(_pair(m.kernel_size)),
                strides=list(_pair(m.stride)), pads=[ph, pw, ph, pw], count_include_pad=int(m.count_include_pad))


def _ex_adaptive_avg_pool(g, m, names, xs, y):
    _require_4d(m, xs)
    h, w = xs[0].shape[2:]
    oh, ow = y.shape[2:]
    if (oh, ow) == (1, 1):
        return g.op("GlobalAveragePool", [names[0]], "gap")
    if h % oh or w % ow:
        raise OnnxExportError(f"AdaptiveAvgPool2d({m.output_size}) on a {h}x{w} map: only output sizes that "
                              "divide the input evenly can be exported")
    return g.op("AveragePool", [names[0]], "avgpool", kernel_shape=[h // oh, w // ow], strides=[h // oh, w // ow])


def _ex_batch_norm(g, m, names, xs, y):
    if not m.track_running_stats:
        raise OnnxExportError(f"{type(m).__name__}(track_running_stats=False) normalizes with batch statistics "
                              "even in eval mode and cannot be exported")
    c = m.num_features
    dt = m.running_mean.data.dtype
    scale = g.param(m.weight) if m.weight is not None else g.const(np.ones(c, dt), "bn_scale")
    bias = g.param(m.bias) if m.bias is not None else g.const(np.zeros(c, dt), "bn_bias")
    return g.op("BatchNormalization", [names[0], scale, bias, g.param(m.running_mean), g.param(m.running_var)],
                "batchnorm", epsilon=float(m.eps))


def _ex_layer_norm(g, m, names, xs, y):
    shape = m.normalized_shape
    dt = xs[0].dtype
    scale = g.param(m.weight) if m.weight is not None else g.const(np.ones(shape, dt), "ln_scale")
    bias = g.param(m.bias) if getattr(m, "bias", None) is not None else g.const(np.zeros(shape, dt), "ln_bias")
    return g.op("LayerNormalization", [names[0], scale, bias], "layernorm", axis=-len(shape), epsilon=float(m.eps))


def _ex_embedding(g, m, names, xs, y):
    idx = names[0]
    if xs[0].dtype not in (np.int64, np.int32):
        idx = g.op("Cast", [idx], "indices", to=g.onnx.TensorProto.INT64)
    return g.op("Gather", [g.param(m.weight), idx], "embedding", axis=0)


def _reshape_to(g, name: str, x: Tensor, out_shape: tuple, batch: int | None) -> str:
    """Reshape ``name`` to ``out_shape``; the first dim copies the input's when both are the batch."""
    target = list(out_shape)
    if batch is not None and x.ndim > 0 and len(target) > 0 and x.shape[0] == batch and target[0] == batch:
        target[0] = 0
    return g.op("Reshape", [name, g.const(np.asarray(target, np.int64), "shape")], "reshape")


def _ex_flatten(g, m, names, xs, y):
    if m.start_dim == 1 and m.end_dim in (-1, xs[0].ndim - 1):
        return g.op("Flatten", [names[0]], "flatten", axis=1)
    return _reshape_to(g, names[0], xs[0], y.shape, g.batch)


def _ex_identity(g, m, names, xs, y):
    return g.op("Identity", [names[0]], "identity")


def _unary(op_type: str, **attrs_of: Callable) -> Callable:
    def ex(g, m, names, xs, y):
        return g.op(op_type, [names[0]], op_type.lower(), **{k: f(m) for k, f in attrs_of.items()})
    return ex


def _softmax_axis(m, xs) -> int:
    if m.dim is not None:
        return int(m.dim)
    return 0 if xs[0].ndim in (0, 1, 3) else 1


def _ex_softmax(op_type):
    def ex(g, m, names, xs, y):
        return g.op(op_type, [names[0]], op_type.lower(), axis=_softmax_axis(m, xs))
    return ex


def _gelu_nodes(g, x: str, dtype, approximate: str) -> str:
    """GELU from primitive ops (opset 17 has no Gelu): 0.5 x (1 + erf(x / sqrt 2)), or the tanh form."""
    c = lambda v, h: g.const(np.asarray(v, dtype), h)  # noqa: E731
    if approximate == "tanh":
        x3 = g.op("Mul", [g.op("Mul", [x, x], "gelu"), x], "gelu")
        inner = g.op("Mul", [g.op("Add", [x, g.op("Mul", [x3, c(0.044715, "k")], "gelu")], "gelu"),
                             c(math.sqrt(2.0 / math.pi), "k")], "gelu")
        phi = g.op("Tanh", [inner], "gelu")
    else:
        phi = g.op("Erf", [g.op("Mul", [x, c(1.0 / math.sqrt(2.0), "k")], "gelu")], "gelu")
    return g.op("Mul", [g.op("Mul", [x, c(0.5, "half")], "gelu"), g.op("Add", [phi, c(1.0, "one")], "gelu")], "gelu")


def _ex_gelu(g, m, names, xs, y):
    return _gelu_nodes(g, names[0], xs[0].dtype, m.approximate)


def _ex_silu(g, m, names, xs, y):
    return g.op("Mul", [names[0], g.op("Sigmoid", [names[0]], "silu")], "silu")


def _ex_softplus(g, m, names, xs, y):
    if m.beta == 1:
        return g.op("Softplus", [names[0]], "softplus")
    beta = g.const(np.asarray(m.beta, xs[0].dtype), "beta")
    return g.op("Div", [g.op("Softplus", [g.op("Mul", [names[0], beta], "softplus")], "softplus"), beta], "softplus")


def _clip_nodes(g, x: str, dtype, lo, hi) -> str:
    lo_name = g.const(np.asarray(lo, dtype), "min") if lo is not None else ""
    hi_name = g.const(np.asarray(hi, dtype), "max") if hi is not None else ""
    return g.op("Clip", [x, lo_name, hi_name], "clip")


def _ex_hardtanh(g, m, names, xs, y):
    return _clip_nodes(g, names[0], xs[0].dtype, m.min_val, m.max_val)


MODULE_EXPORTERS: dict[type, Callable] = {
    nn.Linear: _ex_linear,
    nn.Conv2d: _ex_conv2d,
    nn.ConvTranspose2d: _ex_conv_transpose2d,
    nn.MaxPool2d: _ex_max_pool,
    nn.AvgPool2d: _ex_avg_pool,
    nn.AdaptiveAvgPool2d: _ex_adaptive_avg_pool,
    nn.BatchNorm1d: _ex_batch_norm,
    nn.BatchNorm2d: _ex_batch_norm,
    nn.LayerNorm: _ex_layer_norm,
    nn.Embedding: _ex_embedding,
    nn.Dropout: _ex_identity,
    nn.Dropout2d: _ex_identity,
    nn.Identity: _ex_identity,
    nn.Flatten: _ex_flatten,
    nn.ReLU: _unary("Relu"),
    nn.Sigmoid: _unary("Sigmoid"),
    nn.Tanh: _unary("Tanh"),
    nn.LeakyReLU: _unary("LeakyRelu", alpha=lambda m: float(m.negative_slope)),
    nn.ELU: _unary("Elu", alpha=lambda m: float(m.alpha)),
    nn.GELU: _ex_gelu,
    nn.SiLU: _ex_silu,
    nn.Softplus: _ex_softplus,
    nn.Hardtanh: _ex_hardtanh,
    nn.Softmax: _ex_softmax("Softmax"),
    nn.LogSoftmax: _ex_softmax("LogSoftmax"),
}
"""Layer type -> exporter. Containers (Sequential, ModuleList, ModuleDict) and custom
modules without parameters of their own are traced through the ops they run."""

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


# ------------------------------------------------------------------------ op exporters
# Each takes (builder, Function, input names, input Tensors, output Tensor).

def _fn_binary(op_type):
    def ex(g, f, names, xs, y):
        return g.op(op_type, names, op_type.lower())
    return ex


def _fn_unary(op_type):
    def ex(g, f, names, xs, y):
        return g.op(op_type, [names[0]], op_type.lower())
    return ex


def _fn_linear(g, f, names, xs, y):
    return _linear_op(g, names[0], xs[0].ndim, names[1], names[2] if len(names) > 2 else None, "linear")


def _fn_reshape(g, f, names, xs, y):
    return _reshape_to(g, names[0], xs[0], y.shape, g.batch)


def _fn_transpose(g, f, names, xs, y):
    n = xs[0].ndim
    perm = list(range(n))[::-1] if f.axes is None else [a % n for a in f.axes]
    return g.op("Transpose", [names[0]], "transpose", perm=perm)


def _fn_concat(g, f, names, xs, y):
    return g.op("Concat", names, "concat", axis=int(f.axis))


def _fn_softmax(op_type):
    def ex(g, f, names, xs, y):
        return g.op(op_type, [names[0]], op_type.lower(), axis=int(f.axis))
    return ex


def _fn_leaky_relu(g, f, names, xs, y):
    return g.op("LeakyRelu", [names[0]], "leakyrelu", alpha=float(f.slope))


def _fn_elu(g, f, names, xs, y):
    return g.op("Elu", [names[0]], "elu", alpha=float(f.alpha))


def _fn_clip(g, f, names, xs, y):
    return _clip_nodes(g, names[0], xs[0].dtype, f.lo, f.hi)


def _fn_sum(g, f, names, xs, y):
    axes = g.const(np.asarray(list(f.axes), np.int64), "axes")
    return g.op("ReduceSum", [names[0], axes], "reducesum", keepdims=int(bool(f.keepdims)))


def _fn_cast(g, f, names, xs, y):
    return g.op("Cast", [names[0]], "cast", to=int(g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(f.dtype))))


FUNCTION_EXPORTERS: dict[type, Callable] = {
    E.Add: _fn_binary("Add"), E.Sub: _fn_binary("Sub"), E.Mul: _fn_binary("Mul"), E.Div: _fn_binary("Div"),
    E.Pow: _fn_binary("Pow"), E.Maximum: _fn_binary("Max"), E.Minimum: _fn_binary("Min"),
    L.MatMul: _fn_binary("MatMul"), L.Linear: _fn_linear,
    E.Neg: _fn_unary("Neg"), E.Exp: _fn_unary("Exp"), E.Log: _fn_unary("Log"), E.Sqrt: _fn_unary("Sqrt"),
    E.Abs: _fn_unary("Abs"), E.Erf: _fn_unary("Erf"), E.Tanh: _fn_unary("Tanh"),
    E.Sigmoid: _fn_unary("Sigmoid"), E.ReLU: _fn_unary("Relu"), E.Copy: _fn_unary("Identity"),
    E.LeakyReLU: _fn_leaky_relu, A.ELU: _fn_elu, E.Clip: _fn_clip, E.AsType: _fn_cast,
    S.Reshape: _fn_reshape, S.Transpose: _fn_transpose, S.Concat: _fn_concat,
    R.Softmax: _fn_softmax("Softmax"), R.LogSoftmax: _fn_softmax("LogSoftmax"), R.Sum: _fn_sum,
}
"""Function type -> exporter, for ops a model's own ``forward`` runs between layers."""


# ------------------------------------------------------------------------ tracing

def _check_layers(model: nn.Module) -> None:
    """Refuse, naming it, any minidl layer that has no exporter (an LSTM, attention, ...).

    A user's own module is not refused: the ops its ``forward`` runs are traced instead
    (and an op without an exporter is refused, by name, during the walk)."""
    for path, m in model.named_modules():
        t = type(m)
        if t in MODULE_EXPORTERS or t is nn.Module or isinstance(m, _CONTAINERS):
            continue
        if t.__module__.startswith("minidl.nn."):
            raise OnnxExportError(
                f"export: layer {t.__name__} at '{path or '<root>'}' is not supported for ONNX export; "
                "supported layers: " + ", ".join(sorted(k.__name__ for k in MODULE_EXPORTERS))
            )


def _as_input(x: Any, device: Any) -> Tensor:
    """The example input as a Tensor on the model's device (floating ones require grad)."""
    data = x.data if isinstance(x, Tensor) else x
    data = backend.to_device(data if hasattr(data, "shape") else np.asarray(data), device)
    if data.dtype.kind == "f":
        return Tensor(data.copy(), requires_grad=True)
    return Tensor(data)


def _trace(model: nn.Module, inputs: list) -> tuple[list, dict]:
    """Run the model once, recording supported layers' calls; returns (outputs, records)."""
    records: dict[int, tuple] = {}

    def hook(module, args, output):
        if isinstance(output, Tensor) and not any(output is a for a in args):
            records[id(output)] = (module, tuple(args), output)

    def check_recorded(module, args, output):
        """A module whose output left the autograd graph (computed on raw arrays, like the
        int8 layers) would be exported as a constant: refuse it by name instead."""
        outs = output if isinstance(output, (tuple, list)) else (output,)
        fed = any(isinstance(a, Tensor) and a.requires_grad for a in args)
        if fed and any(isinstance(o, Tensor) and not o.requires_grad for o in outs):
            raise OnnxExportError(
                f"export: {type(module).__name__} computes its output outside the autograd graph "
                "(on raw arrays), so its ops cannot be traced; it is not supported for ONNX export"
            )

    handles = [m.register_forward_hook(hook if type(m) in MODULE_EXPORTERS else check_recorded)
               for m in model.modules()]
    modes = {id(m): m.training for m in model.modules()}
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        model.eval()
        for p in params:
            p.requires_grad = True
        with enable_grad():
            out = model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for m in model.modules():
            object.__setattr__(m, "training", modes[id(m)])
        for p, f in zip(params, flags):
            p.requires_grad = f
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for o in outs:
        if not isinstance(o, Tensor):
            raise OnnxExportError(f"export: the model returned a {type(o).__name__}; only Tensors (or tuples of them) can be exported")
    return outs, records


def _producer(t: Tensor, input_ids: set, records: dict):
    """What made ``t``: ('input'|'leaf', None, []) or ('module'|'function', obj, input Tensors)."""
    if id(t) in input_ids:
        return "input", None, []
    if id(t) in records:
        m, args, _ = records[id(t)]
        return "module", m, [a for a in args if isinstance(a, Tensor)]
    f = t.creator
    if f is None:
        return "leaf", None, []
    if f.inputs is None:
        raise OnnxExportError(f"export: the graph of op {f.name} was already freed")
    if len(f.outputs) != 1:
        raise OnnxExportError(f"export: op {f.name} (with {len(f.outputs)} outputs) is not supported for ONNX export")
    return "function", f, list(f.inputs)


def to_model_proto(model: nn.Module, example_input: Any, dynamic_batch: bool = True, opset: int = 17,
                   input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None):
    """Trace ``model`` on ``example_input`` and return the checked ``onnx.ModelProto`` (nothing written)."""
    onnx = _onnx()
    if not isinstance(model, nn.Module):
        raise TypeError(f"export: model must be an nn.Module, got {type(model).__name__}")
    _check_layers(model)
    raw_inputs = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else "cpu"
    inputs = [_as_input(x, device) for x in raw_inputs]
    outs, records = _trace(model, inputs)

    param_names = {id(t): k for k, t in list(model.named_parameters()) + list(model.named_buffers())}
    g = _GraphBuilder(onnx, param_names)
    g.batch = int(inputs[0].shape[0]) if dynamic_batch and inputs[0].ndim > 0 else None
    in_names = list(input_names) if input_names else (["input"] if len(inputs) == 1 else
                                                      [f"input_{i}" for i in range(len(inputs))])
    names: dict[int, str] = {id(t): n for t, n in zip(inputs, in_names)}
    input_ids = set(names)

    for root in outs:  # iterative post-order walk: each value is named after its producers
        stack = [(root, False)]
        while stack:
            t, ready = stack.pop()
            if id(t) in names:
                continue
            kind, obj, deps = _producer(t, input_ids, records)
            if not ready:
                stack.append((t, True))
                stack.extend((d, False) for d in deps if id(d) not in names)
                continue
            if kind == "leaf":
                names[id(t)] = g.param(t)
                continue
            dep_names = [names[id(d)] for d in deps]
            if kind == "module":
                names[id(t)] = MODULE_EXPORTERS[type(obj)](g, obj, dep_names, deps, t)
            else:
                ex = FUNCTION_EXPORTERS.get(type(obj))
                if ex is None:
                    raise OnnxExportError(
                        f"export: op {obj.name} (output shape {tuple(t.shape)}) is not supported for ONNX "
                        "export; supported ops between layers: "
                        + ", ".join(sorted(k.__name__ for k in FUNCTION_EXPORTERS))
                    )
                names[id(t)] = ex(g, obj, dep_names, deps, t)

    helper = onnx.helper
    out_names = list(output_names) if output_names else (["output"] if len(outs) == 1 else
                                                         [f"output_{i}" for i in range(len(outs))])

    def value_info(name: str, t: Tensor):
        dims: list = list(t.shape)
        if g.batch is not None and dims and dims[0] == g.batch:
            dims[0] = "batch"
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)

    for o, name in zip(outs, out_names):
        g.nodes.append(helper.make_node("Identity", [names[id(o)]], [name], name=name))
    inits = [onnx.numpy_helper.from_array(np.ascontiguousarray(a), n) for n, a in g.initializers.items()]
    graph = helper.make_graph(g.nodes, "minidl_" + type(model).__name__,
                              [value_info(n, t) for n, t in zip(in_names, inputs)],
                              [value_info(n, o) for n, o in zip(out_names, outs)], initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="minidl")
    proto.ir_version = min(proto.ir_version, 8)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: nn.Module, example_input: Any, path: str | os.PathLike, dynamic_batch: bool = True,
           opset: int = 17, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None) -> str:
    """Trace ``model`` on ``example_input`` and write it as an ONNX file at ``path``.

    Args:
        model: an ``nn.Module`` built from the supported layers (``MODULE_EXPORTERS``) and ops
            (``FUNCTION_EXPORTERS``); it is traced in eval mode (its modes are restored).
        example_input: a Tensor/array (or a tuple of them) of the shape the model takes,
            e.g. (N, C, H, W) float32 images or (N, T) int64 token ids.
        path: the ``.onnx`` file to write (atomically).
        dynamic_batch: make dimension 0 of inputs and outputs symbolic ("batch").
        opset: the ONNX opset (17 or later, for LayerNormalization).

    Raises ``OnnxExportError`` naming an unsupported layer or op before anything is written.
    Returns the path written.
    """
    if opset < 17:
        raise ValueError(f"export: opset must be >= 17 (LayerNormalization), got {opset}")
    proto = to_model_proto(model, example_input, dynamic_batch, opset, input_names, output_names)
    data = proto.SerializeToString()
    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".onnx-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
