"""Data-parallel scaling: does training on 2 processes beat 1 process using the same cores?

Every configuration trains the same MLP (784-256-256-10, SGD with momentum) on the same
global batches of the same samples: global batch G, split into G / P rows per process with P
processes (``DistributedDataParallel``, one bucketed allreduce per step). The configurations:

- 1 process with one thread per core (plain ``python``, NumPy's default): the baseline;
- 1 process with 1 thread: what one core does alone;
- 2 processes under ``mpirun`` (Open MPI binds each to a core; ``DistributedDataParallel``
  gives each process its share of the cores for its thread pools);
- full run only: the same 2 processes without any gradient sync, each training on its own
  half: the ceiling for data parallelism on this machine (what two processes computing side
  by side achieve with communication for free); their weights differ, as they must;
- full run only: 2 processes neither bound nor pinned (``--bind-to none``, two BLAS threads
  each on 2 cores): the oversubscription that the thread pinning prevents.

Each process times ``--windows`` windows of steps between barriers and keeps the fastest
(the machine may be shared: that window is the one least disturbed by other jobs); each
configuration is launched ``--repeats`` times, interleaved with the others, and the median
launch is reported. A step is split into compute (forward, backward, optimizer
step) and gradient sync (packing, allreduce, waiting for the slower process, unpacking),
averaged over the processes; "allreduce alone" times the same buffer's allreduce after a
barrier. All configurations run the same number of steps, so their final weights must agree
to float32 rounding: the largest difference from the baseline's weights is reported too.

    python benchmarks/bench_distributed.py [--quick] [--no-write] [--batches 128 512 2048]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
WARMUP_STEPS = 5
WINDOW_SAMPLES = 12288  # samples per timing window: about 0.15 s of training on 2 cores
OVERHEAD_BATCH = 8  # a batch so small that a step is almost only its fixed, per-step cost


def steps_per_window(global_batch: int) -> int:
    return max(4, min(200, WINDOW_SAMPLES // global_batch))


def worker(global_batch: int, windows: int, out: str, pin: bool, sync_gradients: bool) -> None:
    """One process's share of the training; rank 0 prints a JSON line and saves the weights."""
    import numpy as np

    import minidl
    import minidl.functional as F
    from minidl import nn, optim
    from minidl.distributed import DistributedDataParallel, get_comm

    comm = get_comm()
    minidl.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    model = DistributedDataParallel(net, comm, threads_per_process="auto" if pin else None)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)  # the same global batch in every process and configuration
    X = rng.standard_normal((global_batch, 784)).astype(np.float32)
    Y = rng.integers(0, 10, global_batch)
    if global_batch % comm.size:
        raise SystemExit(f"global batch {global_batch} does not split into {comm.size} processes")
    rows = slice(comm.rank * global_batch // comm.size, (comm.rank + 1) * global_batch // comm.size)
    x, y = minidl.tensor(X[rows]), minidl.tensor(Y[rows])

    def step() -> tuple[float, float]:
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        t1 = time.perf_counter()
        if sync_gradients:
            model.sync_gradients()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return (t1 - t0) + (t3 - t2), t2 - t1

    for _ in range(WARMUP_STEPS):
        step()
    steps = steps_per_window(global_batch)
    results = []
    for _ in range(windows):
        compute_total = sync_total = 0.0
        comm.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            c, s = step()
            compute_total += c
            sync_total += s
        comm.barrier()
        results.append(((time.perf_counter() - t0) / steps, compute_total / steps, sync_total / steps))
    step_s, compute_s, sync_s = min(results)  # the window least disturbed by other jobs

    flat = np.empty(sum(p.data.size for p in model.parameters()), dtype=np.float32)
    reps = 20
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(reps):
        comm.allreduce_(flat)
    allreduce_s = (time.perf_counter() - t0) / reps if comm.size > 1 else 0.0

    from threadpoolctl import threadpool_info

    blas = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=0)
    everyone = comm.allgather((compute_s, sync_s, blas))
    if comm.rank == 0:
        np.save(out, np.concatenate([p.data.reshape(-1) for p in net.parameters()]))
        print(json.dumps({
            "step_s": step_s, "compute_s": statistics.mean(e[0] for e in everyone),
            "sync_s": statistics.mean(e[1] for e in everyone), "allreduce_s": allreduce_s,
            "blas_threads": sorted({e[2] for e in everyone}), "steps": WARMUP_STEPS + windows * steps,
        }))


CONFIGS = {
    # name: (processes, threads per process for the environment (None: unset), mpirun options
    # (None: plain python), pin threads, sync gradients)
    "base": (1, os.cpu_count() or 1, None, True, True),
    "one": (1, 1, None, True, True),
    "ddp": (2, None, [], True, True),
    "nosync": (2, None, [], True, False),
    "unpinned": (2, None, ["--bind-to", "none"], False, True),
}


