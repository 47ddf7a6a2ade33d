"""``python -m minidl ensembles``: every ensemble beside its single-member baseline and
beside scikit-learn's ensembles, on the same splits.

For each data set (the 8x8 digits; breast cancer) and each seed s, one stratified split
(75% train, 25% test, shuffled by s) is shared by every contender; each contender is
fitted with ``random_state=s`` and scored by test accuracy. The table gives the mean and
the standard deviation (ddof=0) over the seeds, and the mean fit time. The section
"Ensembles" of ``benchmarks/RESULTS.md`` is replaced and a bar chart is saved to
``benchmarks/results/ensembles.png``, the raw per-seed figures to
``benchmarks/results/ensembles.json`` (not with ``--quick``, a small smoke run).

Baselines: "single MLP" is the default member (``default_mlp``) trained alone on the whole
training set with the ensembles' member settings, its accuracy averaged over 5
initialisations (one init alone swings by about +-0.5% on the digits); "single weak MLP" is
the same network trained as briefly as an AdaBoost member (5 epochs instead of 20),
AdaBoost's own baseline. The same 5 networks averaged give the "seed ensemble" rows.
Bagging trains its members with its own defaults (30 epochs, an L2 penalty of 1e-3, see
``BaggingClassifier``); the row "single MLP trained like a bagging member" is the same
network trained that way on the full training set, to tell the ensemble's gain from the
training recipe's (the gain check still compares with the plain single MLP).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_breast_cancer, load_digits
from .bagging import BaggingClassifier
from .base import default_mlp
from .boosting import AdaBoostClassifier, GradientBoostingClassifier
from .diverse import DiverseEnsembleClassifier, NCLClassifier
from .stacking import StackingClassifier

__all__ = ["main", "run_experiments", "contenders"]

DATASETS = {"digits": load_digits, "breast_cancer": load_breast_cancer}
TEST_SIZE = 0.25
EPOCHS, WEAK_EPOCHS, QUICK_EPOCHS, QUICK_WEAK_EPOCHS = 20, 5, 4, 2
INITS = 5
BAGS, FOLDS = 10, 5          # BaggingClassifier's and StackingClassifier's defaults (scikit-learn's too)
BAG_EPOCHS, BAG_WEIGHT_DECAY = 30, 1e-3   # BaggingClassifier's member defaults
SINGLE, WEAK = f"single MLP (mean of {INITS} inits)", f"single weak MLP, AdaBoost's member (mean of {INITS} inits)"
SINGLE_BAG = f"single MLP trained like a bagging member (mean of {INITS} inits)"
SEED_ENSEMBLES = {SINGLE: f"Seed ensemble x{INITS} of the MLP", WEAK: f"Seed ensemble x{INITS} of the weak MLP",
                  SINGLE_BAG: f"Seed ensemble x{INITS} of the MLP trained like a bagging member"}


def _sklearn_contenders(seed: int, quick: bool = False) -> dict[str, Any]:
    from sklearn.ensemble import AdaBoostClassifier as SkAdaBoost
    from sklearn.ensemble import BaggingClassifier as SkBagging
    from sklearn.ensemble import StackingClassifier as SkStacking
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bases = [("mlp", make_pipeline(StandardScaler(), MLPClassifier((64,), max_iter=300, random_state=seed))),
             ("logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
             ("knn", make_pipeline(StandardScaler(), KNeighborsClassifier()))]
    return {
        "sklearn Bagging (10 trees)": SkBagging(random_state=seed),
        "sklearn AdaBoost (50 stumps, SAMME)": SkAdaBoost(random_state=seed),
        "sklearn Stacking (MLP + logreg + kNN)": SkStacking(bases, final_estimator=LogisticRegression(max_iter=2000),
                                                            cv=3 if quick else 5),
    }


def contenders(seed: int, quick: bool = False) -> dict[str, tuple[Any, str]]:
    """name -> (unfitted estimator, its baseline's name) for one seed.

    The two baselines are seed ensembles of INITS networks: the table reports their mean
    member accuracy (the expected accuracy of one network, less noisy than a single init)
    and, as rows of their own, the seed ensemble's accuracy."""
    m, bags, folds = (3, 3, 3) if quick else (5, BAGS, FOLDS)
    member = dict(epochs=QUICK_EPOCHS if quick else EPOCHS, lr=1e-2, batch_size=64, random_state=seed)
    weak = dict(member, epochs=QUICK_WEAK_EPOCHS if quick else WEAK_EPOCHS)
    # bagging's own member defaults (30 epochs, L2 1e-3, see BaggingClassifier) at full size
    bagged = dict(member, epochs=QUICK_EPOCHS, weight_decay=BAG_WEIGHT_DECAY) if quick else \
        dict(member, epochs=BAG_EPOCHS, weight_decay=BAG_WEIGHT_DECAY)
    rows: dict[str, tuple[Any, str]] = {
        SINGLE: (DiverseEnsembleClassifier([default_mlp], n_estimators=INITS, **member), ""),
        WEAK: (DiverseEnsembleClassifier([default_mlp], n_estimators=INITS, **weak), ""),
        SINGLE_BAG: (DiverseEnsembleClassifier([default_mlp], n_estimators=INITS, **bagged), ""),
        f"Bagging x{bags} (soft vote)": (BaggingClassifier(n_estimators=bags, **bagged), SINGLE),
        f"AdaBoost SAMME x{m}": (AdaBoostClassifier(n_estimators=m, **weak), WEAK),
        f"Gradient boosting x{m} (nu=0.5)": (GradientBoostingClassifier(n_estimators=m, **member), SINGLE),
        f"Stacking (3 MLPs, {folds} folds, log-probas, logreg meta with CV'd C)":
            (StackingClassifier(cv=folds, **member), SINGLE),
        "Diverse zoo x4 (relu/tanh/gelu/elu)": (DiverseEnsembleClassifier(**member), SINGLE),
        f"NCL x{m} (lambda=0.5)": (NCLClassifier(n_estimators=m, lam=0.5, **member), SINGLE),
    }
    for name, est in _sklearn_contenders(seed, quick).items():
        rows[name] = (est, "")
    return rows


def _split(X: np.ndarray, y: np.ndarray, seed: int):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=TEST_SIZE, stratify=y, random_state=seed)


