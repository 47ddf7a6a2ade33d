"""The registry of op specs that drives the op tests: every public op of ``minidl.functional``.

Each ``OpSpec`` says how to draw inputs (hypothesis shapes, broadcast pairs included, and a
value domain that keeps away from kinks and poles), the minidl call, an independent NumPy
reference (the formula, written here, never a call into minidl's ops; the seeded-dropout
references take their uniform draws from ``minidl.rand``, the documented source of dropout's
randomness), the PyTorch equivalent
(None where PyTorch has no such op), and whether second derivatives are checked.
``tests/functional/test_ops.py`` turns every spec into forward, gradcheck, gradgradcheck,
torch-parity and CPU/GPU-parity tests.

A sample is (list of arrays, kwargs). The arrays become the op's positional Tensors: float
arrays are differentiable unless ``grad_inputs`` leaves them out (class weights, running
statistics, sign targets); integer and boolean arrays (class indices, embedding indices,
attention masks) are constant inputs of their own dtype. Everything positional moves to the
device under test; kwargs stay as they are.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special

import minidl
import minidl.functional as F

SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
NONSCALAR = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
PAIR = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3)


def _values(rng: np.random.Generator, shape, domain: str) -> np.ndarray:
    x = rng.standard_normal(shape)
    if domain == "positive":
        return np.abs(x) + 0.5
    if domain == "nonzero":  # away from the kink at 0
        return np.sign(x + 1e-12) * (np.abs(x) + 0.2)
    if domain == "clip":  # away from the clip bounds -0.5 and 0.5
        x = np.where(np.abs(np.abs(x) - 0.5) < 0.1, x + 0.25, x)
        return x
    if domain == "hardtanh":  # away from the limits -1 and 1
        return np.where(np.abs(np.abs(x) - 1.0) < 0.1, x + 0.25, x)
    return x


def _axis(draw, ndim: int, allow_tuple: bool = True):
    if ndim == 0:
        return None
    choices = [st.none(), st.integers(-ndim, ndim - 1)]
    if allow_tuple and ndim > 1:
        choices.append(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple))
    return draw(st.one_of(*choices))


@dataclass
class OpSpec:
    name: str
    fn: Callable  # (*tensors, **kw) -> Tensor
    ref: Callable  # (*arrays, **kw) -> array
    sample: Callable  # (draw, rng) -> (list of arrays, kwargs)
    torch_fn: Callable | None = None  # (*torch tensors, **kw) -> torch tensor
    double: bool = True  # run gradgradcheck
    grad_inputs: tuple | None = None  # indices of differentiable inputs (default: every float input)
    tags: set = field(default_factory=set)  # "host_rng": the reference draws from the host generator
    examples: int | None = None  # hypothesis examples per test (None: the test's default)
    fast: bool = False  # gradcheck along one random direction instead of the whole Jacobian
    rtol: float = 1e-12  # forward tolerance against the NumPy reference
    atol: float = 1e-12
    grad: bool = True  # False: no gradient tests at all (integer outputs, forward-only properties)
    numeric: bool = True  # False: the gradient is by definition not the derivative, so no gradcheck
    kernels: str | None = None  # run forward and backward under minidl.config.using_kernels(kernels)

    def path(self):
        """The kernel-path context every test of this spec runs in."""
        return contextlib.nullcontext() if self.kernels is None else minidl.config.using_kernels(self.kernels)

    def differentiable(self, i: int, array: np.ndarray) -> bool:
        """Whether positional input ``i`` (holding ``array``) is a checked, grad-requiring input."""
        if not self.grad or np.asarray(array).dtype.kind != "f":
            return False
        return self.grad_inputs is None or i in self.grad_inputs


def unary(domain="real", shape=SHAPE):
    def sample(draw, rng):
        return [_values(rng, draw(shape), domain)], {}
    return sample


def binary(domain_a="real", domain_b="real"):
    def sample(draw, rng):
        shapes = draw(PAIR).input_shapes
        return [_values(rng, shapes[0], domain_a), _values(rng, shapes[1], domain_b)], {}
    return sample


def reduction(allow_tuple=True, keepdims=True, shape=SHAPE):
    def sample(draw, rng):
        s = draw(shape)
        kw = {"axis": _axis(draw, len(s), allow_tuple)}
        if keepdims:
            kw["keepdims"] = draw(st.booleans())
        return [rng.standard_normal(s)], kw
    return sample


def along_axis(draw, rng):
    s = draw(NONSCALAR)
    return [rng.standard_normal(s)], {"axis": draw(st.integers(-len(s), len(s) - 1))}


def _torch_dims(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return axis if isinstance(axis, tuple) else (axis,)


def _t_reduce(name):
    import torch

    def fn(x, axis=None, keepdims=False):
        dims = _torch_dims(axis, x.ndim)
        if name == "sum":
            return torch.sum(x, dim=dims, keepdim=keepdims) if dims else x.clone()
        if name == "mean":
            return torch.mean(x, dim=dims, keepdim=keepdims) if dims else x.clone()
        if name == "var":
            return torch.var(x, dim=dims, keepdim=keepdims, correction=0)
        if name == "amax":
            return torch.amax(x, dim=dims, keepdim=keepdims) if dims else x.clone()
        if name == "amin":
            return torch.amin(x, dim=dims, keepdim=keepdims) if dims else x.clone()
        if name == "logsumexp":
            return torch.logsumexp(x, dim=dims, keepdim=keepdims) if dims else x.clone()
        raise KeyError(name)
    return fn


def _np_logsumexp(x, axis=None, keepdims=False):
    return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))  # values are small: no overflow


def _np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _gelu_ref(x):
    return 0.5 * x * (1 + special.erf(x / np.sqrt(2)))


def _gelu_tanh_ref(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def matmul_sample(draw, rng):
    kind = draw(st.sampled_from(["2d", "batched", "vec_mat", "mat_vec", "vec_vec", "broadcast"]))
    n, k, m, b = (draw(st.integers(1, 3)) for _ in range(4))
    shapes = {
        "2d": ((n, k), (k, m)),
        "batched": ((b, n, k), (b, k, m)),
        "vec_mat": ((k,), (k, m)),
        "mat_vec": ((b, n, k), (k,)),
        "vec_vec": ((k,), (k,)),
        "broadcast": ((b, 1, n, k), (2, k, m)),
    }[kind]
    return [rng.standard_normal(shapes[0]), rng.standard_normal(shapes[1])], {}


def linear_sample(draw, rng):
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    i, o = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return [rng.standard_normal(lead + (i,)), rng.standard_normal((o, i)), rng.standard_normal((o,))], {}


def reshape_sample(draw, rng):
    s = draw(SHAPE)
    n = int(np.prod(s))
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    d = draw(st.sampled_from(divisors))
    return [rng.standard_normal(s)], {"shape": (d, -1)}


def transpose_sample(draw, rng):
    s = draw(NONSCALAR)
    return [rng.standard_normal(s)], {"axes": tuple(draw(st.permutations(range(len(s)))))}


def broadcast_sample(draw, rng):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3))
    return [rng.standard_normal(shapes.input_shapes[0])], {"shape": shapes.result_shape}


def getitem_sample(draw, rng):
    s = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    kind = draw(st.sampled_from(["slice", "int", "int_array_repeats", "bool_mask", "mixed", "newaxis"]))
    if kind == "slice":
        key = tuple(slice(draw(st.integers(0, n - 1)), None, draw(st.integers(1, 2))) for n in s)
    elif kind == "int":
        key = (draw(st.integers(-s[0], s[0] - 1)),)
    elif kind == "int_array_repeats":
        key = (np.array(draw(st.lists(st.integers(0, s[0] - 1), min_size=1, max_size=6))),)
    elif kind == "bool_mask":
        key = rng.random(s) > 0.4
    elif kind == "mixed":
        key = (slice(None), np.array([0, 0, 1])) if len(s) > 1 else (np.array([1, 1]),)
    else:
        key = (None, Ellipsis, slice(0, 1))
    return [rng.standard_normal(s)], {"key": key}


def concat_sample(draw, rng):
    s = list(draw(NONSCALAR))
    axis = draw(st.integers(-len(s), len(s) - 1))
    a = rng.standard_normal(s)
    s2 = list(s)
    s2[axis] = draw(st.integers(1, 3))
    return [a, rng.standard_normal(s2)], {"axis": axis}


def stack_sample(draw, rng):
    s = draw(SHAPE)
    return [rng.standard_normal(s), rng.standard_normal(s), rng.standard_normal(s)], {
        "axis": draw(st.integers(-len(s) - 1, len(s)))}


def split_sample(draw, rng):
    s = draw(NONSCALAR)
    axis = draw(st.integers(0, len(s) - 1))
    return [rng.standard_normal(s)], {"size": draw(st.integers(1, 3)), "axis": axis}


def pad_sample(draw, rng):
    s = draw(NONSCALAR)
    width = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in s)
    return [rng.standard_normal(s)], {"width": width, "value": draw(st.sampled_from([0.0, 1.5]))}


def where_sample(draw, rng):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    c, a, b = shapes.input_shapes
    return [rng.standard_normal(a), rng.standard_normal(b), rng.random(c) > 0.5], {}  # cond: a constant input


def squeeze_sample(draw, rng):
    s = list(draw(NONSCALAR))
    s.insert(draw(st.integers(0, len(s))), 1)
    return [rng.standard_normal(s)], {}


def swapaxes_sample(draw, rng):
    s = draw(NONSCALAR)
    return [rng.standard_normal(s)], {"a": draw(st.integers(-len(s), len(s) - 1)),
                                      "b": draw(st.integers(-len(s), len(s) - 1))}


def sum_to_sample(draw, rng):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=1, max_dims=3, max_side=3))
    return [rng.standard_normal(shapes.result_shape)], {"shape": shapes.input_shapes[0]}


def _sum_to_ref(x, shape):
    """Sum the leading axes x has beyond ``shape``, then (keeping them) the axes where shape is 1."""
    lead = x.ndim - len(shape)
    y = x.sum(axis=tuple(range(lead))) if lead else x
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and y.shape[i] != 1)
    return y.sum(axis=ones, keepdims=True) if ones else y


def flatten_sample(draw, rng):
    s = draw(NONSCALAR)
    start = draw(st.integers(-len(s), len(s) - 1))
    end = draw(st.integers(start % len(s), len(s) - 1))
    return [rng.standard_normal(s)], {"start_dim": start, "end_dim": end}


def _flatten_ref(x, start_dim, end_dim):
    start = start_dim % x.ndim
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end_dim + 1:])


def squeeze_axis_sample(draw, rng):
    s = list(draw(NONSCALAR))
    axis = draw(st.integers(0, len(s)))
    s.insert(axis, 1)
    return [rng.standard_normal(s)], {"axis": axis}


def unsqueeze_sample(draw, rng):
    s = draw(SHAPE)
    return [rng.standard_normal(s)], {"axis": draw(st.integers(-len(s) - 1, len(s)))}


def arg_sample(draw, rng):
    s = draw(NONSCALAR)
    return [rng.standard_normal(s)], {"axis": draw(st.one_of(st.none(), st.integers(-len(s), len(s) - 1))),
                                      "keepdims": draw(st.booleans())}


def _t_arg(name):
    import torch

    def fn(x, axis, keepdims):
        f = torch.argmax if name == "argmax" else torch.argmin
        if axis is None:  # flattened index; keepdims gives an all-ones shape, as NumPy does
            i = f(x)
            return i.reshape((1,) * x.ndim) if keepdims else i
        return f(x, dim=axis, keepdim=keepdims)
    return fn


def _split_ref(x, size, axis):
    return np.concatenate([p.ravel() for p in np.array_split(x, range(size, x.shape[axis], size), axis=axis)])


def _flat(parts):
    return minidl.concat([p.reshape(-1) for p in parts])


def build_specs() -> list[OpSpec]:
    import torch
    import torch.nn.functional as TF

    def t_getitem(x, key):
        k = tuple(torch.as_tensor(i) if isinstance(i, np.ndarray) else i for i in key) if isinstance(key, tuple) \
            else torch.as_tensor(key)
        return x[k]

    return [
        OpSpec("add", lambda a, b: a + b, np.add, binary(), lambda a, b: a + b),
        OpSpec("sub", lambda a, b: a - b, np.subtract, binary(), lambda a, b: a - b),
        OpSpec("rsub_scalar", lambda a: 2.5 - a, lambda a: 2.5 - a, unary(), lambda a: 2.5 - a),
        OpSpec("mul", lambda a, b: a * b, np.multiply, binary(), lambda a, b: a * b),
        OpSpec("div", lambda a, b: a / b, np.divide, binary("real", "nonzero"), lambda a, b: a / b),
        OpSpec("rdiv_scalar", lambda a: 1.5 / a, lambda a: 1.5 / a, unary("nonzero"), lambda a: 1.5 / a),
        OpSpec("neg", lambda a: -a, np.negative, unary(), lambda a: -a),
        OpSpec("pow", lambda a, b: a ** b, np.power, binary("positive"), lambda a, b: a ** b),
        OpSpec("pow_scalar", lambda a: a ** 3, lambda a: a ** 3, unary(), lambda a: a ** 3),
        OpSpec("exp", minidl.exp, np.exp, unary(), torch.exp),
        OpSpec("log", minidl.log, np.log, unary("positive"), torch.log),
        OpSpec("sqrt", minidl.sqrt, np.sqrt, unary("positive"), torch.sqrt),
        OpSpec("abs", minidl.abs, np.abs, unary("nonzero"), torch.abs),
        OpSpec("sin", minidl.sin, np.sin, unary(), torch.sin),
        OpSpec("cos", minidl.cos, np.cos, unary(), torch.cos),
        OpSpec("tanh", minidl.tanh, np.tanh, unary(), torch.tanh),
        OpSpec("sigmoid", minidl.sigmoid, special.expit, unary(), torch.sigmoid),
        OpSpec("relu", minidl.relu, lambda x: np.maximum(x, 0), unary("nonzero"), torch.relu),
        OpSpec("leaky_relu", lambda x: F.leaky_relu(x, 0.1), lambda x: np.where(x > 0, x, 0.1 * x),
               unary("nonzero"), lambda x: TF.leaky_relu(x, 0.1)),
        OpSpec("gelu", F.gelu, _gelu_ref, unary(), TF.gelu),
        OpSpec("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), _gelu_tanh_ref, unary(),
               lambda x: TF.gelu(x, approximate="tanh")),
        OpSpec("softplus", F.softplus, lambda x: np.logaddexp(0, x), unary(), TF.softplus),
        OpSpec("softplus_beta", lambda x: F.softplus(x, beta=2.0, threshold=1.0),
               lambda x: np.where(2 * x > 1.0, x, np.logaddexp(0, 2 * x) / 2), unary("clip"),
               lambda x: TF.softplus(x, beta=2.0, threshold=1.0)),
        OpSpec("erf", minidl.erf, special.erf, unary(), torch.erf),
        OpSpec("clip", lambda x: minidl.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), unary("clip"),
               lambda x: torch.clamp(x, -0.5, 0.5)),
        OpSpec("maximum", minidl.maximum, np.maximum, binary(), torch.maximum),
        OpSpec("minimum", minidl.minimum, np.minimum, binary(), torch.minimum),
        OpSpec("where", lambda a, b, cond: minidl.where(cond, a, b), lambda a, b, cond: np.where(cond, a, b),
               where_sample, lambda a, b, cond: torch.where(cond, a, b)),
        OpSpec("sum", lambda x, **kw: x.sum(**kw), lambda x, **kw: np.sum(x, **kw), reduction(), _t_reduce("sum")),
        OpSpec("mean", lambda x, **kw: x.mean(**kw), lambda x, **kw: np.mean(x, **kw), reduction(), _t_reduce("mean")),
        OpSpec("var", lambda x, **kw: x.var(**kw), lambda x, **kw: np.var(x, **kw),
               reduction(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)), _t_reduce("var")),
        OpSpec("std_ddof1", lambda x: x.std(axis=0, ddof=1), lambda x: np.std(x, axis=0, ddof=1),
               unary(shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=4)),
               lambda x: torch.std(x, dim=0, correction=1)),
        OpSpec("max", lambda x, **kw: x.max(**kw), lambda x, **kw: np.max(x, **kw), reduction(), _t_reduce("amax")),
        OpSpec("min", lambda x, **kw: x.min(**kw), lambda x, **kw: np.min(x, **kw), reduction(), _t_reduce("amin")),
        OpSpec("logsumexp", lambda x, **kw: x.logsumexp(**kw), _np_logsumexp, reduction(), _t_reduce("logsumexp")),
        OpSpec("softmax", lambda x, axis: F.softmax(x, axis=axis), _np_softmax, along_axis,
               lambda x, axis: torch.softmax(x, dim=axis)),
        OpSpec("log_softmax", lambda x, axis: F.log_softmax(x, axis=axis),
               lambda x, axis: np.log(_np_softmax(x, axis)), along_axis, lambda x, axis: torch.log_softmax(x, dim=axis)),
        OpSpec("matmul", lambda a, b: a @ b, np.matmul, matmul_sample, torch.matmul),
        OpSpec("linear", F.linear, lambda x, w, b: x @ w.T + b, linear_sample, TF.linear),
        OpSpec("reshape", lambda x, shape: x.reshape(shape), lambda x, shape: x.reshape(shape), reshape_sample,
               lambda x, shape: x.reshape(shape)),
        OpSpec("transpose", lambda x, axes: x.transpose(*axes), lambda x, axes: x.transpose(axes), transpose_sample,
               lambda x, axes: x.permute(*axes)),
        OpSpec("flatten", lambda x: x.flatten(1) if x.ndim > 1 else x.flatten(),
               lambda x: x.reshape(x.shape[0], -1) if x.ndim > 1 else x.reshape(-1), unary(shape=NONSCALAR),
               lambda x: x.flatten(1) if x.ndim > 1 else x.flatten()),
        OpSpec("squeeze_unsqueeze", lambda x: x.squeeze().unsqueeze(0), lambda x: np.squeeze(x)[None],
               squeeze_sample, lambda x: x.squeeze().unsqueeze(0)),
        OpSpec("broadcast_to", lambda x, shape: x.broadcast_to(shape), lambda x, shape: np.broadcast_to(x, shape),
               broadcast_sample, lambda x, shape: x.expand(shape)),
        OpSpec("getitem", lambda x, key: x[key], lambda x, key: x[key], getitem_sample, t_getitem),
        OpSpec("concat", lambda a, b, axis: minidl.concat([a, b], axis=axis),
               lambda a, b, axis: np.concatenate([a, b], axis=axis), concat_sample,
               lambda a, b, axis: torch.cat([a, b], dim=axis)),
        OpSpec("stack", lambda a, b, c, axis: minidl.stack([a, b, c], axis=axis),
               lambda a, b, c, axis: np.stack([a, b, c], axis=axis), stack_sample,
               lambda a, b, c, axis: torch.stack([a, b, c], dim=axis)),
        OpSpec("split", lambda x, size, axis: _flat(minidl.split(x, size, axis=axis)), _split_ref, split_sample,
               lambda x, size, axis: torch.cat([p.reshape(-1) for p in torch.split(x, size, dim=axis)])),
        OpSpec("pad", lambda x, width, value: minidl.pad(x, width, value),
               lambda x, width, value: np.pad(x, width, constant_values=value), pad_sample,
               lambda x, width, value: TF.pad(x, [v for pair in reversed(width) for v in pair], value=value)),
        # the functional forms not reached through the Tensor methods above
        OpSpec("sign", F.sign, np.sign, unary("nonzero"), torch.sign),
        OpSpec("clamp_min_only", lambda x: F.clamp(x, min=0.5), lambda x: np.maximum(x, 0.5), unary("clip"),
               lambda x: torch.clamp(x, min=0.5)),
        OpSpec("clamp_max_only", lambda x: F.clamp(x, max=-0.5), lambda x: np.minimum(x, -0.5), unary("clip"),
               lambda x: torch.clamp(x, max=-0.5)),
        OpSpec("std", lambda x, **kw: F.std(x, **kw), lambda x, **kw: np.std(x, **kw),
               reduction(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4)),
               lambda x, axis=None, keepdims=False: torch.std(x, dim=_torch_dims(axis, x.ndim), keepdim=keepdims,
                                                              correction=0)),
        OpSpec("swapaxes", F.swapaxes, lambda x, a, b: np.swapaxes(x, a, b), swapaxes_sample,
               lambda x, a, b: torch.swapaxes(x, a, b)),
        OpSpec("sum_to", F.sum_to, _sum_to_ref, sum_to_sample, lambda x, shape: x.sum_to_size(shape)),
        OpSpec("flatten_dims", F.flatten, _flatten_ref, flatten_sample, torch.flatten),
        OpSpec("squeeze_axis", lambda x, axis: F.squeeze(x, axis), lambda x, axis: np.squeeze(x, axis),
               squeeze_axis_sample, lambda x, axis: x.squeeze(axis)),
        OpSpec("unsqueeze", lambda x, axis: F.unsqueeze(x, axis), lambda x, axis: np.expand_dims(x, axis),
               unsqueeze_sample,
               lambda x, axis: x.unsqueeze(axis)),
        OpSpec("argmax", F.argmax, lambda x, **kw: np.argmax(x, **kw), arg_sample, _t_arg("argmax"), grad=False),
        OpSpec("argmin", F.argmin, lambda x, **kw: np.argmin(x, **kw), arg_sample, _t_arg("argmin"), grad=False),
        # forward only: a float32 output cannot be checked by float64 finite differences
        OpSpec("astype_float32", lambda x: F.astype(x, np.float32), lambda x: x.astype(np.float32), unary(),
               lambda x: x.to(torch.float32), grad=False),
    ] + nn_specs()


# ---------------------------------------------------------------------------------------------
# Convolution, pooling, normalization, dropout, embedding, activations, attention and losses.
# Each reference below is the textbook formula in NumPy, written out independently of minidl.

def _pair2(v) -> tuple:
    return (v, v) if isinstance(v, (int, np.integer)) else tuple(v)


def _away_from(x: np.ndarray, points, gap: float = 0.05) -> np.ndarray:
    """x with every entry within ``gap`` of one of ``points`` pushed 2 * gap away (kink dodging)."""
    for p in points:
        x = np.where(np.abs(x - p) < gap, x + 2 * gap, x)
    return x


def _taps(x_pad: np.ndarray, i: int, j: int, out_hw: tuple, stride: tuple, dilation: tuple) -> np.ndarray:
    """x_pad[:, :, p*sh + i*dh, q*sw + j*dw] for every output position (p, q): (N, C, Ho, Wo)."""
    (ho, wo), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return x_pad[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]


def _out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] x_pad[n, c, p sh + i dh, q sw + j dw]."""
    stride, dilation = _pair2(stride), _pair2(dilation)
    kh, kw = w.shape[2:]
    if padding == "same":  # total d (k - 1) per axis, the odd one on the bottom/right
        tot = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
        pads = ((tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2))
    else:
        ph, pw = _pair2(padding)
        pads = ((ph, ph), (pw, pw))
    x_pad = np.pad(x, ((0, 0), (0, 0)) + pads)
    out_hw = tuple(_out_size(x_pad.shape[2 + a], (kh, kw)[a], stride[a], 0, dilation[a]) for a in range(2))
    cout, cg = w.shape[0], w.shape[1]
    og = cout // groups
    y = np.zeros((x.shape[0], cout) + out_hw)
    for i in range(kh):
        for j in range(kw):
            t = _taps(x_pad, i, j, out_hw, stride, dilation)
            for g in range(groups):
                y[:, g * og:(g + 1) * og] += np.einsum("nchw,oc->nohw", t[:, g * cg:(g + 1) * cg],
                                                       w[g * og:(g + 1) * og, :, i, j])
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _conv_transpose2d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Scatter form: full[n, g og + o, p sh + i dh, q sw + j dw] += x[n, c, p, q] w[c, o, i, j]
    over c in group g, then crop ``padding`` from the top/left and bottom/right (the bottom/right
    crop shortened by ``output_padding``)."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = (_pair2(v) for v in (stride, padding, output_padding, dilation))
    n, cin, h, wd = x.shape
    og, kh, kw = w.shape[1:]
    cg = cin // groups
    full = np.zeros((n, og * groups, (h - 1) * sh + dh * (kh - 1) + 1 + oph, (wd - 1) * sw + dw * (kw - 1) + 1 + opw))
    for i in range(kh):
        for j in range(kw):
            for g in range(groups):
                rows = slice(i * dh, i * dh + sh * (h - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (wd - 1) + 1, sw)
                full[:, g * og:(g + 1) * og, rows, cols] += np.einsum(
                    "nchw,co->nohw", x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg, :, i, j])
    y = full[:, :, ph: full.shape[2] - ph, pw: full.shape[3] - pw]
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def conv2d_sample(draw, rng):
    groups = draw(st.integers(1, 2))
    cin, cout = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    same = stride == (1, 1) and draw(st.booleans())
    padding = "same" if same else (draw(st.integers(0, 1)), draw(st.integers(0, 2)))
    pad = (0, 0) if same else padding
    hw = tuple(max(1, dilation[a] * (k[a] - 1) + 1 - 2 * pad[a]) + draw(st.integers(0, 2)) for a in range(2))
    arrays = [rng.standard_normal((draw(st.integers(1, 2)), cin) + hw), rng.standard_normal((cout, cin // groups) + k)]
    if draw(st.booleans()):
        arrays.append(rng.standard_normal(cout))
    return arrays, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def conv_transpose2d_sample(draw, rng):
    groups = draw(st.integers(1, 2))
    cin, og = groups * draw(st.integers(1, 2)), draw(st.integers(1, 2))
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    hw = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # padding small enough that the output is not empty; output_padding < max(stride, dilation)
    padding = tuple(draw(st.integers(0, min(1, ((hw[a] - 1) * stride[a] + dilation[a] * (k[a] - 1)) // 2)))
                    for a in range(2))
    output_padding = tuple(draw(st.integers(0, max(stride[a], dilation[a]) - 1)) for a in range(2))
    arrays = [rng.standard_normal((draw(st.integers(1, 2)), cin) + hw), rng.standard_normal((cin, og) + k)]
    if draw(st.booleans()):
        arrays.append(rng.standard_normal(og * groups))
    return arrays, {"stride": stride, "padding": padding, "output_padding": output_padding,
                    "groups": groups, "dilation": dilation}


def _pool_geometry(draw, dilated: bool):
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if dilated else (1, 1)
    hw = tuple(max(1, dilation[a] * (k[a] - 1) + 1 - 2 * padding[a]) + draw(st.integers(0, 3)) for a in range(2))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + hw
    return shape, k, stride, padding, dilation


def max_pool2d_sample(draw, rng):
    shape, k, stride, padding, dilation = _pool_geometry(draw, dilated=True)
    # A dilated window can fall wholly in the -inf padding (its output is -inf, as in
    # PyTorch); grow the input until none does, so that finite differences stay finite.
    while np.isinf(_max_pool2d_ref(np.zeros(shape), k, stride, padding, dilation)).any():
        shape = shape[:2] + (shape[2] + 1, shape[3] + 1)
    # Standard normal values: ties inside a window have probability 0.
    return [rng.standard_normal(shape)], {"kernel_size": k, "stride": stride, "padding": padding, "dilation": dilation}


def avg_pool2d_sample(draw, rng):
    shape, k, stride, padding, _ = _pool_geometry(draw, dilated=False)
    return [rng.standard_normal(shape)], {"kernel_size": k, "stride": stride, "padding": padding,
                                          "count_include_pad": draw(st.booleans())}


def _max_pool2d_ref(x, kernel_size, stride, padding, dilation):
    """y[n, c, p, q] = max over taps (i, j) of x_pad[n, c, p sh + i dh, q sw + j dw], padding = -inf."""
    (ph, pw) = padding
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    out_hw = tuple(_out_size(x.shape[2 + a], kernel_size[a], stride[a], padding[a], dilation[a]) for a in range(2))
    taps = [_taps(x_pad, i, j, out_hw, stride, dilation) for i in range(kernel_size[0]) for j in range(kernel_size[1])]
    return np.max(np.stack(taps), axis=0)


def _max_pool2d_indices_ref(x, kernel_size, stride, padding, dilation):
    """The flat index h W + w (in x's own plane) of each window's maximum."""
    (ph, pw), (kh, kw) = padding, kernel_size
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    out_hw = tuple(_out_size(x.shape[2 + a], kernel_size[a], stride[a], padding[a], dilation[a]) for a in range(2))
    taps = np.stack([_taps(x_pad, i, j, out_hw, stride, dilation) for i in range(kh) for j in range(kw)])
    i, j = np.divmod(np.argmax(taps, axis=0), kw)
    p = np.arange(out_hw[0]).reshape(-1, 1)
    q = np.arange(out_hw[1]).reshape(1, -1)
    h = p * stride[0] + i * dilation[0] - ph
    w = q * stride[1] + j * dilation[1] - pw
    return h * x.shape[3] + w


def _avg_pool2d_ref(x, kernel_size, stride, padding, count_include_pad):
    """y = sum of the window's taps / (kh kw), or / (number of taps inside x) without count_include_pad."""
    (ph, pw) = padding
    pads = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    out_hw = tuple(_out_size(x.shape[2 + a], kernel_size[a], stride[a], padding[a], 1) for a in range(2))
    x_pad, inside = np.pad(x, pads), np.pad(np.ones_like(x), pads)
    window = [(i, j) for i in range(kernel_size[0]) for j in range(kernel_size[1])]
    total = sum(_taps(x_pad, i, j, out_hw, stride, (1, 1)) for i, j in window)
    if count_include_pad:
        return total / len(window)
    count = sum(_taps(inside, i, j, out_hw, stride, (1, 1)) for i, j in window)
    return total / count


def adaptive_sample(draw, rng):
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    kind = draw(st.sampled_from(["int", "pair", "none"]))
    if kind == "int":
        size = draw(st.integers(1, 4))
    elif kind == "pair":
        size = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    else:
        size = (None, draw(st.integers(1, 4)))
    return [rng.standard_normal(shape)], {"output_size": size}


def _adaptive_avg_pool2d_ref(x, output_size):
    """y[..., i, j] = mean of x[..., floor(i H/Ho):ceil((i+1) H/Ho), floor(j W/Wo):ceil((j+1) W/Wo)]."""
    size = (output_size, output_size) if isinstance(output_size, int) else output_size
    h, w = x.shape[2:]
    ho, wo = (h if size[0] is None else size[0]), (w if size[1] is None else size[1])
    y = np.zeros(x.shape[:2] + (ho, wo))
    for i in range(ho):
        for j in range(wo):
            rows = slice(i * h // ho, -(-(i + 1) * h // ho))
            cols = slice(j * w // wo, -(-(j + 1) * w // wo))
            y[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return y


def _bn_shape(draw) -> tuple:
    spatial = draw(st.sampled_from([(), (2,), (2, 3)]))
    return (draw(st.integers(2, 3)), draw(st.integers(1, 3))) + spatial


def batch_norm_train_sample(draw, rng):
    shape = _bn_shape(draw)
    arrays = [rng.standard_normal(shape)]
    if draw(st.booleans()):
        arrays += [rng.standard_normal(shape[1]), rng.standard_normal(shape[1])]
    return arrays, {"eps": draw(st.sampled_from([1e-5, 0.1]))}


def batch_norm_running_sample(draw, rng):
    shape = _bn_shape(draw)
    c = shape[1]
    return [rng.standard_normal(shape), rng.standard_normal(c), np.abs(rng.standard_normal(c)) + 0.5,
            rng.standard_normal(c), rng.standard_normal(c)], {"momentum": draw(st.sampled_from([0.1, 0.5]))}


def _bn_axes(x) -> tuple:
    return (0,) + tuple(range(2, x.ndim))


def _bn_param(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def _batch_norm_train_ref(x, w=None, b=None, eps=1e-5):
    """y = w (x - mean) / sqrt(var + eps) + b, mean and biased var over every axis but 1."""
    mu = x.mean(axis=_bn_axes(x), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=_bn_axes(x), keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y if w is None else y * _bn_param(w, x) + _bn_param(b, x)


def _batch_norm_running_ref(x, rm, rv, w, b, momentum):
    """The training output, then running_mean <- (1 - m) rm + m mean and
    running_var <- (1 - m) rv + m var_unbiased, all three flattened into one vector."""
    n = x.size // x.shape[1]
    mu = x.mean(axis=_bn_axes(x))
    var = x.var(axis=_bn_axes(x))
    y = _batch_norm_train_ref(x, w, b)
    return np.concatenate([y.ravel(), (1 - momentum) * rm + momentum * mu,
                           (1 - momentum) * rv + momentum * var * n / (n - 1)])


def _batch_norm_eval_ref(x, rm, rv, w, b):
    """y = w (x - running_mean) / sqrt(running_var + eps) + b."""
    return (x - _bn_param(rm, x)) / np.sqrt(_bn_param(rv, x) + 1e-5) * _bn_param(w, x) + _bn_param(b, x)


def _batch_norm_running(x, rm, rv, w, b, momentum):
    """F.batch_norm in training on fresh copies of the running statistics; y and the updated
    statistics in one vector (so the in-place update is checked against the formula too)."""
    rm, rv = minidl.Tensor(rm.data.copy()), minidl.Tensor(rv.data.copy())
    y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum)
    return minidl.concat([y.reshape(-1), rm, rv])


def _t_batch_norm_running(x, rm, rv, w, b, momentum):
    import torch
    import torch.nn.functional as TF
    rm, rv = rm.detach().clone(), rv.detach().clone()
    y = TF.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum)
    return torch.cat([y.reshape(-1), rm, rv])


def layer_norm_sample(draw, rng):
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    normalized = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))
    arrays = [rng.standard_normal(lead + normalized)]
    if draw(st.booleans()):
        arrays += [rng.standard_normal(normalized), rng.standard_normal(normalized)]
    return arrays, {"normalized_shape": normalized, "eps": draw(st.sampled_from([1e-5, 0.1]))}


def _layer_norm_ref(x, w=None, b=None, normalized_shape=(), eps=1e-5):
    """y = w (x - mean) / sqrt(var + eps) + b over the trailing ``normalized_shape`` axes."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    return y if w is None else y * w + b


_DROPOUT_SEED = 1234


def _seeded(fn):
    """fn run right after minidl.manual_seed: the same dropout mask on every call, so that
    gradcheck's repeated forward passes see one fixed function."""
    def run(*args, **kw):
        minidl.manual_seed(_DROPOUT_SEED)
        return fn(*args, **kw)
    return run


def _host_uniform(shape) -> np.ndarray:
    """The uniform [0, 1) draws that minidl's host generator gives first after the seed."""
    minidl.manual_seed(_DROPOUT_SEED)
    return minidl.rand(*shape, dtype=np.float64).numpy()


def _dropout_ref(x, p):
    """y = x m / (1 - p), m = [u >= p] with u uniform from the seeded generator."""
    return x * (_host_uniform(x.shape) >= p) / (1 - p)


def _dropout2d_ref(x, p):
    """The same with one u per (n, c) channel map, broadcast over (H, W)."""
    return x * (_host_uniform(x.shape[:-2] + (1, 1)) >= p) / (1 - p)


def embedding_sample(padding: bool):
    def sample(draw, rng):
        num, dim = draw(st.integers(2, 5)), draw(st.integers(1, 3))
        idx_shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4))
        idx = rng.integers(0, num, size=idx_shape)  # repeats included: their gradients add up
        padding_idx = draw(st.sampled_from([0, -1])) if padding else None
        return [idx, rng.standard_normal((num, dim))], {"padding_idx": padding_idx}
    return sample


def _embedding_ref(idx, w, padding_idx):
    return w[idx]


_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946)  # alpha, scale


def _elu_ref(x, alpha=1.0):
    return np.where(x > 0, x, alpha * (np.exp(x) - 1))


def sdpa_sample(draw, rng):
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=2))
    L, S, E, Ev = (draw(st.integers(1, 3)) for _ in range(4))
    arrays = [rng.standard_normal(batch + (L, E)), rng.standard_normal(batch + (S, E)),
              rng.standard_normal(batch + (S, Ev))]
    kw = {}
    kind = draw(st.sampled_from(["none", "bool", "bool_dead_row", "float", "causal"]))
    if kind in ("bool", "bool_dead_row"):
        mask = rng.random((L, S)) > 0.3
        mask[:, 0] = True  # every query sees at least one key...
        if kind == "bool_dead_row":
            mask[0] = False  # ...except query 0, whose output must be all zeros
        arrays.append(mask)
    elif kind == "float":
        arrays.append(rng.standard_normal(batch[-1:] + (L, S)))  # an additive, learnable bias
    elif kind == "causal":
        kw["is_causal"] = True
    if draw(st.booleans()):
        kw["scale"] = 0.7
    return arrays, kw


def _sdpa_ref(q, k, v, mask=None, is_causal=False, scale=None):
    """softmax(q k^T scale + M) v with M = 0 where allowed, -inf where blocked (bool or causal
    masks; a float mask is M itself); a query with every key blocked gets a zero output."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ np.swapaxes(k, -1, -2) * scale
    L, S = scores.shape[-2:]
    if is_causal:
        mask = np.tril(np.ones((L, S), dtype=bool))
    allowed = np.ones(scores.shape, dtype=bool)
    if mask is not None and mask.dtype == np.bool_:
        allowed = np.broadcast_to(mask, scores.shape)
    elif mask is not None:
        scores = scores + mask
    scores = np.where(allowed, scores, -np.inf)
    top = np.max(np.where(allowed, scores, -1e300), axis=-1, keepdims=True)
    e = np.where(allowed, np.exp(scores - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    weights = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return weights @ v


def _log_softmax_ref(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _class_shape(draw) -> tuple:
    """(shape of the logits, class axis): (C,) unbatched, (N, C) or (N, C, d)."""
    c = draw(st.integers(2, 4))
    kind = draw(st.sampled_from(["unbatched", "batched", "spatial"]))
    if kind == "unbatched":
        return (c,)
    n = draw(st.integers(1, 3))
    return (n, c) if kind == "batched" else (n, c, draw(st.integers(1, 3)))


def class_index_sample(draw, rng):
    shape = _class_shape(draw)
    c = shape[0] if len(shape) == 1 else shape[1]
    t_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    ignore_index = draw(st.sampled_from([-100, 1]))
    t = rng.integers(0, c, size=t_shape)
    if len(shape) > 1 and t.size > 1 and draw(st.booleans()):
        t.ravel()[1:][rng.random(t.size - 1) < 0.4] = ignore_index  # some ignored entries...
    if t.size and t.ravel()[0] == ignore_index:
        t.ravel()[0] = 0 if ignore_index != 0 else 2  # ...but never all: "mean" would be 0/0
    arrays = [rng.standard_normal(shape), t]
    if draw(st.booleans()):
        arrays.append(rng.random(c) + 0.5)  # class weights (constant)
    return arrays, {"ignore_index": ignore_index, "reduction": draw(st.sampled_from(["none", "mean", "sum"]))}


def cross_entropy_index_sample(draw, rng):
    arrays, kw = class_index_sample(draw, rng)
    kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.2]))
    return arrays, kw


def _with_batch(x, t):
    """An unbatched (C,) input with a 0-d target as a batch of one."""
    return (x[None], t.reshape(1)) if x.ndim == 1 else (x, t)


def _cross_entropy_index_ref(x, t, w=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """loss_n = (1 - e) (-w[t_n] log p[n, t_n]) + (e / C) sum_c (-w[c] log p[n, c]), 0 where
    t_n is ignored; "mean" divides by sum_n w[t_n] over the kept entries."""
    unbatched = x.ndim == 1
    x, t = _with_batch(x, t)
    c = x.shape[1]
    w = np.ones(c) if w is None else w
    logp = _log_softmax_ref(x, 1)
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    picked = np.take_along_axis(logp, tt[:, None], axis=1)[:, 0]
    smooth = -(logp * w.reshape((1, c) + (1,) * (x.ndim - 2))).sum(axis=1)
    loss = np.where(keep, (1 - label_smoothing) * (-w[tt] * picked) + label_smoothing / c * smooth, 0.0)
    if reduction == "none":
        return loss.reshape(()) if unbatched else loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / np.where(keep, w[tt], 0.0).sum()


def cross_entropy_prob_sample(draw, rng):
    shape = _class_shape(draw)
    axis = 0 if len(shape) == 1 else 1
    logits = rng.standard_normal(shape)
    target = np.exp(logits) / np.exp(logits).sum(axis=axis, keepdims=True)
    arrays = [rng.standard_normal(shape), target]
    if draw(st.booleans()):
        arrays.append(rng.random(shape[axis]) + 0.5)
    return arrays, {"reduction": draw(st.sampled_from(["none", "mean", "sum"])),
                    "label_smoothing": draw(st.sampled_from([0.0, 0.2]))}


def _cross_entropy_prob_ref(x, q, w=None, reduction="mean", label_smoothing=0.0):
    """loss_n = -sum_c w[c] q'[n, c] log p[n, c], q' = (1 - e) q + e / C; "mean" divides by
    the number of samples."""
    axis = 0 if x.ndim == 1 else 1
    c = x.shape[axis]
    q = (1 - label_smoothing) * q + label_smoothing / c
    if w is not None:
        q = q * w.reshape((c,) + (1,) * (x.ndim - 1 - axis))
    loss = -(q * _log_softmax_ref(x, axis)).sum(axis=axis)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / (x.size // c)


def _nll_loss_ref(x, t, w=None, ignore_index=-100, reduction="mean"):
    """loss_n = -w[t_n] x[n, t_n] (0 where ignored); "mean" divides by sum_n w[t_n] over kept entries."""
    unbatched = x.ndim == 1
    x, t = _with_batch(x, t)
    w = np.ones(x.shape[1]) if w is None else w
    keep = t != ignore_index
    tt = np.where(keep, t, 0)
    wt = np.where(keep, w[tt], 0.0)
    loss = -wt * np.take_along_axis(x, tt[:, None], axis=1)[:, 0]
    if reduction == "none":
        return loss.reshape(()) if unbatched else loss
    return loss.sum() if reduction == "sum" else loss.sum() / wt.sum()


def _reduce_ref(loss, reduction):
    return {"none": loss, "mean": np.mean(loss), "sum": np.sum(loss)}[reduction]


def regression_sample(kinks=None, param=None, values=(1.0,)):
    """(input, target) of one shape; the difference input - target stays away from 0 and from
    +-the loss's threshold (``kinks``: "abs" for |d| = 0, "threshold" for |d| = param too)."""
    def sample(draw, rng):
        shape = draw(SHAPE)
        x = rng.standard_normal(shape)
        d = rng.standard_normal(shape)
        kw = {"reduction": draw(st.sampled_from(["none", "mean", "sum"]))}
        if param is not None:
            kw[param] = draw(st.sampled_from(values))
        if kinks is not None:
            d = np.sign(d + 1e-12) * (np.abs(d) + 0.1)
            if param is not None and kw[param] > 0:
                d = np.sign(d) * _away_from(np.abs(d), [kw[param]])
        return [x, x - d], kw
    return sample


def _huber_ref(x, y, reduction="mean", delta=1.0):
    """0.5 d^2 for |d| < delta, delta (|d| - delta / 2) otherwise."""
    d = np.abs(x - y)
    return _reduce_ref(np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta)), reduction)


