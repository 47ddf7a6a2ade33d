"""Losses (minidl/functional/loss.py): forward values and gradients against PyTorch in
float64 (every reduction, weights, ignore_index, label smoothing, soft and K-dimensional
targets), gradcheck with a random upstream gradient, gradgradcheck for the losses that
gradient penalties differentiate twice, numerical stability, and clear errors."""
import numpy as np
import pytest

import minidl
import minidl.functional as F

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the test oracle for the losses")
TF = torch.nn.functional

REDUCTIONS = ["none", "mean", "sum"]


def md(a, grad=True):
    return minidl.tensor(np.asarray(a), requires_grad=grad and np.asarray(a).dtype.kind == "f")


def th(a, grad=True):
    a = np.asarray(a)
    return torch.tensor(a, requires_grad=grad and a.dtype.kind == "f")


def assert_matches_torch(fn, tfn, arrays, grad=(0,), seed=0, rtol=1e-10, atol=1e-12, grad_rtol=1e-9):
    """Same forward value and same gradients for the inputs listed in ``grad``, with a random
    upstream gradient (so that a backward that mixes up elements fails)."""
    xs = [md(a, i in grad) for i, a in enumerate(arrays)]
    ts = [th(a, i in grad) for i, a in enumerate(arrays)]
    y, ty = fn(*xs), tfn(*ts)
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    for i in grad:
        assert xs[i].grad is not None, f"input {i} got no gradient"
        np.testing.assert_allclose(xs[i].grad.numpy(), ts[i].grad.numpy(), rtol=grad_rtol, atol=1e-12)


@pytest.fixture
def r():
    return np.random.default_rng(1)


# --------------------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_class_indices_match_torch(r, reduction, weighted, smoothing):
    x = r.standard_normal((6, 4))
    t = np.array([0, 3, 1, -100, 2, 3])
    w = r.uniform(0.5, 2.0, 4) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    assert_matches_torch(
        lambda a, b: F.cross_entropy(a, b, weight=None if w is None else minidl.tensor(w), **kw),
        lambda a, b: TF.cross_entropy(a, b, weight=None if w is None else torch.tensor(w), **kw),
        [x, t],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_k_dimensional_targets_match_torch(r, reduction):
    x = r.standard_normal((2, 3, 4, 5))
    t = r.integers(0, 3, (2, 4, 5))
    t[0, 1, 2] = 7  # an ignored entry
    w = r.uniform(0.5, 2.0, 3)
    kw = dict(reduction=reduction, ignore_index=7, label_smoothing=0.1)
    assert_matches_torch(
        lambda a, b: F.cross_entropy(a, b, minidl.tensor(w), **kw),
        lambda a, b: TF.cross_entropy(a, b, torch.tensor(w), **kw),
        [x, t],
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_soft_targets_match_torch_with_target_gradient(r, reduction, weighted, smoothing):
    x = r.standard_normal((5, 4, 2))
    p = r.dirichlet(np.ones(4), (5, 2)).transpose(0, 2, 1).copy()
    w = r.uniform(0.5, 2.0, 4) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=smoothing)
    assert_matches_torch(
        lambda a, b: F.cross_entropy(a, b, None if w is None else minidl.tensor(w), **kw),
        lambda a, b: TF.cross_entropy(a, b, None if w is None else torch.tensor(w), **kw),
        [x, p], grad=(0, 1),
    )


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_unbatched_input_matches_torch(r, reduction):
    x = r.standard_normal(5)
    assert_matches_torch(lambda a, b: F.cross_entropy(a, b, reduction=reduction),
                         lambda a, b: TF.cross_entropy(a, b, reduction=reduction), [x, np.array(3)])
    p = r.dirichlet(np.ones(5))
    assert_matches_torch(lambda a, b: F.cross_entropy(a, b, reduction=reduction),
                         lambda a, b: TF.cross_entropy(a, b, reduction=reduction), [x, p], grad=(0, 1))


def test_cross_entropy_all_targets_ignored_gives_nan_mean_like_torch():
    x = np.zeros((2, 3))
    t = np.array([-100, -100])
    y = F.cross_entropy(md(x), md(t))
    assert np.isnan(y.item()) and np.isnan(TF.cross_entropy(th(x), th(t)).item())
    assert F.cross_entropy(md(x), md(t), reduction="sum").item() == 0.0


def test_cross_entropy_float32_stays_float32(r):
    x = minidl.tensor(r.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    y = F.cross_entropy(x, minidl.tensor([0, 1, 2]))
    y.backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_cross_entropy_is_stable_for_huge_logits():
    x = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])
    t = np.array([1, 2])
    for reduction in REDUCTIONS:
        assert_matches_torch(lambda a, b: F.cross_entropy(a, b, reduction=reduction, label_smoothing=0.1),
                             lambda a, b: TF.cross_entropy(a, b, reduction=reduction, label_smoothing=0.1), [x, t])
    y = F.cross_entropy(md(x), md(t), reduction="none").numpy()
    np.testing.assert_allclose(y, [2000.0, 1.0 + np.log1p(np.exp(-1.0))], rtol=1e-12)
    soft = F.cross_entropy(md(x), md(np.eye(3)[t]), reduction="none").numpy()
    np.testing.assert_allclose(soft, y, rtol=1e-12)