def run_experiments(datasets: list[str], seeds: int = 3, quick: bool = False,
                    progress: bool = True) -> tuple[dict[str, dict[str, dict[str, list[float]]]], dict[str, str]]:
    """Returns (results, baselines): results[dataset][contender] = {"acc": [per seed],
    "time": [per seed]} (plus, for bagging, the hard-vote accuracy of the same members under
    "Bagging ... (hard vote)"); baselines[contender] = its baseline's name ("" for none)."""
    from tqdm.auto import tqdm

    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    self_baseline: dict[str, str] = {}
    total = len(datasets) * seeds * len(contenders(0, quick))
    bar = tqdm(total=total, desc="ensembles", disable=not progress)
    for ds in datasets:
        X, y = DATASETS[ds]()
        X = X.reshape(len(X), -1)
        table: dict[str, dict[str, list[float]]] = {}
        for seed in range(seeds):
            Xtr, Xte, ytr, yte = _split(X, y, seed)
            for name, (est, baseline) in contenders(seed, quick).items():
                bar.set_postfix_str(f"{ds} seed {seed}: {name}")
                t0 = time.perf_counter()
                est.fit(Xtr, ytr)
                elapsed = time.perf_counter() - t0
                row = table.setdefault(name, {"acc": [], "time": []})
                self_baseline[name] = baseline
                if name in SEED_ENSEMBLES:
                    # one network's expected accuracy: the mean over INITS initialisations;
                    # the same networks averaged are the seed ensemble
                    row["acc"].append(float(np.mean(est.member_predict(Xte) == yte[None, :])))
                    row["time"].append(elapsed / INITS)
                    seeds_name = SEED_ENSEMBLES[name]
                    ens = table.setdefault(seeds_name, {"acc": [], "time": []})
                    ens["acc"].append(float(np.mean(est.predict(Xte) == yte)))
                    ens["time"].append(elapsed)
                    self_baseline[seeds_name] = name
                else:
                    row["acc"].append(float(np.mean(est.predict(Xte) == yte)))
                    row["time"].append(elapsed)
                if isinstance(est, BaggingClassifier):
                    hard_name = name.replace("soft vote", "hard vote")
                    est.set_params(voting="hard")           # the same members, voting by labels
                    hard = table.setdefault(hard_name, {"acc": [], "time": []})
                    hard["acc"].append(float(np.mean(est.predict(Xte) == yte)))
                    hard["time"].append(elapsed)
                    self_baseline[hard_name] = baseline
                bar.update(1)
        results[ds] = table
    bar.close()
    return results, self_baseline


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def format_results(results: dict, baselines: dict[str, str], seeds: int, quick: bool) -> str:
    """The markdown body: one table per data set and the gain check."""
    from benchmarks.report import markdown_table

    epochs, weak = (QUICK_EPOCHS, QUICK_WEAK_EPOCHS) if quick else (EPOCHS, WEAK_EPOCHS)
    parts = [
        f"`python -m minidl ensembles --seeds {seeds}{' --quick' if quick else ''}` "
        f"(minidl/ensemble/experiments.py). Test accuracy on a stratified 75/25 split per seed "
        f"(seeds 0..{seeds - 1}, the same split for every contender), mean ± std over the seeds; "
        "fit time is the mean wall time of `fit`. minidl members: the default MLP "
        f"(one hidden layer of min(64, 2·features) ReLU units), Adam lr 1e-2, batch 64, {epochs} epochs "
        f"(AdaBoost's: {weak} epochs; bagging's: {QUICK_EPOCHS if quick else BAG_EPOCHS} epochs with an L2 "
        f"penalty of {BAG_WEIGHT_DECAY:g}, BaggingClassifier's defaults), features standardised. Stacking "
        "feeds the bases' out-of-fold log-probabilities to a logistic regression whose C is chosen by "
        "3-fold cross-validation. The hard-vote bagging row re-votes the "
        "soft-vote row's members. The single-network rows give the mean accuracy of 5 "
        "initialisations trained alone on the full training set (their seed ensemble is the row below "
        "them). Δ = mean accuracy minus the mean of the row's single-member baseline."
    ]
    checks = []
    for ds, table in results.items():
        rows = []
        for name, row in table.items():
            mean, std = _mean_std(row["acc"])
            base = baselines.get(name, "")
            delta = f"{mean - statistics.fmean(table[base]['acc']):+.4f}" if base else ""
            rows.append([name, f"{mean:.4f} ± {std:.4f}", delta, base or "—", f"{statistics.fmean(row['time']):.2f}"])
        parts.append(f"### {ds}\n\n" + markdown_table(
            ["contender", "test accuracy", "Δ vs baseline", "baseline", "fit time (s)"], rows))
        single = statistics.fmean(table[SINGLE]["acc"])
        for name in table:
            if name.startswith(("Bagging", "Stacking")):
                mean = statistics.fmean(table[name]["acc"])
                verdict = "at least as accurate" if mean >= single else "LESS accurate"
                checks.append(f"- {ds}: {name} {mean:.4f} vs {SINGLE} {single:.4f}: {verdict}")
    sizes = ", ".join(f"{ds}: {math.ceil(TEST_SIZE * len(DATASETS[ds]()[1]))} test samples, one sample = "
                      f"{100 / math.ceil(TEST_SIZE * len(DATASETS[ds]()[1])):.2f}%" for ds in results)
    parts.append("Gain check (bagging and stacking against the single network, mean over seeds):\n\n"
                 + "\n".join(checks) + f"\n\nResolution of a test accuracy ({sizes}).")
    return "\n\n".join(parts)


