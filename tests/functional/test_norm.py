"""batch_norm and layer_norm: PyTorch parity (outputs, gradients, running statistics),
first and second derivatives by finite differences, and clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl.functional.norm import batch_norm, layer_norm

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for normalization")
TF = torch.nn.functional


def _rand(shape, seed=0, requires_grad=True):
    return minidl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=requires_grad)


def _torch(t):
    return torch.tensor(t.numpy(), requires_grad=True)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 2)])
def test_batch_norm_training_matches_torch(shape):
    x, w, b = _rand(shape, 0), _rand((3,), 1), _rand((3,), 2)
    rm, rv = minidl.zeros(3, dtype="float64"), minidl.ones(3, dtype="float64")
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    tx, tw, tb = _torch(x), _torch(w), _torch(b)
    for step in range(3):  # the running statistics are compared after several steps
        y = batch_norm(x * (step + 1.0), rm, rv, w, b, training=True, momentum=0.3)
        ty = TF.batch_norm(tx * (step + 1.0), trm, trv, tw, tb, training=True, momentum=0.3)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), trv.numpy(), rtol=1e-12)
    g = np.random.default_rng(9).standard_normal(shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_batch_norm_eval_uses_running_statistics_like_torch():
    x, w, b = _rand((5, 3, 2), 3), _rand((3,), 4), _rand((3,), 5)
    rm = minidl.tensor(np.array([0.1, -0.2, 0.3]))
    rv = minidl.tensor(np.array([1.5, 0.5, 2.0]))
    tx, tw, tb = _torch(x), _torch(w), _torch(b)
    y = batch_norm(x, rm, rv, w, b, training=False)
    ty = TF.batch_norm(tx, torch.tensor(rm.numpy()), torch.tensor(rv.numpy()), tw, tb, training=False)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    g = np.random.default_rng(1).standard_normal(x.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(rm.numpy(), [0.1, -0.2, 0.3])  # eval leaves them alone


def test_batch_norm_normalises_with_biased_and_tracks_unbiased_variance():
    x = _rand((4, 2), 6, requires_grad=False)
    rm, rv = minidl.zeros(2, dtype="float64"), minidl.ones(2, dtype="float64")
    y = batch_norm(x, rm, rv, training=True, momentum=1.0, eps=0.0)
    xs = x.numpy()
    np.testing.assert_allclose(y.numpy(), (xs - xs.mean(0)) / xs.std(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), xs.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(rm.numpy(), xs.mean(0), rtol=1e-12)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_gradcheck_and_gradgradcheck(affine):
    x = _rand((4, 2, 3), 7)
    params = [_rand((2,), 8), _rand((2,), 9)] if affine else []

    def fn(x, *p):
        return batch_norm(x, None, None, *(p or (None, None)), training=True)

    assert minidl.gradcheck(fn, [x] + params)
    assert minidl.gradgradcheck(fn, [x] + params)


def test_batch_norm_eval_gradcheck():
    x, w, b = _rand((3, 2), 10), _rand((2,), 11), _rand((2,), 12)
    rm, rv = minidl.tensor(np.array([0.5, -1.0])), minidl.tensor(np.array([2.0, 0.3]))
    fn = lambda x, w, b: batch_norm(x, rm, rv, w, b, training=False)  # noqa: E731
    assert minidl.gradcheck(fn, [x, w, b])
    assert minidl.gradgradcheck(fn, [x, w, b])


def test_differentiable_backward_equals_array_backward():
    x, w, b = _rand((5, 3), 13), _rand((3,), 14), _rand((3,), 15)
    g = minidl.tensor(np.random.default_rng(2).standard_normal((5, 3)))
    plain = minidl.grad(batch_norm(x, None, None, w, b, training=True), [x, w, b], g)
    graph = minidl.grad(batch_norm(x, None, None, w, b, training=True), [x, w, b], g, create_graph=True)
    assert graph[0].requires_grad and not plain[0].requires_grad
    for p, q in zip(plain, graph):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-12, atol=1e-14)


def test_batch_norm_backward_matches_composed_formula():
    """dx = (1/N) gamma s (N dy - sum dy - x_hat sum(dy x_hat)), checked against autograd of
    the formula written with elementary ops."""
    x, w = _rand((6, 2), 16), _rand((2,), 17)
    g = minidl.tensor(np.random.default_rng(3).standard_normal((6, 2)))
    fused = minidl.grad(batch_norm(x, None, None, w, None, training=True), [x, w], g)
    mu = x.mean(axis=0, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=0, keepdims=True)
    composed = (x - mu) / (var + 1e-5).sqrt() * w
    ref = minidl.grad(composed, [x, w], g)
    for a, r in zip(fused, ref):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-10, atol=1e-12)


def test_batch_norm_keeps_float32():
    x = minidl.randn(4, 3)
    y = batch_norm(x, minidl.zeros(3), minidl.ones(3), minidl.ones(3), minidl.zeros(3), training=True)
    assert y.dtype == np.float32


def test_batch_norm_errors():
    x = minidl.randn(4, 3)
    with pytest.raises(ValueError, match=r"running_mean has shape \(4,\) but the input \(4, 3\) has 3 channels"):
        batch_norm(x, minidl.zeros(4), minidl.ones(4), training=True)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batch_norm(minidl.randn(1, 3), None, None, training=True)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C\)"):
        batch_norm(minidl.randn(3), None, None, training=True)
    with pytest.raises(ValueError, match="both running_mean and running_var"):
        batch_norm(x, minidl.zeros(3), None, training=True)


@pytest.mark.parametrize("normalized_shape", [(4,), (3, 4)])
def test_layer_norm_matches_torch(normalized_shape):
    x, w, b = _rand((2, 3, 4), 20), _rand(normalized_shape, 21), _rand(normalized_shape, 22)
    tx, tw, tb = _torch(x), _torch(w), _torch(b)
    y = layer_norm(x, normalized_shape, w, b, eps=1e-6)
    ty = TF.layer_norm(tx, normalized_shape, tw, tb, eps=1e-6)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(4).standard_normal(x.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    for ours, theirs in ((x, tx), (w, tw), (b, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_layer_norm_gradcheck_and_gradgradcheck():
    x, w, b = _rand((3, 4), 23), _rand((4,), 24), _rand((4,), 25)
    fn = lambda x, w, b: layer_norm(x, 4, w, b)  # noqa: E731
    assert minidl.gradcheck(fn, [x, w, b])
    assert minidl.gradgradcheck(fn, [x, w, b])
    assert minidl.gradcheck(lambda x: layer_norm(x, (3, 4)), [x])


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"does not end with normalized_shape \(5,\)"):
        layer_norm(minidl.randn(2, 4), 5)
    with pytest.raises(ValueError, match=r"weight has shape \(3,\), expected normalized_shape \(4,\)"):
        layer_norm(minidl.randn(2, 4), 4, minidl.ones(3))


def test_exported_from_functional():
    assert F.batch_norm is batch_norm and F.layer_norm is layer_norm


def test_batch_norm_and_layer_norm_on_each_device(device):
    rng = np.random.default_rng(30)
    xs, ws = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(3)
    x = minidl.tensor(xs, requires_grad=True, device=device)
    w = minidl.tensor(ws, requires_grad=True, device=device)
    rm, rv = minidl.zeros(3, dtype="float64", device=device), minidl.ones(3, dtype="float64", device=device)
    y = batch_norm(x, rm, rv, w, None, training=True)
    assert y.device.type == device
    y.sum().backward()
    xc, wc = minidl.tensor(xs, requires_grad=True), minidl.tensor(ws, requires_grad=True)
    rmc, rvc = minidl.zeros(3, dtype="float64"), minidl.ones(3, dtype="float64")
    yc = batch_norm(xc, rmc, rvc, wc, None, training=True)
    yc.sum().backward()
    np.testing.assert_allclose(y.numpy(), yc.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), xc.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(rv.numpy(), rvc.numpy(), rtol=1e-12)
    z = layer_norm(x, (2, 2))
    np.testing.assert_allclose(z.numpy(), layer_norm(xc, (2, 2)).numpy(), rtol=1e-10, atol=1e-12)
