"""RNN / LSTM / GRU and their cells: parity with PyTorch after copying weights (float64),
finite-difference gradient checks on inputs and parameters, shapes and errors."""
import math

import numpy as np
import pytest

import minidl
from minidl import nn

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for recurrent layers")

LAYERS = ["RNN", "RNN_relu", "LSTM", "GRU"]
CELLS = ["RNNCell", "RNNCell_relu", "LSTMCell", "GRUCell"]


def make_pair(kind: str, *args, **kwargs):
    """The same layer in minidl and PyTorch, float64, with PyTorch's weights copied in."""
    name = kind.split("_")[0]
    if kind.endswith("_relu"):
        kwargs["nonlinearity"] = "relu"
    ref = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(nn, name)(*args, **kwargs).double()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def flat(out):
    """Outputs as a flat list: (output, h_n) or (output, (h_n, c_n)) or (h, c) or h."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def backprop_both(ours_outs, ref_outs, rng):
    """Backpropagate the same random upstream gradients through both sets of outputs."""
    gs = [rng.standard_normal(tuple(o.shape)) for o in ref_outs]
    sum(((o * torch.tensor(g)).sum() for o, g in zip(ref_outs, gs)), torch.zeros((), dtype=torch.float64)).backward()
    total = None
    for o, g in zip(ours_outs, gs):
        term = (o * minidl.tensor(g)).sum()
        total = term if total is None else total + term
    total.backward()


def assert_grads_match(ours, ref, pairs_of_inputs):
    for (name, p), (rname, rp) in zip(ours.named_parameters(), ref.named_parameters()):
        assert name == rname
        np.testing.assert_allclose(p.grad.numpy(), rp.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    for a, b in pairs_of_inputs:
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)


def functional_call(module, tensors: dict, fn):
    """Run ``fn()`` with some of ``module``'s parameters replaced by the given Tensors."""
    saved = {}
    try:
        for name, t in tensors.items():
            owner_path, _, leaf = name.rpartition(".")
            owner = module.get_submodule(owner_path) if owner_path else module
            saved[name] = (owner, leaf, owner._parameters[leaf])
            owner._parameters[leaf] = t
        return fn()
    finally:
        for owner, leaf, p in saved.values():
            owner._parameters[leaf] = p


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(num_layers=2),
        dict(batch_first=True),
        dict(bidirectional=True),
        dict(num_layers=2, bidirectional=True, batch_first=True),
        dict(bias=False),
    ],
    ids=["default", "two_layers", "batch_first", "bidirectional", "deep_bidir_batch_first", "no_bias"],
)
def test_layer_matches_torch_forward_and_backward(kind, options, rng):
    ours, ref = make_pair(kind, 3, 4, **options)
    shape = (2, 5, 3) if options.get("batch_first") else (5, 2, 3)
    x = rng.standard_normal(shape)
    xt = torch.tensor(x, requires_grad=True)
    xm = minidl.tensor(x, requires_grad=True)
    ref_outs, our_outs = flat(ref(xt)), flat(ours(xm))
    assert [tuple(o.shape) for o in our_outs] == [tuple(o.shape) for o in ref_outs]
    for a, b in zip(our_outs, ref_outs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    backprop_both(our_outs, ref_outs, rng)
    assert_grads_match(ours, ref, [(xm, xt)])


@pytest.mark.parametrize("kind", LAYERS)
def test_layer_with_initial_state_matches_torch_in_eval(kind, rng):
    ours, ref = make_pair(kind, 3, 4, num_layers=2, bidirectional=True)
    ours.eval()
    ref.eval()
    x = rng.standard_normal((4, 2, 3))
    states = [rng.standard_normal((4, 2, 4)) for _ in range(2 if kind == "LSTM" else 1)]
    xt, xm = torch.tensor(x, requires_grad=True), minidl.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    sm = [minidl.tensor(s, requires_grad=True) for s in states]
    ref_outs = flat(ref(xt, tuple(st) if kind == "LSTM" else st[0]))
    our_outs = flat(ours(xm, tuple(sm) if kind == "LSTM" else sm[0]))
    for a, b in zip(our_outs, ref_outs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    backprop_both(our_outs, ref_outs, rng)
    assert_grads_match(ours, ref, [(xm, xt)] + list(zip(sm, st)))


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_matches_torch(kind, rng):
    ours, ref = make_pair(kind, 3, 4, num_layers=2)
    x = rng.standard_normal((5, 3))
    for a, b in zip(flat(ours(minidl.tensor(x))), flat(ref(torch.tensor(x)))):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("bias", [True, False])
def test_cell_matches_torch(kind, bias, rng):
    ours, ref = make_pair(kind, 3, 4, bias=bias)
    x = rng.standard_normal((2, 3))
    n_states = 2 if kind == "LSTMCell" else 1
    states = [rng.standard_normal((2, 4)) for _ in range(n_states)]
    xt, xm = torch.tensor(x, requires_grad=True), minidl.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    sm = [minidl.tensor(s, requires_grad=True) for s in states]
    ref_outs = flat(ref(xt, tuple(st) if n_states == 2 else st[0]))
    our_outs = flat(ours(xm, tuple(sm) if n_states == 2 else sm[0]))
    for a, b in zip(our_outs, ref_outs):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    backprop_both(our_outs, ref_outs, rng)
    assert_grads_match(ours, ref, [(xm, xt)] + list(zip(sm, st)))
    # unbatched input and the default zero state
    for a, b in zip(flat(ours(minidl.tensor(x[0]))), flat(ref(torch.tensor(x[0])))):
        assert tuple(a.shape) == tuple(b.shape)
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_gradcheck_input_state_and_parameters(kind, rng):
    layer = getattr(nn, kind)(2, 2, num_layers=2, bidirectional=True).double()
    x = minidl.tensor(rng.standard_normal((3, 1, 2)), requires_grad=True)
    h0 = minidl.tensor(rng.standard_normal((4, 1, 2)), requires_grad=True)
    names = ["weight_ih_l0", "weight_hh_l1_reverse", "bias_hh_l0", "bias_ih_l1"]
    params = [minidl.tensor(layer.get_parameter(n).numpy().copy(), requires_grad=True) for n in names]

    def f(x, h0, *ps):
        hx = (h0, h0 * 0.5) if kind == "LSTM" else h0
        return functional_call(layer, dict(zip(names, ps)), lambda: flat(layer(x, hx)))

    assert minidl.gradcheck(lambda *a: tuple(f(*a)), [x, h0, *params])


@pytest.mark.parametrize("kind", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cell_gradcheck_and_gradgradcheck(kind, rng):
    cell = getattr(nn, kind)(2, 3).double()
    x = minidl.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    w = minidl.tensor(cell.weight_hh.numpy().copy(), requires_grad=True)
    h = minidl.tensor(rng.standard_normal((2, 3)), requires_grad=True)

    def f(x, h, w):
        hx = (h, h * 0.3) if kind == "LSTMCell" else h
        out = functional_call(cell, {"weight_hh": w}, lambda: cell(x, hx))
        return tuple(flat(out))

    assert minidl.gradcheck(f, [x, h, w])
    assert minidl.gradgradcheck(f, [x, h, w])


def test_parameter_names_shapes_and_default_init():
    lstm = nn.LSTM(5, 8, num_layers=2, bidirectional=True)
    shapes = {name: p.shape for name, p in lstm.named_parameters()}
    assert shapes["weight_ih_l0"] == (32, 5)
    assert shapes["weight_hh_l0_reverse"] == (32, 8)
    assert shapes["weight_ih_l1"] == (32, 16)
    assert shapes["bias_hh_l1_reverse"] == (32,)
    assert len(shapes) == 16
    gru = nn.GRU(4, 6, bias=False)
    assert [n for n, _ in gru.named_parameters()] == ["weight_ih_l0", "weight_hh_l0"]
    assert gru.weight_ih_l0.shape == (18, 4)
    big = nn.RNN(10, 100)
    bound = 1 / math.sqrt(100)
    w = big.weight_hh_l0.numpy()
    assert np.abs(w).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3); 10,000 draws pin it to about 1 %
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
    assert big.weight_hh_l0.dtype == np.float32


def test_same_seed_gives_same_weights():
    minidl.manual_seed(3)
    a = nn.GRU(3, 4).state_dict()
    minidl.manual_seed(3)
    b = nn.GRU(3, 4).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_state_dict_round_trip_gives_identical_outputs(rng):
    a, b = nn.LSTM(3, 4, num_layers=2), nn.LSTM(3, 4, num_layers=2)
    b.load_state_dict(a.state_dict())
    x = minidl.tensor(rng.standard_normal((4, 2, 3)).astype(np.float32))
    np.testing.assert_array_equal(a(x)[0].numpy(), b(x)[0].numpy())


def test_float32_forward_keeps_float32(rng):
    out, h = nn.GRU(3, 4, batch_first=True)(minidl.tensor(rng.standard_normal((2, 5, 3)).astype(np.float32)))
    assert out.dtype == np.float32 and out.shape == (2, 5, 4) and h.shape == (1, 2, 4)


def test_wrong_input_feature_size_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LSTM: expected input with 3 features.*\(5, 2, 4\)"):
        nn.LSTM(3, 4)(minidl.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match="non-empty sequence"):
        nn.RNN(3, 4, batch_first=True)(minidl.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match="3-d input"):
        nn.GRU(3, 4)(minidl.zeros((5,)))
    with pytest.raises(ValueError, match=r"GRUCell: expected input of shape \(N, 3\)"):
        nn.GRUCell(3, 4)(minidl.zeros((2, 5)))


def test_wrong_initial_state_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"RNN: expected h_0 of shape \(2, 3, 4\)"):
        nn.RNN(2, 4, num_layers=2)(minidl.zeros((5, 3, 2)), minidl.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match="c_0"):
        nn.LSTM(2, 4)(minidl.zeros((5, 3, 2)), (minidl.zeros((1, 3, 4)), minidl.zeros((1, 3, 5))))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        nn.LSTM(2, 4)(minidl.zeros((5, 3, 2)), minidl.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match=r"LSTMCell: expected c of shape \(3, 4\)"):
        nn.LSTMCell(2, 4)(minidl.zeros((3, 2)), (minidl.zeros((3, 4)), minidl.zeros((4,))))


def test_bad_constructor_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        nn.GRU(2, 0)
    with pytest.raises(ValueError, match="dropout must be a probability"):
        nn.LSTM(2, 3, dropout=1.5)


def test_repr_names_the_options():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True)) == "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity='relu')"