def _smooth_l1_ref(x, y, reduction="mean", beta=1.0):
    """0.5 d^2 / beta for |d| < beta, |d| - beta / 2 otherwise (|d| when beta = 0)."""
    d = np.abs(x - y)
    loss = d if beta == 0 else np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    return _reduce_ref(loss, reduction)


def bce_sample(draw, rng):
    shape = draw(NONSCALAR)
    arrays = [rng.uniform(0.05, 0.95, shape), rng.random(shape)]  # soft targets, differentiable too
    if draw(st.booleans()):
        arrays.append(rng.random(shape[-1:]) + 0.5)  # weight, broadcast along the last axis
    return arrays, {"reduction": draw(st.sampled_from(["none", "mean", "sum"]))}


def _bce_ref(x, y, w=None, reduction="mean"):
    """-w (y log x + (1 - y) log(1 - x))."""
    loss = -(y * np.log(x) + (1 - y) * np.log1p(-x))
    return _reduce_ref(loss if w is None else w * loss, reduction)


def bce_logits_sample(draw, rng):
    """(x, y, then the optional weight and pos_weight named in kwargs["extras"]), each extra
    of shape (last axis,), broadcast along it."""
    shape = draw(NONSCALAR)
    extras = draw(st.sampled_from([(), ("weight",), ("pos_weight",), ("weight", "pos_weight")]))
    arrays = [3 * rng.standard_normal(shape), rng.random(shape)] + [rng.random(shape[-1:]) + 0.5 for _ in extras]
    return arrays, {"extras": extras, "reduction": draw(st.sampled_from(["none", "mean", "sum"]))}


