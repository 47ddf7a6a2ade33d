"""embedding: lookup, scatter-add gradient (repeated indices accumulate), padding row
without gradient, second derivatives, PyTorch parity, clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional.embedding import embedding


def _weight(v=6, d=3, seed=0):
    return minidl.tensor(np.random.default_rng(seed).standard_normal((v, d)), requires_grad=True)


def test_lookup_picks_rows():
    w = _weight()
    idx = np.array([[0, 5], [2, 2]])
    np.testing.assert_array_equal(embedding(idx, w).numpy(), w.numpy()[idx])
    assert embedding(minidl.tensor(idx), w).shape == (2, 2, 3)


def test_gradient_scatter_adds_repeated_indices():
    w = _weight()
    idx = np.array([1, 3, 1, 1])
    g = np.random.default_rng(1).standard_normal((4, 3))
    embedding(idx, w).backward(minidl.tensor(g))
    expected = np.zeros((6, 3))
    for k, i in enumerate(idx):
        expected[i] += g[k]
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-12)


def test_gradcheck_and_gradgradcheck():
    w = _weight(5, 2, 2)
    idx = np.array([[0, 4, 4], [1, 0, 3]])
    assert minidl.gradcheck(lambda w: embedding(idx, w), [w])
    assert minidl.gradgradcheck(lambda w: embedding(idx, w), [w])


def test_padding_row_gets_no_gradient():
    w = _weight()
    idx = np.array([0, 2, 2, 5])
    embedding(idx, w, padding_idx=2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[2], 0.0)
    np.testing.assert_array_equal(w.grad.numpy()[[0, 5]], 1.0)
    w.grad = None
    embedding(idx, w, padding_idx=-1).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[5], 0.0)


def test_matches_torch_with_padding():
    torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for embedding")
    w = _weight(7, 4, 3)
    tw = torch.tensor(w.numpy(), requires_grad=True)
    idx = np.random.default_rng(4).integers(0, 7, size=(3, 5))
    g = np.random.default_rng(5).standard_normal((3, 5, 4))
    embedding(idx, w, padding_idx=3).backward(minidl.tensor(g))
    torch.nn.functional.embedding(torch.tensor(idx), tw, padding_idx=3).backward(torch.tensor(g))
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-12)


def test_out_of_range_and_non_integer_indices_are_clear_errors():
    w = _weight(4, 2)
    with pytest.raises(IndexError, match=r"index 4 is out of range for 4 embeddings \(valid: 0..3\)"):
        embedding(np.array([0, 4]), w)
    with pytest.raises(IndexError, match="index -1 is out of range"):
        embedding(np.array([-1]), w)
    with pytest.raises(TypeError, match="indices must be integers, got dtype float"):
        embedding(np.array([0.0, 1.0]), w)
    with pytest.raises(ValueError, match="weight must be 2-D"):
        embedding(np.array([0]), minidl.zeros(3))
    with pytest.raises(ValueError, match="padding_idx 9 is out of range"):
        embedding(np.array([0]), w, padding_idx=9)


def test_exported_from_functional():
    assert F.embedding is embedding


def test_embedding_on_each_device(device):
    ws = np.random.default_rng(6).standard_normal((5, 3))
    w = minidl.tensor(ws, requires_grad=True, device=device)
    idx = np.array([[1, 1, 4], [0, 2, 1]])
    y = embedding(idx, w, padding_idx=0)
    assert y.device.type == device
    np.testing.assert_array_equal(y.numpy(), ws[idx])
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy()[:, 0], [0.0, 3.0, 1.0, 0.0, 1.0])
