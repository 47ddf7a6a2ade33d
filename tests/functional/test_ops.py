"""Every op in the registry (tests/op_specs.py): forward against NumPy, gradcheck and
gradgradcheck in float64 on hypothesis-drawn shapes, and forward/backward parity with PyTorch."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minidl
from tests.op_specs import SPEC_IDS, SPECS, draw_case, result_array, to_minidl

torch = pytest.importorskip("torch")

CASES = settings(max_examples=12, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@CASES
@given(data=st.data(), seed=SEEDS)
def test_forward_matches_numpy_reference(spec, device, data, seed):
    arrays, kw = draw_case(spec, data, seed)
    y = spec.fn(*to_minidl(arrays, device, requires_grad=False), **kw)
    expected = spec.ref(*arrays, **kw)
    assert y.shape == np.shape(expected)
    np.testing.assert_allclose(result_array(y), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=SPEC_IDS)
@CASES
@given(data=st.data(), seed=SEEDS)
def test_gradcheck(spec, data, seed):
    arrays, kw = draw_case(spec, data, seed)
    xs = to_minidl(arrays)
    assert minidl.gradcheck(lambda *t: spec.fn(*t, **kw), xs)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.double], ids=[s.name for s in SPECS if s.double])
@settings(max_examples=4, deadline=None, derandomize=True)
@given(data=st.data(), seed=SEEDS)
def test_gradgradcheck(spec, data, seed):
    arrays, kw = draw_case(spec, data, seed)
    xs = to_minidl(arrays)
    assert minidl.gradgradcheck(lambda *t: spec.fn(*t, **kw), xs, fast=True)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.torch_fn], ids=[s.name for s in SPECS if s.torch_fn])
@CASES
@given(data=st.data(), seed=SEEDS)
def test_matches_torch_forward_and_backward(spec, data, seed):
    arrays, kw = draw_case(spec, data, seed)
    xs = to_minidl(arrays)
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = spec.fn(*xs, **kw)
    ty = spec.torch_fn(*ts, **kw)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(minidl.tensor(g, dtype=np.float64))
    ty.backward(torch.tensor(g, dtype=torch.float64))
    for x, t in zip(xs, ts):
        tg = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
        mg = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        np.testing.assert_allclose(mg, tg, rtol=1e-9, atol=1e-12)
