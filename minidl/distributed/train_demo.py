"""``mpirun -n P python -m minidl demo --distributed``: the digits demo, data-parallel.

Every process builds the same LeNet5 (rank 0's initial weights are broadcast), reads its
own shard of each epoch's shuffled training set through ``DistributedSampler`` (per-process
batch B, global batch P * B), and averages gradients with ``DistributedDataParallel`` before
each Adam step. The loop is written out by hand: it is the plain loop of the single-process
demo plus three lines (sampler epoch, gradient sync, rank-0-only printing). Rank 0 alone
shows the progress bar, prints the report and writes the checkpoint.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
from tqdm import tqdm

from .. import manual_seed, no_grad, optim, tensor
from ..data import DataLoader
from ..data.datasets import ImageDataset
from ..data.transforms import Compose, Normalize
from ..functional import cross_entropy
from ..models import LeNet5
from ..train.demo import digits_augmentation, digits_splits
from .comm import get_comm
from .ddp import DistributedDataParallel
from .launch import save_on_main
from .sampler import DistributedSampler

__all__ = ["run_distributed_demo", "main"]


def _accuracy(model, X: np.ndarray, y: np.ndarray, mean: float, std: float) -> float:
    model.eval()
    with no_grad():
        logits = model(tensor(((X - mean) / std).astype(np.float32)))
    model.train()
    return float((logits.numpy().argmax(axis=1) == y).mean())


def run_distributed_demo(epochs: int = 30, seed: int = 0, batch_size: int = 32, lr: float = 3e-3,
                         out: str = "minidl_out", progress: bool = True) -> dict:
    """Train LeNet5 on the digits across all MPI processes; returns the test accuracy
    (the same on every rank) and the seconds taken."""
    comm = get_comm()
    main_proc = comm.rank == 0
    start = time.perf_counter()
    manual_seed(seed)  # same initial weights everywhere (rank 0's are broadcast anyway)
    X_tr, X_va, X_te, y_tr, y_va, y_te = digits_splits(seed)
    mean, std = float(X_tr.mean()), float(X_tr.std())
    normalize = Normalize(mean, std)
    augment = Compose([digits_augmentation(seed + 1 + comm.rank), normalize])
    sampler = DistributedSampler(len(y_tr), comm.size, comm.rank, shuffle=True, seed=seed)
    loader = DataLoader(ImageDataset(X_tr, y_tr, transform=augment), batch_size=batch_size, sampler=sampler)

    model = DistributedDataParallel(LeNet5(in_channels=1, num_classes=10, input_size=8), comm)
    opt = optim.Adam(model.parameters(), lr=lr)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    if main_proc:
        print(f"data-parallel demo: {comm.size} process(es), per-process batch {batch_size}, "
              f"global batch {comm.size * batch_size}, {len(y_tr)} training images")
    best = (-1.0, None)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not (progress and main_proc), leave=False)
        for x, y in bar:
            opt.zero_grad()
            loss = cross_entropy(model(x), y)
            model.backward(loss)  # backward + allreduce-average of the gradients
            opt.step()
        sched.step()
        val = _accuracy(model, X_va, y_va, mean, std)  # identical on every rank: same weights
        if val > best[0]:
            best = (val, model.module.state_dict())
    model.module.load_state_dict(best[1])
    test_acc = _accuracy(model, X_te, y_te, mean, std)
    seconds = time.perf_counter() - start
    os.makedirs(out, exist_ok=True)
    save_on_main(model.module.state_dict(), os.path.join(out, "lenet_distributed.npz"), comm)
    if main_proc:
        print(f"best validation accuracy {best[0]:.4f}; test accuracy {test_acc:.4f}; {seconds:.1f} s")
    return {"test_accuracy": test_acc, "val_accuracy": best[0], "seconds": seconds, "world_size": comm.size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mpirun -n P python -m minidl demo --distributed",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32, help="per-process batch size")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--out", default="minidl_out")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    run_distributed_demo(args.epochs, args.seed, args.batch_size, args.lr, args.out, not args.no_progress)
    return 0
