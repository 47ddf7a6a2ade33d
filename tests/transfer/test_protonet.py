"""Prototypical networks: the episode sampler, prototypes and logits against NumPy/SciPy,
the loss against a direct log-softmax formula and gradchecked, evaluation and training."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

import minidl
from minidl import nn
from minidl.transfer.protonet import (evaluate_protonet, prototypes, prototypical_logits, prototypical_loss,
                                      sample_episode, train_protonet)


def t64(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def test_episode_has_n_classes_of_k_support_and_q_query_without_overlap():
    labels = np.repeat(np.arange(8), 12)
    ep = sample_episode(labels, n_way=5, k_shot=3, q_query=4, rng=np.random.default_rng(0))
    assert ep["support"].shape == (15,) and ep["query"].shape == (20,)
    assert len(set(ep["classes"].tolist())) == 5
    assert not set(ep["support"].tolist()) & set(ep["query"].tolist())
    assert len(set(ep["support"].tolist())) == 15 and len(set(ep["query"].tolist())) == 20
    np.testing.assert_array_equal(labels[ep["support"]], ep["classes"][ep["support_labels"]])
    np.testing.assert_array_equal(labels[ep["query"]], ep["classes"][ep["query_labels"]])
    np.testing.assert_array_equal(np.bincount(ep["support_labels"]), [3] * 5)
    np.testing.assert_array_equal(np.bincount(ep["query_labels"]), [4] * 5)
    restricted = sample_episode(labels, 2, 1, 1, np.random.default_rng(1), classes=[6, 7])
    assert set(restricted["classes"].tolist()) == {6, 7}


def test_episode_sampler_rejects_impossible_episodes():
    labels = np.repeat(np.arange(4), 5)
    with pytest.raises(ValueError, match="5-way episodes need at least 5 classes, got 4"):
        sample_episode(labels, 5, 1, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="class .* has 5 examples, fewer than k_shot \\+ q_query = 6"):
        sample_episode(labels, 2, 3, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_shot"):
        sample_episode(labels, 2, 0, 3, np.random.default_rng(0))


def test_prototypes_are_class_means_and_logits_negative_squared_distances():
    rng = np.random.default_rng(2)
    emb, labels = rng.normal(size=(9, 4)), np.array([2, 0, 1, 1, 2, 0, 0, 1, 2])
    protos = prototypes(t64(emb), labels, 3).numpy()
    np.testing.assert_allclose(protos, [emb[labels == n].mean(axis=0) for n in range(3)], rtol=1e-12)
    query = rng.normal(size=(5, 4))
    np.testing.assert_allclose(prototypical_logits(t64(query), t64(protos)).numpy(),
                               -cdist(query, protos, "sqeuclidean"), rtol=1e-10)
    with pytest.raises(ValueError, match=r"classes \[3\] have no support example"):
        prototypes(t64(emb), labels, 4)
    with pytest.raises(ValueError, match="same D"):
        prototypical_logits(t64(query), t64(protos[:, :3]))


def test_prototypical_loss_matches_log_softmax_formula_and_gradchecks():
    rng = np.random.default_rng(3)
    s, sl = rng.normal(size=(6, 3)), np.array([0, 0, 1, 1, 2, 2])
    q, ql = rng.normal(size=(4, 3)), np.array([0, 1, 2, 2])
    loss, acc = prototypical_loss(t64(s), sl, t64(q), ql, 3)
    protos = np.stack([s[sl == n].mean(0) for n in range(3)])
    logits = -cdist(q, protos, "sqeuclidean")
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert loss.item() == pytest.approx(-log_p[np.arange(4), ql].mean(), rel=1e-12)
    assert acc == pytest.approx((logits.argmax(1) == ql).mean())
    assert minidl.gradcheck(lambda a, b: prototypical_loss(a, sl, b, ql, 3)[0], [t64(s), t64(q)])


def test_raw_pixel_prototypes_classify_separable_clusters_perfectly():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(6), 20)
    X = (np.eye(6)[y] * 10 + rng.normal(size=(120, 6)) * 0.1).astype(np.float32)
    acc, half_width = evaluate_protonet(None, X, y, episodes=20, n_way=5, k_shot=2, q_query=3)
    assert acc == 1.0 and half_width == 0.0


def test_episodic_training_lowers_the_loss_on_new_classes():
    rng = np.random.default_rng(5)
    y = np.repeat(np.arange(10), 30)
    centres = rng.normal(size=(10, 2))
    X = np.concatenate([centres[y], rng.normal(size=(300, 8)) * 3], axis=1).astype(np.float32)  # 8 noise dims
    minidl.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 8))
    train = y < 6
    before, _ = evaluate_protonet(encoder, X[~train], y[~train], episodes=40, n_way=4, k_shot=5, q_query=5)
    losses = train_protonet(encoder, X[train], y[train], episodes=150, n_way=4, k_shot=5, q_query=5, lr=3e-3,
                            progress=False)
    after, _ = evaluate_protonet(encoder, X[~train], y[~train], episodes=40, n_way=4, k_shot=5, q_query=5)
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    assert after > before + 0.05, (before, after)


def test_short_fewshot_experiment_reports_every_split_and_method():
    from minidl.transfer.fewshot_experiments import PROTO_METHODS, SPLITS, main, protonet_markdown, run_protonet

    r = run_protonet([0], episodes=2, eval_episodes=3, progress=False)
    for split in SPLITS:
        for m in PROTO_METHODS:
            assert 0.0 <= r[split][m]["5-shot"][0] <= 1.0 and 0.0 <= r[split][m]["1-shot"][0] <= 1.0
    assert "5-way 1-shot %" in protonet_markdown(r, [0], 2, 3, "cmd")
    with pytest.raises(SystemExit):
        main(["--episodes", "0"])