def _bce_logits_ref(x, y, *extra, extras=(), reduction="mean"):
    """-w (pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)))."""
    named = dict(zip(extras, extra))
    w, pw = named.get("weight", 1.0), named.get("pos_weight", 1.0)
    loss = -w * (pw * y * np.log(special.expit(x)) + (1 - y) * np.log(special.expit(-x)))
    return _reduce_ref(loss, reduction)


def kl_div_sample(log_target: bool, zeros: bool = False):
    def sample(draw, rng):
        shape = draw(NONSCALAR)
        target = rng.standard_normal(shape) if log_target else rng.random(shape) + 0.1
        if zeros:
            target = np.where(rng.random(shape) < 0.4, 0.0, target)
        return [rng.standard_normal(shape), target], {
            "reduction": draw(st.sampled_from(["none", "mean", "sum", "batchmean"])), "log_target": log_target}
    return sample


def _kl_div_ref(x, t, reduction="mean", log_target=False):
    """t (log t - x), 0 where t = 0; exp(t) (t - x) for log targets; "batchmean" = sum / N."""
    if log_target:
        loss = np.exp(t) * (t - x)
    else:
        loss = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - x), 0.0)
    return loss.sum() / x.shape[0] if reduction == "batchmean" else _reduce_ref(loss, reduction)


