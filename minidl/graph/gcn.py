"""Graph convolution (Kipf & Welling, 2017) and the graph autoencoder (Kipf & Welling, 2016).

A graph of N nodes is given by its adjacency matrix A (N, N), dense (NumPy/CuPy) or SciPy
sparse. One graph convolution mixes every node's features with its neighbours'::

    Â = D^-1/2 (A + I) D^-1/2,   D = diag(row sums of A + I)
    H' = Â H W^T + b             H (N, in), W (out, in), b (out,)  ->  H' (N, out)

The graph autoencoder encodes the nodes with two such layers, Z = Â relu(Â X W1^T) W2^T
(N, d), and scores a node pair (i, j) by the inner product z_i . z_j, read as the logit of
"there is an edge". It is trained for link prediction: logistic loss on the training edges
(label 1) and on as many randomly drawn non-edges (label 0), then scored by the ROC AUC of
held-out edges against held-out non-edges.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import backend, creation, nn
from ..autograd import Function, no_grad
from ..functional.loss import binary_cross_entropy_with_logits
from ..optim import Adam
from ..tensor import Tensor

__all__ = ["normalized_adjacency", "adjacency_matmul", "GCNConv", "GraphAutoencoder", "edge_list", "split_edges",
           "sample_non_edges", "train_graph_autoencoder", "embed", "link_prediction_auc", "faction_accuracy"]


def _is_sparse(a: Any) -> bool:
    return hasattr(a, "tocsr") and hasattr(a, "nnz")


def _adjacency_array(name: str, adj: Any):
    """adj as a dense array or a SciPy sparse matrix, checked to be square and 2-D."""
    if isinstance(adj, Tensor):
        adj = adj.data
    if not _is_sparse(adj):
        xp = backend.get_array_module(adj) if hasattr(adj, "__array__") or hasattr(adj, "shape") else np
        adj = xp.asarray(adj)
    if len(adj.shape) != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"{name}: the adjacency matrix must be square (N, N), got shape {tuple(adj.shape)}")
    return adj


def _num_edges(adj: Any) -> int:
    """Number of nonzero entries off the diagonal (each undirected edge counts twice)."""
    if _is_sparse(adj):
        coo = adj.tocoo()
        return int(np.count_nonzero((coo.row != coo.col) & (coo.data != 0)))
    xp = backend.get_array_module(adj)
    off = adj != 0
    return int(off.sum() - xp.diagonal(off).sum())


def normalized_adjacency(adj: Any, add_self_loops: bool = True):
    """Â = D^-1/2 (A + I) D^-1/2 with D the diagonal of row sums of A + I.

    ``adj`` (N, N): a dense NumPy/CuPy array (or Tensor) or a SciPy sparse matrix; the result
    has the same kind (sparse in CSR form), float64 for NumPy/SciPy input of integer type.
    With ``add_self_loops=False`` the +I is left out and a node of degree 0 gets a zero row.
    """
    adj = _adjacency_array("normalized_adjacency", adj)
    if _is_sparse(adj):
        import scipy.sparse

        a = adj.astype(np.float64) if adj.dtype.kind not in "f" else adj
        if add_self_loops:
            a = a + scipy.sparse.identity(a.shape[0], dtype=a.dtype, format="csr")
        degree = np.asarray(a.sum(axis=1)).ravel()
        inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.where(degree > 0, degree, 1.0)), 0.0).astype(a.dtype)
        scale = scipy.sparse.diags(inv_sqrt)
        return (scale @ a @ scale).tocsr()
    xp = backend.get_array_module(adj)
    a = adj.astype(np.float64) if adj.dtype.kind not in "f" else adj
    if add_self_loops:
        a = a + xp.eye(a.shape[0], dtype=a.dtype)
    degree = a.sum(axis=1)
    inv_sqrt = xp.where(degree > 0, 1.0 / xp.sqrt(xp.where(degree > 0, degree, 1.0)), 0.0).astype(a.dtype)
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


class AdjacencyMatMul(Function):
    """y = Â x for a constant matrix Â (N, N) (dense or SciPy sparse) and x (N, F);
    dx = Â^T dy (the same op with Â^T, so it differentiates again). Â gets no gradient."""

    def __init__(self, adj: Any):
        self.adj = adj

    def forward(self, x):
        y = self.adj @ x
        return np.asarray(y) if _is_sparse(self.adj) else y

    def backward(self, gy):
        return AdjacencyMatMul(self.adj.T)(gy)


def adjacency_matmul(adj: Any, x: Tensor) -> Tensor:
    """Â x: a constant (N, N) matrix (dense array, Tensor data, or SciPy sparse) times x (N, F)."""
    adj = _adjacency_array("adjacency_matmul", adj)
    if not isinstance(x, Tensor):
        x = creation.tensor(x)
    if x.ndim != 2 or x.shape[0] != adj.shape[1]:
        raise ValueError(f"adjacency_matmul: expected node features (N, F) with N = {adj.shape[1]} rows to match "
                         f"the adjacency {tuple(adj.shape)}, got {tuple(x.shape)}")
    if _is_sparse(adj):
        if not isinstance(x.data, np.ndarray):
            raise TypeError("adjacency_matmul: a SciPy sparse adjacency works with CPU tensors only; "
                            "pass a dense adjacency for GPU tensors")
        if adj.dtype != x.dtype:
            adj = adj.astype(x.dtype)
    elif adj.dtype != x.dtype:
        adj = adj.astype(x.dtype)
    return AdjacencyMatMul(adj)(x)


class GCNConv(nn.Module):
    """One graph convolution: out = Â x W^T + b.

    Args:
        in_channels, out_channels: feature sizes. bias: add the learnable b (out_channels,).

    ``forward(x, adj)``: x (N, in_channels), adj the *normalized* adjacency Â (N, N) from
    ``normalized_adjacency`` (dense or SciPy sparse; compute it once per graph) -> (N, out).
    ``weight`` (out_channels, in_channels) starts Glorot-uniform, ``bias`` at zero.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"GCNConv: {name} must be a positive integer, got {v!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        dt = backend.default_dtype()
        self.weight = nn.Parameter(np.zeros((out_channels, in_channels), dtype=dt))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(np.zeros(out_channels, dtype=dt)) if bias else None

    def forward(self, x: Tensor, adj: Any) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_channels:
            raise ValueError(f"GCNConv: expected node features (N, {self.in_channels}), got {tuple(x.shape)}")
        out = adjacency_matmul(adj, x @ self.weight.T)
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


