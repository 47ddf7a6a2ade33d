"""TransformerEncoderLayer / TransformerEncoder: PyTorch parity after copying weights
(float64, post- and pre-norm, masks, train with dropout=0 and eval), gradient checks,
independent deep copies, dropout, errors."""
import numpy as np
import pytest

import minidl
from minidl import nn

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for the Transformer encoder")

D, HEADS, FF, N, S = 8, 2, 16, 3, 5


def make_pair(num_layers=None, final_norm=False, **kwargs):
    """The same layer (or encoder of ``num_layers``) in minidl and PyTorch, float64."""
    ref = torch.nn.TransformerEncoderLayer(D, HEADS, FF, **kwargs)
    ours = nn.TransformerEncoderLayer(D, HEADS, FF, **kwargs)
    if num_layers is not None:
        ref = torch.nn.TransformerEncoder(ref, num_layers, norm=torch.nn.LayerNorm(D) if final_norm else None,
                                          enable_nested_tensor=False)
        ours = nn.TransformerEncoder(ours, num_layers, norm=nn.LayerNorm(D) if final_norm else None)
    ref, ours = ref.double(), ours.double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    # perturb PyTorch's weights so that the zero biases and unit norms are not special
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def compare(ours, ref, x, rng, **masks):
    xm, xt = minidl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = ours(xm, **masks)
    rout = ref(xt, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in masks.items()})
    np.testing.assert_allclose(out.numpy(), rout.detach().numpy(), rtol=1e-9, atol=1e-11)
    g = rng.standard_normal(out.shape)
    out.backward(minidl.tensor(g))
    rout.backward(torch.tensor(g))
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    for (name, p), (_, rp) in zip(ours.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.grad.numpy(), rp.grad.numpy(), rtol=1e-8, atol=1e-10, err_msg=name)


def padding(rng):
    pad = rng.random((N, S)) < 0.3
    pad[:, 0] = False
    return pad


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_layer_matches_torch_in_training_mode(norm_first, activation, rng):
    ours, ref = make_pair(dropout=0.0, activation=activation, norm_first=norm_first)
    compare(ours, ref, rng.standard_normal((S, N, D)), rng, src_key_padding_mask=padding(rng))


def test_layer_matches_torch_in_eval_mode_with_dropout(rng):
    ours, ref = make_pair(dropout=0.3, batch_first=True)
    ours.eval()
    ref.eval()
    causal = np.triu(np.ones((S, S), dtype=bool), k=1)
    compare(ours, ref, rng.standard_normal((N, S, D)), rng, src_mask=causal, src_key_padding_mask=padding(rng))


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_encoder_stack_matches_torch(batch_first, norm_first, rng):
    ours, ref = make_pair(num_layers=2, final_norm=True, dropout=0.0, batch_first=batch_first,
                          norm_first=norm_first)
    x = rng.standard_normal((N, S, D) if batch_first else (S, N, D))
    pad = np.where(padding(rng), -np.inf, 0.0)  # floating, like the mask (PyTorch wants one kind)
    compare(ours, ref, x, rng, mask=rng.standard_normal((S, S)), src_key_padding_mask=pad)


def test_encoder_without_final_norm_and_without_bias_matches_torch(rng):
    ours, ref = make_pair(num_layers=3, dropout=0.0, bias=False)
    assert ours.layers[0].norm1.bias is None
    compare(ours, ref, rng.standard_normal((S, N, D)), rng)


def test_unbatched_input_matches_torch(rng):
    ours, ref = make_pair(dropout=0.0)
    x = rng.standard_normal((S, D))
    out = ours(minidl.tensor(x))
    assert out.shape == (S, D)
    np.testing.assert_allclose(out.numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-9, atol=1e-11)


def test_is_causal_equals_an_explicit_causal_mask(rng):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0), 2).double()
    x = minidl.tensor(rng.standard_normal((S, N, D)))
    causal = np.triu(np.ones((S, S), dtype=bool), k=1)
    np.testing.assert_array_equal(enc(x, is_causal=True).numpy(), enc(x, mask=causal).numpy())
    # position 0 cannot see the later positions: changing them leaves its output unchanged
    y = x.numpy().copy()
    y[1:] += 1.0
    np.testing.assert_allclose(enc(minidl.tensor(y), is_causal=True).numpy()[0], enc(x, is_causal=True).numpy()[0],
                               rtol=1e-12)