def cosine_similarity_sample(draw, rng):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, min_side=1, max_side=3))
    ndim = len(shapes.result_shape)
    return [rng.standard_normal(s) for s in shapes.input_shapes], {"dim": draw(st.integers(-ndim, ndim - 1))}


def _cosine_similarity_ref(a, b, dim=1, eps=1e-8):
    """sum(a b, dim) / (max(||a||, eps) max(||b||, eps))."""
    a, b = np.broadcast_arrays(a, b)
    na = np.maximum(np.sqrt((a * a).sum(axis=dim)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(axis=dim)), eps)
    return (a * b).sum(axis=dim) / (na * nb)


def normalize_sample(draw, rng):
    shape = draw(NONSCALAR)
    return [_values(rng, shape, "nonzero")], {"p": draw(st.sampled_from([1.0, 2.0, 3.0, np.inf])),
                                              "dim": draw(st.integers(-len(shape), len(shape) - 1))}


def _normalize_ref(x, p=2.0, dim=1):
    """x / max(||x||_p, 1e-12) along dim."""
    if np.isinf(p):
        norm = np.abs(x).max(axis=dim, keepdims=True)
    else:
        norm = (np.abs(x) ** p).sum(axis=dim, keepdims=True) ** (1 / p)
    return x / np.maximum(norm, 1e-12)


