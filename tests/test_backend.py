"""The NumPy/CuPy backend: devices, transfers, clear errors without CuPy."""
import numpy as np
import pytest

import minidl
from minidl import backend


def test_device_names():
    assert backend.Device("cpu") == "cpu"
    assert str(backend.Device("cuda:1")) == "cuda:1"
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.Device("tpu")


def test_get_array_module_is_numpy_for_cpu_arrays():
    assert backend.get_array_module(np.ones(2)) is np
    assert backend.get_array_module(minidl.tensor([1.0]).data) is np


@pytest.mark.skipif(minidl.cupy_available(), reason="checks the message shown when CuPy is missing")
def test_cuda_without_cupy_says_how_to_install():
    with pytest.raises(RuntimeError, match=r"pip install -e \"\.\[gpu\]\""):
        minidl.tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match="cupy"):
        minidl.zeros(2, device="cuda")


def test_to_cpu_is_a_no_op_on_cpu():
    x = minidl.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x


def test_ops_on_every_backend(device):
    x = minidl.tensor(np.arange(4.0), requires_grad=True, device=device)
    y = (x * x).sum()
    y.backward()
    assert str(x.grad.device).startswith(device)
    np.testing.assert_array_equal(x.grad.numpy(), 2 * np.arange(4.0))


def test_mixing_devices_raises_error_naming_both(device):
    if device == "cpu":
        pytest.skip("needs a second device (CUDA) to mix with the CPU")
    a = minidl.tensor([1.0], device="cuda")
    b = minidl.tensor([1.0])
    with pytest.raises(RuntimeError, match="cpu and cuda"):
        a + b


def test_transfer_hook_counts_copies_and_can_be_removed():
    seen = []
    remove = backend.add_transfer_hook(lambda direction, arr: seen.append(direction))
    try:
        backend.to_device(np.ones(2), "cpu")  # no copy: already on the host
        assert seen == []
    finally:
        remove()
    assert backend._transfer_hooks == []


def test_default_dtype_can_be_switched_to_float64():
    backend.set_default_dtype("float64")
    try:
        assert minidl.tensor([1.0]).dtype == np.float64
    finally:
        backend.set_default_dtype("float32")
    with pytest.raises(TypeError):
        backend.set_default_dtype("int32")


def test_fork_rng_restores_the_callers_stream():
    minidl.manual_seed(3)
    expected = [minidl.randn(2).numpy() for _ in range(2)]
    minidl.manual_seed(3)
    first = minidl.randn(2).numpy()
    with backend.fork_rng(99):
        inside = minidl.randn(2).numpy()
    second = minidl.randn(2).numpy()
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_array_equal(second, expected[1])
    assert not np.array_equal(inside, expected[1])