def test_gradcheck_input_and_a_parameter(rng):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True, activation="gelu").double()
    x = minidl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    w = minidl.tensor(layer.linear1.weight.numpy().copy(), requires_grad=True)
    pad = np.array([[False, False, True], [False, False, False]])

    def f(x, w):
        saved = layer.linear1._parameters["weight"]
        layer.linear1._parameters["weight"] = w
        try:
            return layer(x, src_key_padding_mask=pad)
        finally:
            layer.linear1._parameters["weight"] = saved

    assert minidl.gradcheck(f, [x, w])


def test_encoder_layers_are_independent_deep_copies():
    layer = nn.TransformerEncoderLayer(D, HEADS, FF)
    enc = nn.TransformerEncoder(layer, 3)
    w0 = enc.layers[0].linear1.weight
    w1 = enc.layers[1].linear1.weight
    assert w0 is not w1 and w0 is not layer.linear1.weight
    np.testing.assert_array_equal(w0.numpy(), w1.numpy())
    w0.data[...] = 0.0
    assert np.abs(w1.numpy()).sum() > 0 and np.abs(layer.linear1.weight.numpy()).sum() > 0
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))
    assert [n for n, _ in enc.named_parameters()][:2] == ["layers.0.self_attn.in_proj_weight",
                                                         "layers.0.self_attn.in_proj_bias"]


def test_dropout_is_active_in_training_only(rng):
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.5)
    x = minidl.tensor(rng.standard_normal((S, N, D)).astype(np.float32))
    assert not np.allclose(layer(x).numpy(), layer(x).numpy())
    layer.eval()
    np.testing.assert_array_equal(layer(x).numpy(), layer(x).numpy())


def test_a_callable_activation_is_used(rng):
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=nn.Tanh()).double()
    ref = torch.nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, activation=torch.nn.Tanh()).double()
    layer.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = rng.standard_normal((S, N, D))
    np.testing.assert_allclose(layer(minidl.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                               rtol=1e-9, atol=1e-11)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        nn.TransformerEncoderLayer(D, HEADS, activation="swish")
    with pytest.raises(ValueError, match=r"embed_dim \(8\) must be divisible by num_heads \(3\)"):
        nn.TransformerEncoderLayer(D, 3)
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, FF), 0)
    layer = nn.TransformerEncoderLayer(D, HEADS, FF)
    with pytest.raises(ValueError, match=r"expected src of shape \(S, N, d_model\).*d_model=8, got \(5, 3, 7\)"):
        layer(minidl.zeros((S, N, 7)))


def test_encoder_runs_on_every_device_like_on_cpu(device, rng):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0), 2).double()
    x = rng.standard_normal((S, N, D))
    pad = padding(rng)
    cpu_out = enc(minidl.tensor(x), src_key_padding_mask=pad).numpy()
    enc.to(device)
    xd = minidl.tensor(x, requires_grad=True, device=device)
    out = enc(xd, src_key_padding_mask=pad)
    np.testing.assert_allclose(out.numpy(), cpu_out, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert xd.grad.device == minidl.Device(device)
    copied = nn.TransformerEncoder(enc.layers[0], 2)  # deep copies stay on the layer's device
    assert all(p.device == minidl.Device(device) for p in copied.parameters())


@pytest.mark.slow
def test_encoder_learns_whether_a_token_occurs():
    """Label = does token 0 occur anywhere in a 6-token sequence (needs attention across positions)."""
    from minidl import optim
    import minidl.functional as F

    rng = np.random.default_rng(2)
    emb = nn.Embedding(5, 16)
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True), 1)
    head = nn.Linear(16, 1)
    opt = optim.Adam(list(emb.parameters()) + list(enc.parameters()) + list(head.parameters()), lr=0.01)

    def batch(n):
        tokens = rng.integers(1, 5, size=(n, 6))
        has = rng.random(n) < 0.5
        tokens[has, rng.integers(0, 6, size=int(has.sum()))] = 0
        return tokens, has.astype(np.float32)

    def logits(tokens):
        return head(enc(emb(minidl.tensor(tokens))).mean(axis=1)).reshape(-1)

    for _ in range(80):
        tokens, y = batch(64)
        loss = F.binary_cross_entropy_with_logits(logits(tokens), minidl.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    enc.eval()
    tokens, y = batch(500)
    with minidl.no_grad():
        pred = logits(tokens).numpy() > 0
    assert (pred == (y > 0)).mean() > 0.9  # chance is 0.5
