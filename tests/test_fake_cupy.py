"""Training steps on a strict stand-in for CuPy, so that the GPU code paths run without a GPU.

``FakeCuPy`` is a NumPy-backed array module with CuPy's rules where they differ from
NumPy's: its arrays refuse to meet NumPy arrays (except 0-d ones) in an operation or as an
index, ``ufunc.at`` is missing (``cupyx.scatter_add`` stands in), its random Generator has
only the methods CuPy's has, and reductions return 0-d arrays. Installed in place of CuPy
(``backend.cupy``), it makes ``device="cuda"`` tensors of these arrays, so every
``xp = get_array_module(...)`` branch, every explicit transfer and every place where a
NumPy array would meet a device array is exercised. It cannot see a device-to-host sync
(``float(x)`` works on it), which ``test_xp_discipline.py`` and ``test_device_step.py`` cover.
"""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend, config, nn, optim


class _Device:
    def __init__(self, index: int = 0):
        self.id = index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _is_host_array(x) -> bool:
    return type(x) is np.ndarray and x.ndim > 0


def _strip(x, where: str, allow_host: bool = False):
    """Device arrays -> plain NumPy (to compute); a host array here is CuPy's TypeError."""
    if isinstance(x, FakeArray):
        return x.view(np.ndarray)
    if _is_host_array(x) and not allow_host:
        raise TypeError(f"fake CuPy: {where} got a NumPy array of shape {x.shape} (CuPy refuses host arrays)")
    if isinstance(x, (list, tuple)):
        return type(x)(_strip(v, where, allow_host) for v in x)
    if isinstance(x, dict):
        return {k: _strip(v, where, allow_host) for k, v in x.items()}
    return x


def _dress(x):
    """NumPy results -> device arrays (reductions give 0-d arrays, as CuPy's do)."""
    if isinstance(x, np.ndarray):
        return x.view(FakeArray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(FakeArray)
    if isinstance(x, tuple):
        return tuple(_dress(v) for v in x)
    if isinstance(x, list):
        return [_dress(v) for v in x]
    return x


SYNCS: list[str] = []  # every conversion of a device array to a Python value (a GPU sync)


class FakeArray(np.ndarray):
    """A 'device' array: NumPy storage, CuPy's refusals; Python-value conversions are logged."""

    @property
    def device(self):
        return _Device(0)

    def _synced(self, how: str):
        SYNCS.append(f"{how}{self.shape}")
        return self.view(np.ndarray)

    def __bool__(self):
        return bool(self._synced("bool"))

    def __float__(self):
        return float(self._synced("float"))

    def __int__(self):
        return int(self._synced("int"))

    def item(self, *args):
        return self._synced("item").item(*args)

    def tolist(self):
        return self._synced("tolist").tolist()

    def get(self):
        return np.array(self.view(np.ndarray))

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method == "at":
            raise TypeError(f"fake CuPy: {ufunc.__name__}.at does not exist (use cupyx.scatter_add)")
        args = _strip(inputs, f"ufunc {ufunc.__name__}")
        if out is not None:
            kwargs["out"] = tuple(_strip(o, f"ufunc {ufunc.__name__} out") for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _dress(result)

    def __array_function__(self, func, types_, args, kwargs):
        # CuPy implements NEP 18: np.func(cupy_array) runs cupy's func, with CuPy's rules.
        return _dress(func(*_strip(args, func.__name__), **_strip(kwargs, func.__name__)))

    def __getitem__(self, key):
        return _dress(self.view(np.ndarray)[_strip(key, "indexing")])

    def __setitem__(self, key, value):
        self.view(np.ndarray)[_strip(key, "index assignment")] = _strip(value, "assigned value")


class _Generator:
    """The methods CuPy's ``Generator`` has (no normal, permutation, choice, shuffle)."""

    def __init__(self, seed):
        self._g = np.random.default_rng(seed)

    def random(self, size=None, dtype=np.float64):
        return _dress(self._g.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=np.float64):
        return _dress(self._g.standard_normal(size, dtype=dtype))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=np.float64):
        return _dress(self._g.uniform(low, high, size).astype(dtype))

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        return _dress(self._g.integers(low, high, size, dtype=dtype, endpoint=endpoint))


_CONSTRUCTORS = {"asarray", "array", "ascontiguousarray"}  # these copy host data to the device


class _FakeModule(types.ModuleType):
    ndarray = FakeArray

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, np.ufunc) or (callable(value) and not isinstance(value, type)):
            host_ok = name in _CONSTRUCTORS

            def call(*args, **kwargs):
                if name in ("asarray", "array") and args and isinstance(args[0], FakeArray):
                    host_ok_args = args
                else:
                    host_ok_args = args
                return _dress(value(*_strip(host_ok_args, name, host_ok), **_strip(kwargs, name, host_ok)))

            return call
        return value

    @staticmethod
    def asnumpy(x):
        return x.get() if isinstance(x, FakeArray) else np.asarray(x)


