"""nn.MultiheadAttention: parameters and init as PyTorch's, forward/backward parity with
every mask kind (after copying weights, float64), gradient checks, errors."""
import numpy as np
import pytest

import minidl
from minidl import nn

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for attention")

E, H, L, S, N = 6, 2, 4, 5, 3


def make_pair(*args, **kwargs):
    ref = torch.nn.MultiheadAttention(*args, **kwargs).double()
    ours = nn.MultiheadAttention(*args, **kwargs).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def functional_call(module, tensors: dict, fn):
    """Run ``fn()`` with some of ``module``'s parameters replaced by the given Tensors."""
    saved = []
    try:
        for name, t in tensors.items():
            owner_path, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_path) if owner_path else module
            saved.append((owner, leaf, owner._parameters[leaf]))
            owner._parameters[leaf] = t
        return fn()
    finally:
        for owner, leaf, p in saved:
            owner._parameters[leaf] = p


def masks(rng, kind: str) -> dict:
    blocked = rng.random((L, S)) < 0.3
    blocked[:, 0] = False
    padding = rng.random((N, S)) < 0.3
    padding[:, 1] = False
    causal = np.triu(np.ones((L, S), dtype=bool), k=1)
    return {
        "none": {},
        "bool_attn_mask": {"attn_mask": blocked},
        "causal_attn_mask": {"attn_mask": causal},
        "float_attn_mask": {"attn_mask": rng.standard_normal((L, S))},
        "per_head_attn_mask": {"attn_mask": rng.standard_normal((N * H, L, S))},
        "key_padding_mask": {"key_padding_mask": padding},
        "float_key_padding_mask": {"key_padding_mask": rng.standard_normal((N, S))},
        "both_bool": {"attn_mask": blocked, "key_padding_mask": padding},
    }[kind]


MASK_KINDS = ["none", "bool_attn_mask", "causal_attn_mask", "float_attn_mask", "per_head_attn_mask",
              "key_padding_mask", "float_key_padding_mask", "both_bool"]


