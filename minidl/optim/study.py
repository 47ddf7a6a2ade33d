"""Study aid: every optimizer from the same start on three classic 2-D test functions.

    python -m minidl optimizers [--steps N] [--out DIR]

Runs GD, SGD, SGD with momentum, Nesterov, Adagrad, RMSprop, Adam and AdamW on

* the Rosenbrock function ``(1 − x)² + 100 (y − x²)²``: a curved, narrow valley (minimum
  at (1, 1));
* the Beale function ``(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``: flat
  plateaus and steep walls (minimum at (3, 0.5));
* an ill-conditioned quadratic ``½ zᵀ A z`` whose Hessian has eigenvalues 1 and 75,
  rotated 30° so that its axes are not the coordinate axes (condition number 75);

and saves, per function, a PNG with the paths over the contour plot and the loss against
the step (log scale), plus ``optimizers.md`` with the learning rates and final losses.

What to look for: on the quadratic, GD must keep its step below 2/75 to stay stable, so
it crawls along the shallow direction; momentum carries speed along the valley floor and
overshoots across it (the zig-zag is damped, not removed); Nesterov corrects the
overshoot earlier. Adagrad, RMSprop and Adam rescale each coordinate by its gradient
history, which helps most when the valley is aligned with the axes and less when it is
rotated. "SGD" here is GD's step on a noisy gradient (∇f plus Gaussian noise, standing in
for a mini-batch gradient): its path jitters and settles into a noise ball, not the minimum.

The learning rates (``LEARNING_RATES``, printed in the table) were tuned per optimizer
and function by a grid search over {1, 2, 5} × 10^k (1e-4 to 10) for the lowest loss after
1000 steps, among runs whose loss never rose above 10× its starting value (so the plots show
descents, not lucky chaos); where several reach the minimum (loss < 1e-10), the smallest of
them, whose path is easiest to follow. AdamW's decay (1e-2) pulls toward the origin, so on Rosenbrock
and Beale it settles slightly off the minimum: decoupled decay changes the objective.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import backend
from ..tensor import Tensor
from .adagrad import Adagrad
from .adam import Adam
from .adamw import AdamW
from .gd import GD
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["PROBLEMS", "OPTIMIZERS", "LEARNING_RATES", "run_study", "main"]


# ---------------------------------------------------------------------------- functions

def rosenbrock(p: Tensor) -> Tensor:
    """``(1 − x)² + 100 (y − x²)²`` for ``p = (x, y)``; minimum 0 at (1, 1)."""
    x, y = p[0], p[1]
    return (1.0 - x) ** 2 + 100.0 * (y - x * x) ** 2


def beale(p: Tensor) -> Tensor:
    """``(1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²``; minimum 0 at (3, 0.5)."""
    x, y = p[0], p[1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


_ANGLE = math.radians(30.0)
_ROT = np.array([[math.cos(_ANGLE), -math.sin(_ANGLE)], [math.sin(_ANGLE), math.cos(_ANGLE)]])
QUADRATIC_A = _ROT @ np.diag([1.0, 75.0]) @ _ROT.T


def quadratic(p: Tensor) -> Tensor:
    """``½ pᵀ A p = ½ (a₁₁ x² + 2 a₁₂ xy + a₂₂ y²)``, A's eigenvalues 1 and 75 on axes rotated
    by 30°; minimum 0 at (0, 0)."""
    x, y = p[0], p[1]
    a = QUADRATIC_A
    return 0.5 * (float(a[0, 0]) * x * x + float(2 * a[0, 1]) * x * y + float(a[1, 1]) * y * y)


@dataclass(frozen=True)
class Problem:
    """A 2-D test function, where every optimizer starts, and the window to plot."""

    name: str
    fn: Callable[[Tensor], Tensor]
    start: tuple[float, float]
    minimum: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    noise: float  # std of the Gaussian noise added to the gradient for "SGD"


PROBLEMS = {
    "rosenbrock": Problem("Rosenbrock", rosenbrock, (-1.2, 1.0), (1.0, 1.0), (-2.0, 2.0), (-1.0, 3.0), 2.0),
    "beale": Problem("Beale", beale, (1.0, 1.5), (3.0, 0.5), (-0.5, 4.0), (-1.5, 2.0), 1.0),
    "quadratic": Problem("ill-conditioned quadratic", quadratic, (-4.0, 3.0), (0.0, 0.0), (-5.0, 5.0),
                         (-4.0, 4.0), 1.0),
}

OPTIMIZERS: dict[str, Callable[[list, float], Optimizer]] = {
    "GD": lambda ps, lr: GD(ps, lr=lr),
    "SGD": lambda ps, lr: SGD(ps, lr=lr),
    "SGD+momentum": lambda ps, lr: SGD(ps, lr=lr, momentum=0.9),
    "Nesterov": lambda ps, lr: SGD(ps, lr=lr, momentum=0.9, nesterov=True),
    "Adagrad": lambda ps, lr: Adagrad(ps, lr=lr),
    "RMSprop": lambda ps, lr: RMSprop(ps, lr=lr),
    "Adam": lambda ps, lr: Adam(ps, lr=lr),
    "AdamW": lambda ps, lr: AdamW(ps, lr=lr, weight_decay=1e-2),
}

# Tuned by grid search (see the module docstring); problem -> optimizer -> lr.
LEARNING_RATES: dict[str, dict[str, float]] = {
    "rosenbrock": {"GD": 2e-3, "SGD": 2e-3, "SGD+momentum": 2e-3, "Nesterov": 1e-3, "Adagrad": 0.5,
                   "RMSprop": 1e-2, "Adam": 0.5, "AdamW": 0.1},
    "beale": {"GD": 2e-2, "SGD": 5e-3, "SGD+momentum": 5e-3, "Nesterov": 5e-3, "Adagrad": 2.0,
              "RMSprop": 1e-2, "Adam": 0.1, "AdamW": 0.5},
    "quadratic": {"GD": 2e-2, "SGD": 5e-3, "SGD+momentum": 2e-3, "Nesterov": 2e-3, "Adagrad": 5.0,
                  "RMSprop": 2e-2, "Adam": 0.5, "AdamW": 0.2},
}


# ---------------------------------------------------------------------------- running

def run_optimizer(problem: Problem, name: str, lr: float, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run one optimizer from ``problem.start``; returns the path (steps+1, 2) and losses (steps+1,).

    A run whose loss becomes non-finite stops there (the arrays are shorter).
    """
    p = Tensor(np.array(problem.start, dtype=np.float64), requires_grad=True)
    opt = OPTIMIZERS[name]([p], lr)
    noise = np.random.default_rng(seed) if name == "SGD" else None
    path, losses = [p.numpy().copy()], []
    for _ in range(steps):
        opt.zero_grad()
        loss = problem.fn(p)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]) or abs(losses[-1]) > 1e12:
            break
        loss.backward()
        if noise is not None:
            p.grad.data += problem.noise * noise.normal(size=2)
        opt.step()
        path.append(p.numpy().copy())
    else:
        losses.append(problem.fn(p).item())
    return np.array(path[: len(losses)]), np.array(losses)


