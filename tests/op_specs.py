"""The registry of op specs that drives the core op tests.

Each ``OpSpec`` says how to draw inputs (hypothesis shapes, broadcast pairs included, and a
value domain that keeps away from kinks and poles), the minidl call, an independent NumPy
reference, the PyTorch equivalent (None where PyTorch has no such op), and whether second
derivatives are checked. ``tests/functional/test_ops.py`` turns every spec into forward,
gradcheck, gradgradcheck and torch-parity tests.
"""
from __future__ import annotations

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
    grad_inputs: tuple | None = None  # indices of differentiable inputs (default: all)
    tags: set = field(default_factory=set)


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
    return [rng.standard_normal(a), rng.standard_normal(b)], {"cond": rng.random(c) > 0.5}


def squeeze_sample(draw, rng):
    s = list(draw(NONSCALAR))
    s.insert(draw(st.integers(0, len(s))), 1)
    return [rng.standard_normal(s)], {}


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
               where_sample, lambda a, b, cond: torch.where(torch.as_tensor(cond), a, b)),
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
    ]


SPECS = build_specs()
SPEC_IDS = [s.name for s in SPECS]


def draw_case(spec: OpSpec, data, seed: int):
    """Draw (arrays, kwargs) for ``spec`` with hypothesis's ``data`` and a NumPy seed."""
    rng = np.random.default_rng(seed)
    return spec.sample(data.draw, rng)


def to_minidl(arrays, device="cpu", requires_grad=True) -> list:
    return [minidl.tensor(a, dtype=np.float64, requires_grad=requires_grad, device=device) for a in arrays]


def result_array(y: Any) -> np.ndarray:
    return y.numpy() if isinstance(y, minidl.Tensor) else np.asarray(y)