def pair_sign_sample(batched_only: bool):
    """(x1, x2, y) with y = +-1 (a constant input) for the margin losses."""
    def sample(draw, rng):
        n, d = draw(st.integers(1, 4)), draw(st.integers(1, 3))
        if batched_only:
            shape = (n,)
        else:
            shape = draw(st.sampled_from([(n, d), (d,)]))
        y_shape = shape if batched_only else shape[:-1]
        y = np.where(rng.random(y_shape) < 0.5, -1.0, 1.0)
        return [rng.standard_normal(shape), rng.standard_normal(shape), y], {
            "margin": draw(st.sampled_from([0.0, 0.3])), "reduction": draw(st.sampled_from(["none", "mean", "sum"]))}
    return sample


def _cosine_embedding_ref(a, b, y, margin=0.0, reduction="mean"):
    """1 - cos for y = 1, max(0, cos - margin) for y = -1, cos = <a, b> / sqrt((|a|^2 + 1e-12)(|b|^2 + 1e-12))."""
    cos = (a * b).sum(-1) / np.sqrt(((a * a).sum(-1) + 1e-12) * ((b * b).sum(-1) + 1e-12))
    return _reduce_ref(np.where(y == 1, 1 - cos, np.maximum(cos - margin, 0.0)), reduction)


