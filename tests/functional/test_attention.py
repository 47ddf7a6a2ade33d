"""F.scaled_dot_product_attention: the formula, PyTorch parity with every mask kind,
gradient checks (first and second order), and clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for attention")


def qkv(rng, batch=(2, 3), L=4, S=5, E=6, Ev=7):
    return (rng.standard_normal(batch + (L, E)), rng.standard_normal(batch + (S, E)),
            rng.standard_normal(batch + (S, Ev)))


def numpy_attention(q, k, v, additive=None, scale=None):
    """The textbook formula, written independently in NumPy."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if additive is not None:
        s = s + additive
    s = s - s.max(axis=-1, keepdims=True)
    w = np.exp(s)
    w /= w.sum(axis=-1, keepdims=True)
    return w @ v


def test_matches_the_numpy_formula(rng):
    q, k, v = qkv(rng)
    out = F.scaled_dot_product_attention(minidl.tensor(q), minidl.tensor(k), minidl.tensor(v))
    assert out.shape == (2, 3, 4, 7)
    np.testing.assert_allclose(out.numpy(), numpy_attention(q, k, v), rtol=1e-12, atol=1e-12)
    out = F.scaled_dot_product_attention(minidl.tensor(q), minidl.tensor(k), minidl.tensor(v), scale=0.3)
    np.testing.assert_allclose(out.numpy(), numpy_attention(q, k, v, scale=0.3), rtol=1e-12, atol=1e-12)


def _masks(rng, L=4, S=5):
    keep = rng.random((L, S)) > 0.4
    keep[:, 0] = True
    return {
        "none": {},
        "causal": {"is_causal": True},
        "bool_mask": {"attn_mask": keep},
        "bool_mask_batched": {"attn_mask": rng.random((2, 1, L, S)) > 0.3},
        "float_mask": {"attn_mask": rng.standard_normal((L, S))},
    }


@pytest.mark.parametrize("case", ["none", "causal", "bool_mask", "bool_mask_batched", "float_mask"])
def test_forward_and_backward_match_torch(case, rng):
    q, k, v = qkv(rng)
    kwargs = _masks(rng)[case]
    ours = [minidl.tensor(a, requires_grad=True) for a in (q, k, v)]
    ref = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    out = F.scaled_dot_product_attention(*ours, **kwargs)
    tkw = {key: (torch.tensor(val) if isinstance(val, np.ndarray) else val) for key, val in kwargs.items()}
    expected = torch.nn.functional.scaled_dot_product_attention(*ref, **tkw)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(out.shape)
    out.backward(minidl.tensor(g))
    expected.backward(torch.tensor(g))
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_causal_mask_hides_the_future(rng):
    q, k, v = qkv(rng, batch=(1,), L=5, S=5)
    vt = minidl.tensor(v, requires_grad=True)
    out = F.scaled_dot_product_attention(minidl.tensor(q), minidl.tensor(k), vt, is_causal=True)
    out[0, 0].sum().backward()  # the first query may only see the first key
    grad = vt.grad.numpy()[0]
    assert np.abs(grad[0]).sum() > 0
    np.testing.assert_array_equal(grad[1:], 0.0)
    np.testing.assert_allclose(out.numpy()[0, 0], v[0, 0], rtol=1e-12)


def test_fully_masked_query_gets_zeros_like_torch(rng):
    q, k, v = qkv(rng, batch=(1,), L=3, S=4)
    keep = np.ones((3, 4), dtype=bool)
    keep[1] = False
    qt = minidl.tensor(q, requires_grad=True)
    out = F.scaled_dot_product_attention(qt, minidl.tensor(k), minidl.tensor(v), attn_mask=keep)
    expected = torch.nn.functional.scaled_dot_product_attention(
        torch.tensor(q), torch.tensor(k), torch.tensor(v), attn_mask=torch.tensor(keep))
    np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out.numpy()[0, 1], 0.0)
    out.sum().backward()
    assert np.all(np.isfinite(qt.grad.numpy()))


def test_gradcheck_and_gradgradcheck_with_a_float_mask(rng):
    q, k, v = qkv(rng, batch=(2,), L=3, S=4, E=2, Ev=3)
    m = rng.standard_normal((3, 4))
    ts = [minidl.tensor(a, requires_grad=True) for a in (q, k, v, m)]

    def f(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    assert minidl.gradcheck(f, ts)
    assert minidl.gradgradcheck(f, ts[:3] + [minidl.tensor(m)])


def test_gradcheck_with_a_causal_mask(rng):
    q, k, v = qkv(rng, batch=(1,), L=4, S=4, E=2, Ev=2)
    ts = [minidl.tensor(a, requires_grad=True) for a in (q, k, v)]
    assert minidl.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), ts)


def test_dropout_keeps_the_expected_output(rng):
    q, k, v = qkv(rng, batch=(1,), L=2, S=3, E=2, Ev=2)
    args = [minidl.tensor(a) for a in (q, k, v)]
    plain = F.scaled_dot_product_attention(*args).numpy()
    runs = np.mean([F.scaled_dot_product_attention(*args, dropout_p=0.5).numpy() for _ in range(4000)], axis=0)
    np.testing.assert_allclose(runs, plain, atol=0.06)
    assert not np.allclose(F.scaled_dot_product_attention(*args, dropout_p=0.5).numpy(), plain)


def test_bad_shapes_are_clear_errors(rng):
    q, k, v = [minidl.tensor(a) for a in qkv(rng)]
    with pytest.raises(ValueError, match="query .* and key .* must share the last"):
        F.scaled_dot_product_attention(q, minidl.zeros((2, 3, 5, 4)), v)
    with pytest.raises(ValueError, match="key .* and value .* must have the same length"):
        F.scaled_dot_product_attention(q, k, minidl.zeros((2, 3, 6, 7)))
    with pytest.raises(ValueError, match=r"mask of shape \(3, 3\) does not broadcast"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), dtype=bool), is_causal=True)
    with pytest.raises(TypeError, match="boolean or floating"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 5), dtype=np.int64))
    with pytest.raises(ValueError, match="dropout_p"):
        F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)
