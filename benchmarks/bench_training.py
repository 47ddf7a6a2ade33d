"""Training throughput: samples per second of one training epoch, minidl vs PyTorch vs NumPy.

Two workloads on random data (the numbers do not depend on what is learned):

* MLP 784-256-256-10 with ReLU, batch 128 (``--device cuda``: 4096);
* LeNet-5 on 1x28x28 images (``minidl.models.LeNet5(input_size=28)``), batch 64 (cuda: 1024).

One epoch = for each batch: forward, cross-entropy, backward, SGD step (momentum 0.9).
Contenders, timed in the same run on the same pre-cut batches of float32 arrays:

* minidl (``Tensor`` wrappers around the NumPy batches, no copies);
* PyTorch CPU (same architecture and optimizer; ``torch.set_num_threads`` left at its
  default, reported in the output);
* for the MLP, a hand-written NumPy MLP with manual backpropagation and the same update:
  the floor for any framework built on NumPy (on the GPU the same code on CuPy arrays).

Run: ``python benchmarks/bench_training.py [--repeats R] [--batches B] [--device cuda]``. Writes
the ``## Training throughput`` section of RESULTS.md and ``results/training_throughput.png``
(``--device cuda``: ``## Training throughput (CUDA)`` and ``results/training_throughput_cuda.png``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
from minidl import optim  # noqa: E402
from minidl.models import LeNet5, MLP  # noqa: E402

try:
    from benchmarks.report import PLOTS, markdown_table, write_section  # noqa: E402
except ImportError:  # run as a script from inside benchmarks/
    from report import PLOTS, markdown_table, write_section  # type: ignore  # noqa: E402

LR, MOMENTUM = 0.01, 0.9
DEVICE = "cpu"  # --device cuda: minidl on CuPy and PyTorch CUDA (no NumPy floor there)


def make_batches(n_batches: int, batch: int, shape: tuple, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_batches`` pairs (x (batch, *shape) float32 N(0,1), y (batch,) int64 in 0..9)."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch, *shape)).astype(np.float32),
             rng.integers(0, 10, batch).astype(np.int64)) for _ in range(n_batches)]


# ------------------------------------------------------------------------------ minidl

def minidl_epoch_fn(model: minidl.nn.Module, batches: list):
    """A closure running one training epoch of ``model`` over ``batches``."""
    model.to(DEVICE)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(minidl.tensor(x, device=DEVICE), minidl.tensor(y, device=DEVICE)) for x, y in batches]
    model.train()

    def epoch() -> None:
        for x, y in data:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        if DEVICE == "cuda":
            minidl.backend.cupy.cuda.get_current_stream().synchronize()

    return epoch


# ------------------------------------------------------------------------------ PyTorch

def torch_epoch_fn(kind: str, batches: list):
    import torch

    nn = torch.nn
    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                              nn.ReLU(), nn.Linear(256, 10))
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    model.to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(torch.from_numpy(x).to(DEVICE), torch.from_numpy(y).to(DEVICE)) for x, y in batches]
    model.train()

    def epoch() -> None:
        for x, y in data:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    return epoch


# ------------------------------------------------------------------------------ NumPy floor

class NumpyMLP:
    """784-256-256-10 ReLU MLP with hand-written backpropagation and SGD with momentum.

    Forward: ``h1 = relu(x W1^T + b1)``, ``h2 = relu(h1 W2^T + b2)``, ``z = h2 W3^T + b3``,
    ``L = mean_i(logsumexp(z_i) - z_i[y_i])``. Backward: ``dz = (softmax(z) - onehot(y)) / B``,
    ``dW3 = dz^T h2``, ``db3 = sum_i dz``, ``dh2 = (dz W3) * [h2 > 0]``, and so on down.
    Update: ``v <- momentum v + g``, ``w <- w - lr v`` (PyTorch's SGD).
    """

    def __init__(self, sizes=(784, 256, 256, 10), seed: int = 0, xp=np) -> None:
        rng = np.random.default_rng(seed)
        self.xp = xp  # numpy, or cupy for the GPU floor
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / np.sqrt(fan_in)
            self.params.append(xp.asarray(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)))
            self.params.append(xp.asarray(rng.uniform(-bound, bound, fan_out).astype(np.float32)))
        self.velocity = [xp.zeros_like(p) for p in self.params]

    def step(self, x, y) -> None:
        xp = self.xp
        W1, b1, W2, b2, W3, b3 = self.params
        B = x.shape[0]
        rows = xp.arange(B)
        x = x.reshape(B, -1)
        h1 = xp.maximum(x @ W1.T + b1, 0)
        h2 = xp.maximum(h1 @ W2.T + b2, 0)
        z = h2 @ W3.T + b3
        z = z - z.max(axis=1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        self.loss = xp.mean(xp.log(s[:, 0]) - z[rows, y])  # left on the device, like the frameworks'
        dz = e / s
        dz[rows, y] -= 1.0
        dz /= B
        dh2 = dz @ W3
        dh2 *= h2 > 0
        dh1 = dh2 @ W2
        dh1 *= h1 > 0
        grads = [dh1.T @ x, dh1.sum(axis=0), dh2.T @ h1, dh2.sum(axis=0), dz.T @ h2, dz.sum(axis=0)]
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= MOMENTUM
            v += g
            p -= LR * v


def numpy_epoch_fn(batches: list):
    xp = minidl.backend.cupy if DEVICE == "cuda" else np
    net = NumpyMLP(xp=xp)
    data = [(xp.asarray(x), xp.asarray(y)) for x, y in batches]

    def epoch() -> None:
        for x, y in data:
            net.step(x, y)
        if DEVICE == "cuda":
            xp.cuda.get_current_stream().synchronize()

    return epoch


# ------------------------------------------------------------------------------ main

def workloads(mlp_batch: int, lenet_batch: int) -> tuple[str, str]:
    """The two workload labels used as table rows."""
    return f"MLP 784-256-256-10, batch {mlp_batch}", f"LeNet-5 1x28x28, batch {lenet_batch}"


def measure(repeats: int, mlp_batches: int, lenet_batches: int, mlp_batch: int = 128,
            lenet_batch: int = 64) -> dict:
    """``{(workload, contender): samples per second}`` and the sample counts."""
    import torch

    results = {}
    minidl.manual_seed(0)
    mlp_data = make_batches(mlp_batches, mlp_batch, (1, 28, 28))
    lenet_data = make_batches(lenet_batches, lenet_batch, (1, 28, 28), seed=1)
    n_mlp, n_lenet = mlp_batch * mlp_batches, lenet_batch * lenet_batches
    mlp, lenet = workloads(mlp_batch, lenet_batch)
    floor = "NumPy by hand" if DEVICE == "cpu" else "CuPy by hand"
    runs = [
        (mlp, "minidl", n_mlp, minidl_epoch_fn(MLP(784, (256, 256), 10), mlp_data)),
        (mlp, "PyTorch", n_mlp, torch_epoch_fn("mlp", mlp_data)),
        (mlp, floor, n_mlp, numpy_epoch_fn(mlp_data)),
        (lenet, "minidl", n_lenet, minidl_epoch_fn(LeNet5(1, 10, 28), lenet_data)),
        (lenet, "PyTorch", n_lenet, torch_epoch_fn("lenet", lenet_data)),
    ]
    # Interleaved: each round times one epoch of every contender in turn, so that all of
    # them see the same background load on a shared machine. Throughputs are medians over
    # rounds; ratios between contenders are medians of the per-round ratios (paired, so a
    # round slowed by another job on the machine slows both sides of its ratio alike).
    for _, _, _, fn in runs:
        fn()                                               # warm-up (JIT, caches, buffers)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, (_, _, _, fn) in enumerate(runs):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    for (workload, who, n, _), ts in zip(runs, times):
        seconds = statistics.median(ts)
        results[(workload, who)] = n / seconds
        print(f"{workload:32s} {who:14s} {n / seconds:10.0f} samples/s ({seconds:.3f} s/epoch)")
    results["threads"] = torch.get_num_threads()
    results["workloads"] = (mlp, lenet)
    results["rounds"] = {(workload, who): ts for (workload, who, _, _), ts in zip(runs, times)}
    return results


def _plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = [k for k in results if isinstance(k, tuple)]
    fig = Figure(figsize=(8, 0.45 * len(keys) + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{w.split(',')[0]}: {who}" for w, who in keys]
    ax.barh(range(len(keys)), [results[k] for k in keys], color="tab:blue")
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("training samples / second (higher is better)")
    ax.set_title("One training epoch, random data")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _blas_threads() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    counts = sorted({str(i["num_threads"]) for i in threadpool_info() if i.get("user_api") == "blas"})
    return "/".join(counts) or "?"


def _table(r: dict, repeats: int, batches: int, label: str) -> tuple[str, dict]:
    mlp, lenet = r["workloads"]
    floor_name = "NumPy by hand" if DEVICE == "cpu" else "CuPy by hand"
    rounds = r["rounds"]

    def paired(workload: str, who: str, reference: str) -> float:
        """Median over rounds of who's throughput / reference's (same samples per epoch)."""
        return statistics.median(t_ref / t for t, t_ref in zip(rounds[(workload, who)], rounds[(workload, reference)]))

    rows = []
    for workload in (mlp, lenet):
        for who in ("minidl", "PyTorch", floor_name):
            if (workload, who) in r:
                rows.append([workload, who, round(r[(workload, who)]), paired(workload, who, "PyTorch"),
                             paired(workload, who, floor_name) if (workload, floor_name) in r else "-"])
    ratios = {"mlp_vs_torch": paired(mlp, "minidl", "PyTorch"), "lenet_vs_torch": paired(lenet, "minidl", "PyTorch"),
              "mlp_vs_numpy": paired(mlp, "minidl", floor_name)}
    floor_text = (f" and {ratios['mlp_vs_numpy']:.2f}x the hand-written {floor_name.split()[0]} floor "
                  f"(goal >= 0.85x: {'met' if ratios['mlp_vs_numpy'] >= 0.85 else 'NOT met'})")
    verdict = "\n".join([
        f"- MLP: minidl at {ratios['mlp_vs_torch']:.2f}x PyTorch's throughput (goal >= 0.8x: "
        f"{'met' if ratios['mlp_vs_torch'] >= 0.8 else 'NOT met'}){floor_text}.",
        f"- LeNet-5: minidl at {ratios['lenet_vs_torch']:.2f}x PyTorch's throughput (goal >= 0.5x: "
        f"{'met' if ratios['lenet_vs_torch'] >= 0.5 else 'NOT met'}).",
    ])
    text = (f"**{label}** (PyTorch threads: {r['threads']}, NumPy BLAS threads: {r['blas']})\n\n"
            + markdown_table(["workload", "contender", "samples/s", "vs PyTorch (paired)", "vs hand-written floor (paired)"], rows)
            + "\n\n" + verdict)
    return text, ratios


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed epochs per contender (median)")
    p.add_argument("--batches", type=int, default=40, help="MLP batches per epoch (LeNet: half)")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    p.add_argument("--quick", action="store_true", help="3 repeats of 16 MLP batches")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cuda: minidl on CuPy against PyTorch CUDA and a hand-written CuPy MLP (needs a GPU)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="MLP batch (default 128 on the CPU, 4096 on cuda); LeNet uses a quarter of it on cuda, half on the CPU")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.batches = 3, 16
    global DEVICE
    DEVICE = args.device
    import torch

    if DEVICE == "cuda" and not (minidl.cupy_available() and torch.cuda.is_available()):
        print("bench_training: --device cuda needs CuPy and PyTorch CUDA with a GPU", file=sys.stderr)
        return 2
    mlp_batch = args.batch_size or (4096 if DEVICE == "cuda" else 128)
    lenet_batch = mlp_batch // 4 if DEVICE == "cuda" else mlp_batch // 2
    lenet_batches = max(args.batches // 2, 1)
    print("default threads")
    r = measure(args.repeats, args.batches, lenet_batches, mlp_batch, lenet_batch)
    r["blas"] = _blas_threads()
    default_text, _ = _table(r, args.repeats, args.batches, "Default threads (as installed)" if DEVICE == "cpu"
                             else f"GPU ({torch.cuda.get_device_name()})")
    texts = [default_text]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None and DEVICE == "cpu":
        # Second pass: one thread everywhere, which removes thread oversubscription on a
        # shared machine and compares the frameworks' own overheads on equal footing.
        print("one thread everywhere")
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with threadpool_limits(limits=1):
                r1 = measure(args.repeats, args.batches, lenet_batches)
                r1["blas"] = _blas_threads()
        finally:
            torch.set_num_threads(before)
        texts.append(_table(r1, args.repeats, args.batches, "One thread everywhere "
                            "(threadpoolctl limits NumPy's BLAS, torch.set_num_threads(1))")[0])
        r1_plot = {(w, f"{who} (1 thread)"): v for (w, who), v in
                   ((k, v) for k, v in r1.items() if isinstance(k, tuple))}
    else:
        r1_plot = {}
    command = "python benchmarks/bench_training.py" + (" --device cuda" if DEVICE == "cuda" else "")
    body = (f"`{command}` — samples/s of one training epoch (forward, "
            f"cross-entropy, backward, SGD momentum step) on random data; median of "
            f"{args.repeats} epochs after one warm-up, the contenders interleaved epoch by epoch; {args.batches} MLP batches and "
            f"{lenet_batches} LeNet batches per epoch. "
            + ("In the first table PyTorch keeps its default thread count (`torch.set_num_threads` untouched)."
               if DEVICE == "cpu" else "All contenders on the GPU; each epoch ends with a device synchronisation.")
            + "\n\n" + "\n\n".join(texts)
            + f"\n\nPlot: `results/training_throughput{'' if DEVICE == 'cpu' else '_cuda'}.png`.")
    print(body)
    if not args.no_write:
        _plot({**{k: v for k, v in r.items() if isinstance(k, tuple)}, **r1_plot},
              PLOTS / ("training_throughput.png" if DEVICE == "cpu" else "training_throughput_cuda.png"))
        write_section("Training throughput" + ("" if DEVICE == "cpu" else " (CUDA)"), body)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    raise SystemExit(main())