def _margin_ranking_ref(a, b, y, margin=0.0, reduction="mean"):
    """max(0, -y (a - b) + margin)."""
    return _reduce_ref(np.maximum(-y * (a - b) + margin, 0.0), reduction)


def nn_specs() -> list[OpSpec]:
    """Specs for conv, pooling, normalization, dropout, embedding, activations, attention, losses."""
    import torch.nn.functional as TF

    return [
        # -------------------------------------------------------------- convolution
        OpSpec("conv2d", lambda x, w, b=None, **kw: F.conv2d(x, w, b, **kw), _conv2d_ref, conv2d_sample,
               lambda x, w, b=None, **kw: TF.conv2d(x, w, b, **kw), examples=8, rtol=1e-10),
        OpSpec("conv_transpose2d", lambda x, w, b=None, **kw: F.conv_transpose2d(x, w, b, **kw),
               _conv_transpose2d_ref, conv_transpose2d_sample,
               lambda x, w, b=None, **kw: TF.conv_transpose2d(x, w, b, **kw), examples=8, rtol=1e-10),
        # -------------------------------------------------------------- pooling
        OpSpec("max_pool2d", F.max_pool2d, _max_pool2d_ref, max_pool2d_sample, TF.max_pool2d, examples=8),
        OpSpec("max_pool2d_indices", lambda x, **kw: F.max_pool2d(x, return_indices=True, **kw)[1],
               _max_pool2d_indices_ref, max_pool2d_sample,
               lambda x, **kw: TF.max_pool2d(x, return_indices=True, **kw)[1], grad=False, examples=8),
        OpSpec("avg_pool2d", F.avg_pool2d, _avg_pool2d_ref, avg_pool2d_sample, TF.avg_pool2d, examples=8),
        OpSpec("adaptive_avg_pool2d", F.adaptive_avg_pool2d, _adaptive_avg_pool2d_ref, adaptive_sample,
               TF.adaptive_avg_pool2d, examples=8),
        # the same ops on the NumPy/CuPy im2col path ("auto" picks Numba on the CPU, CUDA on a GPU)
        OpSpec("conv2d_numpy_path", lambda x, w, b=None, **kw: F.conv2d(x, w, b, **kw), _conv2d_ref, conv2d_sample,
               lambda x, w, b=None, **kw: TF.conv2d(x, w, b, **kw), examples=6, rtol=1e-10, kernels="numpy"),
        OpSpec("conv_transpose2d_numpy_path", lambda x, w, b=None, **kw: F.conv_transpose2d(x, w, b, **kw),
               _conv_transpose2d_ref, conv_transpose2d_sample,
               lambda x, w, b=None, **kw: TF.conv_transpose2d(x, w, b, **kw), examples=6, rtol=1e-10,
               kernels="numpy"),
        OpSpec("max_pool2d_numpy_path", F.max_pool2d, _max_pool2d_ref, max_pool2d_sample, TF.max_pool2d,
               examples=6, kernels="numpy"),
        OpSpec("avg_pool2d_numpy_path", F.avg_pool2d, _avg_pool2d_ref, avg_pool2d_sample, TF.avg_pool2d,
               examples=6, kernels="numpy"),
        # -------------------------------------------------------------- normalization
        OpSpec("batch_norm_train", lambda x, w=None, b=None, eps=1e-5: F.batch_norm(x, None, None, w, b, True, eps=eps),
               _batch_norm_train_ref, batch_norm_train_sample,
               lambda x, w=None, b=None, eps=1e-5: TF.batch_norm(x, None, None, w, b, True, eps=eps), examples=8),
        # forward only: the running statistics are updated in place outside the graph (their
        # derivative in x is not part of the op); batch_norm_train checks the gradients
        OpSpec("batch_norm_train_running_stats", _batch_norm_running, _batch_norm_running_ref,
               batch_norm_running_sample, _t_batch_norm_running, grad=False, examples=6),
        OpSpec("batch_norm_eval", lambda x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, training=False),
               _batch_norm_eval_ref, lambda draw, rng: (batch_norm_running_sample(draw, rng)[0], {}),
               lambda x, rm, rv, w, b: TF.batch_norm(x, rm, rv, w, b, training=False),
               grad_inputs=(0, 3, 4), examples=6),
        OpSpec("layer_norm", lambda x, w=None, b=None, **kw: F.layer_norm(x, kw["normalized_shape"], w, b, kw["eps"]),
               _layer_norm_ref, layer_norm_sample,
               lambda x, w=None, b=None, **kw: TF.layer_norm(x, kw["normalized_shape"], w, b, kw["eps"]), examples=8),
        # -------------------------------------------------------------- dropout
        OpSpec("dropout_eval_identity", lambda x: F.dropout(x, 0.5, training=False), lambda x: x, unary(),
               lambda x: TF.dropout(x, 0.5, training=False), examples=4),
        OpSpec("dropout_p0_identity", lambda x: F.dropout(x, 0.0, training=True), lambda x: x, unary(),
               lambda x: TF.dropout(x, 0.0, training=True), examples=4),
        OpSpec("dropout_p1_zeros", lambda x: F.dropout(x, 1.0, training=True), np.zeros_like, unary(),
               lambda x: TF.dropout(x, 1.0, training=True), examples=4),
        OpSpec("dropout_seeded_mask", _seeded(lambda x: F.dropout(x, 0.3, training=True)),
               lambda x: _dropout_ref(x, 0.3), unary(shape=NONSCALAR), tags={"host_rng"}, examples=6),
        OpSpec("dropout2d_eval_identity", lambda x: F.dropout2d(x, 0.5, training=False), lambda x: x,
               unary(shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=1, max_side=3)),
               lambda x: TF.dropout2d(x, 0.5, training=False), examples=4),
        OpSpec("dropout2d_seeded_mask", _seeded(lambda x: F.dropout2d(x, 0.5, training=True)),
               lambda x: _dropout2d_ref(x, 0.5),
               unary(shape=hnp.array_shapes(min_dims=3, max_dims=4, min_side=1, max_side=3)),
               tags={"host_rng"}, examples=6),
        # -------------------------------------------------------------- embedding
        OpSpec("embedding", lambda idx, w, padding_idx: F.embedding(idx, w, padding_idx=padding_idx), _embedding_ref,
               embedding_sample(False), lambda idx, w, padding_idx: TF.embedding(idx, w, padding_idx=padding_idx),
               examples=8),
        # the padding row gets no gradient by definition (not the derivative): torch parity checks it
        OpSpec("embedding_padding_idx", lambda idx, w, padding_idx: F.embedding(idx, w, padding_idx=padding_idx),
               _embedding_ref, embedding_sample(True),
               lambda idx, w, padding_idx: TF.embedding(idx, w, padding_idx=padding_idx), numeric=False, examples=8),
        # -------------------------------------------------------------- activations
        OpSpec("elu", F.elu, _elu_ref, unary("nonzero"), TF.elu),
        OpSpec("elu_alpha", lambda x: F.elu(x, alpha=0.5), lambda x: _elu_ref(x, 0.5), unary("nonzero"),
               lambda x: TF.elu(x, alpha=0.5)),
        OpSpec("selu", F.selu, lambda x: _SELU[1] * _elu_ref(x, _SELU[0]), unary("nonzero"), TF.selu),
        OpSpec("silu", F.silu, lambda x: x * special.expit(x), unary(), TF.silu),
        OpSpec("mish", F.mish, lambda x: x * np.tanh(np.logaddexp(0, x)), unary(), TF.mish),
        OpSpec("hardtanh", F.hardtanh, lambda x: np.clip(x, -1, 1), unary("hardtanh"), TF.hardtanh),
        OpSpec("hardtanh_limits", lambda x: F.hardtanh(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), unary("clip"),
               lambda x: TF.hardtanh(x, -0.5, 0.5)),
        # -------------------------------------------------------------- attention
        OpSpec("scaled_dot_product_attention",
               lambda q, k, v, m=None, **kw: F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
               _sdpa_ref, sdpa_sample,
               lambda q, k, v, m=None, **kw: TF.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw),
               examples=10),
        # -------------------------------------------------------------- losses
        OpSpec("cross_entropy_indices", lambda x, t, w=None, **kw: F.cross_entropy(x, t, w, **kw),
               _cross_entropy_index_ref, cross_entropy_index_sample,
               lambda x, t, w=None, **kw: TF.cross_entropy(x, t, w, **kw), grad_inputs=(0,)),
        OpSpec("cross_entropy_probabilities", lambda x, q, w=None, **kw: F.cross_entropy(x, q, w, **kw),
               _cross_entropy_prob_ref, cross_entropy_prob_sample,
               lambda x, q, w=None, **kw: TF.cross_entropy(x, q, w, **kw), grad_inputs=(0, 1)),
        OpSpec("nll_loss", lambda x, t, w=None, **kw: F.nll_loss(x, t, w, **kw), _nll_loss_ref, class_index_sample,
               lambda x, t, w=None, **kw: TF.nll_loss(x, t, w, **kw), grad_inputs=(0,)),
        OpSpec("mse_loss", F.mse_loss, lambda x, y, reduction: _reduce_ref((x - y) ** 2, reduction),
               regression_sample(), TF.mse_loss),
        OpSpec("l1_loss", F.l1_loss, lambda x, y, reduction: _reduce_ref(np.abs(x - y), reduction),
               regression_sample("abs"), TF.l1_loss),
        OpSpec("huber_loss", F.huber_loss, _huber_ref, regression_sample("threshold", "delta", (0.5, 1.0, 2.0)),
               TF.huber_loss),
        OpSpec("smooth_l1_loss", F.smooth_l1_loss, _smooth_l1_ref,
               regression_sample("threshold", "beta", (0.0, 0.5, 1.0)), TF.smooth_l1_loss),
        OpSpec("binary_cross_entropy", lambda x, y, w=None, **kw: F.binary_cross_entropy(x, y, w, **kw), _bce_ref,
               bce_sample, lambda x, y, w=None, **kw: TF.binary_cross_entropy(x, y, w, **kw), grad_inputs=(0, 1)),
        OpSpec("binary_cross_entropy_with_logits",
               lambda x, y, *extra, extras, **kw: F.binary_cross_entropy_with_logits(
                   x, y, **dict(zip(extras, extra)), **kw),
               _bce_logits_ref, bce_logits_sample,
               lambda x, y, *extra, extras, **kw: TF.binary_cross_entropy_with_logits(
                   x, y, **dict(zip(extras, extra)), **kw),
               grad_inputs=(0, 1)),
        OpSpec("kl_div", F.kl_div, _kl_div_ref, kl_div_sample(False), TF.kl_div),
        OpSpec("kl_div_log_target", F.kl_div, _kl_div_ref, kl_div_sample(True), TF.kl_div),
        # zero targets: t log t -> 0; the derivative in t is -inf there, so t is a constant here
        OpSpec("kl_div_zero_targets", F.kl_div, _kl_div_ref, kl_div_sample(False, zeros=True), TF.kl_div,
               grad_inputs=(0,)),
        OpSpec("cosine_similarity", F.cosine_similarity, _cosine_similarity_ref, cosine_similarity_sample,
               TF.cosine_similarity),
        OpSpec("normalize", F.normalize, _normalize_ref, normalize_sample, TF.normalize),
        OpSpec("cosine_embedding_loss", F.cosine_embedding_loss, _cosine_embedding_ref, pair_sign_sample(False),
               TF.cosine_embedding_loss, grad_inputs=(0, 1)),
        OpSpec("margin_ranking_loss", F.margin_ranking_loss, _margin_ranking_ref, pair_sign_sample(True),
               TF.margin_ranking_loss, grad_inputs=(0, 1)),
    ]


