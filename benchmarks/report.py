"""Shared by the benchmark scripts: machine description and section-wise RESULTS.md updates.

Each script owns one ``## Section`` of ``benchmarks/RESULTS.md`` and replaces only that
section, so scripts can run in any order (or alone) without erasing each other's results.
"""
from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

# PyTorch's OpenMP workers spin after each op by default, stealing the cores that NumPy's
# BLAS needs when both run in one process; passive waiting keeps the comparison fair.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
PLOTS = HERE / "results"

HEADER = """# Benchmark results

Every figure here was measured by the script named in its section, with all contenders
(minidl and its references: PyTorch CPU, raw NumPy, scikit-learn) timed in the same run,
median of several repeats. Ratios > 1 mean minidl is slower than the reference.
Re-run a section with its script; `python -m minidl bench` runs them all.
"""


def pin_threads_from_argv() -> None:
    """Apply a script's ``--threads N`` to BLAS, OpenMP and Numba: call it before NumPy is
    imported, since the thread pools read these variables when they start."""
    if "--threads" in sys.argv[1:-1]:
        count = sys.argv[sys.argv.index("--threads") + 1]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = count


def machine() -> str:
    """One line naming the machine, BLAS and library versions."""
    import numpy as np

    parts = [platform.processor() or platform.machine(), f"{os.cpu_count()} cores", f"Python {platform.python_version()}",
             f"NumPy {np.__version__}"]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        parts.append(f"BLAS {blas.get('name', '?')} {blas.get('version', '')}".strip())
    except Exception:
        pass
    for mod in ("numba", "torch"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            pass
    try:
        import minidl

        if minidl.cupy_available():
            import cupy

            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            name = name.decode() if isinstance(name, bytes) else name
            parts.append(f"GPU {name}, CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
    except Exception:
        pass
    return ", ".join(parts)


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved_medians(contenders: dict[str, Callable[[], object]], repeats: int = 7,
                        warmup: int = 1) -> dict[str, float]:
    """Median time of each contender, calling them in turn (A, B, A, B, ...) so that a
    slow spell of the machine hits all of them alike."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def write_section(title: str, body: str) -> Path:
    """Replace (or append) the section ``## title`` of RESULTS.md with ``body``; atomic write."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    stamp = time.strftime("%Y-%m-%d %H:%M")
    section = f"## {title}\n\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    fd, tmp = tempfile.mkstemp(dir=HERE, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, RESULTS)
    return RESULTS


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A GitHub markdown table."""
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
