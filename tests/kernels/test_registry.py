"""The kernel registry and minidl.config: defaults, explicit choices, clear errors, and
minidl working without Numba."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl.config as config
from minidl.kernels import registry

ROOT = Path(__file__).resolve().parents[2]


def test_auto_picks_the_measured_default_per_backend():
    for op in registry.OPS:
        path = registry.resolve(op, "cpu", "auto")
        assert path == registry.DEFAULTS[(op, "cpu")]
    assert registry.resolve("matmul", "cpu") == "numpy"  # the CPU matmul stays BLAS


def test_every_registered_implementation_has_the_op_functions():
    names = {
        "conv2d": ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight"),
        "max_pool2d": ("max_pool2d_forward", "max_pool2d_backward"),
        "avg_pool2d": ("avg_pool2d_forward", "avg_pool2d_backward"),
        "matmul": ("matmul",),
    }
    for op in registry.OPS:
        for path in ("numpy", "numba"):
            module = registry.load(op, path)
            for name in names[op]:
                assert callable(getattr(module, name)), f"{module.__name__} lacks {name}"


def test_config_select_follows_the_setting_and_restores_it():
    assert config.kernels == "auto"
    with config.using_kernels("numpy"):
        assert config.select("conv2d", np).__name__.endswith("conv_numpy")
    with config.using_kernels("numba"):
        assert config.select("max_pool2d", np).__name__.endswith("pool_numba")
    assert config.kernels == "auto"


def test_cuda_path_on_cpu_arrays_is_a_clear_error():
    with config.using_kernels("cuda"):
        with pytest.raises(config.KernelUnavailableError, match=r"conv2d: kernel path 'cuda' takes CuPy \(GPU\) arrays"):
            config.select("conv2d", np)


def test_unknown_path_is_rejected_at_the_call(monkeypatch):
    with pytest.raises(ValueError, match="using_kernels: 'fast' is not one of"):
        with config.using_kernels("fast"):
            pass
    monkeypatch.setattr(config, "kernels", "blas")
    with pytest.raises(ValueError, match=r"minidl.config.kernels = 'blas' is not one of"):
        config.select("conv2d", np)


def test_kernels_package_never_imports_minidl():
    for file in (ROOT / "kernels").glob("*.py"):
        tree = ast.parse(file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""] if node.level == 0 else []
            else:
                continue
            assert not any(m == "minidl" or m.startswith("minidl.") for m in modules), f"{file.name} imports {modules}"


def _run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_importing_the_registry_imports_neither_numba_nor_cupy():
    done = _run_python(
        "import sys, minidl.config\n"
        "from minidl.kernels import registry, conv_numpy\n"
        "print('numba' in sys.modules, 'cupy' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "False"


def test_minidl_runs_on_the_numpy_path_without_numba():
    """With ``import numba`` failing, "auto" falls back to NumPy and "numba" is a clear error."""
    code = (
        "import sys\n"
        "sys.modules['numba'] = None  # makes `import numba` raise ImportError\n"
        "import numpy as np, minidl\n"
        "import minidl.config as config\n"
        "from minidl.functional.conv import conv2d\n"
        "from minidl.functional.pool import max_pool2d\n"
        "x = minidl.tensor(np.ones((1, 2, 5, 5)), requires_grad=True)\n"
        "w = minidl.tensor(np.ones((3, 2, 3, 3)), requires_grad=True)\n"
        "y = max_pool2d(conv2d(x, w, padding=1), 2)\n"
        "y.sum().backward()\n"
        "print(config.select('conv2d', np).__name__, float(y.data.max()), float(x.grad.data.sum()))\n"
        "config.kernels = 'numba'\n"
        "try:\n"
        "    conv2d(x, w)\n"
        "except config.KernelUnavailableError as error:\n"
        "    print('ERROR', error)\n"
    )
    done = _run_python(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("minidl.kernels.conv_numpy 18.0")
    assert "conv2d: kernel path 'numba' is not available: Numba is not installed" in lines[1]


def test_tensor_matmul_goes_through_the_selected_kernel(monkeypatch):
    import minidl
    from minidl.kernels import matmul_numba

    calls = []
    original = matmul_numba.matmul
    monkeypatch.setattr(matmul_numba, "matmul", lambda a, b: calls.append(a.shape) or original(a, b))
    a = minidl.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    b = minidl.tensor(np.ones((3, 2)))
    with config.using_kernels("numba"):
        y = a @ b
    assert calls == [(2, 3)]
    np.testing.assert_array_equal(y.numpy(), np.arange(6.0).reshape(2, 3) @ np.ones((3, 2)))
    a @ b  # back on "auto": BLAS, not the Numba kernel
    assert len(calls) == 1


def test_a_numba_cuda_that_cannot_compile_leaves_auto_on_the_cupy_path(monkeypatch):
    # numba-cuda can import and still fail at its first compilation (seen on a GPU machine
    # with NumPy 2.5); the probe's reason must reach the user, and "auto" must not crash.
    monkeypatch.setattr(registry, "_cuda_probe", (False, "Numba CUDA cannot run a kernel here (AttributeError: x)"))
    assert registry.resolve("max_pool2d", "gpu", "auto") == "numpy"
    with pytest.raises(registry.KernelUnavailableError, match=r"max_pool2d: kernel path 'cuda' is not available: "
                                                             r"Numba CUDA cannot run a kernel here \(AttributeError"):
        registry.resolve("max_pool2d", "gpu", "cuda")


def test_the_cuda_probe_reports_a_failing_compilation(monkeypatch):
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    from numba import cuda

    monkeypatch.setattr(registry, "_cuda_probe", None)
    monkeypatch.setattr(cuda, "is_available", lambda: True)

    def broken(_cuda):
        raise AttributeError("module 'numpy' has no attribute 'row_stack'")

    monkeypatch.setattr(registry, "_compile_and_run_probe", broken)
    usable, reason = registry.path_status("cuda")
    assert not usable and "AttributeError: module 'numpy' has no attribute 'row_stack'" in reason
