"""``python -m minidl bench``: run the benchmark suite, each script against its reference.

Every script in ``benchmarks/`` times minidl and its reference (PyTorch CPU, raw NumPy)
in the same process and replaces its own section of ``benchmarks/RESULTS.md``. This
command runs them one after another in fresh processes (so one script's thread pools and
compiled kernels do not disturb the next), then prints the file.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

SUITE = [
    ("autograd", "bench_autograd.py", "per-op overhead and an MLP step vs PyTorch"),
    ("matmul", "bench_matmul.py", "Numba CPU matmul kernel vs NumPy BLAS vs PyTorch"),
    ("conv", "bench_conv.py", "conv2d paths (NumPy, Numba) vs PyTorch"),
    ("training", "bench_training.py", "MLP and LeNet training throughput vs PyTorch and a NumPy floor"),
    ("distributed", "bench_distributed.py", "data-parallel scaling on 1 and 2 MPI processes"),
]


def _benchmarks_dir() -> Path:
    here = Path(__file__).resolve().parent.parent / "benchmarks"
    if not here.is_dir():
        raise SystemExit(
            "python -m minidl bench needs the benchmarks/ folder of a source checkout "
            f"(looked in {here}); install minidl with `pip install -e .` from the repository"
        )
    return here


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m minidl bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller cases (< 5 minutes on 2 cores)")
    ap.add_argument("--only", nargs="+", choices=[name for name, _, _ in SUITE], help="run only these benchmarks")
    args = ap.parse_args(argv)
    folder = _benchmarks_dir()
    failures = []
    for name, script, what in SUITE:
        if args.only and name not in args.only:
            continue
        path = folder / script
        if not path.exists():
            print(f"[bench] {name}: {script} is not in this checkout, skipped")
            continue
        cmd = [sys.executable, str(path)] + (["--quick"] if args.quick else [])
        print(f"[bench] {name}: {what}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=folder.parent)
        print(f"[bench] {name}: {'ok' if rc == 0 else f'failed (exit {rc})'} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failures.append(name)
    results = folder / "RESULTS.md"
    if results.exists():
        print(f"\nResults written to {results}")
    if failures:
        print("failed: " + ", ".join(failures))
    return 1 if failures else 0