def label(name: str, blas: list[int]) -> str:
    procs = CONFIGS[name][0]
    threads = "/".join(map(str, blas))
    if name == "unpinned":
        return f"2 processes, unbound, not pinned ({threads} BLAS threads each)"
    if name == "nosync":
        return f"2 processes, {threads} thread{'s' if threads != '1' else ''} each, no gradient sync (upper bound)"
    if procs == 1:
        return f"1 process, {threads} thread{'s' if threads != '1' else ''}"
    return f"2 processes under mpirun, {threads} thread{'s' if threads != '1' else ''} each"


def launch(name: str, global_batch: int, windows: int, out: str) -> dict:
    procs, threads, mpirun_opts, pin, sync = CONFIGS[name]
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env.update(PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARIABLES})
    cmd = [sys.executable, __file__, "--worker", "--batch", str(global_batch), "--windows", str(windows),
           "--out", out] + ([] if pin else ["--no-pin"]) + ([] if sync else ["--no-sync"])
    if mpirun_opts is not None:
        cmd = ["mpirun", "-n", str(procs), *mpirun_opts, *cmd]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stdout}\n{run.stderr}")
    return json.loads([line for line in run.stdout.splitlines() if line.startswith("{")][-1])


def plot(batches: list[int], names: list[str], results: dict, labels: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        xs = [g for g in batches if (name, g) in results]
        left.plot(xs, [g / results[name, g]["step_s"] for g in xs], marker="o", label=labels[name])
    left.set(xscale="log", xlabel="global batch", ylabel="samples / s", title="MLP training throughput")
    left.minorticks_off()
    left.set_xticks(batches, [str(g) for g in batches])
    left.legend(fontsize=8)
    pos = range(len(batches))
    compute = [1e3 * results["ddp", g]["compute_s"] for g in batches]
    sync = [1e3 * results["ddp", g]["sync_s"] for g in batches]
    right.bar([p - 0.2 for p in pos], compute, 0.4, label="2 processes: compute")
    right.bar([p - 0.2 for p in pos], sync, 0.4, bottom=compute, label="2 processes: gradient sync")
    right.bar([p + 0.2 for p in pos], [1e3 * results["base", g]["step_s"] for g in batches], 0.4,
              label=labels["base"] + ": step")
    right.set_xticks(list(pos), [str(g) for g in batches])
    right.set(xlabel="global batch", ylabel="ms per step", title="Where a step's time goes")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def notes(batches: list[int], names: list[str], results: dict, megabytes: float) -> str:
    """The reading of the table, in sentences built from the measured figures."""
    def ratio(name: str, g: int) -> float:
        return results["base", g]["step_s"] / results[name, g]["step_s"]

    def listed(name: str) -> str:
        return ", ".join(f"{ratio(name, g):.2f}x" for g in batches)

    small, large = min(batches), max(batches)
    overhead = results["one", OVERHEAD_BATCH]["step_s"]
    text = [f"**Reading it.** At global batch {', '.join(map(str, batches))}, 2 processes train at {listed('ddp')} "
            f"the throughput of 1 process using all cores."]
    if "nosync" in names:
        text.append(f"With no gradient sync at all (each process trains on its half alone, which bounds what any "
                    f"sync can reach) they reach {listed('nosync')}.")
    text.append(f"Two things keep that under 2x. The baseline already runs its matrix products on both cores "
                f"(1 process on 1 thread reaches {listed('one')} of it). And each process pays the fixed cost of "
                f"a step in full: one Python call per op in the forward pass, the backward pass and the "
                f"optimizer, {1e3 * overhead:.2f} ms per step at batch {OVERHEAD_BATCH} on 1 thread, against "
                f"{1e3 * results['one', small]['step_s']:.2f} ms at batch {small}. Splitting a batch divides only "
                f"the rest.")
    ddp = results["ddp", small]
    text.append(f"The gradient sync then costs {1e3 * ddp['sync_s']:.2f} ms of the {1e3 * ddp['step_s']:.2f} ms "
                f"step at batch {small}. The allreduce of the {megabytes:.2f} MB buffer alone takes "
                f"{1e3 * ddp['allreduce_s']:.2f} ms; the rest is copying the gradients in and out of the buffer "
                f"and waiting for the slower process.")
    if ratio("ddp", large) >= 1:
        text.append(f"Data parallelism on one machine pays once the per-sample work dominates the fixed cost: "
                    f"{ratio('ddp', large):.2f}x at batch {large}.")
    else:
        text.append(f"In this run it does not pay even at batch {large} ({ratio('ddp', large):.2f}x).")
    if "unpinned" in names:
        text.append(f"Without core binding (`mpirun --bind-to none`) and without thread pinning, each process "
                    f"starts one BLAS thread per core and the 2 processes oversubscribe the cores: "
                    f"{ratio('unpinned', large):.2f}x at batch {large}. `DistributedDataParallel` prevents this "
                    f"by giving each process its share of the cores (`threads_per_process='auto'`).")
    return " ".join(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 batch sizes, 1 launch each, 5 windows (about 30 s)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--batches", type=int, nargs="+", help="global batch sizes (default 128 512 2048)")
    ap.add_argument("--repeats", type=int, help="launches per configuration (default 3, quick 1)")
    ap.add_argument("--windows", type=int, help="timing windows per launch (default 7, quick 5)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--no-pin", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-sync", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.batch, args.windows, args.out, not args.no_pin, not args.no_sync)
        return 0
    if shutil.which("mpirun") is None:
        print("mpirun not found: install Open MPI and mpi4py to run this benchmark")
        return 1
    import numpy as np

    from benchmarks.report import markdown_table, write_section

    batches = args.batches or ([128, 1024] if args.quick else [128, 512, 2048])
    repeats = args.repeats or (1 if args.quick else 3)
    windows = args.windows or (5 if args.quick else 7)
    names = ["base", "one", "ddp"] + ([] if args.quick else ["nosync", "unpinned"])
    unpinned_batch = max(batches)
    runs: dict = {}
    weights: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):  # interleaved: a slow spell of the machine hits every configuration
            for g in batches:
                for name in names:
                    if name == "unpinned" and (g != unpinned_batch or r > 0):
                        continue  # slow (that is its point): once, at the largest batch
                    out = os.path.join(tmp, f"{name}_{g}.npy")
                    runs.setdefault((name, g), []).append(launch(name, g, windows, out))
                    weights[name, g] = np.load(out)
                    print(f"  {name:9s} batch {g:5d}: {g / runs[name, g][-1]['step_s']:9.0f} samples/s", flush=True)
            out = os.path.join(tmp, "overhead.npy")
            runs.setdefault(("one", OVERHEAD_BATCH), []).append(launch("one", OVERHEAD_BATCH, windows, out))
    results = {key: sorted(rs, key=lambda res: res["step_s"])[len(rs) // 2] for key, rs in runs.items()}
    labels = {name: label(name, next(res["blas_threads"] for (n, _), res in results.items() if n == name))
              for name in names}

    header = ["global batch", "configuration", "samples/s", "vs 1 process, all cores (range over launches)",
              "ms per step", "compute ms", "gradient sync ms", "allreduce alone ms", "max weight difference"]
    rows = []
    for g in batches:
        base = results["base", g]
        for name in names:
            if (name, g) not in results:
                continue
            res = results[name, g]
            diff = float(np.abs(weights[name, g] - weights["base", g]).max())
            paired = [b["step_s"] / r["step_s"] for b, r in zip(runs["base", g], runs[name, g])]
            spread = f" ({min(paired):.2f}-{max(paired):.2f})" if len(paired) > 1 and name != "base" else ""
            rows.append([g, labels[name], f"{g / res['step_s']:.0f}", f"{base['step_s'] / res['step_s']:.2f}{spread}",
                         f"{1e3 * res['step_s']:.2f}", f"{1e3 * res['compute_s']:.2f}", f"{1e3 * res['sync_s']:.2f}",
                         f"{1e3 * res['allreduce_s']:.2f}" if res["allreduce_s"] else "-",
                         "-" if name == "base" else f"{diff:.1e}"])
    if "nosync" in names:
        rows = [row if "no gradient sync" not in row[1] else row[:-3] + ["-", "-", "(not synced)"] for row in rows]
    body = markdown_table(header, rows)
    body += (f"\n\nMLP 784-256-256-10 ({weights['base', batches[0]].size} float32 parameters, a "
             f"{4 * weights['base', batches[0]].size / 2**20:.2f} MB gradient buffer), SGD with momentum; every "
             f"configuration trains on the same global batch of the same samples for the same number of steps "
             f"(fastest of {windows} timing windows of about {WINDOW_SAMPLES} samples, the one least disturbed "
             f"by other jobs on the machine; median of {repeats} interleaved launches, and in brackets the "
             f"range of the ratio over the launches, each paired with the baseline launched just before it). "
             f"Compute and gradient sync are per step, averaged over the processes; sync includes waiting "
             f"for the slower process.")
    body += "\n\n" + notes(batches, names, results, 4 * weights["base", batches[0]].size / 2**20)
    print(body)
    if not args.no_write:
        from benchmarks.report import PLOTS

        PLOTS.mkdir(exist_ok=True)
        plot(batches, names, results, labels, PLOTS / "data_parallel.png")
        write_section("Data-parallel scaling (bench_distributed.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
