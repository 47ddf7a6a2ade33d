"""GCN layer and graph autoencoder: the normalized adjacency and the layer against dense
NumPy formulas (dense and sparse), gradchecks, edge splits, link-prediction AUC, faction
accuracy, a short training run on the karate club, and graphs without edges."""
import numpy as np
import pytest
import scipy.sparse

import minidl
from minidl.graph import (GCNConv, GraphAutoencoder, adjacency_matmul, edge_list, embed, faction_accuracy,
                          link_prediction_auc, normalized_adjacency, sample_non_edges, split_edges,
                          train_graph_autoencoder)


def random_graph(n=7, p=0.4, seed=0):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    return (upper | upper.T).astype(np.float64)


def numpy_normalized(a, self_loops=True):
    a = a + np.eye(len(a)) if self_loops else a.copy()
    out = np.zeros_like(a)
    for i in range(len(a)):
        for j in range(len(a)):
            di, dj = a[i].sum(), a[j].sum()
            out[i, j] = a[i, j] / np.sqrt(di * dj) if di > 0 and dj > 0 else 0.0
    return out


def t64(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_normalized_adjacency_matches_the_formula_dense_and_sparse():
    a = random_graph()
    np.testing.assert_allclose(normalized_adjacency(a), numpy_normalized(a), rtol=1e-12)
    sparse = normalized_adjacency(scipy.sparse.csr_matrix(a))
    assert scipy.sparse.issparse(sparse)
    np.testing.assert_allclose(sparse.toarray(), numpy_normalized(a), rtol=1e-12)
    a[0, :] = a[:, 0] = 0                      # node 0 isolated: a zero row without self-loops
    no_loops = normalized_adjacency(a, add_self_loops=False)
    np.testing.assert_allclose(no_loops, numpy_normalized(a, self_loops=False), rtol=1e-12)
    assert not no_loops[0].any()
    with pytest.raises(ValueError, match=r"square \(N, N\).*\(3, 4\)"):
        normalized_adjacency(np.zeros((3, 4)))


@pytest.mark.parametrize("sparse", [False, True])
def test_gcnconv_matches_dense_numpy_formula(sparse):
    a = random_graph(6, seed=1)
    a_hat = normalized_adjacency(scipy.sparse.csr_matrix(a) if sparse else a)
    minidl.manual_seed(0)
    conv = GCNConv(4, 3)
    minidl.nn.init.normal_(conv.bias)
    x = np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32)
    out = conv(minidl.tensor(x), a_hat).numpy()
    ref = numpy_normalized(a) @ x @ conv.weight.numpy().T + conv.bias.numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert conv.weight.shape == (3, 4) and conv.bias.shape == (3,)
    assert [n for n, _ in conv.named_parameters()] == ["weight", "bias"]
    with pytest.raises(ValueError, match=r"GCNConv: expected node features \(N, 4\)"):
        conv(minidl.tensor(x[:, :3]), a_hat)


@pytest.mark.parametrize("sparse", [False, True])
def test_gcn_layer_gradcheck_and_gradgradcheck(sparse):
    a = random_graph(5, seed=3)
    a_hat = normalized_adjacency(scipy.sparse.csr_matrix(a) if sparse else a)
    rng = np.random.default_rng(4)
    x, w, b = t64(rng.normal(size=(5, 3))), t64(rng.normal(size=(2, 3))), t64(rng.normal(size=2))
    layer = lambda x, w, b: adjacency_matmul(a_hat, x @ w.T) + b  # noqa: E731
    assert minidl.gradcheck(layer, [x, w, b])
    assert minidl.gradgradcheck(lambda x, w, b: layer(x, w, b).tanh(), [x, w, b])


def test_adjacency_matmul_uses_the_transpose_for_a_directed_graph():
    a = np.triu(np.ones((4, 4)), 1)            # not symmetric
    x = t64(np.random.default_rng(5).normal(size=(4, 2)))
    y = adjacency_matmul(a, x)
    gy = np.random.default_rng(6).normal(size=(4, 2))
    y.backward(minidl.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), a.T @ gy)
    with pytest.raises(ValueError, match=r"N = 4 rows"):
        adjacency_matmul(a, t64(np.zeros((3, 2))))