def _fake_cupy():
    fake = _FakeModule("fakecupy")
    fake.random = types.SimpleNamespace(default_rng=_Generator)
    fake.cuda = types.SimpleNamespace(Device=_Device)
    fake.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
        as_strided=lambda x, **kw: _dress(np.lib.stride_tricks.as_strided(_strip(x, "as_strided"), **kw))))
    fake.linalg = types.SimpleNamespace(qr=lambda a: _dress(np.linalg.qr(_strip(a, "qr"))))
    cupyx = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        np.add.at(a.view(np.ndarray), _strip(slices, "scatter_add"), _strip(value, "scatter_add"))

    cupyx.scatter_add = scatter_add
    special = types.ModuleType("cupyx.scipy.special")
    from scipy.special import erf

    special.erf = lambda x: _dress(erf(_strip(x, "erf")))
    cupyx.scipy = types.SimpleNamespace(special=special)
    return fake, cupyx, special


@pytest.fixture
def fake_cuda(monkeypatch):
    """device='cuda' backed by the fake CuPy for the duration of a test (NumPy kernels)."""
    if backend.cupy is not None:
        pytest.skip("a real CuPy is installed: the device tests run on it instead")
    fake, cupyx, special = _fake_cupy()
    monkeypatch.setattr(backend, "cupy", fake)
    monkeypatch.setattr(backend, "_CUDA_OK", True)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.special", special)
    # The NumPy kernels pick their array module themselves (kernels/ knows nothing of minidl):
    # point them at the stand-in too, as they would pick CuPy for CuPy arrays.
    from minidl.kernels import conv_numpy, matmul_numpy, pool_numpy

    for module in (conv_numpy, matmul_numpy, pool_numpy):
        monkeypatch.setattr(module, "array_module", lambda a: fake if isinstance(a, FakeArray) else np)
    backend.rng.seed(0)
    with config.using_kernels("numpy"):
        yield "cuda"
    backend.rng.seed(0)


def test_fake_cupy_is_strict(fake_cuda):
    """The stand-in refuses what CuPy refuses (so passing tests mean something)."""
    x = minidl.tensor(np.arange(4.0), device=fake_cuda)
    assert isinstance(x.data, FakeArray) and x.device.type == "cuda"
    with pytest.raises(TypeError, match="NumPy array"):
        x.data + np.ones(4)
    with pytest.raises(TypeError, match="at does not exist"):
        np.add.at(x.data, [0], 1.0)
    with pytest.raises(RuntimeError, match="same device"):
        x + minidl.tensor(np.ones(4))
    assert not hasattr(backend.random_generator(backend.cupy), "permutation")


# The training-step cases of test_device_step.py, run on the stand-in: every layer, loss,
# optimizer and scheduler, forward, backward and update, with no host round trip.
from tests.test_device_step import (  # noqa: E402
    _SCHEDULES, _count_host_copies_in_a_step, _layer_cases, _loss_cases, _model,
)


