"""Module: registration order, traversal, state dicts (round trip and errors), modes,
hooks, devices and repr."""
import numpy as np
import pytest

import minidl
from minidl import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.scale = nn.Parameter(np.ones(4))
        self.register_buffer("count", minidl.zeros(1))
        self.bn = nn.BatchNorm1d(4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc2(self.bn(self.fc1(x) * self.scale).relu())


def test_parameters_follow_registration_order_own_first_then_children():
    m = Block()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "bn.weight", "bn.bias", "fc2.weight", "fc2.bias"]
    assert [id(p) for p in m.parameters()] == [id(p) for _, p in m.named_parameters()]


def test_state_dict_keys_and_order_match_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is the reference for state-dict keys")

    class TBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(3, 4)
            self.scale = torch.nn.Parameter(torch.ones(4))
            self.register_buffer("count", torch.zeros(1))
            self.bn = torch.nn.BatchNorm1d(4)
            self.fc2 = torch.nn.Linear(4, 2)

    assert list(Block().state_dict()) == list(TBlock().state_dict())
    tsd = TBlock().state_dict()
    for k, v in Block().state_dict().items():
        assert tuple(v.shape) == tuple(tsd[k].shape), k


def test_modules_children_and_buffers():
    m = Block()
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "bn", "fc2"]
    assert list(m.children()) == [m.fc1, m.bn, m.fc2]
    assert [n for n, _ in m.named_buffers()] == ["count", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert len(list(m.buffers())) == 4
    assert m.get_submodule("bn") is m.bn and m.get_submodule("") is m
    assert m.get_parameter("fc2.bias") is m.fc2.bias
    with pytest.raises(AttributeError, match="no sub-module 'nope'"):
        m.get_submodule("fc1.nope")


def test_shared_parameter_is_listed_once():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight
    assert len(list(m.parameters())) == 3
    assert "1.weight" in m.state_dict()


def test_state_dict_round_trip_gives_identical_outputs():
    minidl.manual_seed(1)
    a = Block()
    a.train()
    a(minidl.randn(8, 3))  # moves the running statistics
    a.eval()
    minidl.manual_seed(2)
    b = Block().eval()
    x = minidl.randn(5, 3)
    assert not np.array_equal(a(x).numpy(), b(x).numpy())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert int(b.bn.num_batches_tracked.item()) == 1


def test_state_dict_returns_copies():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    assert isinstance(sd["weight"], np.ndarray)
    sd["weight"][...] = 123.0
    assert not np.any(m.weight.numpy() == 123.0)


def test_load_state_dict_keeps_parameter_objects():
    m = nn.Linear(2, 3)
    w = m.weight
    m.load_state_dict({"weight": np.zeros((3, 2)), "bias": minidl.tensor(np.ones(3))})
    assert m.weight is w and np.all(w.numpy() == 0) and np.all(m.bias.numpy() == 1)
    assert w.dtype == np.float32


def test_load_state_dict_missing_keys_error_names_them():
    m = Block()
    sd = m.state_dict()
    del sd["fc2.bias"], sd["bn.running_var"]
    with pytest.raises(KeyError, match=r"missing keys 'bn.running_var', 'fc2.bias'"):
        m.load_state_dict(sd)


def test_load_state_dict_unexpected_keys_error_names_them():
    m = nn.Linear(2, 2)
    sd = m.state_dict()
    sd["extra.weight"] = np.zeros(2)
    with pytest.raises(KeyError, match=r"unexpected keys 'extra.weight'"):
        m.load_state_dict(sd)


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    m = nn.Linear(2, 3)
    sd = m.state_dict()
    sd["weight"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"'weight': expected shape \(3, 2\), got \(3, 4\)"):
        m.load_state_dict(sd)
    with pytest.raises(ValueError, match="shape mismatch"):
        m.load_state_dict(sd, strict=False)


def test_load_state_dict_non_strict_reports_keys():
    m = nn.Linear(2, 2)
    result = m.load_state_dict({"weight": np.ones((2, 2)), "other": np.ones(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    assert np.all(m.weight.numpy() == 1)


def test_non_persistent_buffer_is_not_saved():
    m = nn.Module()
    m.register_buffer("a", minidl.zeros(2))
    m.register_buffer("b", minidl.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["a"]
    assert [n for n, _ in m.named_buffers()] == ["a", "b"]


def test_train_eval_propagate_to_all_modules():
    m = Block()
    m.eval()
    assert all(not mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    with pytest.raises(ValueError, match="bool"):
        m.train("yes")


def test_zero_grad_and_requires_grad_():
    m = Block()
    m(minidl.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    assert not m(minidl.randn(4, 3)).requires_grad


def test_assigning_a_plain_tensor_to_a_parameter_slot_is_an_error():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign a Tensor to parameter 'weight'"):
        m.weight = minidl.zeros(2, 2)
    m.bias = None
    assert [n for n, _ in m.named_parameters()] == ["weight"]


def test_assigning_before_super_init_is_a_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Bad()


def test_delattr_and_reassignment_move_between_tables():
    m = nn.Module()
    m.a = nn.Parameter(np.zeros(1))
    m.a = nn.Linear(1, 1)
    assert "a" not in m._parameters and "a" in m._modules
    del m.a
    assert not hasattr(m, "a")


def test_forward_hook_sees_output_and_can_replace_it_and_be_removed():
    m = nn.Linear(2, 2)
    seen = []
    h = m.register_forward_hook(lambda mod, inputs, out: seen.append((mod, inputs[0].shape, out.shape)))
    m(minidl.randn(3, 2))
    assert seen == [(m, (3, 2), (3, 2))]
    h.remove()
    m(minidl.randn(3, 2))
    assert len(seen) == 1
    h2 = m.register_forward_hook(lambda mod, inputs, out: out * 0.0)
    assert np.all(m(minidl.randn(3, 2)).numpy() == 0)
    h2.remove()


def test_forward_pre_hook_can_replace_inputs():
    m = nn.Identity()
    h = m.register_forward_pre_hook(lambda mod, inputs: (inputs[0] + 1.0,))
    np.testing.assert_array_equal(m(minidl.zeros(2)).numpy(), [1.0, 1.0])
    h.remove()
    np.testing.assert_array_equal(m(minidl.zeros(2)).numpy(), [0.0, 0.0])


def test_apply_visits_children_first_then_self():
    m = Block()
    order = []
    assert m.apply(lambda mod: order.append(type(mod).__name__)) is m
    assert order == ["Linear", "BatchNorm1d", "Linear", "Block"]


def test_to_dtype_casts_floats_and_keeps_parameter_identity():
    m = Block()
    w = m.fc1.weight
    m.double()
    assert m.fc1.weight is w and w.dtype == np.float64
    assert m.bn.running_var.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64
    m.to(dtype=np.float32)
    assert w.dtype == np.float32


def test_to_cpu_is_a_no_op_copy_safe():
    m = nn.Linear(2, 2)
    before = m.weight.numpy().copy()
    assert m.to("cpu") is m
    np.testing.assert_array_equal(m.weight.numpy(), before)


@pytest.mark.gpu
def test_to_cuda_moves_parameters_and_buffers():
    if not minidl.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available on this machine")
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).to("cuda")
    assert all(p.device.type == "cuda" for p in m.parameters())
    assert all(b.device.type == "cuda" for b in m.buffers())
    y = m(minidl.randn(4, 3).to("cuda"))
    assert y.device.type == "cuda"
    sd = m.to("cpu").state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd.values())


def test_repr_is_nested_and_readable():
    m = Block()
    text = repr(m)
    assert text.splitlines()[0] == "Block("
    assert "  (fc1): Linear(in_features=3, out_features=4, bias=True)" in text
    assert "  (bn): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)" in text
    nested = repr(nn.Sequential(nn.Sequential(nn.ReLU())))
    assert nested == "Sequential(\n  (0): Sequential(\n    (0): ReLU()\n  )\n)"


def test_missing_forward_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        nn.Module()(1)


def test_num_parameters_counts_scalars():
    assert nn.Linear(3, 4).num_parameters() == 16


def _sgd_steps(model, xs, ys, lr=0.1):
    for x, y in zip(xs, ys):
        model.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        with minidl.no_grad():
            for p in model.parameters():
                p.data -= lr * p.grad.data


def test_state_dict_round_trip_resumes_training_bit_for_bit():
    rng = np.random.default_rng(0)
    xs = [minidl.tensor(rng.standard_normal((8, 3))) for _ in range(6)]
    ys = [minidl.tensor(rng.standard_normal((8, 2))) for _ in range(6)]
    minidl.manual_seed(3)
    a = Block().double()
    _sgd_steps(a, xs[:3], ys[:3])
    saved = a.state_dict()
    minidl.manual_seed(99)
    b = Block().double()
    b.load_state_dict(saved)
    _sgd_steps(a, xs[3:], ys[3:])
    _sgd_steps(b, xs[3:], ys[3:])
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
