"""Tensor creation, dtypes, conversion, operators with numbers and arrays, clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F


def test_python_floats_default_to_float32_and_numpy_float64_is_kept():
    assert minidl.tensor([1.0, 2.0]).dtype == np.float32
    assert minidl.tensor(3.0).dtype == np.float32
    assert minidl.tensor(np.array([1.0])).dtype == np.float64
    assert minidl.tensor([1, 2]).dtype == np.int64
    assert minidl.tensor([1.0], dtype="float64").dtype == np.float64


def test_scalars_keep_the_tensor_dtype_on_both_sides():
    x = minidl.tensor([1.0, 2.0])
    for y in (x + 1, 1 + x, x * 2.5, 2.5 * x, x - 1, 1 - x, x / 2, 2 / x, x ** 2, 2 ** x, -x):
        assert y.dtype == np.float32


def test_numpy_array_on_the_left_defers_to_tensor():
    x = minidl.tensor(np.ones(3), requires_grad=True)
    y = np.arange(3.0) * x
    assert isinstance(y, minidl.Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 2])


def test_tensor_copies_data_and_as_tensor_shares():
    a = np.zeros(3)
    t = minidl.tensor(a)
    a[0] = 5
    assert t.data[0] == 0
    assert minidl.as_tensor(a).data is a


def test_conversions_and_attributes():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.T.shape == (3, 2)
    assert str(x.device) == "cpu"
    assert isinstance(x.numpy(), np.ndarray)
    assert x.sum().item() == 15.0
    assert x.tolist() == [[0, 1, 2], [3, 4, 5]]
    d = x.detach()
    assert d.creator is None and not d.requires_grad and d.data is x.data
    assert "requires_grad=True" in repr(x)
    assert "grad_fn=<Mul>" in repr(x * 2)


def test_requires_grad_only_on_floats():
    with pytest.raises(TypeError, match="int64"):
        minidl.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        minidl.tensor([1, 2]).requires_grad_()


def test_comparisons_return_bool_tensors_without_grad():
    x = minidl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == bool and m.creator is None
    np.testing.assert_array_equal(m.numpy(), [False, True, True])
    np.testing.assert_array_equal((x == 2.0).numpy(), [False, True, False])


def test_tensors_are_hashable_by_identity():
    a, b = minidl.tensor([1.0]), minidl.tensor([1.0])
    assert len({a, b}) == 2


def test_reductions_accept_pytorch_aliases():
    x = minidl.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(x.sum(dim=1, keepdim=True).numpy(), [[3], [12]])
    np.testing.assert_array_equal(x.max(axis=0).numpy(), [3, 4, 5])
    np.testing.assert_array_equal(x.argmax(axis=1).numpy(), [2, 2])
    assert F.softmax(x, dim=0).shape == (2, 3)


def test_max_ties_share_the_gradient_evenly():
    x = minidl.tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5, 0])


def test_maximum_ties_split_half_and_half():
    a = minidl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = minidl.tensor(np.array([1.0, 1.0]), requires_grad=True)
    minidl.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [0.5, 0])


def test_getitem_repeated_indices_accumulate():
    x = minidl.tensor(np.arange(4.0), requires_grad=True)
    x[np.array([0, 0, 3, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3, 0, 0, 1])
    y = minidl.tensor(np.arange(4.0), requires_grad=True)
    y[minidl.tensor([True, False, True, False])].sum().backward()
    np.testing.assert_array_equal(y.grad.numpy(), [1, 0, 1, 0])


def test_log_softmax_and_logsumexp_are_stable_for_huge_logits():
    x = minidl.tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    ls = F.log_softmax(x, axis=1)
    assert np.isfinite(ls.numpy()).all()
    np.testing.assert_allclose(ls.numpy()[0, 0], 0.0)
    np.testing.assert_allclose(F.logsumexp(x, axis=1).numpy(), [1000.0])
    ls.sum().backward()
    assert np.isfinite(x.grad.numpy()).all()
    s = F.sigmoid(minidl.tensor(np.array([-1000.0, 1000.0])))
    np.testing.assert_array_equal(s.numpy(), [0.0, 1.0])
    sp = F.softplus(minidl.tensor(np.array([-1000.0, 1000.0]), requires_grad=True))
    np.testing.assert_allclose(sp.numpy(), [0.0, 1000.0])


@pytest.mark.parametrize("call, pattern", [
    (lambda: minidl.tensor(np.ones((2, 3))) @ minidl.tensor(np.ones((4, 5))), r"matmul: shapes \(2, 3\) and \(4, 5\) do not align \(3 != 4\)"),
    (lambda: minidl.tensor(np.ones((2, 3))) + minidl.tensor(np.ones((4,))), r"add: cannot broadcast shapes \(2, 3\) and \(4,\)"),
    (lambda: minidl.tensor(np.ones((2, 3))) * minidl.tensor(np.ones((3, 2))), r"mul: cannot broadcast"),
    (lambda: minidl.tensor(np.ones(3))[5], r"getitem: .*out of bounds.*shape \(3,\)"),
    (lambda: minidl.tensor(np.ones(6)).reshape(4, 2), r"reshape: cannot reshape a tensor of shape \(6,\)"),
    (lambda: minidl.tensor(np.ones((2, 2))).sum(axis=3), r"sum: axis 3 is out of range"),
    (lambda: minidl.concat([minidl.tensor(np.ones((2, 2))), minidl.tensor(np.ones((3, 3)))]), r"concat: shapes"),
    (lambda: minidl.stack([minidl.tensor(np.ones(2)), minidl.tensor(np.ones(3))]), r"stack: all tensors must have the same shape"),
    (lambda: F.linear(minidl.tensor(np.ones((2, 3))), minidl.tensor(np.ones((4, 5)))), r"linear: input of shape \(2, 3\) does not match weight of shape \(4, 5\)"),
    (lambda: minidl.clip(minidl.tensor([1.0]), 2, 1), r"clip: min"),
    (lambda: minidl.split(minidl.tensor(np.ones(5)), [2, 2]), r"split: sections"),
])
def test_bad_input_raises_error_naming_op_and_shapes(call, pattern):
    with pytest.raises((ValueError, IndexError, RuntimeError, TypeError), match=pattern):
        call()


def test_setitem_on_tensor_requiring_grad_is_refused():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        x[0] = 3.0
    with minidl.no_grad():
        x[0] = 3.0
    assert x.data[0] == 3.0


def test_random_tensors_are_reproducible_with_manual_seed():
    minidl.manual_seed(7)
    a = minidl.randn(3, 2)
    minidl.manual_seed(7)
    b = minidl.randn(3, 2)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert a.dtype == np.float32
