"""Autograd overhead: minidl against PyTorch CPU, in the same run.

1. Per-op overhead: forward + backward of a chain of 1,000 elementwise ops on a tiny
   tensor (4 elements), where the time is all bookkeeping (Tensor creation, graph
   recording, the graph walk), none of it arithmetic.
2. A 2-layer MLP training step (784-256-10, batch 128, ReLU, softmax cross-entropy, plain
   SGD update), where BLAS does most of the work.

``--device cuda`` runs both on the GPU (minidl on CuPy, PyTorch CUDA).

Median of repeats; ratio = minidl time / PyTorch time (goal: <= 3 for 1, <= 1.25 for 2).

    python benchmarks/bench_autograd.py [--repeats 7] [--quick] [--device cpu|cuda] [--no-write]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from benchmarks.report import interleaved_medians, markdown_table, write_section  # noqa: E402

CHAIN = 1000


DEVICE = "cpu"


def _sync(torch=None):
    """Wait for queued GPU work, so that a GPU timing covers the work and not its launch."""
    if DEVICE == "cuda":
        if torch is not None:
            torch.cuda.synchronize()
        else:
            minidl.backend.cupy.cuda.get_current_stream().synchronize()


def chain_minidl():
    x = minidl.tensor(np.ones(4, dtype=np.float32), requires_grad=True, device=DEVICE)

    def run():
        y = x
        for i in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        y.sum().backward()
        x.grad = None
        _sync()
    return run


def chain_torch(torch):
    x = torch.ones(4, requires_grad=True, device=DEVICE)

    def run():
        y = x
        for i in range(CHAIN // 2):
            y = y * 1.0001
            y = y + 0.001
        y.sum().backward()
        x.grad = None
        _sync(torch)
    return run


def mlp_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((128, 784)).astype(np.float32)
    y = rng.integers(0, 10, 128)
    w1 = (rng.standard_normal((256, 784)) / 28).astype(np.float32)
    w2 = (rng.standard_normal((10, 256)) / 16).astype(np.float32)
    return X, y, w1, np.zeros(256, np.float32), w2, np.zeros(10, np.float32)


def mlp_minidl():
    X, y, *params = mlp_data()
    X, y = minidl.tensor(X, device=DEVICE), minidl.tensor(y, device=DEVICE)
    w1, b1, w2, b2 = (minidl.tensor(p, requires_grad=True, device=DEVICE) for p in params)

    def step():
        h = F.relu(F.linear(X, w1, b1))
        logits = F.linear(h, w2, b2)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        with minidl.no_grad():
            for p in (w1, b1, w2, b2):
                p.data -= 0.01 * p.grad.data
                p.grad = None
        _sync()
    return step


def mlp_torch(torch):
    X, y, *params = mlp_data()
    X, y = torch.from_numpy(X).to(DEVICE), torch.from_numpy(y).to(DEVICE)
    w1, b1, w2, b2 = (torch.tensor(p, requires_grad=True, device=DEVICE) for p in params)
    tf = torch.nn.functional

    def step():
        h = tf.relu(tf.linear(X, w1, b1))
        logits = tf.linear(h, w2, b2)
        loss = tf.cross_entropy(logits, y)
        loss.backward()
        with torch.no_grad():
            for p in (w1, b1, w2, b2):
                p -= 0.01 * p.grad
                p.grad = None
        _sync(torch)
    return step


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 repeats")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: minidl on CuPy against PyTorch CUDA")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = 3
    global DEVICE
    DEVICE = args.device
    import torch

    if DEVICE == "cuda" and not (minidl.cupy_available() and torch.cuda.is_available()):
        print("bench_autograd: --device cuda needs CuPy and PyTorch CUDA with a GPU", file=sys.stderr)
        return 2
    rows = []
    t = interleaved_medians({"minidl": chain_minidl(), "torch": chain_torch(torch)}, args.repeats)
    t_m, t_t = t["minidl"], t["torch"]
    rows.append(["1,000-op chain, fwd+bwd (per op)", f"{t_m / CHAIN * 1e6:.2f} us", f"{t_t / CHAIN * 1e6:.2f} us",
                 f"{t_m / t_t:.2f}", "<= 3"])
    t = interleaved_medians({"minidl": mlp_minidl(), "torch": mlp_torch(torch)}, args.repeats * 5, warmup=3)
    t_m, t_t = t["minidl"], t["torch"]
    rows.append(["MLP 784-256-10 step, batch 128", f"{t_m * 1e3:.2f} ms", f"{t_t * 1e3:.2f} ms", f"{t_m / t_t:.2f}", "<= 1.25"])
    ref = f"PyTorch CPU ({torch.get_num_threads()} threads)" if DEVICE == "cpu" else "PyTorch CUDA"
    table = markdown_table(["case", "minidl", ref, "ratio", "goal"], rows)
    print(table)
    if not args.no_write:
        suffix = "" if DEVICE == "cpu" else ", CUDA"
        write_section(f"Autograd overhead (bench_autograd.py{suffix})", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