def run_study(steps: int = 1000, out: str | None = None, progress: bool = True,
              problems: list[str] | None = None) -> dict[str, dict[str, dict]]:
    """Run every optimizer on every problem; save plots and a markdown table to ``out``.

    Returns ``{problem: {optimizer: {"lr", "path", "losses", "final_loss"}}}``.
    """
    names = list(PROBLEMS) if problems is None else problems
    jobs = [(pk, ok) for pk in names for ok in OPTIMIZERS]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="optimizer study", unit="run")
    results: dict[str, dict[str, dict]] = {}
    for pk, ok in jobs:
        lr = LEARNING_RATES[pk][ok]
        path, losses = run_optimizer(PROBLEMS[pk], ok, lr, steps)
        results.setdefault(pk, {})[ok] = {"lr": lr, "path": path, "losses": losses, "final_loss": float(losses[-1])}
        if bar is not None:
            bar.set_postfix_str(f"{pk} {ok}")
            bar.update()
    if bar is not None:
        bar.close()
    if out is not None:
        os.makedirs(out, exist_ok=True)
        for pk in names:
            plot_problem(PROBLEMS[pk], results[pk], os.path.join(out, f"optimizers_{pk}.png"))
        with open(os.path.join(out, "optimizers.md"), "w") as fh:
            fh.write(results_table(results, steps) + "\n")
    return results