def test_edge_split_partitions_the_edges_and_draws_true_non_edges():
    a = random_graph(20, p=0.3, seed=7)
    edges = {tuple(e) for e in edge_list(a)}
    s = split_edges(a, val_fraction=0.1, test_fraction=0.2, seed=1)
    parts = [{tuple(e) for e in s[k]} for k in ("train_pos", "val_pos", "test_pos")]
    assert set.union(*parts) == edges and sum(map(len, parts)) == len(edges)
    assert len(parts[2]) == int(np.ceil(0.2 * len(edges)))
    negatives = [tuple(e) for e in np.concatenate([s["val_neg"], s["test_neg"]])]
    assert len(set(negatives)) == len(negatives) and not set(negatives) & edges
    assert all(i < j for i, j in negatives)
    assert len(s["test_neg"]) == len(s["test_pos"]) and len(s["val_neg"]) == len(s["val_pos"])
    np.testing.assert_array_equal(s["train_adj"], s["train_adj"].T)
    assert {tuple(e) for e in edge_list(s["train_adj"])} == parts[0]


def test_graph_without_edges_is_a_clear_error():
    empty = np.zeros((5, 5))
    for call in (lambda: edge_list(empty), lambda: split_edges(empty),
                 lambda: train_graph_autoencoder(GraphAutoencoder(5), np.eye(5), empty, progress=False)):
        with pytest.raises(ValueError, match="5 nodes has no edges"):
            call()
    with pytest.raises(ValueError, match="only"):
        sample_non_edges(3, 5, np.array([[0, 1]]), np.random.default_rng(0))


def test_link_prediction_auc_counts_correctly_ordered_pairs():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(10, 3))
    pos, neg = np.array([[0, 1], [2, 3], [4, 5]]), np.array([[6, 7], [8, 9], [0, 9], [1, 8]])
    sp = [z[i] @ z[j] for i, j in pos]
    sn = [z[i] @ z[j] for i, j in neg]
    expected = np.mean([[1.0 if p > n else 0.5 if p == n else 0.0 for n in sn] for p in sp])
    assert link_prediction_auc(z, pos, neg) == pytest.approx(expected)


def test_faction_accuracy_is_invariant_to_cluster_names():
    rng = np.random.default_rng(9)
    labels = np.repeat([0, 1], 10)
    z = rng.normal(size=(20, 2)) * 0.1 + np.where(labels[:, None] == 1, 3.0, -3.0)
    assert faction_accuracy(z, labels) == 1.0 and faction_accuracy(z, 1 - labels) == 1.0
    assert faction_accuracy(z, labels, "logistic") == 1.0
    with pytest.raises(ValueError, match="method"):
        faction_accuracy(z, labels, "svm")


def test_graph_autoencoder_decodes_inner_products_and_learns_the_karate_club():
    nx = pytest.importorskip("networkx")
    g = nx.karate_club_graph()
    a = (nx.to_numpy_array(g, nodelist=range(34)) > 0).astype(np.float64)
    minidl.manual_seed(0)
    model = GraphAutoencoder(34, 16, 8)
    z = model(minidl.tensor(np.eye(34, dtype=np.float32)), normalized_adjacency(a))
    pairs = np.array([[0, 1], [5, 30]])
    np.testing.assert_allclose(model.decode(z, pairs).numpy(), (z.numpy()[[0, 5]] * z.numpy()[[1, 30]]).sum(1),
                               rtol=1e-6)
    losses = train_graph_autoencoder(model, np.eye(34), a, epochs=60, lr=0.01, progress=False)
    assert losses[-1] < losses[0] - 0.1
    z = embed(model, np.eye(34), a)
    non_edges = sample_non_edges(34, 78, edge_list(a), np.random.default_rng(0))
    assert link_prediction_auc(z, edge_list(a), non_edges) > 0.85   # edges it was trained on