@pytest.mark.parametrize("shape", [(300, 10), (5, 200)])
def test_cross_entropy_few_and_many_classes_match_torch_with_huge_logits(r, shape):
    # below 64 classes the max shift is taken over a transposed copy; above it, row by row
    x = r.standard_normal(shape) * 300.0
    x[0, 1] = 1e4
    t = r.integers(0, shape[1], shape[0])
    assert_matches_torch(F.cross_entropy, TF.cross_entropy, [x, t])


def test_nll_of_log_softmax_equals_cross_entropy(r):
    x, t = r.standard_normal((5, 4)), r.integers(0, 4, 5)
    a = F.cross_entropy(md(x), md(t), reduction="none").numpy()
    b = F.nll_loss(F.log_softmax(md(x), axis=1), md(t), reduction="none").numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_matches_torch_with_weights_and_ignore_index(r, reduction):
    x = np.log(r.dirichlet(np.ones(4), (3, 2)).transpose(0, 2, 1).copy())  # (3, 4, 2)
    t = np.array([[0, 3], [-1, 1], [2, 2]])
    w = r.uniform(0.5, 2.0, 4)
    kw = dict(reduction=reduction, ignore_index=-1)
    assert_matches_torch(lambda a, b: F.nll_loss(a, b, minidl.tensor(w), **kw),
                         lambda a, b: TF.nll_loss(a, b, torch.tensor(w), **kw), [x, t])


# --------------------------------------------------------------------------- regression losses

PAIRWISE = [
    ("mse_loss", {}, {}),
    ("l1_loss", {}, {}),
    ("huber_loss", {"delta": 0.7}, {"delta": 0.7}),
    ("huber_loss", {}, {}),
    ("smooth_l1_loss", {"beta": 0.5}, {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}, {"beta": 0.0}),
    ("binary_cross_entropy_with_logits", {}, {}),
    ("kl_div", {}, {}),
    ("kl_div", {"log_target": True}, {"log_target": True}),
]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kw,tkw", PAIRWISE, ids=[f"{n}{'-' + str(k) if k else ''}" for n, k, _ in PAIRWISE])
def test_pairwise_losses_match_torch_for_input_and_target_gradients(r, name, kw, tkw, reduction):
    x = r.standard_normal((3, 4)) * 1.5
    y = r.standard_normal((3, 4))
    if name == "kl_div":
        x = np.log(r.dirichlet(np.ones(4), 3))
        y = np.log(r.dirichlet(np.ones(4), 3)) if kw.get("log_target") else r.dirichlet(np.ones(4), 3)
    if name == "binary_cross_entropy_with_logits":
        y = r.uniform(0, 1, (3, 4))
    assert_matches_torch(lambda a, b: getattr(F, name)(a, b, reduction=reduction, **kw),
                         lambda a, b: getattr(TF, name)(a, b, reduction=reduction, **tkw), [x, y], grad=(0, 1))