def results_table(results: dict[str, dict[str, dict]], steps: int) -> str:
    """A markdown table: one row per optimizer, ``lr / final loss`` per problem."""
    problems = list(results)
    head = "| optimizer | " + " | ".join(f"{PROBLEMS[p].name}: lr | final loss" for p in problems) + " |"
    rule = "|---|" + "---:|---:|" * len(problems)
    rows = [f"Final loss after {steps} steps from the same start (loss at the minimum: 0).", "", head, rule]
    for ok in OPTIMIZERS:
        cells = []
        for pk in problems:
            r = results[pk][ok]
            n = len(r["losses"]) - 1
            final = f"{r['final_loss']:.3g}" if n == steps else f"diverged at step {n}"
            cells.append(f"{r['lr']:g} | {final}")
        rows.append(f"| {ok} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_problem(problem: Problem, runs: dict[str, dict], filename: str) -> None:
    """Save the contour plot with every path (left) and loss against step, log scale (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = np.linspace(*problem.xlim, 200)
    ys = np.linspace(*problem.ylim, 200)
    gx, gy = np.meshgrid(xs, ys)
    grid = Tensor(np.stack([gx, gy]))  # the functions broadcast over a (2, H, W) grid
    z = backend.to_numpy(problem.fn(grid).data)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.5))
    levels = np.logspace(np.log10(max(z.min(), 1e-3)), np.log10(z.max()), 25)
    ax.contour(gx, gy, z, levels=levels, colors="0.65", linewidths=0.6)
    colors = plt.get_cmap("tab10")
    for i, (name, r) in enumerate(runs.items()):
        path = r["path"]
        ax.plot(path[:, 0], path[:, 1], "-", lw=1.2, color=colors(i), label=f"{name} (lr={r['lr']:g})")
        ax.plot(path[-1, 0], path[-1, 1], "o", ms=4, color=colors(i))
        losses = np.maximum(r["losses"], 1e-16)
        bx.semilogy(np.arange(len(losses)), losses, lw=1.2, color=colors(i), label=name)
    ax.plot(*problem.start, "ks", ms=7, label="start")
    ax.plot(*problem.minimum, "r*", ms=12, label="minimum")
    ax.set_xlim(problem.xlim)
    ax.set_ylim(problem.ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(f"{problem.name}: paths")
    ax.legend(fontsize=7, loc="best")
    bx.set_xlabel("step")
    bx.set_ylabel("loss (log scale)")
    bx.set_title(f"{problem.name}: loss vs step")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.1, top=0.93, wspace=0.18)
    fig.savefig(filename, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    """``python -m minidl optimizers [--steps N] [--out DIR] [--quiet]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl optimizers",
        description="Race GD, SGD, momentum, Nesterov, Adagrad, RMSprop, Adam and AdamW on the Rosenbrock "
                    "and Beale functions and an ill-conditioned quadratic; save path and loss plots.",
    )
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps per run (default 1000)")
    parser.add_argument("--out", default="optimizer_study", help="folder for the PNGs and optimizers.md")
    parser.add_argument("--problems", nargs="+", choices=list(PROBLEMS), default=list(PROBLEMS),
                        help="which functions to run (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    results = run_study(args.steps, args.out, progress=not args.quiet, problems=args.problems)
    print(results_table(results, args.steps))
    print("\nplots: " + ", ".join(os.path.join(args.out, f"optimizers_{p}.png") for p in args.problems))
    return 0