class GraphAutoencoder(nn.Module):
    """GAE: a two-layer GCN encoder and an inner-product decoder.

    ``encode(x, adj)`` / ``forward(x, adj)``: Z = conv2(relu(conv1(x, Â)), Â), x (N, in_features)
    -> Z (N, embedding_dim). ``decode(z, pairs)``: pairs (E, 2) node indices -> logits
    z_i . z_j (E,); the probability of an edge is sigmoid of the logit.
    """

    def __init__(self, in_features: int, hidden: int = 32, embedding_dim: int = 16):
        super().__init__()
        self.conv1 = GCNConv(in_features, hidden)
        self.conv2 = GCNConv(hidden, embedding_dim)

    def encode(self, x: Tensor, adj: Any) -> Tensor:
        return self.conv2(self.conv1(x, adj).relu(), adj)

    def forward(self, x: Tensor, adj: Any) -> Tensor:
        return self.encode(x, adj)

    def decode(self, z: Tensor, pairs: Any) -> Tensor:
        pairs = np.asarray(pairs)
        if pairs.ndim != 2 or pairs.shape[1] != 2:
            raise ValueError(f"GraphAutoencoder.decode: pairs must have shape (E, 2), got {pairs.shape}")
        return (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(axis=1)


# ----------------------------------------------------------------- edges and link prediction
def edge_list(adj: Any) -> np.ndarray:
    """The undirected edges i < j of a symmetric adjacency (dense or sparse), (E, 2) int64,
    sorted. Raises ValueError for a graph with no edges."""
    adj = _adjacency_array("edge_list", adj)
    if _is_sparse(adj):
        coo = adj.tocoo()
        rows, cols = coo.row[coo.data != 0], coo.col[coo.data != 0]
    else:
        rows, cols = np.nonzero(backend.to_device(adj, "cpu") if not isinstance(adj, np.ndarray) else adj)
    keep = rows < cols
    edges = np.unique(np.stack([rows[keep], cols[keep]], axis=1).astype(np.int64), axis=0)
    if edges.shape[0] == 0:
        raise ValueError(f"edge_list: the graph with {adj.shape[0]} nodes has no edges (no nonzero entry above "
                         "the diagonal); link prediction and the graph autoencoder need at least one edge")
    return edges


def sample_non_edges(num_nodes: int, count: int, forbidden: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct pairs i < j that are not in ``forbidden`` (E, 2), (count, 2) int64."""
    total = num_nodes * (num_nodes - 1) // 2
    taken = {tuple(map(int, e)) for e in forbidden}
    if count > total - len(taken):
        raise ValueError(f"sample_non_edges: asked for {count} non-edges but the graph of {num_nodes} nodes has only "
                         f"{total - len(taken)}")
    found: set = set()
    while len(found) < count:
        i, j = rng.integers(0, num_nodes, size=(2, 2 * (count - len(found)) + 8))
        for a, b in zip(np.minimum(i, j), np.maximum(i, j)):
            pair = (int(a), int(b))
            if a != b and pair not in taken and pair not in found:
                found.add(pair)
                if len(found) == count:
                    break
    return np.array(sorted(found), dtype=np.int64).reshape(-1, 2)


def split_edges(adj: Any, val_fraction: float = 0.05, test_fraction: float = 0.1, seed: int = 0) -> dict:
    """Hold out edges for link prediction.

    The undirected edges are shuffled; ceil(test_fraction E) become test edges and
    ceil(val_fraction E) (0 when the fraction is 0) validation edges, each paired with as
    many non-edges drawn at random. Returns ``train_adj`` (dense float64 (N, N), symmetric,
    held-out edges removed), ``train_pos`` (E_train, 2), ``val_pos``, ``val_neg``, ``test_pos``,
    ``test_neg`` (int64 (·, 2) arrays of i < j pairs).
    """
    adj = _adjacency_array("split_edges", adj)
    n = adj.shape[0]
    edges = edge_list(adj)
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"split_edges: need 0 <= val_fraction, 0 < test_fraction and their sum < 1, got "
                         f"{val_fraction} and {test_fraction}")
    n_test = math.ceil(test_fraction * len(edges))
    n_val = math.ceil(val_fraction * len(edges)) if val_fraction > 0 else 0
    if n_test + n_val >= len(edges):
        raise ValueError(f"split_edges: the graph has {len(edges)} edges, too few to hold out {n_test} test and "
                         f"{n_val} validation edges and keep one for training")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(edges))
    test_pos, val_pos, train_pos = (edges[np.sort(order[:n_test])], edges[np.sort(order[n_test:n_test + n_val])],
                                    edges[np.sort(order[n_test + n_val:])])
    negatives = sample_non_edges(n, n_test + n_val, edges, rng)
    negatives = negatives[rng.permutation(len(negatives))]
    train_adj = np.zeros((n, n), dtype=np.float64)
    train_adj[train_pos[:, 0], train_pos[:, 1]] = 1.0
    train_adj[train_pos[:, 1], train_pos[:, 0]] = 1.0
    return {"train_adj": train_adj, "train_pos": train_pos, "val_pos": val_pos, "val_neg": negatives[n_test:],
            "test_pos": test_pos, "test_neg": negatives[:n_test]}


def train_graph_autoencoder(model: GraphAutoencoder, features: Any, train_adj: Any, epochs: int = 200,
                            lr: float = 0.01, seed: int = 0, progress: bool = True) -> list[float]:
    """Fit ``model`` for link prediction on the edges of ``train_adj`` (N, N, symmetric).

    Each epoch: Z = model(X, Â) with Â = normalized_adjacency(train_adj); loss =
    BCE-with-logits of z_i . z_j on every training edge (target 1) and on as many pairs
    drawn uniformly among the non-edges of ``train_adj`` (target 0), averaged; one Adam step.
    Returns the loss per epoch.
    """
    train_adj = _adjacency_array("train_graph_autoencoder", train_adj)
    positives = edge_list(train_adj)
    x = features if isinstance(features, Tensor) else creation.tensor(np.asarray(features, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] != train_adj.shape[0]:
        raise ValueError(f"train_graph_autoencoder: features must be (N, F) with N = {train_adj.shape[0]}, "
                         f"got {tuple(x.shape)}")
    a_hat = normalized_adjacency(train_adj)
    rng = np.random.default_rng(seed)
    n = train_adj.shape[0]
    target = creation.tensor(np.concatenate([np.ones(len(positives)), np.zeros(len(positives))]).astype(x.dtype))
    opt = Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in tqdm(range(epochs), desc="graph autoencoder", disable=not progress, leave=False):
        negatives = sample_non_edges(n, len(positives), positives, rng)
        z = model(x, a_hat)
        logits = model.decode(z, np.concatenate([positives, negatives]))
        loss = binary_cross_entropy_with_logits(logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _pair_scores(z: Any, pairs: np.ndarray) -> np.ndarray:
    z = np.asarray(z.numpy() if isinstance(z, Tensor) else z, dtype=np.float64)
    return np.einsum("ed,ed->e", z[pairs[:, 0]], z[pairs[:, 1]])


def link_prediction_auc(z: Any, positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of the scores z_i . z_j separating the ``positive`` pairs (E+, 2) from the
    ``negative`` pairs (E-, 2): the chance that a random held-out edge outscores a random
    non-edge. z: (N, d) embedding (Tensor or array)."""
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([_pair_scores(z, positive), _pair_scores(z, negative)])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    return float(roc_auc_score(labels, scores))


def faction_accuracy(z: Any, labels: np.ndarray, method: str = "kmeans", seed: int = 0) -> float:
    """How well the embedding z (N, d) separates two known groups ``labels`` (N,) in {0, 1}.

    ``method="kmeans"``: 2-means on z (no labels used), accuracy under the better of the two
    cluster-to-group matchings. ``method="logistic"``: logistic regression, accuracy of its
    5-fold stratified cross-validated predictions.
    """
    z = np.asarray(z.numpy() if isinstance(z, Tensor) else z, dtype=np.float64)
    labels = np.asarray(labels)
    if z.ndim != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"faction_accuracy: expected z (N, d) and labels (N,), got {z.shape} and {labels.shape}")
    if method == "kmeans":
        from sklearn.cluster import KMeans

        clusters = KMeans(2, n_init=10, random_state=seed).fit_predict(z)
        agree = float((clusters == labels).mean())
        return max(agree, 1.0 - agree)
    if method == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        pred = cross_val_predict(LogisticRegression(max_iter=1000), z, labels, cv=folds)
        return float((pred == labels).mean())
    raise ValueError(f"faction_accuracy: method must be 'kmeans' or 'logistic', got {method!r}")


def embed(model: GraphAutoencoder, features: Any, adj: Any) -> np.ndarray:
    """The (N, d) embedding of the nodes as a NumPy array, in eval mode without a graph."""
    model.eval()
    with no_grad():
        x = features if isinstance(features, Tensor) else creation.tensor(np.asarray(features, dtype=np.float32))
        return model(x, normalized_adjacency(adj)).numpy()