def test_kl_div_batchmean_matches_torch_and_zero_targets_contribute_zero(r):
    x = np.log(r.dirichlet(np.ones(4), 3))
    p = r.dirichlet(np.ones(4), 3)
    p[0, 1] = 0.0
    p[0] /= p[0].sum()
    assert_matches_torch(lambda a, b: F.kl_div(a, b, reduction="batchmean"),
                         lambda a, b: TF.kl_div(a, b, reduction="batchmean"), [x, p])
    expected = (p[p > 0] * (np.log(p[p > 0]) - x[p > 0])).sum() / 3
    np.testing.assert_allclose(F.kl_div(md(x), md(p), reduction="batchmean").item(), expected, rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch_with_weight(r, reduction):
    x = r.uniform(0.05, 0.95, (4, 3))
    y = r.uniform(0, 1, (4, 3))
    w = r.uniform(0.5, 2, (3,))
    assert_matches_torch(lambda a, b: F.binary_cross_entropy(a, b, minidl.tensor(w), reduction=reduction),
                         lambda a, b: TF.binary_cross_entropy(a, b, torch.tensor(w), reduction=reduction),
                         [x, y], grad=(0, 1))


def test_binary_cross_entropy_clamps_logs_at_zero_and_one_like_torch():
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    # the gradient at x = 0 or 1 is (x - y) / 1e-12; PyTorch's 1e-12 is rounded to float32 (4e-9 off)
    assert_matches_torch(lambda a, b: F.binary_cross_entropy(a, b, reduction="none"),
                         lambda a, b: TF.binary_cross_entropy(a, b, reduction="none"), [x, y], grad=(0,),
                         grad_rtol=1e-8)
    assert F.binary_cross_entropy(md(x), md(y), reduction="none").numpy()[0] == 100.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch_with_weight_and_pos_weight(r, reduction):
    x = r.standard_normal((5, 3)) * 3
    y = (r.uniform(0, 1, (5, 3)) > 0.5).astype(np.float64)
    w, pw = r.uniform(0.5, 2, (5, 1)), r.uniform(0.5, 3, (3,))
    assert_matches_torch(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, minidl.tensor(w), reduction, pos_weight=minidl.tensor(pw)),
        lambda a, b: TF.binary_cross_entropy_with_logits(a, b, torch.tensor(w), reduction=reduction, pos_weight=torch.tensor(pw)),
        [x, y], grad=(0, 1),
    )


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([1000.0, -1000.0, 1000.0, -1000.0, 40.0])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    pw = np.array([2.0])
    for kw in ({}, {"pos_weight": pw}):
        assert_matches_torch(
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none", pos_weight=None if not kw else minidl.tensor(pw)),
            lambda a, b: TF.binary_cross_entropy_with_logits(a, b, reduction="none", pos_weight=None if not kw else torch.tensor(pw)),
            [x, y], grad=(0, 1))
    loss = F.binary_cross_entropy_with_logits(md(x), md(y), reduction="none").numpy()
    np.testing.assert_allclose(loss, [0.0, 0.0, 1000.0, 1000.0, np.log1p(np.exp(-40.0))], rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- similarity and ranking

def test_cosine_similarity_and_normalize_match_torch(r):
    a, b = r.standard_normal((4, 5, 3)), r.standard_normal((1, 5, 3))
    for dim in (1, -1):
        assert_matches_torch(lambda x, y: F.cosine_similarity(x, y, dim=dim),
                             lambda x, y: TF.cosine_similarity(x, y, dim=dim), [a, b], grad=(0, 1))
    for p in (2.0, 1.0, 3.0, float("inf")):
        assert_matches_torch(lambda x: F.normalize(x, p=p, dim=1), lambda x: TF.normalize(x, p=p, dim=1), [a])
    n = F.normalize(md(a), dim=2).numpy()
    np.testing.assert_allclose(np.linalg.norm(n, axis=2), 1.0, rtol=1e-12)


def test_normalize_leaves_zero_vectors_at_zero():
    z = F.normalize(md(np.zeros((2, 3))), dim=1)
    assert np.all(np.isfinite(z.numpy())) and np.all(z.numpy() == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_cosine_embedding_loss_matches_torch(r, reduction, margin):
    a, b = r.standard_normal((6, 4)), r.standard_normal((6, 4))
    y = np.array([1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
    assert_matches_torch(lambda x1, x2, t: F.cosine_embedding_loss(x1, x2, t, margin, reduction),
                         lambda x1, x2, t: TF.cosine_embedding_loss(x1, x2, t, margin, reduction=reduction),
                         [a, b, y], grad=(0, 1))
    assert_matches_torch(lambda x1, x2, t: F.cosine_embedding_loss(x1, x2, t, margin, reduction),
                         lambda x1, x2, t: TF.cosine_embedding_loss(x1, x2, t, margin, reduction=reduction),
                         [a[0], b[0], np.array(-1.0)], grad=(0, 1))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_margin_ranking_loss_matches_torch(r, reduction, margin):
    a, b = r.standard_normal(7), r.standard_normal(7)
    y = np.where(r.uniform(size=7) > 0.5, 1.0, -1.0)
    assert_matches_torch(lambda x1, x2, t: F.margin_ranking_loss(x1, x2, t, margin, reduction),
                         lambda x1, x2, t: TF.margin_ranking_loss(x1, x2, t, margin, reduction=reduction),
                         [a, b, y], grad=(0, 1))


# --------------------------------------------------------------------------- gradient checks

def _inputs(*arrays, grad=(0,)):
    return [minidl.tensor(np.asarray(a), requires_grad=i in grad) for i, a in enumerate(arrays)]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_every_loss(r, reduction):
    x, y = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    logits, idx = r.standard_normal((3, 4, 2)), r.integers(0, 4, (3, 2))
    idx[1, 0] = -100
    soft = r.dirichlet(np.ones(4), 3)
    logp, prob = np.log(r.dirichlet(np.ones(4), 3)), r.dirichlet(np.ones(4), 3)
    w = minidl.tensor(r.uniform(0.5, 2.0, 4))
    sign = np.array([1.0, -1.0, 1.0])
    # keep |x - y| away from the Huber/smooth-L1 switch points and the L1 kink
    d = np.where(np.abs(np.abs(x - y) - 0.6) < 0.1, 0.3, x - y)
    d = np.where(np.abs(d) < 0.05, 0.2, d)
    x_far = y + d
    cases = [
        (lambda a: F.cross_entropy(a, minidl.tensor(idx), w, reduction=reduction, label_smoothing=0.1), [logits]),
        (lambda a, b: F.cross_entropy(a, b, w, reduction=reduction, label_smoothing=0.1), [x, soft], (0, 1)),
        (lambda a: F.nll_loss(a, minidl.tensor(idx), w, reduction=reduction), [logits]),
        (lambda a, b: F.mse_loss(a, b, reduction), [x, y], (0, 1)),
        (lambda a, b: F.l1_loss(a, b, reduction), [x_far, y], (0, 1)),
        (lambda a, b: F.huber_loss(a, b, reduction, delta=0.6), [x_far, y], (0, 1)),
        (lambda a, b: F.smooth_l1_loss(a, b, reduction, beta=0.6), [x_far, y], (0, 1)),
        (lambda a, b: F.binary_cross_entropy(a, b, w, reduction), [1 / (1 + np.exp(-x)), soft], (0, 1)),
        (lambda a, b: F.binary_cross_entropy_with_logits(a, b, w, reduction, pos_weight=w * 2.0), [x, soft], (0, 1)),
        (lambda a, b: F.kl_div(a, b, reduction), [logp, prob], (0, 1)),
        (lambda a, b: F.kl_div(a, b, reduction, log_target=True), [logp, np.log(prob)], (0, 1)),
        (lambda a, b: F.cosine_embedding_loss(a, b, minidl.tensor(sign), 0.1, reduction), [x, y], (0, 1)),
        (lambda a, b: F.margin_ranking_loss(a, b, minidl.tensor(np.tile(sign, (4, 1)).T), 0.1, reduction), [x, y], (0, 1)),
    ]
    for case in cases:
        fn, arrays = case[0], case[1]
        grad = case[2] if len(case) > 2 else (0,)
        assert minidl.gradcheck(fn, _inputs(*arrays, grad=grad))


def test_gradcheck_cosine_similarity_and_normalize(r):
    a, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    assert minidl.gradcheck(lambda x, y: F.cosine_similarity(x, y, dim=1), _inputs(a, b, grad=(0, 1)))
    assert minidl.gradcheck(lambda x: F.normalize(x, p=3.0, dim=0), _inputs(a))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradgradcheck_cross_entropy_mse_and_bce_with_logits(r, reduction):
    logits, idx = r.standard_normal((3, 4)), np.array([2, -100, 0])
    soft = r.dirichlet(np.ones(4), 3)
    x, y = r.standard_normal((3, 4)), r.uniform(0, 1, (3, 4))
    w = minidl.tensor(r.uniform(0.5, 2.0, 4))
    t = minidl.tensor(idx)
    assert minidl.gradgradcheck(lambda a: F.cross_entropy(a, t, w, reduction=reduction, label_smoothing=0.2),
                                _inputs(logits))
    assert minidl.gradgradcheck(lambda a, b: F.cross_entropy(a, b, reduction=reduction), _inputs(logits, soft, grad=(0, 1)))
    assert minidl.gradgradcheck(lambda a, b: F.mse_loss(a, b, reduction), _inputs(x, y, grad=(0, 1)))
    assert minidl.gradgradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction, pos_weight=w),
                                _inputs(x, y, grad=(0, 1)))


def test_gradient_penalty_through_cross_entropy_matches_torch(r):
    """d/dx ||d CE / dx||^2: the second derivative that WGAN-GP-style penalties need."""
    x, t = r.standard_normal((4, 3)), np.array([0, 2, 1, 1])
    a = md(x)
    (g,) = minidl.grad(F.cross_entropy(a, md(t), label_smoothing=0.1), a, create_graph=True)
    (g * g).sum().backward()
    ta = th(x)
    (tg,) = torch.autograd.grad(TF.cross_entropy(ta, th(t), label_smoothing=0.1), ta, create_graph=True)
    (tg * tg).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------- bad input

def test_cross_entropy_rejects_class_index_out_of_range_naming_value_and_classes():
    x = md(np.zeros((3, 4)))
    with pytest.raises(IndexError, match=r"target value 4 .* 4 classes"):
        F.cross_entropy(x, md(np.array([0, 4, 1])))
    with pytest.raises(IndexError, match=r"target value -3 .* 4 classes"):
        F.nll_loss(x, md(np.array([0, -3, 1])))


def test_cross_entropy_rejects_float_or_misshaped_targets():
    x = md(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"class probabilities .* \(3, 4\), got \(3,\)"):
        F.cross_entropy(x, md(np.array([0.0, 1.0, 2.0])))
    with pytest.raises(TypeError, match=r"nll_loss: expected class indices of an integer dtype"):
        F.nll_loss(x, md(np.array([0.0, 1.0, 2.0])))
    with pytest.raises(ValueError, match=r"target must have shape \(3,\) .* got \(3, 1\)"):
        F.cross_entropy(x, md(np.array([[0], [1], [2]])))
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\)"):
        F.cross_entropy(x, md(np.array([0, 1, 2])), weight=md(np.ones(3)))
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, md(np.array([0, 1, 2])), label_smoothing=1.5)
    with pytest.raises(ValueError, match="ignore_index is only supported for class-index"):
        F.cross_entropy(x, md(np.full((3, 4), 0.25)), ignore_index=0)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy",
                                  "binary_cross_entropy_with_logits", "kl_div"])
