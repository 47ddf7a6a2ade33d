"""Int8 quantization: post-training (calibrated) and quantization-aware training.

Weights, per output channel c, symmetric:

    s_w[c] = max |W[c]| / 127,     W_q[c] = clip(round(W[c] / s_w[c]), -127, 127)   (int8)

Activations (the input of each Linear/Conv2d), affine over the range [lo, hi] seen on a
calibration set (widened to contain 0, so that zero padding is exact):

    s_x = (hi - lo) / 255,   z_x = round(-128 - lo / s_x),   x_q = clip(round(x / s_x) + z_x, -128, 127)

The bias is stored as int32 in the accumulator's units (the usual integer pipeline):

    b_q[c] = round(b[c] / (s_x s_w[c]))                                    (int32)

and the int8 layer computes, with int32 accumulation (no float in the inner loop):

    acc[n, c] = sum_k x_q[n, k] W_q[c, k]  -  z_x sum_k W_q[c, k]  +  b_q[c]   (int32)
    y[n, c]   = s_x s_w[c] acc[n, c]                                          (float32)

which is (x_q - z_x) s_x  times  W_q s_w, the dequantized product, plus the bias to within
half a step s_x s_w[c] / 2. ``quantize_model`` replaces every Linear and Conv2d of a copy
of the model by these layers (``QuantizedLinear``, ``QuantizedConv2d``), which store int8
weights (a quarter of the float32 bytes), int32 biases and one scale per channel, in
float32 or, with ``scale_dtype="float16"``, in float16 (the scale is rounded up to a
float16 value first and the weights quantized with it, so nothing is lost in storage).
In a packed file (``minidl.deploy.packed``, what ``save_quantized`` writes) a layer's
int32 biases take 2 bytes each when every |b_q| < 2^15 and its zero point 1 byte, read
back as int32 exactly, and the file is deflated, so the model is bit for bit the same.

Quantization-aware training (QAT) trains through the rounding with ``fake_quantize``:
forward y = (clip(round(x/s) + z, qmin, qmax) - z) s, backward the straight-through
estimator dy/dx = 1 inside the representable range and 0 outside. ``prepare_qat`` swaps
Linear/Conv2d for ``QATLinear``/``QATConv2d`` (fake-quantized weights and inputs, the
input range tracked by an exponential moving average); ``convert_qat`` turns the trained
model into the int8 one.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from .. import backend
from .. import nn
from ..autograd import Function, is_grad_enabled
from ..functional.conv import conv2d
from ..functional.linalg import linear
from ..tensor import Tensor
from .inference import predict

__all__ = [
    "quantize_per_channel", "quantize_bias", "activation_qparams", "quantize_affine", "QuantizedLinear", "QuantizedConv2d",
    "calibrate_ranges", "quantize_model", "FakeQuantize", "fake_quantize", "QATLinear", "QATConv2d",
    "prepare_qat", "convert_qat",
]

QMIN, QMAX = -128, 127


def quantize_per_channel(w: np.ndarray, axis: int = 0, scale_dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per-channel quantization of ``w`` along ``axis``.

    Returns (w_q int8 with w's shape, scale (w.shape[axis],) of ``scale_dtype``) with
    scale[c] = max |w[c]| / 127 and w_q = clip(round(w / scale), -127, 127). With
    ``scale_dtype="float16"`` the scale is rounded up to the next float16 value (so no
    weight is clipped) before the weights are quantized with it.
    """
    if scale_dtype not in ("float32", "float16"):
        raise ValueError(f"quantize_per_channel: scale_dtype must be 'float32' or 'float16', got {scale_dtype!r}")
    w = np.asarray(w, dtype=np.float32)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = (np.abs(moved).max(axis=1) / 127.0).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0))  # an all-zero channel stays zero
    if scale_dtype == "float16":
        if scale.max() > np.finfo(np.float16).max:
            raise ValueError(f"quantize_per_channel: a weight of magnitude {np.abs(w).max():.3g} overflows a "
                             "float16 scale; use scale_dtype='float32'")
        half = scale.astype(np.float16)
        half = np.where(half.astype(np.float32) < scale, np.nextafter(half, np.float16(np.inf)), half)
        q = np.clip(np.rint(w / _expand(half.astype(np.float32), w.ndim, axis)), -127, 127).astype(np.int8)
        return q, half
    q = np.clip(np.rint(w / _expand(scale, w.ndim, axis)), -127, 127).astype(np.int8)
    return q, scale


