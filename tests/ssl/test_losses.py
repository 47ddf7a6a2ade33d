"""minidl.ssl.losses against direct NumPy formulas, PyTorch, and finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import minidl
from minidl.ssl.losses import byol_loss, info_nce, nt_xent, simsiam_loss, sinkhorn_knopp, swav_loss


def _t(a, requires_grad=False):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def _unit(a):
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ----------------------------------------------------------------------------- NumPy references

def nt_xent_reference(z1, z2, tau):
    u = _unit(np.concatenate([z1, z2]))
    n2 = u.shape[0]
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        p = (i + n) % n2
        num = np.exp(u[i] @ u[p] / tau)
        den = sum(np.exp(u[i] @ u[j] / tau) for j in range(n2) if j != i)
        total += -np.log(num / den)
    return total / n2


def info_nce_reference(q, k, queue, tau):
    q, k, queue = _unit(q), _unit(k), _unit(queue)
    total = 0.0
    for i in range(q.shape[0]):
        pos = np.exp(q[i] @ k[i] / tau)
        neg = np.exp(queue @ q[i] / tau).sum()
        total += -np.log(pos / (pos + neg))
    return total / q.shape[0]


def sinkhorn_reference(scores, eps, iters):
    """The exponential-domain algorithm as SwAV describes it, on (K, N) = Q^T."""
    Q = np.exp(scores / eps).T
    Q /= Q.sum()
    K, N = Q.shape
    for _ in range(iters):
        Q /= Q.sum(axis=1, keepdims=True)
        Q /= K
        Q /= Q.sum(axis=0, keepdims=True)
        Q /= N
    return (Q * N).T


def log_softmax_np(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


# ----------------------------------------------------------------------------- NT-Xent

@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_nt_xent_matches_numpy_formula(rng, tau):
    z1, z2 = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    got = nt_xent(_t(z1), _t(z2), temperature=tau).item()
    assert got == pytest.approx(nt_xent_reference(z1, z2, tau), rel=1e-10)


def test_nt_xent_matches_torch_value_and_gradients(rng):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    z1, z2 = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    tau = 0.3

    a = torch.tensor(z1, requires_grad=True)
    b = torch.tensor(z2, requires_grad=True)
    u = tF.normalize(torch.cat([a, b]), dim=1)
    logits = u @ u.T / tau
    logits = logits.masked_fill(torch.eye(12, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(6, 12), torch.arange(0, 6)])
    ref = tF.cross_entropy(logits, target)
    ref.backward()

    x1, x2 = _t(z1, True), _t(z2, True)
    loss = nt_xent(x1, x2, temperature=tau)
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(x1.grad.numpy(), a.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(x2.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_nt_xent_gradcheck_and_gradgradcheck(rng):
    z1, z2 = _t(rng.normal(size=(3, 4)), True), _t(rng.normal(size=(3, 4)), True)
    fn = lambda a, b: nt_xent(a, b, temperature=0.4)  # noqa: E731
    assert minidl.gradcheck(fn, [z1, z2])
    assert minidl.gradgradcheck(fn, [z1, z2])


def test_nt_xent_is_low_for_matching_views_and_high_for_swapped(rng):
    z = rng.normal(size=(8, 16))
    matched = nt_xent(_t(z), _t(z + 0.01 * rng.normal(size=z.shape)), temperature=0.1).item()
    shuffled = nt_xent(_t(z), _t(z[::-1].copy()), temperature=0.1).item()
    assert matched < 0.5 < shuffled


# ----------------------------------------------------------------------------- InfoNCE

@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_info_nce_matches_numpy_formula(rng, tau):
    q, k, queue = rng.normal(size=(4, 5)), rng.normal(size=(4, 5)), rng.normal(size=(7, 5))
    got = info_nce(_t(q), _t(k), _t(queue), temperature=tau).item()
    assert got == pytest.approx(info_nce_reference(q, k, queue, tau), rel=1e-10)


def test_info_nce_matches_torch_value_and_gradients(rng):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    q, k, queue = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), rng.normal(size=(9, 4))
    tau = 0.2

    tq = torch.tensor(q, requires_grad=True)
    tk = torch.tensor(k)
    tqueue = torch.tensor(queue)
    qn, kn, queuen = tF.normalize(tq, dim=1), tF.normalize(tk, dim=1), tF.normalize(tqueue, dim=1)
    l_pos = torch.einsum("nc,nc->n", qn, kn).unsqueeze(-1)
    l_neg = torch.einsum("nc,kc->nk", qn, queuen)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    ref = tF.cross_entropy(logits, torch.zeros(5, dtype=torch.long))
    ref.backward()

    mq = _t(q, True)
    loss = info_nce(mq, _t(k), _t(queue), temperature=tau)
    loss.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-10)
    np.testing.assert_allclose(mq.grad.numpy(), tq.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_info_nce_gradcheck_all_inputs(rng):
    q, k, queue = (_t(rng.normal(size=s), True) for s in [(3, 4), (3, 4), (5, 4)])
    fn = lambda a, b, c: info_nce(a, b, c, temperature=0.3)  # noqa: E731
    assert minidl.gradcheck(fn, [q, k, queue])
    assert minidl.gradgradcheck(fn, [q, k, queue])


def test_info_nce_accepts_a_single_query_because_the_queue_holds_the_negatives(rng):
    q, k, queue = rng.normal(size=(1, 3)), rng.normal(size=(1, 3)), rng.normal(size=(4, 3))
    got = info_nce(_t(q), _t(k), _t(queue), temperature=0.1).item()
    assert got == pytest.approx(info_nce_reference(q, k, queue, 0.1), rel=1e-10)


# ----------------------------------------------------------------------------- BYOL / SimSiam

def test_byol_loss_matches_numpy_formula(rng):
    p, z = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    ref = np.mean(np.sum((_unit(p) - _unit(z)) ** 2, axis=1))
    assert byol_loss(_t(p), _t(z)).item() == pytest.approx(ref, rel=1e-10)
    ref_cos = np.mean(2 - 2 * np.sum(_unit(p) * _unit(z), axis=1))
    assert ref == pytest.approx(ref_cos, rel=1e-12)


def test_simsiam_loss_matches_numpy_formula(rng):
    p, z = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    ref = -np.mean(np.sum(_unit(p) * _unit(z), axis=1))
    assert simsiam_loss(_t(p), _t(z)).item() == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss])
def test_non_contrastive_losses_gradcheck_in_the_prediction(rng, loss_fn):
    p = _t(rng.normal(size=(4, 3)), True)
    z = _t(rng.normal(size=(4, 3)))
    assert minidl.gradcheck(lambda a: loss_fn(a, z), [p])
    assert minidl.gradgradcheck(lambda a: loss_fn(a, z), [p])


@pytest.mark.parametrize("loss_fn", [byol_loss, simsiam_loss])
def test_stop_gradient_keeps_the_target_branch_without_gradient(rng, loss_fn):
    w_target = _t(rng.normal(size=(3, 3)), True)  # a "target network" parameter
    x = _t(rng.normal(size=(5, 3)))
    p = _t(rng.normal(size=(5, 3)), True)
    z = x @ w_target
    loss_fn(p, z).backward()
    assert w_target.grad is None
    assert p.grad is not None and np.abs(p.grad.numpy()).sum() > 0


# ----------------------------------------------------------------------------- SwAV

@pytest.mark.parametrize("eps,iters", [(0.05, 3), (0.5, 1), (1.0, 10)])
def test_sinkhorn_knopp_matches_the_exponential_domain_algorithm(rng, eps, iters):
    scores = _unit(rng.normal(size=(7, 4))) @ _unit(rng.normal(size=(5, 4))).T  # cosines in [-1, 1]
    got = sinkhorn_knopp(_t(scores), epsilon=eps, iters=iters).numpy()
    np.testing.assert_allclose(got, sinkhorn_reference(scores, eps, iters), rtol=1e-9, atol=1e-12)


def test_sinkhorn_knopp_rows_are_distributions_and_prototypes_balance(rng):
    scores = rng.normal(size=(40, 4))
    q = sinkhorn_knopp(_t(scores), epsilon=0.5, iters=50).numpy()
    np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(q.sum(axis=0), 40 / 4, rtol=1e-6)


def test_sinkhorn_knopp_survives_tiny_epsilon_without_nan(rng):
    q = sinkhorn_knopp(_t(rng.normal(size=(6, 3)) * 10), epsilon=1e-3, iters=3).numpy()
    assert np.all(np.isfinite(q))


def test_swav_loss_matches_numpy_formula(rng):
    s1, s2 = rng.uniform(-1, 1, size=(6, 4)), rng.uniform(-1, 1, size=(6, 4))
    tau, eps, iters = 0.1, 0.05, 3
    q1, q2 = sinkhorn_reference(s1, eps, iters), sinkhorn_reference(s2, eps, iters)
    ref = -0.5 * np.mean(np.sum(q2 * log_softmax_np(s1 / tau), axis=1) + np.sum(q1 * log_softmax_np(s2 / tau), axis=1))
    got = swav_loss(_t(s1), _t(s2), temperature=tau, sinkhorn_iters=iters, epsilon=eps).item()
    assert got == pytest.approx(ref, rel=1e-9)


def test_swav_loss_gradcheck_with_fixed_codes(rng):
    s1, s2 = _t(rng.uniform(-1, 1, size=(4, 3)), True), _t(rng.uniform(-1, 1, size=(4, 3)), True)
    codes = (sinkhorn_knopp(s1.detach()), sinkhorn_knopp(s2.detach()))
    fn = lambda a, b: swav_loss(a, b, temperature=0.2, codes=codes)  # noqa: E731
    assert minidl.gradcheck(fn, [s1, s2])
    assert minidl.gradgradcheck(fn, [s1, s2])


def test_swav_codes_receive_no_gradient(rng):
    """The gradient of the full loss equals that with the same codes held as constants."""
    a, b = rng.uniform(-1, 1, size=(5, 3)), rng.uniform(-1, 1, size=(5, 3))
    s1, s2 = _t(a, True), _t(b, True)
    swav_loss(s1, s2, temperature=0.2).backward()
    f1, f2 = _t(a, True), _t(b, True)
    codes = (sinkhorn_knopp(_t(a)), sinkhorn_knopp(_t(b)))
    swav_loss(f1, f2, temperature=0.2, codes=codes).backward()
    np.testing.assert_allclose(s1.grad.numpy(), f1.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(s2.grad.numpy(), f2.grad.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------- bad input

def test_nt_xent_rejects_a_batch_of_one():
    with pytest.raises(ValueError, match="nt_xent: needs a batch of at least 2"):
        nt_xent(_t(np.ones((1, 3))), _t(np.ones((1, 3))))


@pytest.mark.parametrize("tau", [0.0, -0.5, float("nan"), float("inf")])
def test_temperature_must_be_positive(tau):
    z = _t(np.random.default_rng(0).normal(size=(3, 2)))
    with pytest.raises(ValueError, match="nt_xent: temperature must be a positive number"):
        nt_xent(z, z, temperature=tau)
    with pytest.raises(ValueError, match="info_nce: temperature must be a positive number"):
        info_nce(z, z, z, temperature=tau)
    with pytest.raises(ValueError, match="swav_loss: temperature must be a positive number"):
        swav_loss(z, z, temperature=tau)


@pytest.mark.parametrize("fn", [nt_xent, byol_loss, simsiam_loss, swav_loss])
def test_mismatched_view_shapes_are_rejected(fn):
    with pytest.raises(ValueError, match=r"must have the same shape.*\(4, 3\) and \(5, 3\)"):
        fn(_t(np.ones((4, 3))), _t(np.ones((5, 3))))


@pytest.mark.parametrize("fn", [nt_xent, byol_loss, simsiam_loss])
def test_views_must_be_two_dimensional(fn):
    with pytest.raises(ValueError, match=r"must be \(N, D\) embeddings.*\(4, 3, 2\)"):
        fn(_t(np.ones((4, 3, 2))), _t(np.ones((4, 3, 2))))


def test_info_nce_rejects_bad_queues():
    q = _t(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"info_nce: queue must be \(K, D\) with D = 3"):
        info_nce(q, q, _t(np.ones((4, 2))))
    with pytest.raises(ValueError, match="info_nce: the queue of negatives is empty"):
        info_nce(q, q, _t(np.ones((0, 3))))
    with pytest.raises(ValueError, match="info_nce: q and k must have the same shape"):
        info_nce(q, _t(np.ones((3, 3))), _t(np.ones((4, 3))))


def test_sinkhorn_rejects_bad_arguments():
    s = _t(np.ones((3, 2)))
    with pytest.raises(ValueError, match="sinkhorn_knopp: epsilon must be a positive number"):
        sinkhorn_knopp(s, epsilon=0.0)
    with pytest.raises(ValueError, match="sinkhorn_knopp: iters must be an integer >= 1"):
        sinkhorn_knopp(s, iters=0)
    with pytest.raises(ValueError, match=r"sinkhorn_knopp: scores must be \(N, K\) similarities"):
        sinkhorn_knopp(_t(np.ones(3)))
