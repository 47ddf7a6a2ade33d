"""Embedding module: default init, padding row, PyTorch parity, gradients, pretrained, errors."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import copy_to_torch, layer_gradcheck

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for Embedding")


def test_default_init_is_standard_normal_with_zero_padding_row():
    m = nn.Embedding(500, 40, padding_idx=3)
    w = m.weight.numpy()
    assert w.shape == (500, 40) and w.dtype == np.float32
    np.testing.assert_array_equal(w[3], 0.0)
    assert w.mean() == pytest.approx(0.0, abs=0.02)
    assert w.std() == pytest.approx(1.0, rel=0.02)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embedding_matches_torch(padding_idx):
    m = nn.Embedding(6, 3, padding_idx=padding_idx).double()
    t = copy_to_torch(m, torch.nn.Embedding(6, 3, padding_idx=padding_idx))
    idx = np.array([[0, 2, 5], [2, 2, 1]])
    y = m(idx)
    ty = t(torch.tensor(idx))
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(m.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-12)
    assert list(m.state_dict()) == list(t.state_dict())


def test_embedding_gradcheck_through_weight():
    m = nn.Embedding(4, 2).double()
    idx = minidl.tensor(np.array([3, 0, 3]))
    assert layer_gradcheck(m, idx)


def test_from_pretrained_is_frozen_by_default():
    w = np.arange(6.0).reshape(3, 2)
    m = nn.Embedding.from_pretrained(w)
    assert not m.weight.requires_grad
    np.testing.assert_array_equal(m(np.array([2])).numpy(), [[4.0, 5.0]])
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad


def test_errors():
    m = nn.Embedding(5, 2)
    with pytest.raises(IndexError, match="index 5 is out of range for 5 embeddings"):
        m(np.array([5]))
    with pytest.raises(ValueError, match="padding_idx 7 must be within num_embeddings 5"):
        nn.Embedding(5, 2, padding_idx=7)
    assert repr(nn.Embedding(5, 2, padding_idx=1)) == "Embedding(5, 2, padding_idx=1)"