def run_both(ours, ref, rng, batch_first=False, need_weights=True, average=True, self_attention=False, **kwargs):
    def shape(T):
        return (N, T, E) if batch_first else (T, N, E)

    arrays = [rng.standard_normal(shape(L))] * 3 if self_attention else \
        [rng.standard_normal(shape(L)), rng.standard_normal(shape(S)), rng.standard_normal(shape(S))]
    mine = [minidl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    tkw = {k: torch.tensor(v) for k, v in kwargs.items()}
    out, w = ours(*mine, need_weights=need_weights, average_attn_weights=average, **kwargs)
    rout, rw = ref(*theirs, need_weights=need_weights, average_attn_weights=average, **tkw)
    np.testing.assert_allclose(out.numpy(), rout.detach().numpy(), rtol=1e-10, atol=1e-12)
    if need_weights:
        assert w.shape == tuple(rw.shape)
        np.testing.assert_allclose(w.numpy(), rw.detach().numpy(), rtol=1e-10, atol=1e-12)
    else:
        assert w is None and rw is None
    g = rng.standard_normal(out.shape)
    loss = (out * minidl.tensor(g)).sum()
    rloss = (rout * torch.tensor(g)).sum()
    if need_weights:
        gw = rng.standard_normal(w.shape)
        loss = loss + (w * minidl.tensor(gw)).sum()
        rloss = rloss + (rw * torch.tensor(gw)).sum()
    loss.backward()
    rloss.backward()
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (name, p), (_, rp) in zip(ours.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), rp.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_match_torch(kind, rng):
    ours, ref = make_pair(E, H)
    run_both(ours, ref, rng, **masks(rng, kind))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("average", [True, False])
def test_layouts_and_per_head_weights_match_torch(batch_first, average, rng):
    ours, ref = make_pair(E, H, batch_first=batch_first)
    run_both(ours, ref, rng, batch_first=batch_first, average=average, **masks(rng, "both_bool"))


def test_self_attention_without_bias_and_without_weights_matches_torch(rng):
    ours, ref = make_pair(E, 3, bias=False)
    assert ours.in_proj_bias is None and ours.out_proj.bias is None
    run_both(ours, ref, rng, need_weights=False, self_attention=True)


def test_eval_mode_with_dropout_matches_torch(rng):
    ours, ref = make_pair(E, H, dropout=0.5)
    ours.eval()
    ref.eval()
    run_both(ours, ref, rng, **masks(rng, "key_padding_mask"))


def test_unbatched_input_matches_torch(rng):
    ours, ref = make_pair(E, H)
    q, k = rng.standard_normal((L, E)), rng.standard_normal((S, E))
    pad = np.zeros(S, dtype=bool)
    pad[-1] = True
    out, w = ours(minidl.tensor(q), minidl.tensor(k), minidl.tensor(k), key_padding_mask=pad)
    rout, rw = ref(torch.tensor(q), torch.tensor(k), torch.tensor(k), key_padding_mask=torch.tensor(pad))
    assert out.shape == (L, E) and w.shape == (L, S)
    np.testing.assert_allclose(out.numpy(), rout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), rw.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_is_causal_builds_the_causal_mask(rng):
    layer = nn.MultiheadAttention(E, H).double()
    x = minidl.tensor(rng.standard_normal((L, N, E)))
    causal = np.triu(np.ones((L, L), dtype=bool), k=1)
    a, wa = layer(x, x, x, is_causal=True)
    b, wb = layer(x, x, x, attn_mask=causal)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(np.triu(wa.numpy()[0], k=1), 0.0)


def test_padding_key_gets_no_weight_and_no_gradient(rng):
    layer = nn.MultiheadAttention(E, H, batch_first=True).double()
    q = minidl.tensor(rng.standard_normal((N, L, E)))
    k = minidl.tensor(rng.standard_normal((N, S, E)), requires_grad=True)
    pad = np.zeros((N, S), dtype=bool)
    pad[:, -2:] = True
    out, w = layer(q, k, k, key_padding_mask=pad)
    np.testing.assert_array_equal(w.numpy()[:, :, -2:], 0.0)
    np.testing.assert_allclose(w.numpy().sum(axis=-1), 1.0, rtol=1e-12)
    out.sum().backward()
    np.testing.assert_array_equal(k.grad.numpy()[:, -2:], 0.0)


def test_gradcheck_inputs_and_parameters(rng):
    layer = nn.MultiheadAttention(4, 2, batch_first=True).double()
    q = minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    kv = minidl.tensor(rng.standard_normal((2, 2, 4)), requires_grad=True)
    names = ["in_proj_weight", "in_proj_bias", "out_proj.weight"]
    params = [minidl.tensor(layer.get_parameter(n).numpy() + 0.1 * rng.standard_normal(layer.get_parameter(n).shape),
                            requires_grad=True) for n in names]
    pad = np.array([[False, False], [False, True]])

    def f(q, kv, *ps):
        return functional_call(layer, dict(zip(names, ps)), lambda: layer(q, kv, kv, key_padding_mask=pad))

    assert minidl.gradcheck(f, [q, kv, *params])


def test_a_float_mask_tensor_receives_a_gradient_like_torch(rng):
    ours, ref = make_pair(E, H, batch_first=True)
    x = rng.standard_normal((N, L, E))
    bias = rng.standard_normal((L, L))
    bm, bt = minidl.tensor(bias, requires_grad=True), torch.tensor(bias, requires_grad=True)
    ours(minidl.tensor(x), minidl.tensor(x), minidl.tensor(x), attn_mask=bm)[0].sum().backward()
    ref(torch.tensor(x), torch.tensor(x), torch.tensor(x), attn_mask=bt)[0].sum().backward()
    np.testing.assert_allclose(bm.grad.numpy(), bt.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_default_initialisation_matches_pytorch_rules():
    layer = nn.MultiheadAttention(64, 4)
    w = layer.in_proj_weight.numpy()
    bound = np.sqrt(6.0 / (64 + 3 * 64))  # Xavier-uniform over fan_in = 64, fan_out = 192
    assert w.shape == (192, 64) and np.abs(w).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound
    np.testing.assert_array_equal(layer.in_proj_bias.numpy(), 0.0)
    np.testing.assert_array_equal(layer.out_proj.bias.numpy(), 0.0)
    assert layer.out_proj.weight.shape == (64, 64)
    assert [n for n, _ in layer.named_parameters()] == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                                        "out_proj.bias"]


def test_dropout_acts_in_training_only(rng):
    layer = nn.MultiheadAttention(E, H, dropout=0.5)
    x = minidl.tensor(rng.standard_normal((L, N, E)).astype(np.float32))
    _, w1 = layer(x, x, x, average_attn_weights=False)
    assert np.any(w1.numpy() == 0.0)  # dropped weights
    layer.eval()
    _, w2 = layer(x, x, x)
    np.testing.assert_allclose(w2.numpy().sum(axis=-1), 1.0, rtol=1e-5)


def test_embed_dim_not_divisible_by_heads_is_a_clear_error():
    with pytest.raises(ValueError, match=r"embed_dim \(10\) must be divisible by num_heads \(3\)"):
        nn.MultiheadAttention(10, 3)


def test_bad_inputs_are_clear_errors(rng):
    layer = nn.MultiheadAttention(E, H)
    x = minidl.zeros((L, N, E))
    with pytest.raises(ValueError, match=r"expected key with embed_dim=6 features.*\(5, 3, 4\)"):
        layer(x, minidl.zeros((S, N, 4)), minidl.zeros((S, N, 4)))
    with pytest.raises(ValueError, match="different batch sizes"):
        layer(x, minidl.zeros((S, 2, E)), minidl.zeros((S, 2, E)))
    with pytest.raises(ValueError, match=r"attn_mask must have shape \(L, S\) = \(4, 5\)"):
        layer(x, minidl.zeros((S, N, E)), minidl.zeros((S, N, E)), attn_mask=np.zeros((5, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(N, S\) = \(3, 5\)"):
        layer(x, minidl.zeros((S, N, E)), minidl.zeros((S, N, E)), key_padding_mask=np.zeros((5, 3), dtype=bool))
    with pytest.raises(ValueError, match="must all be 3-d"):
        layer(x, minidl.zeros((S, E)), minidl.zeros((S, E)))


def test_runs_on_every_device_with_numpy_masks(device, rng):
    layer = nn.MultiheadAttention(E, H, batch_first=True).double()
    x = rng.standard_normal((N, L, E))
    pad = masks(rng, "key_padding_mask")["key_padding_mask"][:, :L]
    cpu_out, cpu_w = layer(minidl.tensor(x), minidl.tensor(x), minidl.tensor(x), key_padding_mask=pad, is_causal=True)
    layer.to(device)
    xd = minidl.tensor(x, requires_grad=True, device=device)
    out, w = layer(xd, xd, xd, key_padding_mask=pad, is_causal=True)
    assert out.device == minidl.Device(device)
    np.testing.assert_allclose(out.numpy(), cpu_out.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w.numpy(), cpu_w.numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert xd.grad.device == minidl.Device(device)
