"""Parameter: a leaf Tensor that requires grad and registers itself in a Module."""
import pickle

import numpy as np
import pytest

import minidl
from minidl import nn


def test_parameter_is_a_leaf_tensor_that_requires_grad():
    p = nn.Parameter(np.arange(3.0))
    assert isinstance(p, minidl.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float64
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), 2 * np.arange(3.0))


def test_parameter_shares_the_array_of_a_tensor():
    t = minidl.tensor([1.0, 2.0])
    p = nn.Parameter(t)
    assert p.data is t.data


def test_integer_parameter_must_not_require_grad():
    with pytest.raises(TypeError, match="only floating-point data can require grad"):
        nn.Parameter(np.arange(3))
    p = nn.Parameter(np.arange(3), requires_grad=False)
    assert not p.requires_grad


def test_ops_on_parameters_return_plain_tensors():
    p = nn.Parameter(np.ones(2))
    assert type(p * 2.0) is minidl.Tensor


def test_repr_says_parameter():
    assert repr(nn.Parameter(np.ones(2))).startswith("Parameter containing:\ntensor(")


def test_pickle_round_trip():
    p = nn.Parameter(np.arange(4.0).reshape(2, 2))
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, nn.Parameter) and q.requires_grad
    np.testing.assert_array_equal(q.numpy(), p.numpy())


def test_deepcopy_copies_data_and_grad_and_keeps_sharing():
    import copy

    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight
    m(minidl.randn(3, 2)).sum().backward()
    c = copy.deepcopy(m)
    assert isinstance(c[0].weight, nn.Parameter) and c[0].weight is not m[0].weight
    assert c[0].weight.data is not m[0].weight.data
    np.testing.assert_array_equal(c[0].weight.numpy(), m[0].weight.numpy())
    np.testing.assert_array_equal(c[0].weight.grad.numpy(), m[0].weight.grad.numpy())
    assert c[1].weight is c[0].weight  # sharing inside the copy is preserved
    c[0].weight.data[...] = 0
    assert m[0].weight.numpy().any()