def test_conv_net_training_step_on_the_device(fake_cuda):
    rng = np.random.default_rng(0)
    model = _model().to(fake_cuda)
    x = minidl.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), device=fake_cuda)
    y = minidl.tensor(rng.integers(0, 10, 8), device=fake_cuda)
    _count_host_copies_in_a_step(fake_cuda, model, (x,), lambda out: F.cross_entropy(out, y, label_smoothing=0.1),
                                 lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4))
    assert all(isinstance(p.data, FakeArray) for p in model.parameters())
    assert all(isinstance(b.data, FakeArray) for _, b in model.named_buffers())


@pytest.mark.parametrize("case", sorted(_layer_cases()))
def test_layer_training_step_on_the_device(fake_cuda, case):
    rng = np.random.default_rng(0)
    model, inputs = _layer_cases()[case](fake_cuda, rng)
    y = minidl.tensor(rng.integers(0, 4, 4), device=fake_cuda)
    _count_host_copies_in_a_step(fake_cuda, model, inputs, lambda out: F.cross_entropy(out, y))


@pytest.mark.parametrize("name", sorted(_loss_cases("cpu", np.random.default_rng(0))[0]))
def test_every_loss_on_the_device(fake_cuda, name):
    rng = np.random.default_rng(1)
    losses, labels = _loss_cases(fake_cuda, rng)
    loss = losses[name]
    loss_fn = (lambda out: loss(out, labels)) if name.startswith("CrossEntropyLoss") else loss
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4)).to(fake_cuda)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32), device=fake_cuda)
    _count_host_copies_in_a_step(fake_cuda, model, (x,), loss_fn)


@pytest.mark.parametrize("name", sorted(_SCHEDULES))
def test_every_optimizer_and_scheduler_on_the_device(fake_cuda, name):
    rng = np.random.default_rng(2)
    make_opt, make_sched = _SCHEDULES[name]
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).to(fake_cuda)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32), device=fake_cuda)
    y = minidl.tensor(rng.integers(0, 3, 6), device=fake_cuda)
    _count_host_copies_in_a_step(fake_cuda, model, (x,), lambda out: F.cross_entropy(out, y), make_opt, make_sched)


# ------------------------------------------------------------------ beyond one step

def _models():
    from minidl.models import MLP, VGG, LeNet5, ResNet, TransformerClassifier

    return {
        "LeNet5": (lambda: LeNet5(input_size=8, channels=(2, 3), hidden=(8, 6)), "images"),
        "MLP": (lambda: MLP(64, hidden=(16,), dropout=0.2, activation="gelu"), "flat"),
        "ResNet": (lambda: ResNet(blocks=(1, 1), widths=(4, 8)), "images"),
        "VGG": (lambda: VGG("vgg_tiny", input_size=8, hidden=16), "images"),
        "TransformerClassifier": (lambda: TransformerClassifier(12, 10, d_model=8, nhead=2, num_layers=1,
                                                                dim_feedforward=16, max_len=8), "tokens"),
    }


@pytest.mark.parametrize("name", sorted(_models()))
def test_models_train_on_the_device(fake_cuda, name):
    rng = np.random.default_rng(5)
    build, kind = _models()[name]
    model = build().to(fake_cuda)
    if kind == "tokens":
        tokens = rng.integers(1, 12, (4, 6))
        tokens[0, 4:] = 0                                        # padding
        x = minidl.tensor(tokens, device=fake_cuda)
    else:
        shape = (4, 1, 8, 8) if kind == "images" else (4, 64)
        x = minidl.tensor(rng.standard_normal(shape).astype(np.float32), device=fake_cuda)
    y = minidl.tensor(rng.integers(0, 10, 4), device=fake_cuda)
    _count_host_copies_in_a_step(fake_cuda, model, (x,), lambda out: F.cross_entropy(out, y),
                                 lambda p: optim.AdamW(p, lr=1e-3))


