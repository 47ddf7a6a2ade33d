"""Ops with two backward paths give the same gradients through both.

``MatMul``, ``Linear``, ``ReLU`` and the fused ``CrossEntropy`` compute a plain ``backward()`` on raw
arrays (no graph) and a ``create_graph=True`` backward with Tensor ops (differentiable
again). The two must agree; the plain path must record nothing and keep the dtype.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F


def _both_paths(fn, inputs):
    """Gradients of sum(fn(*inputs) * gy) w.r.t. ``inputs``: (plain backward, create_graph)."""
    out = fn(*inputs)
    gy = minidl.tensor(np.random.default_rng(99).standard_normal(out.shape).astype(out.dtype))
    (out * gy).sum().backward()
    plain = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    graph = minidl.grad((fn(*inputs) * gy).sum(), inputs, create_graph=True)
    return plain, graph


def _leaves(rng, *shapes, dtype=np.float64):
    return [minidl.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def _assert_same(plain, graph, rtol=1e-12):
    for p, g in zip(plain, graph):
        assert p.creator is None and not p.requires_grad  # the plain path records no graph
        assert p.dtype == g.dtype
        np.testing.assert_allclose(p.numpy(), g.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)),
    ((4,), (4, 2)), ((3, 4), (4,)), ((4,), (4,)), ((2, 3, 4), (4,)),
])
def test_matmul_plain_backward_equals_differentiable_backward(a_shape, b_shape):
    rng = np.random.default_rng(5)
    a, b = _leaves(rng, a_shape, b_shape)
    plain, graph = _both_paths(F.matmul, [a, b])
    _assert_same(plain, graph)


def test_matmul_plain_backward_agrees_across_kernel_paths():
    rng = np.random.default_rng(6)
    a, b = _leaves(rng, (2, 6, 5), (5, 3), dtype=np.float32)
    with minidl.config.using_kernels("numpy"):
        F.matmul(a, b).sum().backward()
    ga, gb = a.grad.numpy(), b.grad.numpy()
    a.grad = b.grad = None
    with minidl.config.using_kernels("numba"):
        F.matmul(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ga, rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), gb, rtol=1e-5)
    assert gb.dtype == np.float32


@pytest.mark.parametrize("x_shape", [(5, 4), (2, 3, 4), (4,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_plain_backward_equals_differentiable_backward(x_shape, bias):
    rng = np.random.default_rng(0)
    x, w, b = _leaves(rng, x_shape, (3, 4), (3,))
    inputs = [x, w, b] if bias else [x, w]
    plain, graph = _both_paths(F.linear, inputs)
    _assert_same(plain, graph)


def test_linear_plain_backward_skips_gradients_not_needed():
    rng = np.random.default_rng(1)
    x = minidl.tensor(rng.standard_normal((5, 4)))  # data: no gradient wanted
    w, b = _leaves(rng, (3, 4), (3,))
    F.linear(x, w, b).sum().backward()
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), np.ones((5, 3)).T @ x.numpy())
    np.testing.assert_allclose(b.grad.numpy(), np.full(3, 5.0))


def test_relu_plain_backward_equals_differentiable_backward_in_float32():
    rng = np.random.default_rng(2)
    x, = _leaves(rng, (6, 7), dtype=np.float32)
    plain, graph = _both_paths(F.relu, [x])
    _assert_same(plain, graph, rtol=0)
    assert plain[0].dtype == np.float32
    np.testing.assert_array_equal(plain[0].numpy() != 0, (x.numpy() > 0) & (graph[0].numpy() != 0))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [
    {},
    {"weight": [0.5, 2.0, 1.0, 3.0]},
    {"ignore_index": 1},
    {"label_smoothing": 0.2},
    {"weight": [0.5, 2.0, 1.0, 3.0], "ignore_index": 2, "label_smoothing": 0.1},
])
@pytest.mark.parametrize("spatial", [False, True])
def test_cross_entropy_plain_backward_equals_differentiable_backward(reduction, options, spatial):
    rng = np.random.default_rng(3)
    shape, t_shape = ((5, 4, 3), (5, 3)) if spatial else ((6, 4), (6,))
    x, = _leaves(rng, shape)
    target = minidl.tensor(rng.integers(0, 4, t_shape))
    opts = dict(options)
    if "weight" in opts:
        opts["weight"] = minidl.tensor(np.array(opts["weight"]))
    plain, graph = _both_paths(lambda z: F.cross_entropy(z, target, reduction=reduction, **opts), [x])
    _assert_same(plain, graph)


def test_cross_entropy_plain_backward_is_softmax_minus_onehot_over_batch():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((8, 5)).astype(np.float32)
    t = rng.integers(0, 5, 8)
    x = minidl.tensor(z, requires_grad=True)
    F.cross_entropy(x, minidl.tensor(t)).backward()
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(8), t] -= 1
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), p / 8, rtol=1e-5, atol=1e-7)


def test_cross_entropy_plain_backward_with_every_target_ignored_is_nan_like_pytorch():
    x = minidl.tensor(np.zeros((3, 4)), requires_grad=True)
    with np.errstate(all="raise"):  # no floating-point warning escapes
        F.cross_entropy(x, minidl.tensor(np.full(3, -100))).backward()
    assert np.isnan(x.grad.numpy()).all()