def test_shape_mismatch_is_an_error_not_a_broadcast(name):
    x, y = md(np.full((4, 1), 0.5)), md(np.full((4,), 0.5))
    with pytest.raises(ValueError, match=rf"{name}: input shape \(4, 1\) and target shape \(4,\) differ"):
        getattr(F, name)(x, y)


def test_unknown_reduction_and_bad_options_are_errors():
    x, y = md(np.zeros((2, 3))), md(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mse_loss: unknown reduction 'avg'"):
        F.mse_loss(x, y, reduction="avg")
    with pytest.raises(ValueError, match=r"cross_entropy: unknown reduction 'batchmean'"):
        F.cross_entropy(x, md(np.array([0, 1])), reduction="batchmean")
    with pytest.raises(ValueError, match="delta must be positive"):
        F.huber_loss(x, y, delta=0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\], found 1.5"):
        F.binary_cross_entropy(md(np.array([0.5, 1.5])), md(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        F.binary_cross_entropy_with_logits(x, y, pos_weight=md(np.ones(2)))
    with pytest.raises(ValueError, match="target values must be 1 or -1"):
        F.cosine_embedding_loss(x, y, md(np.array([1.0, 0.0])))
    with pytest.raises(ValueError, match=r"input1 shape \(2, 3\) and input2 shape \(3,\) differ"):
        F.margin_ranking_loss(x, md(np.zeros(3)), md(np.ones(3)))


def test_targets_may_be_python_numbers_and_lists():
    x = md(np.array([1.0, 2.0, 3.0]))
    expected = -np.log(np.exp(3.0) / np.exp([1.0, 2.0, 3.0]).sum())
    np.testing.assert_allclose(F.cross_entropy(x, 2).item(), expected, rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(md(np.ones((2, 3))), [0, 1]).item(), np.log(3.0), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(x, [0.0, 0.0, 1.0]).item(), expected, rtol=1e-12)


def test_losses_on_device_match_cpu(device, r):
    x, y = r.standard_normal((4, 3)), r.uniform(0, 1, (4, 3))
    idx = np.array([0, 2, -100, 1])
    w = r.uniform(0.5, 2.0, 3)
    cases = [
        lambda a, b, wt, t, s: F.cross_entropy(a, t, wt, label_smoothing=0.1),
        lambda a, b, wt, t, s: F.nll_loss(F.log_softmax(a, axis=1), t, wt),
        lambda a, b, wt, t, s: F.cross_entropy(a, F.softmax(b, axis=1), wt),
        lambda a, b, wt, t, s: F.mse_loss(a, b) + F.l1_loss(a, b) + F.huber_loss(a, b, delta=0.5),
        lambda a, b, wt, t, s: F.binary_cross_entropy_with_logits(a, b, pos_weight=wt),
        lambda a, b, wt, t, s: F.binary_cross_entropy(F.sigmoid(a), b, wt),
        lambda a, b, wt, t, s: F.kl_div(F.log_softmax(a, axis=1), F.softmax(b, axis=1), "batchmean"),
        lambda a, b, wt, t, s: F.cosine_embedding_loss(a, b, s),
    ]
    for fn in cases:
        results = []
        for dev in ("cpu", device):
            a = minidl.tensor(x, requires_grad=True, device=dev)
            b = minidl.tensor(y, requires_grad=True, device=dev)
            sign = minidl.tensor(np.array([1.0, -1.0, 1.0, -1.0]), device=dev)
            out = fn(a, b, minidl.tensor(w, device=dev), minidl.tensor(idx, device=dev), sign)
            out.backward()
            results.append((out.numpy(), a.grad.numpy(), b.grad.numpy() if b.grad is not None else None))
        (v0, ga0, gb0), (v1, ga1, gb1) = results
        np.testing.assert_allclose(v1, v0, rtol=1e-10)
        np.testing.assert_allclose(ga1, ga0, rtol=1e-9, atol=1e-12)
        if gb0 is not None:
            np.testing.assert_allclose(gb1, gb0, rtol=1e-9, atol=1e-12)