def test_trainer_fits_on_the_device_from_host_batches(fake_cuda):
    from minidl.data import DataLoader, TensorDataset
    from minidl.train import Trainer

    rng = np.random.default_rng(6)
    X = rng.standard_normal((24, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, seed=0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = Trainer(model, F.cross_entropy, opt, device=fake_cuda, progress=False,
                      scheduler=optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    history = trainer.fit(loader, loader, epochs=2)
    assert len(history["loss"]) == 2 and np.isfinite(history["val_loss"]).all()
    assert all(isinstance(p.data, FakeArray) for p in model.parameters())
    assert trainer.predict(X).shape == (24, 2)


def test_state_dicts_round_trip_onto_the_device(fake_cuda):
    rng = np.random.default_rng(7)
    model = _model().to(fake_cuda)
    opt = optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
    x = minidl.tensor(rng.standard_normal((4, 1, 8, 8)).astype(np.float32), device=fake_cuda)
    F.cross_entropy(model(x), minidl.tensor(rng.integers(0, 10, 4), device=fake_cuda)).backward()
    opt.step()
    model_sd, opt_sd = model.state_dict(), opt.state_dict()
    assert all(type(v) is np.ndarray for v in model_sd.values())               # host copies
    fresh = _model().to(fake_cuda)
    fresh.load_state_dict(model_sd)
    fresh_opt = optim.Adam(fresh.parameters(), lr=1e-2, amsgrad=True)
    fresh_opt.load_state_dict(opt_sd)
    for p, q in zip(model.parameters(), fresh.parameters()):
        assert isinstance(q.data, FakeArray)
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    for state in fresh_opt.state.values():
        assert all(isinstance(v, FakeArray) for v in state.values() if hasattr(v, "shape"))
    fresh_opt.step()                                                           # state usable in place


def test_initialisers_and_factories_draw_on_the_device(fake_cuda):
    from minidl.nn import init

    w = nn.Parameter(minidl.zeros(6, 4, device=fake_cuda))
    for fill in (init.uniform_, init.normal_, init.trunc_normal_, init.orthogonal_, init.xavier_uniform_,
                 init.xavier_normal_, init.kaiming_uniform_, init.kaiming_normal_,
                 lambda t: init.sparse_(t, 0.5), init.zeros_, init.ones_):
        fill(w)
        assert isinstance(w.data, FakeArray) and w.dtype == np.float32
    for t in (minidl.randn(3, 2, device=fake_cuda), minidl.rand(3, device=fake_cuda),
              minidl.randint(0, 5, (4,), device=fake_cuda), minidl.arange(5, device=fake_cuda),
              minidl.linspace(0, 1, 5, device=fake_cuda), minidl.eye(3, device=fake_cuda),
              minidl.full((2, 2), 3.0, device=fake_cuda), F.dropout(minidl.ones(8, device=fake_cuda), 0.5)):
        assert isinstance(t.data, FakeArray)


@pytest.mark.parametrize("op", ["getitem_repeated", "embedding", "conv2d", "max_pool2d", "adaptive_avg_pool2d",
                                "batch_norm", "layer_norm", "attention", "cross_entropy", "clip_where"])
def test_gradients_of_gradients_on_the_device(fake_cuda, op):
    rng = np.random.default_rng(8)

    def t(shape, grad=True):
        return minidl.tensor(rng.standard_normal(shape), requires_grad=grad, device=fake_cuda)

    idx = minidl.tensor(np.array([[0, 2, 2], [1, 0, 3]]), device=fake_cuda)
    labels = minidl.tensor(np.array([0, 2, 1]), device=fake_cuda)
    mask = minidl.tensor(np.array([[False, True, False], [False, False, False]]), device=fake_cuda)
    cases = {
        "getitem_repeated": (lambda x: x[np.array([0, 0, 2])] * x[1:3].sum(), [t((3, 2))]),
        "embedding": (lambda w: F.embedding(idx, w) ** 2, [t((4, 2))]),
        "conv2d": (lambda x, w: F.conv2d(x, w, padding=1), [t((1, 2, 3, 3)), t((2, 2, 2, 2))]),
        "max_pool2d": (lambda x: F.max_pool2d(x * x, 2), [t((1, 1, 4, 4))]),
        "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, 2) ** 2, [t((1, 1, 3, 5))]),
        "batch_norm": (lambda x, g: F.batch_norm(x, None, None, g, None, training=True), [t((4, 3)), t((3,))]),
        "layer_norm": (lambda x: F.layer_norm(x, 3), [t((2, 3))]),
        "attention": (lambda q: F.scaled_dot_product_attention(q, q, q, attn_mask=~mask.reshape(2, 1, 3)),
                      [t((2, 3, 2))]),
        "cross_entropy": (lambda x: F.cross_entropy(x, labels, label_smoothing=0.1), [t((3, 4))]),
        "clip_where": (lambda x: F.where(x.data > 0, x.clip(-0.5, 0.5), x * x), [t((5,))]),
    }
    fn, inputs = cases[op]
    assert minidl.gradcheck(fn, inputs, fast=True)
    assert minidl.gradgradcheck(fn, inputs, fast=True)


def _syncs_in_a_step(device, model, x, loss_fn):
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x))
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    step()
    SYNCS.clear()
    step()
    return list(SYNCS)


def test_a_training_step_syncs_only_to_validate_targets(fake_cuda):
    """No hidden device-to-host syncs: none at all with a regression loss; with class
    indices, exactly the one boolean that validates them (per cross_entropy/embedding call)."""
    rng = np.random.default_rng(9)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8, momentum=None), nn.GELU(),
                          nn.Dropout(0.2), nn.Linear(8, 3)).to(fake_cuda)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32), device=fake_cuda)
    target = minidl.tensor(rng.standard_normal((6, 3)).astype(np.float32), device=fake_cuda)
    labels = minidl.tensor(rng.integers(0, 3, 6), device=fake_cuda)
    assert _syncs_in_a_step(fake_cuda, model, x, lambda out: F.mse_loss(out, target)) == []
    assert _syncs_in_a_step(fake_cuda, model, x, lambda out: F.cross_entropy(out, labels)) == ["bool()"]
    tokens = minidl.tensor(rng.integers(0, 12, (4, 7)), device=fake_cuda)
    bag = _layer_cases()["embedding_batchnorm_cumulative"](fake_cuda, rng)[0]
    y = minidl.tensor(rng.integers(0, 4, 4), device=fake_cuda)
    assert _syncs_in_a_step(fake_cuda, bag, tokens, lambda out: F.cross_entropy(out, y)) == ["bool()"] * 2


def test_sync_log_sees_a_hidden_float(fake_cuda):
    x = minidl.tensor(np.ones(3), device=fake_cuda)
    SYNCS.clear()
    float(x.data.sum())
    assert SYNCS == ["float()"]


def test_backward_with_a_grad_on_another_device_is_a_clear_error(fake_cuda):
    x = minidl.tensor(np.ones(3), requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match=r"backward: grad is on cuda.* but the output is on cpu"):
        y.backward(minidl.ones(3, device=fake_cuda))
    with pytest.raises(RuntimeError, match=r"grad: grad is on cuda.* but the output is on cpu"):
        minidl.grad(y, x, minidl.ones(3, device=fake_cuda))
    xg = minidl.tensor(np.ones(3), requires_grad=True, device=fake_cuda)
    with pytest.raises(RuntimeError, match=r"backward: grad is on cpu but the output is on cuda"):
        (xg * 2.0).backward(minidl.ones(3))