SPECS = build_specs()
SPEC_IDS = [s.name for s in SPECS]


def draw_case(spec: OpSpec, data, seed: int):
    """Draw (arrays, kwargs) for ``spec`` with hypothesis's ``data`` and a NumPy seed."""
    rng = np.random.default_rng(seed)
    return spec.sample(data.draw, rng)


def to_minidl(arrays, device="cpu", requires_grad=True, spec: OpSpec | None = None) -> list:
    """minidl Tensors on ``device``: float arrays as float64 (requiring grad where ``spec``
    says they are differentiable), integer and boolean arrays with their own dtype."""
    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.kind != "f":
            out.append(minidl.tensor(a, device=device))
            continue
        wants = requires_grad and (spec is None or spec.differentiable(i, a))
        out.append(minidl.tensor(a, dtype=np.float64, requires_grad=wants, device=device))
    return out


def to_torch(arrays, spec: OpSpec) -> list:
    """The same inputs as torch tensors (float64 with requires_grad where differentiable)."""
    import torch

    out = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        if a.dtype.kind != "f":
            out.append(torch.as_tensor(a))
        else:
            out.append(torch.tensor(a, dtype=torch.float64, requires_grad=spec.differentiable(i, a)))
    return out


def result_array(y: Any) -> np.ndarray:
    return y.numpy() if isinstance(y, minidl.Tensor) else np.asarray(y)