def _expand(v: Any, ndim: int, axis: int) -> Any:
    """A per-channel vector shaped to broadcast along ``axis`` of an ndim-array."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def quantize_bias(bias: np.ndarray, in_scale: float, w_scale: np.ndarray) -> np.ndarray:
    """b_q = round(b / (s_x s_w)) as int32 (clipped to the int32 range), the bias in the
    units of the int32 accumulator. bias and w_scale: (C,); returns (C,) int32."""
    step = np.float32(in_scale) * np.asarray(w_scale, np.float32)
    q = np.rint(np.asarray(bias, np.float64) / step.astype(np.float64))
    return np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


def activation_qparams(lo: float, hi: float) -> tuple[np.float32, np.int32]:
    """(scale, zero_point) of the affine int8 map for values in [lo, hi] (widened to contain 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = (hi - lo) / (QMAX - QMIN) if hi > lo else 1.0
    zero_point = int(np.clip(np.rint(QMIN - lo / scale), QMIN, QMAX))
    return np.float32(scale), np.int32(zero_point)


def quantize_affine(x: Any, scale: float, zero_point: int) -> Any:
    """x_q = clip(round(x / scale) + zero_point, -128, 127) as int8."""
    xp = backend.get_array_module(x)
    return xp.clip(xp.rint(x / scale) + zero_point, QMIN, QMAX).astype(np.int8)


def _as_array(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else np.asarray(x)


class _QuantizedBase(nn.Module):
    """Buffers shared by the int8 layers: ``weight_int8``, per-channel ``weight_scale``
    (float32 or float16), ``bias_int32`` (or None), ``input_scale``, ``input_zero_point``.

    ``bias`` may be given as floats (quantized here with ``quantize_bias``) or as int32
    (already in the accumulator's units, e.g. read back from a file)."""

    def _init_buffers(self, w_q: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None,
                      in_scale: float, in_zero: int) -> None:
        w_q, w_scale = np.asarray(w_q), np.asarray(w_scale)
        name = type(self).__name__
        if w_q.dtype != np.int8:
            raise TypeError(f"{name}: weights must be int8, got {w_q.dtype}")
        if w_scale.dtype not in (np.float32, np.float16) or w_scale.shape != (w_q.shape[0],):
            raise ValueError(f"{name}: weight_scale must be float32 or float16 of shape ({w_q.shape[0]},), "
                             f"got {w_scale.dtype} {w_scale.shape}")
        self.register_buffer("weight_int8", Tensor(w_q))
        self.register_buffer("weight_scale", Tensor(w_scale))
        self.register_buffer("input_scale", Tensor(np.asarray(in_scale, np.float32)))
        self.register_buffer("input_zero_point", Tensor(np.asarray(in_zero, np.int32)))
        if bias is not None:
            bias = np.asarray(bias)
            if bias.shape != (w_q.shape[0],):
                raise ValueError(f"{name}: bias must have shape ({w_q.shape[0]},), got {bias.shape}")
            if bias.dtype != np.int32:
                bias = quantize_bias(bias, in_scale, w_scale)
        self.register_buffer("bias_int32", Tensor(bias) if bias is not None else None)

    def output_scale(self) -> Any:
        """s_x s_w[c] (float32, per output channel): the value of one accumulator step."""
        return self.input_scale.data * self.weight_scale.data.astype(np.float32)

    def dequantized_bias(self) -> Any:
        """The float bias the layer adds, b_q s_x s_w (None without a bias)."""
        return None if self.bias_int32 is None else self.bias_int32.data.astype(np.float32) * self.output_scale()

    def _dequantize(self, acc: Any, channel_axis: int) -> Tensor:
        """y = s_x s_w[c] (acc + b_q[c]) as float32."""
        xp = backend.get_array_module(acc)
        if self.bias_int32 is not None:
            acc = acc + _expand(self.bias_int32.data, acc.ndim, channel_axis)
        y = acc.astype(np.float32) * _expand(self.output_scale(), acc.ndim, channel_axis)
        return Tensor(xp.ascontiguousarray(y))

    def quantize_input(self, x: Any) -> Any:
        """The int8 input x_q = clip(round(x / s_x) + z_x, -128, 127)."""
        return quantize_affine(_as_array(x), self.input_scale.data, int(self.input_zero_point.data))


class QuantizedLinear(_QuantizedBase):
    """Int8 Linear: y = s_x s_w (x_q W_q^T - z_x sum_k W_q) + b, int32 accumulation.

    Input (N, in) float, output (N, out) float32; not differentiable (inference only).
    """

    def __init__(self, w_q: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None, in_scale: float, in_zero: int):
        super().__init__()
        self.in_features, self.out_features = int(w_q.shape[1]), int(w_q.shape[0])
        self._init_buffers(w_q, w_scale, bias, in_scale, in_zero)

    @classmethod
    def from_float(cls, layer: nn.Linear, lo: float, hi: float, scale_dtype: str = "float32") -> "QuantizedLinear":
        """Quantize ``layer``'s weights per output row and its input range [lo, hi]."""
        w_q, w_scale = quantize_per_channel(backend.to_numpy(layer.weight.data), axis=0, scale_dtype=scale_dtype)
        bias = backend.to_numpy(layer.bias.data) if layer.bias is not None else None
        return cls(w_q, w_scale, bias, *activation_qparams(lo, hi))

    def accumulate(self, x_q: Any) -> Any:
        """acc = x_q W_q^T - z_x sum_k W_q  (int32, exact for inputs up to ~130k features)."""
        xp = backend.get_array_module(x_q)
        w = self.weight_int8.data.astype(np.int32)
        acc = xp.matmul(x_q.astype(np.int32), w.T)
        return acc - np.int32(self.input_zero_point.data) * w.sum(axis=1, dtype=np.int32)

    def forward(self, x: Any) -> Tensor:
        x = _as_array(x)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"QuantizedLinear: expected input (..., {self.in_features}), got {tuple(x.shape)}")
        lead = x.shape[:-1]
        acc = self.accumulate(self.quantize_input(x.reshape(-1, self.in_features)))
        return Tensor(self._dequantize(acc, 1).data.reshape(*lead, self.out_features))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _conv_pads(padding: Any, kernel: tuple, dilation: tuple) -> tuple:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        return tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
    return tuple(padding)


class QuantizedConv2d(_QuantizedBase):
    """Int8 Conv2d: im2col of the int8 input (padded with z_x, the code of 0.0), then the
    int32 product with W_q and the same dequantization as ``QuantizedLinear``.

    Input (N, C_in, H, W) float, output (N, C_out, H_out, W_out) float32.
    """

    def __init__(self, w_q: np.ndarray, w_scale: np.ndarray, bias: np.ndarray | None, in_scale: float, in_zero: int,
                 stride: tuple = (1, 1), padding: tuple = (0, 0), dilation: tuple = (1, 1), groups: int = 1):
        super().__init__()
        self.out_channels, self.in_channels = int(w_q.shape[0]), int(w_q.shape[1]) * groups
        self.kernel_size = tuple(int(k) for k in w_q.shape[2:])
        self.stride, self.dilation, self.groups = tuple(stride), tuple(dilation), int(groups)
        self.padding = _conv_pads(padding, self.kernel_size, self.dilation)
        self._init_buffers(w_q, w_scale, bias, in_scale, in_zero)

    @classmethod
    def from_float(cls, layer: nn.Conv2d, lo: float, hi: float, scale_dtype: str = "float32") -> "QuantizedConv2d":
        """Quantize ``layer``'s weights per output channel and its input range [lo, hi]."""
        w_q, w_scale = quantize_per_channel(backend.to_numpy(layer.weight.data), axis=0, scale_dtype=scale_dtype)
        bias = backend.to_numpy(layer.bias.data) if layer.bias is not None else None
        return cls(w_q, w_scale, bias, *activation_qparams(lo, hi), stride=layer.stride, padding=layer.padding,
                   dilation=layer.dilation, groups=layer.groups)

    def _columns(self, x_q: np.ndarray) -> tuple[np.ndarray, int, int]:
        """im2col: (N, Ho, Wo, C, kh, kw) int8 windows of the z_x-padded input."""
        (ph, pw), (sh, sw), (dh, dw), (kh, kw) = self.padding, self.stride, self.dilation, self.kernel_size
        z = int(self.input_zero_point.data)
        xpad = np.pad(x_q, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=z)
        win = np.lib.stride_tricks.sliding_window_view(xpad, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # (N, C, Ho, Wo, kh, kw)
        return win.transpose(0, 2, 3, 1, 4, 5), win.shape[2], win.shape[3]

    def accumulate(self, x_q: np.ndarray) -> np.ndarray:
        """acc[n, c, i, j] = sum over the window of x_q W_q[c] - z_x sum W_q[c]  (int32)."""
        cols, ho, wo = self._columns(x_q)
        n = x_q.shape[0]
        g, cin_g, cout_g = self.groups, self.in_channels // self.groups, self.out_channels // self.groups
        z = np.int32(self.input_zero_point.data)
        out = np.empty((n, ho, wo, self.out_channels), np.int32)
        for k in range(g):
            w = self.weight_int8.data[k * cout_g:(k + 1) * cout_g].astype(np.int32).reshape(cout_g, -1)
            c = cols[:, :, :, k * cin_g:(k + 1) * cin_g].reshape(n * ho * wo, -1).astype(np.int32)
            out[..., k * cout_g:(k + 1) * cout_g] = (c @ w.T - z * w.sum(axis=1, dtype=np.int32)).reshape(n, ho, wo, cout_g)
        return out.transpose(0, 3, 1, 2)

    def forward(self, x: Any) -> Tensor:
        x = backend.to_numpy(_as_array(x))
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"QuantizedConv2d: expected input (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self._dequantize(self.accumulate(self.quantize_input(x)), 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, int8")


# ------------------------------------------------------------------------ post-training

def _replace(model: nn.Module, make: Any) -> None:
    """Replace each child for which ``make(path, child)`` returns a module."""
    for path, parent in list(model.named_modules()):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            new = make((path + "." if path else "") + name, child)
            if new is not None:
                parent._modules[name] = new  # in place: a Sequential keeps its order


def calibrate_ranges(model: nn.Module, data: Any, batch_size: int = 256,
                     types: tuple = (nn.Linear, nn.Conv2d)) -> dict[str, tuple[float, float]]:
    """{module path: (min, max)} of the inputs each Linear/Conv2d sees while ``model`` runs
    (in eval mode) over ``data`` (N, ...)."""
    ranges: dict[str, list] = {}
    handles = []
    for path, m in model.named_modules():
        if isinstance(m, types):
            def hook(module, inputs, path=path):
                x = backend.to_numpy(_as_array(inputs[0]))
                lo, hi = float(x.min()), float(x.max())
                r = ranges.setdefault(path, [lo, hi])
                r[0], r[1] = min(r[0], lo), max(r[1], hi)
            handles.append(m.register_forward_pre_hook(hook))
    try:
        predict(model, data, batch_size=batch_size)
    finally:
        for h in handles:
            h.remove()
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def quantize_model(model: nn.Module, calibration_data: Any, batch_size: int = 256,
                   scale_dtype: str = "float32") -> nn.Module:
    """An int8 copy of ``model``: every Linear and Conv2d becomes a Quantized layer whose
    input range was measured on ``calibration_data`` (N, ...), with per-channel weight
    scales stored as ``scale_dtype`` ("float32" or "float16"). ``model`` is not changed."""
    if scale_dtype not in ("float32", "float16"):
        raise ValueError(f"quantize_model: scale_dtype must be 'float32' or 'float16', got {scale_dtype!r}")
    ranges = calibrate_ranges(model, calibration_data, batch_size)
    q = copy.deepcopy(model).eval()

    def make(path, child):
        if type(child) is nn.Linear:
            return QuantizedLinear.from_float(child, *ranges[path], scale_dtype=scale_dtype)
        if type(child) is nn.Conv2d:
            return QuantizedConv2d.from_float(child, *ranges[path], scale_dtype=scale_dtype)
        return None

    if type(q) in (nn.Linear, nn.Conv2d):
        return make("", q)
    _replace(q, make)
    return q


# ------------------------------------------------------------------------ quantization-aware training

class FakeQuantize(Function):
    """y = (clip(round(x / s) + z, qmin, qmax) - z) s  (quantize, then dequantize);
    dy/dx = 1 where (qmin - z) s <= x <= (qmax - z) s, else 0 (straight-through estimator).
    ``s`` and ``z`` broadcast against x (per-tensor or per-channel)."""

    def __init__(self, scale: Any, zero_point: Any, qmin: int, qmax: int):
        self.scale, self.zero_point, self.qmin, self.qmax = scale, zero_point, qmin, qmax

    def forward(self, x):
        xp = backend.get_array_module(x)
        s = xp.asarray(self.scale, dtype=x.dtype)
        z = xp.asarray(self.zero_point, dtype=x.dtype)
        q = xp.clip(xp.rint(x / s) + z, self.qmin, self.qmax)
        if is_grad_enabled():  # the mask is for the backward only; nothing is recorded otherwise
            lo, hi = (self.qmin - z) * s, (self.qmax - z) * s
            self.mask = ((x >= lo) & (x <= hi)).astype(x.dtype)
        return ((q - z) * s).astype(x.dtype)

    def backward(self, gy):
        return gy * Tensor(self.mask)


def fake_quantize(x: Tensor, scale: Any, zero_point: Any = 0, qmin: int = QMIN, qmax: int = QMAX) -> Tensor:
    """Quantize-dequantize ``x`` with the straight-through gradient (see ``FakeQuantize``)."""
    return FakeQuantize(scale, zero_point, qmin, qmax)(x)


def _fake_weight(w: Tensor) -> Tensor:
    """Per-output-channel symmetric fake quantization of a weight (scale from its current values)."""
    xp = backend.get_array_module(w.data)
    amax = xp.abs(w.data.reshape(w.shape[0], -1)).max(axis=1)
    scale = xp.where(amax > 0, amax / 127.0, 1.0).reshape((-1,) + (1,) * (w.ndim - 1))
    return fake_quantize(w, scale, 0, -127, 127)


class _QATBase(nn.Module):
    """Shares the float layer's parameters; tracks the input range (EMA) and fake-quantizes."""

    def __init__(self, layer: nn.Module, momentum: float = 0.1):
        super().__init__()
        self.layer = layer
        self.momentum = momentum
        self.register_buffer("input_min", Tensor(np.zeros((), np.float32)))
        self.register_buffer("input_max", Tensor(np.zeros((), np.float32)))
        self.register_buffer("observed", Tensor(np.zeros((), np.int64)))

    def _fake_input(self, x: Tensor) -> Tensor:
        if self.training:
            lo, hi = float(x.data.min()), float(x.data.max())
            if int(self.observed.data) == 0:
                self.input_min.data[...], self.input_max.data[...] = lo, hi
            else:
                m = self.momentum
                self.input_min.data[...] = (1 - m) * self.input_min.data + m * lo
                self.input_max.data[...] = (1 - m) * self.input_max.data + m * hi
            self.observed.data[...] += 1
        scale, zero = activation_qparams(self.input_min.data, self.input_max.data)
        return fake_quantize(x, scale, zero)


class QATLinear(_QATBase):
    """y = fq(x) fq(W)^T + b, with fq the fake quantization of the int8 layer it becomes."""

    def forward(self, x: Tensor) -> Tensor:
        return linear(self._fake_input(x), _fake_weight(self.layer.weight), self.layer.bias)


class QATConv2d(_QATBase):
    """y = conv2d(fq(x), fq(W)) + b, with fq the fake quantization of the int8 layer it becomes."""

    def forward(self, x: Tensor) -> Tensor:
        c = self.layer
        return conv2d(self._fake_input(x), _fake_weight(c.weight), c.bias, c.stride, c.padding, c.dilation, c.groups)


def prepare_qat(model: nn.Module, calibration_data: Any = None) -> nn.Module:
    """A copy of ``model`` whose Linear/Conv2d layers train through fake quantization.

    With ``calibration_data`` the input ranges start from a calibration pass; otherwise
    from the first training batch."""
    ranges = calibrate_ranges(model, calibration_data) if calibration_data is not None else {}
    q = copy.deepcopy(model)

    def make(path, child):
        wrapper = {nn.Linear: QATLinear, nn.Conv2d: QATConv2d}.get(type(child))
        if wrapper is None:
            return None
        w = wrapper(child)
        if path in ranges:
            w.input_min.data[...], w.input_max.data[...] = ranges[path]
            w.observed.data[...] = 1
        return w

    _replace(q, make)
    return q


def convert_qat(model: nn.Module, scale_dtype: str = "float32") -> nn.Module:
    """The int8 model of a QAT-trained model (its ranges and weights; per-channel scales as
    ``scale_dtype``); ``model`` is not changed."""
    q = copy.deepcopy(model).eval()

    def make(path, child):
        lo_hi = (float(child.input_min.data), float(child.input_max.data)) if isinstance(child, _QATBase) else None
        if isinstance(child, QATLinear):
            return QuantizedLinear.from_float(child.layer, *lo_hi, scale_dtype=scale_dtype)
        if isinstance(child, QATConv2d):
            return QuantizedConv2d.from_float(child.layer, *lo_hi, scale_dtype=scale_dtype)
        return None

    _replace(q, make)
    return q
