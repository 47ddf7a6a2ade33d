"""The graph engine: ordering, retain_graph, accumulation, no_grad, freeing, higher order."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import Function


def _x(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def test_chain_of_100k_ops_backpropagates_without_recursion():
    x = minidl.tensor(2.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_diamond_graph_visits_each_function_once_in_order():
    x = _x(3)
    a = x * 2.0
    b = a.exp()
    c = a.sin()
    y = (b * c).sum()
    y.backward()
    xd = x.data
    expected = 2 * (np.exp(2 * xd) * np.sin(2 * xd) + np.exp(2 * xd) * np.cos(2 * xd))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_second_backward_without_retain_graph_raises_clear_error():
    x = _x(3)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_gives_same_gradients_and_accumulates():
    x = _x(3)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first, rtol=1e-14)


def test_gradients_accumulate_across_separate_graphs_like_pytorch():
    x = _x(4)
    (x * x).sum().backward()
    (3.0 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.data + 3.0)


def test_no_grad_records_nothing():
    x = _x(3)
    with minidl.no_grad():
        y = x * 2.0 + 1.0
    assert y.creator is None and not y.requires_grad
    assert minidl.is_grad_enabled()

    @minidl.no_grad()
    def f(t):
        return t.exp()

    assert f(x).creator is None


def test_backward_told_which_inputs_need_grad():
    seen = {}

    class Probe(Function):
        def forward(self, a, b):
            return a * b

        def backward(self, gy):
            seen["needs"] = self.needs_input_grad
            a, b = self.inputs
            return (gy * b if self.needs_input_grad[0] else None, gy * a if self.needs_input_grad[1] else None)

    a = _x(2)
    b = minidl.tensor(np.ones(2))
    Probe()(a, b).sum().backward()
    assert seen["needs"] == (True, False)
    assert b.grad is None


def test_graph_is_freed_when_loss_goes_out_of_scope():
    x = _x(50, 50)
    loss = (F.tanh(x @ x) * 2.0).sum()
    fn_ref = weakref.ref(loss.creator)
    inner_ref = weakref.ref(loss.creator.inputs[0])
    del loss
    gc.collect()
    assert fn_ref() is None and inner_ref() is None


def test_graph_freed_by_reference_counting_alone():
    gc.disable()
    try:
        x = _x(10)
        loss = (x.exp() * x).sum()
        ref = weakref.ref(loss.creator)
        loss.backward()
        del loss
        assert ref() is None
    finally:
        gc.enable()


def test_memory_stays_flat_over_1000_training_like_iterations():
    rng = np.random.default_rng(0)
    w = minidl.tensor(rng.standard_normal((20, 10)) * 0.1, requires_grad=True)
    xb = minidl.tensor(rng.standard_normal((32, 20)))

    def step():
        loss = (F.tanh(xb @ w) ** 2).mean()
        w.grad = None
        loss.backward()
        with minidl.no_grad():
            w.data -= 0.01 * w.grad.data

    for _ in range(50):
        step()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(1000):
        step()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert grown < 200_000, f"memory grew by {grown} bytes over 1000 steps"


def test_create_graph_gives_second_and_third_derivatives():
    x = minidl.tensor(np.array([0.5, -1.5]), requires_grad=True)
    y = (x ** 4).sum()
    (g,) = minidl.grad(y, x, create_graph=True)
    (h,) = minidl.grad(g.sum(), x, create_graph=True)
    (t,) = minidl.grad(h.sum(), x)
    np.testing.assert_allclose(g.numpy(), 4 * x.data ** 3)
    np.testing.assert_allclose(h.numpy(), 12 * x.data ** 2)
    np.testing.assert_allclose(t.numpy(), 24 * x.data)


def test_backward_create_graph_then_backward_of_grad():
    x = _x(3)
    y = (x.sin()).sum()
    y.backward(create_graph=True)
    gx = x.grad
    x.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -np.sin(x.data), rtol=1e-12)


def test_grad_does_not_touch_leaf_grads_and_reports_unused():
    x, z = _x(3), _x(3, seed=1)
    y = (x * x).sum()
    (g,) = minidl.grad(y, x, retain_graph=True)
    assert x.grad is None
    np.testing.assert_allclose(g.numpy(), 2 * x.data)
    with pytest.raises(RuntimeError, match="not used"):
        minidl.grad(y, [x, z], retain_graph=True)
    assert minidl.grad(y, [x, z], allow_unused=True)[1] is None


def test_hessian_vector_product():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    A = A + A.T
    x = _x(4)
    v = rng.standard_normal(4)
    y = 0.5 * (x @ minidl.tensor(A) @ x)
    (g,) = minidl.grad(y, x, create_graph=True)
    (hv,) = minidl.grad((g * minidl.tensor(v)).sum(), x)
    np.testing.assert_allclose(hv.numpy(), A @ v, rtol=1e-12)


def test_multi_output_function_with_one_output_used():
    class SplitTwo(Function):
        def forward(self, x):
            return x[:2].copy(), x[2:].copy()

        def backward(self, g1, g2):
            return minidl.concat([g1, g2])

    x = _x(5)
    a, b = SplitTwo()(x)
    (a * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3, 0, 0, 0])


def test_backward_on_non_scalar_needs_gradient():
    x = _x(3)
    with pytest.raises(RuntimeError, match=r"scalar output.*shape \(3,\)"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="shape"):
        (x * 2.0).backward(minidl.tensor(np.ones(4)))


def test_backward_without_requires_grad_is_an_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        minidl.tensor([1.0, 2.0]).sum().backward()


def test_gradient_dtype_follows_input_dtype():
    x32 = minidl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    w64 = minidl.tensor(np.ones(3), requires_grad=True)
    (x32 * w64).sum().backward()
    assert x32.grad.dtype == np.float32 and w64.grad.dtype == np.float64


def test_backward_shape_mismatch_in_custom_function_is_reported():
    class Bad(Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.sum()

    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(\)"):
        Bad()(_x(3)).sum().backward()


def test_function_instance_called_twice_gives_clear_error_on_backward():
    class Square(Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            return 2.0 * self.inputs[0] * gy

    sq = Square()
    x = _x(3)
    first = sq(x)
    second = sq(x)  # the instance now records this call, not the first
    with pytest.raises(RuntimeError, match="Square was called more than once"):
        first.sum().backward()
    del second


def test_leaf_gradients_are_owned_arrays_safe_to_change_in_place():
    # Both inputs of an add receive the same upstream gradient, and sum's backward hands out a
    # read-only broadcast view: each leaf must still get its own writable array, as in PyTorch.
    import torch

    from minidl import optim

    a = minidl.tensor(np.arange(3.0), requires_grad=True)
    b = minidl.tensor(np.ones(3), requires_grad=True)
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    norm = optim.clip_grad_norm_([a, b], 0.1)
    ta = torch.arange(3.0, dtype=torch.float64, requires_grad=True)
    tb = torch.ones(3, dtype=torch.float64, requires_grad=True)
    (ta + tb).sum().backward()
    tnorm = torch.nn.utils.clip_grad_norm_([ta, tb], 0.1)
    np.testing.assert_allclose(norm.item(), tnorm.item(), rtol=1e-12)
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12)
    a.grad.data[0] = 5.0
    assert b.grad.data[0] != 5.0
