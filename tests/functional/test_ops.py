"""Every op in the registry (tests/op_specs.py): forward against NumPy (on every device, with
the gradients on a GPU compared with the CPU's), gradcheck and gradgradcheck in float64 on
hypothesis-drawn shapes, and forward/backward parity with PyTorch."""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from tests.op_specs import SPECS, draw_case, result_array, to_minidl, to_torch
from tests.test_fake_cupy import fake_cuda  # noqa: F401  (a fixture: device="cuda" on a CuPy stand-in)

torch = pytest.importorskip("torch")

SEEDS = st.integers(0, 2**31 - 1)


def _cases(spec, default: int):
    """Hypothesis settings for ``spec``: its own example count when it sets one."""
    return settings(max_examples=default if spec.examples is None else min(spec.examples, default),
                    deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _specs(predicate=lambda s: True):
    chosen = [s for s in SPECS if predicate(s)]
    return pytest.mark.parametrize("spec", chosen, ids=[s.name for s in chosen])


def _gradients(spec, arrays, kw, device, seed):
    """(output as NumPy, gradients of <g, y> w.r.t. the differentiable inputs as NumPy)."""
    xs = to_minidl(arrays, device, spec=spec)
    with spec.path():
        y = spec.fn(*xs, **kw)
        g = np.random.default_rng(seed).standard_normal(y.shape)
        if y.requires_grad:
            y.backward(minidl.tensor(g, dtype=np.float64, device=device))
    return result_array(y), [None if x.grad is None else x.grad.numpy() for x in xs if x.requires_grad]


def _check_forward(spec, device, examples: int):
    """Forward against the NumPy reference on ``device``; off the CPU, the output and the
    gradients are also compared with the CPU's (CPU/GPU parity of the backward pass)."""
    if device != "cpu" and "host_rng" in spec.tags:
        pytest.skip("the reference draws its random mask from the host generator, which a GPU does not share")

    @_cases(spec, examples)
    @given(data=st.data(), seed=SEEDS)
    def check(data, seed):
        arrays, kw = draw_case(spec, data, seed)
        with spec.path():
            y = spec.fn(*to_minidl(arrays, device, requires_grad=False, spec=spec), **kw)
        expected = spec.ref(*arrays, **kw)
        assert y.shape == np.shape(expected)
        np.testing.assert_allclose(result_array(y), expected, rtol=spec.rtol, atol=spec.atol)
        if device != "cpu":
            y_dev, g_dev = _gradients(spec, arrays, kw, device, seed)
            y_cpu, g_cpu = _gradients(spec, arrays, kw, "cpu", seed)
            np.testing.assert_allclose(y_dev, y_cpu, rtol=1e-10, atol=1e-12)
            for a, b in zip(g_dev, g_cpu):
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)

    check()


@_specs()
def test_forward_matches_numpy_reference(spec, device):
    _check_forward(spec, device, 12)


@_specs()
def test_forward_and_backward_on_a_strict_cupy_stand_in(spec, fake_cuda):
    """Without a GPU the device branch above still runs, on ``tests/test_fake_cupy.py``'s
    NumPy-backed CuPy stand-in (it refuses host arrays where CuPy does): every constant input
    must reach the device, every gradient must match the CPU's."""
    _check_forward(spec, fake_cuda, 3)


@_specs(lambda s: s.grad and s.numeric)
def test_gradcheck(spec):
    @_cases(spec, 12)
    @given(data=st.data(), seed=SEEDS)
    def check(data, seed):
        arrays, kw = draw_case(spec, data, seed)
        xs = to_minidl(arrays, spec=spec)
        with spec.path():
            assert minidl.gradcheck(lambda *t: spec.fn(*t, **kw), xs, fast=spec.fast)

    check()


@_specs(lambda s: s.grad and s.numeric and s.double)
def test_gradgradcheck(spec):
    @_cases(spec, 4)
    @given(data=st.data(), seed=SEEDS)
    def check(data, seed):
        arrays, kw = draw_case(spec, data, seed)
        xs = to_minidl(arrays, spec=spec)
        with spec.path():
            assert minidl.gradgradcheck(lambda *t: spec.fn(*t, **kw), xs, fast=True)

    check()


@_specs(lambda s: s.torch_fn is not None)
def test_matches_torch_forward_and_backward(spec):
    @_cases(spec, 12)
    @given(data=st.data(), seed=SEEDS)
    def check(data, seed):
        arrays, kw = draw_case(spec, data, seed)
        xs = to_minidl(arrays, spec=spec)
        ts = to_torch(arrays, spec=spec)
        with spec.path():
            y = spec.fn(*xs, **kw)
        with warnings.catch_warnings():  # torch's notes on its own defaults (kl_div's "mean", 3-d dropout2d)
            warnings.simplefilter("ignore", UserWarning)
            ty = spec.torch_fn(*ts, **kw)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = np.random.default_rng(seed).standard_normal(y.shape)
        if y.requires_grad:  # an output cut from the graph (sign) counts as a zero gradient
            with spec.path():
                y.backward(minidl.tensor(g, dtype=np.float64))
        if ty.requires_grad:
            ty.backward(torch.tensor(g, dtype=torch.float64))
        for x, t in zip(xs, ts):
            if not x.requires_grad:
                continue
            tg = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
            mg = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
            np.testing.assert_allclose(mg, tg, rtol=1e-9, atol=1e-12)

    check()


@pytest.mark.parametrize("op, shape", [("dropout", (40, 50)), ("dropout2d", (8, 50, 2, 3))])
def test_seeded_dropout_mask_follows_the_formula_on_every_device(op, shape, device):
    """The seeded specs compare with the host generator's mask, which a GPU does not share;
    here, on any device: the same seed gives the same mask, every output is 0 or x / (1 - p)
    (whole channels for dropout2d), about 1 - p of the entries are kept, and dy/dx = m / (1 - p)."""
    import minidl.functional as F

    p = 0.3
    fn = getattr(F, op)
    x = minidl.tensor(np.abs(np.random.default_rng(0).standard_normal(shape)) + 0.5, requires_grad=True, device=device)
    minidl.manual_seed(7)
    y = fn(x, p, training=True)
    minidl.manual_seed(7)
    again = fn(x, p, training=True)
    np.testing.assert_array_equal(y.numpy(), again.numpy())
    xn, yn = x.numpy(), y.numpy()
    kept = yn != 0  # x > 0 everywhere, so a zero output means a dropped entry
    np.testing.assert_allclose(yn[kept], xn[kept] / (1 - p), rtol=1e-12)
    if op == "dropout2d":
        assert np.all(kept.all(axis=(2, 3)) | ~kept.any(axis=(2, 3)))  # one decision per channel map
        draws = kept[:, :, 0, 0]
    else:
        draws = kept
    assert abs(draws.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / draws.size)
    y.backward(minidl.ones(shape, dtype=np.float64, device=device))
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-12)
