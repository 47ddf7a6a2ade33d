"""Matrix product C = A @ B (square, float32): the Numba CPU kernel against NumPy's BLAS and
PyTorch, in the same run.

Sizes 256, 512, 1024; median of repeats (timed in blocks that alternate between the contenders); reported as GFLOP/s (2*n^3 flops per
product) and as a fraction of BLAS.  Goal: the Numba kernel at 30% of BLAS or better.
minidl's default CPU matmul is BLAS; the kernel (``kernels/matmul_numba.py``) is there to
be read and measured.  The Numba compile cost is reported apart (first call with an empty
cache, then in a second process that loads the cache).  With a CUDA GPU and CuPy, sizes
1024, 2048, 4096 are also timed on the GPU: the Numba CUDA tiled kernel, CuPy (cuBLAS) and
PyTorch CUDA.

    python benchmarks/bench_matmul.py [--repeats 7] [--quick] [--no-write] [--threads N]
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import pin_threads_from_argv  # noqa: E402

pin_threads_from_argv()  # before NumPy, Numba and PyTorch start their thread pools

import numpy as np  # noqa: E402

import minidl.config  # noqa: E402,F401  (registers minidl.kernels in a source checkout)
from minidl.kernels import matmul_numba  # noqa: E402
from benchmarks.bench_conv import (  # noqa: E402
    ROUNDS, blocked_medians, compile_cost_line, cpu_clock_setup, kernel_bench_parser, run_gpu_section,
)
from benchmarks.report import PLOTS, markdown_table, write_section  # noqa: E402

SIZES = [256, 512, 1024]
GPU_SIZES = [1024, 2048, 4096]

MATMUL_SETUP = """
import numpy as np
import minidl.config
from minidl.kernels import matmul_numba
a = np.ones((64, 64), np.float32)
"""
MATMUL_CALL = "matmul_numba.matmul_2d(a, a)"
CUDA_SETUP = """
import cupy
import minidl.config
from minidl.kernels import matmul_cuda
a = cupy.ones((64, 64), cupy.float32)
"""
CUDA_CALL = "matmul_cuda.matmul_2d(a, a); cupy.cuda.Device().synchronize()"


def gflops(n: int, seconds: float) -> float:
    return 2.0 * n**3 / seconds / 1e9


def plot(rows: list, file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for index, label in enumerate(["Numba kernel", "NumPy BLAS", "PyTorch"]):
        ax.plot([r[0] for r in rows], [r[1 + index] for r in rows], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks([r[0] for r in rows], [str(r[0]) for r in rows])
    ax.set_xlabel("n (n x n @ n x n, float32)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("matmul on the CPU")
    ax.legend()
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = kernel_bench_parser(__doc__, "3 repeats").parse_args(argv)
    import torch

    if args.device == "cuda":
        return run_gpu_section("bench_matmul", "Matmul (CUDA)", gpu_section, torch,
                               3 if args.quick else args.repeats, args.no_write)
    threads, cpu_clock, clock = cpu_clock_setup(torch, args.threads)

    repeats = 3 if args.quick else args.repeats
    rng = np.random.default_rng(0)
    rows, table = [], []
    for n in SIZES:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        err = np.max(np.abs(matmul_numba.matmul_2d(a, b) - a @ b)) / np.max(np.abs(a @ b))
        times = blocked_medians({
            "numba": lambda: matmul_numba.matmul_2d(a, b),
            "blas": lambda: np.matmul(a, b),
            "torch": lambda: torch.matmul(ta, tb),
        }, repeats=repeats, cpu_clock=cpu_clock)
        rate = {k: gflops(n, v) for k, v in times.items()}
        rows.append([n, rate["numba"], rate["blas"], rate["torch"]])
        table.append([n, rate["numba"], rate["blas"], rate["torch"], rate["numba"] / rate["blas"], float(err)])
        print(f"n={n}: numba {rate['numba']:.1f}, BLAS {rate['blas']:.1f}, torch {rate['torch']:.1f} GFLOP/s", flush=True)
    compile_line = compile_cost_line("matmul", MATMUL_SETUP, MATMUL_CALL)
    body = [
        f"Square float32 matmul, GFLOP/s (2n^3 / median {clock} of {repeats} repeats, in blocks alternating between the contenders over {ROUNDS} rounds). "
        "Goal: the Numba kernel at >= 30% of BLAS. "
        f"Measured with {threads} on {os.cpu_count()} cores shared with other jobs, so expect noise of tens of percent.",
        "",
        markdown_table(["n", "Numba kernel GFLOP/s", "NumPy BLAS GFLOP/s", "PyTorch GFLOP/s",
                        "Numba / BLAS", "max rel. error vs BLAS"], table),
        "",
        compile_line,
        "",
        "![matmul CPU](results/matmul_cpu.png)",
    ]
    body += ["", "GPU: `--device cuda` times the GPU contenders (section `Matmul (CUDA)`)."]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        plot(rows, PLOTS / "matmul_cpu.png")
        write_section("Matmul", text)
    return 0


def gpu_section(torch, repeats: int) -> str:
    import cupy

    from minidl.kernels import matmul_cuda

    def synced(fn):
        def run():
            fn()
            cupy.cuda.Device().synchronize()
            torch.cuda.synchronize()
        return run

    table = []
    for n in GPU_SIZES:
        a = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        b = cupy.random.standard_normal((n, n), dtype=cupy.float32)
        ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
        times = blocked_medians({
            "cuda": synced(lambda: matmul_cuda.matmul_2d(a, b)),
            "cupy": synced(lambda: cupy.matmul(a, b)),
            "torch": synced(lambda: torch.matmul(ta, tb)),
        }, repeats=repeats)
        rate = {k: gflops(n, v) for k, v in times.items()}
        table.append([n, rate["cuda"], rate["cupy"], rate["torch"], rate["cuda"] / rate["cupy"]])
    return "\n".join([
        "GPU, float32: the Numba CUDA tiled kernel (64x64 block tiles in shared memory, 4x4 outputs per thread), CuPy (cuBLAS), PyTorch CUDA; GFLOP/s.",
        "",
        markdown_table(["n", "Numba CUDA GFLOP/s", "CuPy GFLOP/s", "PyTorch GFLOP/s", "Numba CUDA / cuBLAS"], table),
        "",
        compile_cost_line("CUDA matmul", CUDA_SETUP, CUDA_CALL),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
