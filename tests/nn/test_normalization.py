"""BatchNorm1d/2d and LayerNorm: PyTorch parity in train and eval (running statistics after
several steps, momentum=None cumulative average, no affine, no tracking), gradient checks
through inputs and parameters, state dicts that map 1:1, and clear errors."""
import numpy as np
import pytest

import minidl
from minidl import nn
from tests.nn.layer_checks import assert_parity, copy_to_torch, layer_gradcheck

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for normalization layers")


def _x(shape, seed=0, scale=1.0, shift=0.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale + shift


def _randomise_affine(m, seed=1):
    rng = np.random.default_rng(seed)
    for p in m.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    return m


CASES = [
    (lambda **kw: nn.BatchNorm1d(3, **kw), lambda **kw: torch.nn.BatchNorm1d(3, **kw), (8, 3)),
    (lambda **kw: nn.BatchNorm1d(3, **kw), lambda **kw: torch.nn.BatchNorm1d(3, **kw), (4, 3, 5)),
    (lambda **kw: nn.BatchNorm2d(3, **kw), lambda **kw: torch.nn.BatchNorm2d(3, **kw), (4, 3, 3, 2)),
]
OPTIONS = [
    {},
    {"momentum": 0.3, "eps": 1e-3},
    {"momentum": None},
    {"affine": False},
    {"track_running_stats": False},
]


@pytest.mark.parametrize("make,make_torch,shape", CASES, ids=["bn1d_2d", "bn1d_3d", "bn2d"])
@pytest.mark.parametrize("options", OPTIONS, ids=["default", "momentum", "cumulative", "no_affine", "no_tracking"])
def test_batch_norm_matches_torch_over_training_steps_then_eval(make, make_torch, shape, options):
    m = _randomise_affine(make(**options).double())
    t = copy_to_torch(m, make_torch(**options))
    for step in range(4):
        assert_parity(m, t, _x(shape, step, scale=1.0 + step, shift=0.5 * step), seed=step)
    if m.track_running_stats:
        np.testing.assert_allclose(m.running_mean.numpy(), t.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(m.running_var.numpy(), t.running_var.numpy(), rtol=1e-12)
        assert int(m.num_batches_tracked.item()) == int(t.num_batches_tracked) == 4
    m.eval(), t.eval()
    assert_parity(m, t, _x(shape, 10, scale=2.0))
    if m.track_running_stats:
        sd = m.state_dict()
        for k, v in t.state_dict().items():
            np.testing.assert_allclose(sd[k], v.numpy(), rtol=1e-12, err_msg=k)


def test_batch_norm_buffers_and_defaults_match_pytorch():
    m = nn.BatchNorm2d(4)
    assert list(m.state_dict()) == list(torch.nn.BatchNorm2d(4).state_dict())
    np.testing.assert_array_equal(m.weight.numpy(), 1.0)
    np.testing.assert_array_equal(m.bias.numpy(), 0.0)
    np.testing.assert_array_equal(m.running_var.numpy(), 1.0)
    assert m.num_batches_tracked.dtype == np.int64 and m.num_batches_tracked.shape == ()
    assert m.weight.dtype == np.float32


@pytest.mark.parametrize("train", [True, False])
def test_batch_norm_gradcheck_inputs_and_parameters(train):
    m = _randomise_affine(nn.BatchNorm2d(2).double())
    m.running_mean.data[...] = [0.3, -0.1]
    m.running_var.data[...] = [1.7, 0.4]
    m.train(train)
    x = minidl.tensor(_x((3, 2, 2, 2), 3), requires_grad=True)
    assert layer_gradcheck(m, x)
    assert layer_gradcheck(m, minidl.tensor(_x((3, 2, 1, 2), 4), requires_grad=True), gradgrad=True)


def test_batch_norm_eval_does_not_touch_running_statistics():
    m = nn.BatchNorm1d(3)
    m(minidl.randn(6, 3))
    m.eval()
    before = m.state_dict()
    m(minidl.randn(6, 3) * 10.0)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_batch_norm_wrong_input_names_layer_expected_and_got():
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\): expected input of shape \(N, C\) or \(N, C, L\) "
                                         r"with C = 3, got \(4, 5\)"):
        nn.BatchNorm1d(3)(minidl.randn(4, 5))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input of shape \(N, C, H, W\)"):
        nn.BatchNorm2d(3)(minidl.randn(4, 3))
    m = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        m(minidl.randn(1, 3))
    assert int(m.num_batches_tracked.item()) == 0
    with pytest.raises(ValueError, match="momentum must be in"):
        nn.BatchNorm1d(3, momentum=2.0)


def test_batch_norm_reset_running_stats():
    m = nn.BatchNorm1d(2)
    m(minidl.randn(5, 2) + 3.0)
    m.reset_running_stats()
    np.testing.assert_array_equal(m.running_mean.numpy(), 0.0)
    assert int(m.num_batches_tracked.item()) == 0


@pytest.mark.parametrize("normalized_shape,shape", [(4, (2, 3, 4)), ((3, 4), (2, 3, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_matches_torch(normalized_shape, shape, affine):
    m = nn.LayerNorm(normalized_shape, eps=1e-6, elementwise_affine=affine).double()
    _randomise_affine(m)
    t = copy_to_torch(m, torch.nn.LayerNorm(normalized_shape, eps=1e-6, elementwise_affine=affine))
    for mode in ("train", "eval"):
        getattr(m, mode)(), getattr(t, mode)()
        assert_parity(m, t, _x(shape, 5, scale=3.0, shift=1.0))


def test_layer_norm_gradcheck_inputs_and_parameters():
    m = _randomise_affine(nn.LayerNorm(3).double())
    x = minidl.tensor(_x((2, 3), 6), requires_grad=True)
    assert layer_gradcheck(m, x)
    assert layer_gradcheck(m, x, gradgrad=True)


def test_layer_norm_defaults_match_pytorch():
    m, t = nn.LayerNorm((2, 3)), torch.nn.LayerNorm((2, 3))
    assert list(m.state_dict()) == list(t.state_dict())
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v.numpy())


def test_layer_norm_without_bias_and_errors():
    m = nn.LayerNorm(4, bias=False)
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match=r"LayerNorm\(\(4,\)\): expected input of shape \(\*, 4\), got \(2, 5\)"):
        m(minidl.randn(2, 5))
    assert repr(m) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
