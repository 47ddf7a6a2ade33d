"""The gradient checker itself: it passes correct ops and catches planted bugs."""
import warnings

import numpy as np
import pytest

import minidl
from minidl import Function, GradcheckError, gradcheck, gradgradcheck


def _x(*shape, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


class IgnoresUpstream(Function):
    """y = x^2 but the backward forgets gy (returns 2x)."""

    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2.0 * self.inputs[0]


class WrongSign(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return -2.0 * self.inputs[0] * gy


class BroadcastBug(Function):
    """y = a + b with b broadcast, but the backward returns gy for b without summing."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        gb = minidl.tensor(gy.data.reshape(-1)[: b.size].reshape(b.shape))
        return gy, gb


class Square(Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2.0 * self.inputs[0] * gy


class NonDifferentiableBackward(Function):
    """Correct first derivative, computed on raw arrays: its second derivative is wrong (zero)."""

    def forward(self, x):
        return x ** 3

    def backward(self, gy):
        return minidl.tensor(3 * self.inputs[0].data ** 2) * gy


def test_correct_function_passes_full_and_fast():
    x = _x(3, 4)
    assert gradcheck(lambda x: Square()(x), [x])
    assert gradcheck(lambda x: Square()(x), [x], fast=True)
    assert gradgradcheck(lambda x: Square()(x), [x])


def test_catches_backward_that_ignores_upstream_gradient():
    with pytest.raises(GradcheckError, match="upstream gradient"):
        gradcheck(lambda x: IgnoresUpstream()(x), [_x(3, 2)])


def test_catches_wrong_sign_in_every_mode():
    for fast in (False, True):
        with pytest.raises(GradcheckError, match="mismatch"):
            gradcheck(lambda x: WrongSign()(x), [_x(2, 3)], fast=fast)


def test_catches_broadcasting_bug():
    with pytest.raises((GradcheckError, RuntimeError)):
        gradcheck(lambda a, b: BroadcastBug()(a, b), [_x(3, 4), _x(4, seed=1)])


def test_error_names_input_element_and_values():
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: a * WrongSign()(b), [_x(2, 2), _x(2, 2, seed=3)], full_jacobian=False)
    msg = str(info.value)
    assert "input 1" in msg and "analytic" in msg and "numeric" in msg and "element" in msg


def test_gradgradcheck_catches_non_differentiable_backward():
    x = _x(3)
    assert gradcheck(lambda x: NonDifferentiableBackward()(x), [x])
    with pytest.raises(GradcheckError):
        gradgradcheck(lambda x: NonDifferentiableBackward()(x), [x])


def test_shape_of_gradient_is_checked():
    class BadShape(Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return gy  # scalar instead of x's shape

    with pytest.raises(RuntimeError, match="shape"):
        gradcheck(lambda x: BadShape()(x), [_x(3)])


def test_warns_on_float32_inputs():
    x = minidl.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float64"):
        gradcheck(lambda x: x * 2.0, [x], atol=1e-2, rtol=1e-2, eps=1e-2)


def test_kinks_are_skipped_not_failed():
    x = minidl.tensor(np.array([0.0, 1.0, -1.0]), requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradcheck(minidl.relu, [x])
        assert gradcheck(minidl.abs, [x])


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(lambda x: x * 2, [minidl.tensor(np.ones(2))])


def test_multiple_outputs_and_inputs():
    a, b = _x(2, 3), _x(3, 2, seed=1)
    assert gradcheck(lambda a, b: (a @ b, minidl.tanh(a).sum(axis=0)), [a, b])
