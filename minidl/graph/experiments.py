"""Graph autoencoder on Zachary's karate club: link prediction and the two factions.

The karate club (34 members, 78 friendships; it split into the instructor's faction,
"Mr. Hi", and the administrator's, "Officer") ships with networkx. For each seed, 15% of the
edges (and as many non-edges) are held out for testing and 5% for validation; a graph
autoencoder (GCN 34-32-16 on one-hot node features, inner-product decoder) is trained on the
remaining edges. Reported: the ROC AUC of held-out edges against non-edges, and how well
its node embedding separates the two factions (2-means without labels, and cross-validated
logistic regression). References on the same splits: the untrained autoencoder (random
weights, same architecture), the Adamic-Adar index for link prediction, and a spectral
embedding (Laplacian eigenmaps) for the factions.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from tqdm.auto import tqdm

from ..backend import manual_seed
from .gcn import GraphAutoencoder, embed, faction_accuracy, link_prediction_auc, split_edges, train_graph_autoencoder

__all__ = ["karate_club", "adamic_adar_auc", "spectral_embedding", "run_karate", "karate_markdown", "main"]

SECTION = "Graph autoencoder (karate club)"
METHODS = ["graph autoencoder (trained)", "graph autoencoder (untrained, random weights)",
           "Adamic-Adar index / spectral embedding"]


def karate_club() -> tuple[np.ndarray, np.ndarray]:
    """Zachary's karate club from networkx: adjacency (34, 34) float64 (0/1, symmetric) and
    faction labels (34,) int64, 0 for "Mr. Hi" and 1 for "Officer"."""
    import networkx as nx

    g = nx.karate_club_graph()
    nodes = sorted(g.nodes)
    adj = (nx.to_numpy_array(g, nodelist=nodes) > 0).astype(np.float64)
    labels = np.array([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in nodes], dtype=np.int64)
    return adj, labels


def adamic_adar_auc(train_adj: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> float:
    """AUC of the Adamic-Adar score sum over common neighbours w of 1 / log(degree(w)),
    computed on the training graph, for held-out edges against non-edges."""
    from sklearn.metrics import roc_auc_score

    degree = train_adj.sum(axis=1)
    weight = np.where(degree > 1, 1.0 / np.log(np.maximum(degree, 2.0)), 0.0)
    pairs = np.concatenate([positive, negative])
    scores = (train_adj[pairs[:, 0]] * train_adj[pairs[:, 1]] * weight).sum(axis=1)
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    return float(roc_auc_score(labels, scores))


def spectral_embedding(adj: np.ndarray, dim: int = 2, seed: int = 0) -> np.ndarray:
    """Laplacian eigenmaps (scikit-learn's SpectralEmbedding on the adjacency), (N, dim)."""
    import warnings

    from sklearn.manifold import SpectralEmbedding

    with warnings.catch_warnings():   # a held-out split may disconnect the graph; the result is still defined
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        return SpectralEmbedding(dim, affinity="precomputed", random_state=seed).fit_transform(adj)


def run_karate(seeds: list[int], epochs: int = 50, hidden: int = 32, embedding_dim: int = 16, lr: float = 0.01,
               test_fraction: float = 0.15, val_fraction: float = 0.05, progress: bool = True) -> dict:
    """Per seed and method: test AUC, validation AUC, faction accuracy (2-means, logistic)."""
    adj, labels = karate_club()
    n = adj.shape[0]
    features = np.eye(n, dtype=np.float32)
    keys = ["test_auc", "val_auc", "kmeans", "logistic"]
    rows = {m: {k: [] for k in keys} for m in METHODS}
    rows["seconds"] = []
    rows["losses"] = []
    last = None
    for seed in tqdm(seeds, desc="karate club seeds", disable=not progress):
        s = split_edges(adj, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
        manual_seed(seed)
        model = GraphAutoencoder(n, hidden, embedding_dim)
        z0 = embed(model, features, s["train_adj"])
        t0 = time.perf_counter()
        losses = train_graph_autoencoder(model, features, s["train_adj"], epochs=epochs, lr=lr, seed=seed,
                                         progress=False)
        rows["seconds"].append(time.perf_counter() - t0)
        rows["losses"].append(losses)
        z = embed(model, features, s["train_adj"])
        spectral = spectral_embedding(s["train_adj"], 2, seed)
        for name, emb in ((METHODS[0], z), (METHODS[1], z0)):
            rows[name]["test_auc"].append(link_prediction_auc(emb, s["test_pos"], s["test_neg"]))
            rows[name]["val_auc"].append(link_prediction_auc(emb, s["val_pos"], s["val_neg"]))
        rows[METHODS[2]]["test_auc"].append(adamic_adar_auc(s["train_adj"], s["test_pos"], s["test_neg"]))
        rows[METHODS[2]]["val_auc"].append(adamic_adar_auc(s["train_adj"], s["val_pos"], s["val_neg"]))
        for name, emb in ((METHODS[0], z), (METHODS[1], z0), (METHODS[2], spectral)):
            rows[name]["kmeans"].append(faction_accuracy(emb, labels, "kmeans", seed))
            rows[name]["logistic"].append(faction_accuracy(emb, labels, "logistic", seed))
        last = (z, labels)
    rows["last_embedding"] = last
    rows["n_test"] = len(s["test_pos"])
    rows["n_val"] = len(s["val_pos"])
    return rows


def _ms(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def karate_markdown(rows: dict, seeds: list[int], epochs: int, command: str) -> str:
    from benchmarks.report import markdown_table

    table = []
    for name in METHODS:
        r = rows[name]
        table.append([name, _ms(r["test_auc"]), _ms(r["val_auc"]), _ms(r["kmeans"], 100, 1),
                      _ms(r["logistic"], 100, 1)])
    return (
        f"`{command}` (minidl/graph/experiments.py). Zachary's karate club from networkx (34 nodes, 78 edges, "
        f"two factions of 17). Per seed ({len(seeds)} seeds) {rows['n_test']} edges (15%) and as many non-edges "
        f"are held out for testing and {rows['n_val']} (5%) for validation; the model sees only the other edges. "
        f"Graph autoencoder: GCN 34 → 32 (ReLU) → 16 on one-hot node features, Â = D^-1/2 (A+I) D^-1/2, "
        f"inner-product decoder, {epochs} full-graph Adam steps (lr 0.01) on the logistic loss of the training "
        f"edges and as many freshly drawn non-edges; {statistics.fmean(rows['seconds']):.2f} s per run. "
        "Link prediction: ROC AUC of z_i·z_j for held-out edges vs non-edges. Factions: accuracy of 2-means on "
        "the embedding (no labels; better of the two matchings) and of 5-fold cross-validated logistic "
        "regression. Reference row: the Adamic-Adar index for links and a 2-d spectral embedding (Laplacian "
        "eigenmaps) for factions, both on the training graph (which is disconnected when a held-out edge was a "
        "node's only one; that hurts the spectral embedding most). Mean ± std over the seeds. With only "
        f"{rows['n_test']} test edges per split, a single split's AUC moves in steps of "
        f"{1 / rows['n_test'] ** 2:.3f} and varies a lot from seed to seed.\n\n"
        + markdown_table(["method", "test AUC", "validation AUC", "faction acc. % (2-means)",
                          "faction acc. % (logistic, 5-fold)"], table)
    )


def _plot(rows: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    z, labels = rows["last_embedding"]
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.8))
    for c, name, color in ((0, "Mr. Hi", "#36c"), (1, "Officer", "#c63")):
        ax1.scatter(xy[labels == c, 0], xy[labels == c, 1], c=color, label=name, s=30)
    ax1.set_title("GAE embedding (PCA), last seed")
    ax1.legend(fontsize=8)
    curves = np.asarray(rows["losses"])
    ax2.plot(curves.mean(axis=0))
    ax2.fill_between(np.arange(curves.shape[1]), curves.min(axis=0), curves.max(axis=0), alpha=0.3)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training loss (BCE)")
    ax2.set_title("loss, mean and range over seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """``python -m minidl graph [--seeds 20] [--epochs 50] [--no-write]``."""
    parser = argparse.ArgumentParser(
        prog="python -m minidl graph",
        description="Graph autoencoder (GCN encoder) on Zachary's karate club: link-prediction AUC on held-out "
                    "edges and faction accuracy from the embedding, against Adamic-Adar and spectral references. "
                    "Writes the 'Graph autoencoder (karate club)' section of benchmarks/RESULTS.md.")
    parser.add_argument("--seeds", type=int, default=20, help="number of random splits/initialisations (default 20)")
    parser.add_argument("--epochs", type=int, default=50, help="training epochs (default 50)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1:
        parser.error("--seeds and --epochs must be >= 1")
    seeds = list(range(args.seeds))
    rows = run_karate(seeds, epochs=args.epochs, progress=not args.quiet)
    command = f"python -m minidl graph --seeds {args.seeds} --epochs {args.epochs}"
    body = karate_markdown(rows, seeds, args.epochs, command)
    print(f"## {SECTION}\n\n{body}\n")
    if not args.no_write:
        from benchmarks.report import PLOTS, write_section

        _plot(rows, PLOTS / "karate_gae.png")
        body += "\n\n![karate club graph autoencoder](results/karate_gae.png)"
        print(f"wrote the '{SECTION}' section of {write_section(SECTION, body)} and {PLOTS / 'karate_gae.png'}")
    return 0
