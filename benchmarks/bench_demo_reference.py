"""The demo's reference: the same LeNet-5 and recipe in PyTorch, trained in the same run.

For each seed, both frameworks get exactly the same data: the demo's stratified split, the
same training batches in the same order with the same augmentation (both read the very
same minidl ``DataLoader`` pipeline, rebuilt from the seed) and the same standardisation.
Same architecture (``LeNet5(input_size=8)``: conv5x5(6, pad 2)-ReLU-pool-conv5x5(16, pad 2)-
ReLU-pool-120-84-10), same recipe: Adam (lr 3e-3), cosine annealing over the epochs, batch
32, early stopping on the validation loss with the best weights restored. Only the
initial weights differ (each framework's own seeded default initialisation).

Run: ``python benchmarks/bench_demo_reference.py [--epochs N] [--seeds 0 1 2]``. Writes the
``## Demo reference (digits, LeNet-5)`` section of RESULTS.md.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minidl.train.demo import DEMO_RECIPE, digits_loaders, run_demo  # noqa: E402

try:
    from benchmarks.report import markdown_table, write_section  # noqa: E402
except ImportError:  # run as a script from inside benchmarks/
    from report import markdown_table, write_section  # type: ignore  # noqa: E402


def torch_lenet8():
    """LeNet-5 for 8x8 inputs in PyTorch, layer for layer as ``minidl.models.LeNet5(input_size=8)``."""
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 2 * 2, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def _torch_batch(batch):
    import torch

    x, y = batch
    return torch.from_numpy(x.numpy()), torch.from_numpy(y.numpy())


def train_torch(seed: int, epochs: int, batch_size: int = 32) -> dict:
    """The demo's recipe in PyTorch; returns accuracies, epochs run and seconds."""
    import torch

    start = time.perf_counter()
    torch.manual_seed(seed)
    train_loader, plain = digits_loaders(seed, batch_size)
    model = torch_lenet8()
    opt = torch.optim.Adam(model.parameters(), lr=DEMO_RECIPE["lr"],
                           weight_decay=DEMO_RECIPE["weight_decay"])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    loss_fn = torch.nn.functional.cross_entropy

    def evaluate(loader) -> tuple[float, float]:
        model.eval()
        total, correct, n = 0.0, 0, 0
        with torch.no_grad():
            for batch in loader:
                x, y = _torch_batch(batch)
                out = model(x)
                total += float(loss_fn(out, y)) * len(y)
                correct += int((out.argmax(1) == y).sum())
                n += len(y)
        return total / n, correct / n

    best, best_state, best_epoch, wait, ran = float("inf"), None, 0, 0, 0
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in train_loader:
            x, y = _torch_batch(batch)
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
        val_loss, _ = evaluate(plain["val"])
        sched.step()
        ran = epoch
        if val_loss < best:
            best, best_state, best_epoch, wait = val_loss, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            wait += 1
            if wait >= DEMO_RECIPE["patience"]:
                break
    model.load_state_dict(best_state)
    acc = {name: evaluate(loader)[1] for name, loader in plain.items()}
    return {"train": acc["train"], "val": acc["val"], "test": acc["test"], "epochs_run": ran,
            "best_epoch": best_epoch, "seconds": time.perf_counter() - start}


def train_minidl(seed: int, epochs: int, batch_size: int = 32) -> dict:
    r = run_demo(epochs=epochs, seed=seed, batch_size=batch_size, out=str(Path("/tmp") / "minidl_ref_demo"),
                 progress=False, verbose=False)
    return {"train": 1 - r["train_error"], "val": 1 - r["val_error"], "test": r["test_accuracy"],
            "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"], "seconds": r["seconds"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=60, help="maximum epochs (the demo's default)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args(argv)
    import torch

    rows, tests = [], {"minidl": [], "PyTorch": []}
    for seed in args.seeds:
        for name, fn in (("minidl", train_minidl), ("PyTorch", train_torch)):
            r = fn(seed, args.epochs)
            tests[name].append(r["test"])
            rows.append([seed, name, f"{r['test']:.4f}", f"{r['val']:.4f}", f"{r['train']:.4f}",
                         r["epochs_run"], r["best_epoch"], f"{r['seconds']:.1f}"])
            print(rows[-1], flush=True)
    summary = "\n".join(
        f"- {name}: mean test accuracy {statistics.mean(v):.4f} over seeds {args.seeds} "
        f"(min {min(v):.4f}, max {max(v):.4f})" for name, v in tests.items())
    gap = statistics.mean(tests["minidl"]) - statistics.mean(tests["PyTorch"])
    body = (f"`python benchmarks/bench_demo_reference.py` — the demo (`python -m minidl demo`: "
            f"LeNet-5 on the 8x8 digits, stratified 70/15/15 split, rotation/zoom/shift "
            f"augmentation, Adam lr {DEMO_RECIPE['lr']}, cosine schedule over {args.epochs} epochs, "
            f"early stopping on val_loss with patience {DEMO_RECIPE['patience']} and best weights "
            f"restored) next to the same model and recipe in PyTorch {torch.__version__} "
            f"({torch.get_num_threads()} threads), on identical batches. Test set: 270 images "
            f"(one image = 0.37 points).\n\n"
            + markdown_table(["seed", "framework", "test acc", "val acc", "train acc", "epochs run",
                              "best epoch", "seconds"], rows)
            + f"\n\n{summary}\n- minidl minus PyTorch: {gap:+.4f} (goal of the demo: test accuracy "
              f">= 0.98 and a match of the PyTorch reference)\n")
    print(body)
    if not args.no_write:
        write_section("Demo reference (digits, LeNet-5)", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