def test_graph_of_a_long_sequence_backpropagates_to_the_first_step(rng):
    layer = nn.RNN(1, 2).double()
    x = minidl.tensor(rng.standard_normal((200, 1, 1)), requires_grad=True)
    out, _ = layer(x)
    out[-1].sum().backward()
    assert x.grad.shape == (200, 1, 1)
    assert np.all(np.isfinite(x.grad.numpy()))
    assert np.abs(x.grad.numpy()[0]).max() < np.abs(x.grad.numpy()[-1]).max()


def test_dropout_between_layers_acts_in_training_only(rng):
    ours, ref = make_pair("LSTM", 3, 4, num_layers=2, dropout=0.5)
    x = rng.standard_normal((4, 2, 3))
    a, b = ours(minidl.tensor(x))[0].numpy(), ours(minidl.tensor(x))[0].numpy()
    assert not np.allclose(a, b)
    ours.eval()
    ref.eval()
    np.testing.assert_allclose(ours(minidl.tensor(x))[0].numpy(), ref(torch.tensor(x))[0].detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    one_layer = nn.GRU(3, 4, dropout=0.5)  # nothing follows the last layer, so no dropout at all
    xt = minidl.tensor(x)
    np.testing.assert_array_equal(one_layer(xt)[0].numpy(), one_layer(xt)[0].numpy())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_runs_on_every_device_like_on_cpu(kind, device, rng):
    layer = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True).double()
    x = rng.standard_normal((2, 5, 3))
    cpu_out = layer(minidl.tensor(x))[0].numpy()
    layer.to(device)
    xd = minidl.tensor(x, requires_grad=True, device=device)
    out = layer(xd)[0]
    assert out.device == minidl.Device(device)
    out.sum().backward()
    np.testing.assert_allclose(out.numpy(), cpu_out, rtol=1e-10, atol=1e-12)
    assert xd.grad.device == minidl.Device(device)


@pytest.mark.slow
def test_lstm_learns_to_carry_the_first_element_to_the_end():
    """Label = sign of the first of 5 random numbers, read from the last hidden state only."""
    from minidl import optim
    import minidl.functional as F

    rng = np.random.default_rng(1)
    lstm, head = nn.LSTM(1, 16, batch_first=True), nn.Linear(16, 1)
    opt = optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.05)

    def batch(n):
        x = rng.standard_normal((n, 5, 1)).astype(np.float32)
        return x, (x[:, 0, 0] > 0).astype(np.float32)

    for _ in range(150):
        x, y = batch(64)
        logits = head(lstm(minidl.tensor(x))[0][:, -1]).reshape(-1)
        loss = F.binary_cross_entropy_with_logits(logits, minidl.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = batch(500)
    with minidl.no_grad():
        pred = head(lstm(minidl.tensor(x))[0][:, -1]).reshape(-1).numpy() > 0
    assert (pred == (y > 0)).mean() > 0.9  # chance is 0.5
