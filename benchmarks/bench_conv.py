"""conv2d forward + backward: minidl's kernel paths against PyTorch, in the same run.

Three layer shapes (float32, NCHW), each timed as one training step of the layer alone --
y = conv2d(x, w, b); y.backward(gy) -- so the forward, the input gradient and the weight
gradient all count:

    LeNet-like   N=64, 1 -> 6 channels, 28x28, 5x5
    VGG-like     N=32, 64 -> 64 channels, 32x32, 3x3, padding 1
    strided      N=32, 32 -> 64 channels, 32x32, 3x3, stride 2, padding 1

Contenders: the NumPy path (strided-view im2col + BLAS), the Numba path (parallel Numba
im2col/col2im + BLAS), PyTorch CPU; "default" is whichever path ``minidl.config`` picks
with ``kernels="auto"``.  Medians of repeats, timed in blocks that alternate between the contenders (see ``blocked_medians``).  The Numba compile cost is
reported apart: the first call in a process with an empty cache, then the first call in
a second process that finds the cache (``cache=True``).  With a CUDA GPU and CuPy, the
same shapes at 4x the batch are also timed on the GPU: NumPy path on CuPy arrays (cuBLAS),
the Numba CUDA kernels, and PyTorch CUDA.

    python benchmarks/bench_conv.py [--repeats 7] [--quick] [--no-write] [--threads N]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import pin_threads_from_argv  # noqa: E402

pin_threads_from_argv()  # before NumPy, Numba and PyTorch start their thread pools

import numpy as np  # noqa: E402

import minidl  # noqa: E402
import minidl.config as config  # noqa: E402
from minidl.kernels import registry  # noqa: E402
from minidl.functional.conv import conv2d  # noqa: E402
from minidl.functional.pool import avg_pool2d, max_pool2d  # noqa: E402
from benchmarks.report import PLOTS, markdown_table, write_section  # noqa: E402

SHAPES = [
    ("LeNet-like", dict(n=64, c_in=1, c_out=6, hw=28, k=5, stride=1, padding=0)),
    ("VGG-like", dict(n=32, c_in=64, c_out=64, hw=32, k=3, stride=1, padding=1)),
    ("strided", dict(n=32, c_in=32, c_out=64, hw=32, k=3, stride=2, padding=1)),
]


def make_arrays(s: dict, batch_scale: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = max(1, int(s["n"] * batch_scale))
    x = rng.standard_normal((n, s["c_in"], s["hw"], s["hw"])).astype(np.float32)
    w = (rng.standard_normal((s["c_out"], s["c_in"], s["k"], s["k"])) * 0.1).astype(np.float32)
    b = rng.standard_normal(s["c_out"]).astype(np.float32)
    out = (s["hw"] + 2 * s["padding"] - s["k"]) // s["stride"] + 1
    gy = rng.standard_normal((n, s["c_out"], out, out)).astype(np.float32)
    return x, w, b, gy


def minidl_step(arrays, s: dict, path: str, device: str = "cpu"):
    x, w, b, gy = (minidl.tensor(a, device=device) for a in arrays)
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()

    def run():
        with config.using_kernels(path):
            y = conv2d(x, w, b, stride=s["stride"], padding=s["padding"])
            y.backward(gy)
        x.grad = w.grad = b.grad = None
        if device != "cpu":
            import cupy

            cupy.cuda.Device().synchronize()
    return run


def torch_step(torch, arrays, s: dict, device: str = "cpu"):
    x, w, b, gy = (torch.tensor(a, device=device) for a in arrays)
    x.requires_grad_(), w.requires_grad_(), b.requires_grad_()

    def run():
        y = torch.nn.functional.conv2d(x, w, b, stride=s["stride"], padding=s["padding"])
        y.backward(gy)
        x.grad = w.grad = b.grad = None
        if device != "cpu":
            torch.cuda.synchronize()
    return run


ROUNDS = 3  # blocks per contender, taken in turn: A-block, B-block, ..., A-block, ...


def blocked_medians(contenders: dict, repeats: int, cpu_clock: bool = False) -> dict:
    """Median seconds of each contender over ``ROUNDS`` rounds; in each round every
    contender in turn gets a block of calls (one warm-up, then ceil(repeats / ROUNDS) timed:
    wall time, or process CPU time with ``cpu_clock`` for single-threaded runs), and the
    result is the median over all timed calls.  Blocks, not single calls, alternate: BLAS,
    Numba and PyTorch each keep a thread pool, and on a few cores a pool that is still
    spinning after its last call starves the next library's threads, which alternating call
    by call would charge to every call.  For the same reason each block starts after a
    0.3 s pause (OpenBLAS's workers keep spinning for about 0.1 s after a call).  The rounds
    spread a slow spell of a shared machine over all contenders instead of one."""
    per_block = max(1, -(-repeats // ROUNDS))
    samples: dict = {name: [] for name in contenders}
    for fn in contenders.values():  # first calls (compilation, allocation) out of the way
        fn()
    for _ in range(ROUNDS):
        for name, fn in contenders.items():
            time.sleep(0.3)
            fn()
            for _ in range(per_block):
                t0 = time.process_time() if cpu_clock else time.perf_counter()
                fn()
                samples[name].append((time.process_time() if cpu_clock else time.perf_counter()) - t0)
    return {name: statistics.median(ts) for name, ts in samples.items()}


POOLS = [  # name, minidl function, torch function name, arguments
    ("max 2x2 / 2", max_pool2d, "max_pool2d", dict(kernel_size=2, stride=2)),
    ("max 3x3 / 2, pad 1", max_pool2d, "max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
    ("avg 2x2 / 2", avg_pool2d, "avg_pool2d", dict(kernel_size=2, stride=2)),
]


def pool_steps(torch, x: np.ndarray, fn, torch_name: str, kwargs: dict, device: str = "cpu") -> dict:
    """forward + backward of one pooling call on each path and in PyTorch (on ``device``)."""
    paths = ("numpy", "numba") if device == "cpu" else ("numpy", "cuda")
    xd = minidl.tensor(x, device=device).data

    def sync():
        if device != "cpu":
            import cupy

            cupy.cuda.Device().synchronize()
            torch.cuda.synchronize()

    steps = {}
    for path in paths:
        def run(path=path):
            t = minidl.tensor(xd, requires_grad=True, device=device)
            with config.using_kernels(path):
                y = fn(t, **kwargs)
                y.backward(minidl.ones(y.shape, device=device))
            sync()
        steps[path] = run
    xt = torch.tensor(x, device=device)

    def run_torch():
        t = xt.detach().requires_grad_()
        y = getattr(torch.nn.functional, torch_name)(t, **kwargs)
        y.backward(torch.ones_like(y))
        sync()
    steps["torch"] = run_torch
    return steps


def numba_first_call(setup: str, call: str) -> tuple[float, float]:
    """CPU seconds of the first ``call`` in a fresh process with an empty Numba cache (compile),
    then in a second process that finds the cache written by the first (load).  CPU time,
    because compiling is single-threaded and the machine may be shared."""
    code = (
        f"import sys, time\nsys.path.insert(0, {str(ROOT)!r})\n{setup}\n"
        f"t0 = time.process_time()\n{call}\nprint(time.process_time() - t0)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        seconds = []
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                raise RuntimeError(done.stderr)
            seconds.append(float(done.stdout.strip().splitlines()[-1]))
    return seconds[0], seconds[1]


CONV_SETUP = """
import numpy as np
import minidl.config
from minidl.kernels import conv_numba
x = np.ones((2, 3, 8, 8), np.float32); w = np.ones((4, 3, 3, 3), np.float32); gy = np.ones((2, 4, 8, 8), np.float32)
g = ((1, 1), (1, 1), (1, 1), 1)
"""
CONV_CALL = ("conv_numba.conv2d_forward(x, w, *g); conv_numba.conv2d_backward_input(gy, w, (8, 8), *g); "
             "conv_numba.conv2d_backward_weight(x, gy, (3, 3), *g)")


CUDA_SETUP = """
import cupy
import minidl.config
from minidl.kernels import conv_cuda
x = cupy.ones((2, 3, 8, 8), cupy.float32); w = cupy.ones((4, 3, 3, 3), cupy.float32)
gy = cupy.ones((2, 4, 8, 8), cupy.float32)
g = ((1, 1), (1, 1), (1, 1), 1)
"""
CUDA_CALL = ("conv_cuda.conv2d_forward(x, w, *g); conv_cuda.conv2d_backward_input(gy, w, (8, 8), *g); "
             "conv_cuda.conv2d_backward_weight(x, gy, (3, 3), *g); cupy.cuda.Device().synchronize()")


def compile_cost_line(what: str, setup: str, call: str) -> str:
    """One sentence: the first call's CPU seconds with an empty Numba cache, and in a second process."""
    cold, warm = numba_first_call(setup, call)
    return (f"Numba compile cost ({what}, float32, first call, CPU time): {cold:.2f} s with an empty cache, "
            f"{warm:.2f} s in a second process that loads the cache (`cache=True`).")


def gpu_available() -> bool:
    try:
        import cupy  # noqa: F401
        from numba import cuda
    except ImportError:
        return False
    return minidl.cupy_available() and cuda.is_available()


def plot(rows: list, labels: list[str], file: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    width = 0.8 / len(labels)
    for index, label in enumerate(labels):
        ax.bar([i + index * width for i in range(len(rows))], [r[1 + index] for r in rows], width, label=label)
    ax.set_xticks([i + width * (len(labels) - 1) / 2 for i in range(len(rows))], [r[0] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("ms per forward+backward (log)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(file, dpi=110)
    plt.close(fig)


def kernel_bench_parser(doc: str, quick_help: str) -> argparse.ArgumentParser:
    """The command line shared by the kernel benchmarks (this one and bench_matmul.py)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for BLAS, Numba and PyTorch alike (default: each library's own)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: time the GPU contenders only (needs CuPy and a CUDA device)")
    return ap


def cpu_clock_setup(torch, threads: int | None) -> tuple[str, bool, str]:
    """Apply ``--threads`` to PyTorch; (threads wording, time by CPU clock?, clock wording)."""
    if threads:
        torch.set_num_threads(threads)
    wording = f"{threads} thread(s) per library" if threads else "each library's default threads"
    cpu_clock = threads == 1
    return wording, cpu_clock, "process CPU time (one thread per library)" if cpu_clock else "wall time"


def main(argv=None) -> int:
    args = kernel_bench_parser(__doc__, "a quarter of the batch, 3 repeats").parse_args(argv)
    import torch

    if args.device == "cuda":
        return run_gpu_section("bench_conv", "Convolution (CUDA)", gpu_section, torch,
                               3 if args.quick else args.repeats, args.no_write)
    threads, cpu_clock, clock = cpu_clock_setup(torch, args.threads)

    repeats = 3 if args.quick else args.repeats
    scale = 0.25 if args.quick else 1.0
    rows, table = [], []
    for name, s in SHAPES:
        arrays = make_arrays(s, scale)
        default = registry.resolve("conv2d", "cpu", "auto")
        times = blocked_medians({
            "numpy": minidl_step(arrays, s, "numpy"),
            "numba": minidl_step(arrays, s, "numba"),
            "torch": torch_step(torch, arrays, s),
        }, repeats=repeats, cpu_clock=cpu_clock)
        ms = {k: v * 1e3 for k, v in times.items()}
        rows.append([name, ms["numpy"], ms["numba"], ms["torch"]])
        table.append([f"{name} (N={arrays[0].shape[0]})", ms["numpy"], ms["numba"], ms["torch"], default,
                      ms[default] / ms["torch"], ms["numpy"] / ms["numba"]])
        print(f"{name}: numpy {ms['numpy']:.1f} ms, numba {ms['numba']:.1f} ms, torch {ms['torch']:.1f} ms", flush=True)
    pool_x = np.random.default_rng(1).standard_normal((int(32 * scale), 64, 32, 32)).astype(np.float32)
    pool_table = []
    for name, fn, torch_name, kwargs in POOLS:
        times = blocked_medians(pool_steps(torch, pool_x, fn, torch_name, kwargs), repeats=repeats, cpu_clock=cpu_clock)
        ms = {k: v * 1e3 for k, v in times.items()}
        default = registry.resolve(torch_name, "cpu", "auto")
        pool_table.append([name, ms["numpy"], ms["numba"], ms["torch"], default, ms[default] / ms["torch"]])
        print(f"{name}: numpy {ms['numpy']:.1f} ms, numba {ms['numba']:.1f} ms, torch {ms['torch']:.1f} ms", flush=True)
    compile_line = compile_cost_line("conv2d forward + both gradients", CONV_SETUP, CONV_CALL)
    print(compile_line, flush=True)
    body = [
        "conv2d forward + backward (input, weight and bias gradients) of one layer, float32, "
        f"median {clock} of {repeats} repeats (blocks of calls alternating between the contenders over {ROUNDS} rounds, each block after a pause and a warm-up call); ms per step. `default` is the path "
        "`minidl.config.kernels = \"auto\"` takes on the CPU. Goal: default within 2x of PyTorch; "
        "Numba faster than NumPy on two of three shapes. "
        f"Measured with {threads} on {os.cpu_count()} cores shared with other jobs, so expect noise of tens of percent.",
        "",
        markdown_table(["shape", "NumPy path ms", "Numba path ms", "PyTorch ms", "default", "default / PyTorch",
                        "NumPy / Numba"], table),
        "",
        compile_line,
        "",
        "![conv2d CPU](results/conv_cpu.png)",
        "",
        f"Pooling forward + backward on x of shape {pool_x.shape} (float32), ms:",
        "",
        markdown_table(["pool", "NumPy path ms", "Numba path ms", "PyTorch ms", "default", "default / PyTorch"],
                       pool_table),
    ]
    body += ["", "GPU: `--device cuda` times the GPU contenders (section `Convolution (CUDA)`)."]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        plot(rows, ["NumPy path", "Numba path", "PyTorch CPU"], PLOTS / "conv_cpu.png",
             "conv2d forward+backward, float32, CPU")
        write_section("Convolution", text)
    return 0


def run_gpu_section(script: str, title: str, section, torch, repeats: int, no_write: bool) -> int:
    """``--device cuda`` of a kernel benchmark: ``section(torch, repeats)``'s table alone,
    written to its own RESULTS.md section ``title``; exit status 2 without a usable GPU."""
    if not (gpu_available() and torch.cuda.is_available()):
        print(f"{script}: --device cuda needs CuPy, Numba CUDA and PyTorch CUDA with a GPU", file=sys.stderr)
        return 2
    text = section(torch, repeats)
    print(text)
    if not no_write:
        write_section(title, text)
    return 0


def gpu_section(torch, repeats: int) -> str:
    table = []
    for name, s in SHAPES:
        arrays = make_arrays(s, 4.0)
        times = blocked_medians({
            "numpy": minidl_step(arrays, s, "numpy", "cuda"),
            "cuda": minidl_step(arrays, s, "cuda", "cuda"),
            "torch": torch_step(torch, arrays, s, "cuda"),
        }, repeats=repeats)
        ms = {k: v * 1e3 for k, v in times.items()}
        table.append([f"{name} (N={arrays[0].shape[0]})", ms["numpy"], ms["cuda"], ms["torch"],
                      ms["cuda"] / ms["torch"]])
    pool_x = np.random.default_rng(1).standard_normal((128, 64, 32, 32)).astype(np.float32)
    pool_table = []
    for name, fn, torch_name, kwargs in POOLS:
        times = blocked_medians(pool_steps(torch, pool_x, fn, torch_name, kwargs, "cuda"), repeats=repeats)
        ms = {k: v * 1e3 for k, v in times.items()}
        default = registry.resolve(torch_name, "gpu", "auto")
        pool_table.append([name, ms["numpy"], ms["cuda"], ms["torch"], default, ms[default] / ms["torch"]])
    return "\n".join([
        "GPU, same layers at 4x the batch: CuPy path (im2col + cuBLAS), Numba CUDA kernels, PyTorch CUDA; ms per step.",
        "",
        markdown_table(["shape", "CuPy path ms", "Numba CUDA ms", "PyTorch CUDA ms", "Numba CUDA / PyTorch"], table),
        "",
        f"Pooling forward + backward on the GPU, x of shape {pool_x.shape} (float32), ms; `default` is what "
        "`kernels=\"auto\"` takes on CuPy arrays:",
        "",
        markdown_table(["pool", "CuPy path ms", "Numba CUDA ms", "PyTorch CUDA ms", "default", "default / PyTorch"],
                       pool_table),
        "",
        compile_cost_line("CUDA conv2d forward + both gradients", CUDA_SETUP, CUDA_CALL),
    ])


if __name__ == "__main__":
    raise SystemExit(main())
