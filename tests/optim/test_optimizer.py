"""The Optimizer base: parameter groups, bad input, zero_grad and state dicts."""
import pickle

import numpy as np
import pytest

import minidl
from minidl.optim import SGD, Adagrad, Adam, AdamW, GD, RMSprop


def _p(*shape):
    return minidl.tensor(np.ones(shape), requires_grad=True)


def test_a_parameter_passed_twice_is_an_error():
    p, q = _p(2), _p(3)
    with pytest.raises(ValueError, match="appears twice"):
        SGD([p, q, p], lr=0.1)


def test_a_parameter_in_two_groups_is_an_error():
    p, q = _p(2), _p(3)
    with pytest.raises(ValueError, match="another parameter group"):
        Adam([{"params": [p, q]}, {"params": [q], "lr": 0.1}])
    opt = Adam([p])
    with pytest.raises(ValueError, match="another parameter group"):
        opt.add_param_group({"params": [p]})


def test_unknown_option_is_an_error():
    p = _p(2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        SGD([p], lr=0.1, momentun=0.9)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['momentun'\]"):
        SGD([{"params": [p], "momentun": 0.9}], lr=0.1)


@pytest.mark.parametrize("cls", [GD, SGD, Adagrad, RMSprop, Adam, AdamW])
def test_negative_lr_is_an_error(cls):
    with pytest.raises(ValueError, match="invalid learning rate -0.1"):
        cls([_p(2)], lr=-0.1)


def test_non_floating_and_non_leaf_tensors_are_rejected():
    with pytest.raises(TypeError, match="dtype int64"):
        SGD([minidl.tensor(np.arange(3))], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        SGD([_p(2) * 2.0], lr=0.1)
    with pytest.raises(TypeError, match="expected a Tensor"):
        SGD([np.ones(3)], lr=0.1)


def test_empty_or_single_tensor_params_are_rejected():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(TypeError, match="single Tensor"):
        Adam(_p(2))


def test_add_param_group_fills_defaults():
    p, q = _p(2), _p(3)
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": q, "lr": 0.01})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["momentum"] == 0.9


def test_zero_grad_sets_none_or_zeros():
    p = _p(3)
    opt = SGD([p], lr=0.1)
    (p * 3.0).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), np.zeros(3))
    opt.zero_grad()
    assert p.grad is None


def test_generator_of_parameters_is_accepted(problem):
    params = problem.minidl_params()
    opt = Adam(iter(params), lr=0.1)
    held = opt.param_groups[0]["params"]
    assert len(held) == len(params) and all(a is b for a, b in zip(held, params))


def _make(cls, params):
    if cls is SGD:
        return SGD(_two_groups(params), lr=0.05, momentum=0.9, nesterov=True)
    if cls is RMSprop:
        return RMSprop(_two_groups(params), lr=0.01, momentum=0.5, centered=True)
    if cls is Adam:
        return Adam(_two_groups(params), lr=0.01, amsgrad=True)
    return cls(_two_groups(params), lr=0.01)


def _two_groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 0.003}]


@pytest.mark.parametrize("cls", [SGD, Adagrad, RMSprop, Adam, AdamW])
def test_state_dict_round_trip_resumes_training_bit_for_bit(problem, cls):
    straight, _ = problem.run_minidl(lambda ps: _make(cls, ps), 20)

    params, opt = problem.run_minidl(lambda ps: _make(cls, ps), 10)
    saved = pickle.loads(pickle.dumps(opt.state_dict()))  # as if written to disk
    weights = [p.numpy().copy() for p in params]
    resumed_params = [minidl.tensor(w, requires_grad=True) for w in weights]
    fresh = _make(cls, resumed_params)
    fresh.load_state_dict(saved)
    resumed, _ = problem.run_minidl(None, 10, params=resumed_params, opt=fresh)

    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_state_dict_layout_numbers_parameters_in_group_order(problem):
    params, opt = problem.run_minidl(lambda ps: _make(Adam, ps), 1)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    assert sd["state"][2]["step"] == 1
    assert sd["state"][2]["exp_avg"].shape == params[2].shape
    assert sd["param_groups"][1]["lr"] == 0.003


def test_state_dict_is_a_copy(problem):
    params, opt = problem.run_minidl(lambda ps: SGD(ps, lr=0.1, momentum=0.9), 1)
    sd = opt.state_dict()
    sd["state"][0]["momentum_buffer"][...] = 123.0
    assert not np.any(opt.state[params[0]]["momentum_buffer"] == 123.0)


def test_load_state_dict_rejects_mismatched_groups_and_shapes(problem):
    params, opt = problem.run_minidl(lambda ps: _make(Adam, ps), 1)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="2 parameter groups"):
        Adam(problem.minidl_params()).load_state_dict(sd)
    other = [minidl.tensor(np.ones((5, 5)), requires_grad=True)] + problem.minidl_params()[1:]
    with pytest.raises(ValueError, match=r"shape \(4, 3\).*shape \(5, 5\)"):
        _make(Adam, other).load_state_dict(sd)


def test_load_state_dict_restores_group_options(problem):
    params, opt = problem.run_minidl(lambda ps: _make(SGD, ps), 1)
    opt.param_groups[0]["lr"] = 0.5
    fresh = _make(SGD, problem.minidl_params())
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 0.5


def test_repr_lists_groups():
    text = repr(SGD([_p(2)], lr=0.1, momentum=0.9))
    assert "SGD" in text and "momentum: 0.9" in text


@pytest.mark.parametrize("cls", [GD, SGD, Adagrad, RMSprop, Adam, AdamW])
def test_optimizers_give_the_same_parameters_on_every_device(device, cls):
    """Written once against xp: on CUDA the 30 steps must match the CPU run."""
    rng = np.random.default_rng(4)
    a, b, w0 = rng.normal(size=(10, 3)), rng.normal(size=10), rng.normal(size=3)

    def train(dev):
        w = minidl.tensor(w0, requires_grad=True, device=dev)
        at, bt = minidl.tensor(a, device=dev), minidl.tensor(b, device=dev)
        opt = cls([w], lr=0.01) if cls in (GD, Adagrad, Adam, AdamW) else cls([w], lr=0.01, momentum=0.9)
        for _ in range(30):
            opt.zero_grad()
            ((at @ w - bt) ** 2).mean().backward()
            opt.step()
        assert w.device.type == minidl.backend.Device(dev).type
        return w.numpy()

    np.testing.assert_allclose(train(device), train("cpu"), rtol=1e-10)


def test_module_and_optimizer_checkpoint_resumes_training_bit_for_bit():
    """nn.Module.state_dict + Optimizer.state_dict: 10 + 10 steps == 20 straight steps."""
    from minidl import nn

    rng = np.random.default_rng(5)
    x = minidl.tensor(rng.normal(size=(16, 3)).astype(np.float32))
    y = minidl.tensor(rng.normal(size=(16, 1)).astype(np.float32))

    def build():
        minidl.manual_seed(7)
        model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        opt = Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 3e-3}], lr=1e-2)
        return model, opt

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((model(x) - y) ** 2).mean().backward()
            opt.step()

    straight, opt = build()
    train(straight, opt, 20)

    first, opt = build()
    train(first, opt, 10)
    checkpoint = pickle.loads(pickle.dumps({"model": first.state_dict(), "opt": opt.state_dict()}))
    resumed, opt2 = build()
    resumed.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["opt"])
    train(resumed, opt2, 10)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