def plot_results(results: dict, path: Path) -> Path:
    """A bar chart of mean test accuracy with ±1 std error bars, one panel per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(results)
    fig, axes = plt.subplots(1, len(sets), figsize=(7 * len(sets), 6), squeeze=False)
    for ax, ds in zip(axes[0], sets):
        names = list(results[ds])
        stats = [_mean_std(results[ds][n]["acc"]) for n in names]
        colors = ["tab:gray" if n.startswith("single") else "tab:orange" if n.startswith("sklearn") else "tab:blue"
                  for n in names]
        means = [m for m, _ in stats]
        # the axis starts just below the minidl rows; a reference far below is cut, its value printed
        low = max(0.0, min(m - s for (m, s), n in zip(stats, names) if not n.startswith("sklearn")) - 0.02)
        ax.barh(range(len(names)), [max(m - low, 0.0) for m in means], left=low, xerr=[s for _, s in stats], color=colors)
        for i, (m, sd) in enumerate(stats):
            ax.text(max(m + sd, low) + 0.001, i, f"{m:.3f}" + (" (off scale)" if m < low else ""),
                    va="center", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(low, 1.0)
        ax.set_xlabel("test accuracy (mean ± std over seeds)")
        ax.set_title(ds)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m minidl ensembles``."""
    p = argparse.ArgumentParser(prog="python -m minidl ensembles",
                                description="ensembles of minidl networks vs single networks and scikit-learn")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (splits and inits), default 3")
    p.add_argument("--quick", action="store_true",
                   help="a small smoke run (3 members, few epochs); writes nothing to benchmarks/")
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["digits", "breast_cancer"])
    p.add_argument("--no-write", action="store_true", help="print the tables but leave benchmarks/ alone")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    from threadpoolctl import threadpool_limits

    # The members are small MLPs: one BLAS thread is faster than several at these sizes.
    with threadpool_limits(limits=1, user_api="blas"):
        results, baselines = run_experiments(args.datasets, args.seeds, args.quick, progress=not args.no_progress)
    body = format_results(results, baselines, args.seeds, args.quick)
    print(body)
    if not (args.quick or args.no_write):
        from benchmarks.report import PLOTS, write_section

        plot = plot_results(results, PLOTS / "ensembles.png")
        (PLOTS / "ensembles.json").write_text(json.dumps({"results": results, "baselines": baselines}, indent=1))
        write_section("Ensembles", body + f"\n\n![ensembles](results/{plot.name})")
        print(f"wrote the 'Ensembles' section of benchmarks/RESULTS.md and {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
