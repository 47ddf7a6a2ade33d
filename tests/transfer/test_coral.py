"""Deep CORAL: covariance and CORAL loss against NumPy, gradchecks, bad input, and a short
training run in which the CORAL term pulls the two domains' statistics together."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.transfer.coral import coral_loss, covariance, predict, train_deep_coral


def t64(a, grad=True):
    return minidl.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def numpy_coral(s, t):
    d = s.shape[1]
    return np.sum((np.cov(s, rowvar=False) - np.cov(t, rowvar=False)) ** 2) / (4 * d * d)


def test_covariance_matches_numpy_cov():
    x = np.random.default_rng(0).normal(size=(9, 4))
    np.testing.assert_allclose(covariance(t64(x)).numpy(), np.cov(x, rowvar=False), rtol=1e-12)


def test_coral_loss_matches_numpy_formula():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(12, 5)), rng.normal(size=(7, 5)) * 2 + 1
    assert coral_loss(t64(s), t64(t)).item() == pytest.approx(numpy_coral(s, t), rel=1e-12)


def test_coral_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(6, 3)), rng.normal(size=(8, 3))
    ours_s, ours_t = t64(s), t64(t)
    coral_loss(ours_s, ours_t).backward()
    ts, tt = torch.tensor(s, requires_grad=True), torch.tensor(t, requires_grad=True)
    ref = ((torch.cov(ts.T) - torch.cov(tt.T)) ** 2).sum() / (4 * 3 * 3)
    ref.backward()
    assert coral_loss(t64(s), t64(t)).item() == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(ours_s.grad.numpy(), ts.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours_t.grad.numpy(), tt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_coral_loss_gradcheck_and_gradgradcheck():
    rng = np.random.default_rng(3)
    inputs = [t64(rng.normal(size=(5, 3))), t64(rng.normal(size=(4, 3)))]
    assert minidl.gradcheck(coral_loss, inputs)
    assert minidl.gradgradcheck(coral_loss, inputs)


def test_coral_loss_ignores_means_and_vanishes_for_equal_covariances():
    x = np.random.default_rng(4).normal(size=(10, 4))
    assert coral_loss(t64(x), t64(x + 5.0)).item() == pytest.approx(0.0, abs=1e-12)
    assert coral_loss(t64(x), t64(2 * x)).item() > 0


def test_coral_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="differ in width"):
        coral_loss(t64(np.zeros((4, 3))), t64(np.zeros((4, 2))))
    with pytest.raises(ValueError, match="n >= 2"):
        coral_loss(t64(np.zeros((1, 3))), t64(np.zeros((4, 3))))
    with pytest.raises(TypeError, match="Tensor"):
        coral_loss(np.zeros((4, 3)), t64(np.zeros((4, 3))))


def test_training_with_coral_term_aligns_the_domains():
    rng = np.random.default_rng(5)
    y_s = rng.integers(0, 3, size=300)
    centres = rng.normal(size=(3, 6)) * 3
    X_s = (centres[y_s] + rng.normal(size=(300, 6))).astype(np.float32)
    X_t = (centres[rng.integers(0, 3, size=300)] * np.array([1, 1, 1, 3, 3, 3]) + rng.normal(size=(300, 6)) * 2)
    X_t = X_t.astype(np.float32)

    def run(weight):
        minidl.manual_seed(0)
        f, c = nn.Sequential(nn.Linear(6, 16), nn.ReLU()), nn.Linear(16, 3)
        h = train_deep_coral(f, c, X_s, y_s, X_t, coral_weight=weight, steps=150, batch_size=32, lr=3e-3,
                             seed=0, progress=False)
        with minidl.no_grad():
            gap = coral_loss(c(f(minidl.tensor(X_s))), c(f(minidl.tensor(X_t)))).item()
        return h, gap, (predict(f, c, X_s) == y_s).mean()

    h0, gap0, acc0 = run(0.0)
    h1, gap1, acc1 = run(10.0)
    assert all(v == 0.0 for v in h0["coral"]) and h1["coral"][-1] > 0
    assert gap1 < 0.5 * gap0
    assert acc0 > 0.9 and acc1 > 0.9
    with pytest.raises(ValueError, match="align"):
        train_deep_coral(nn.Linear(6, 3), nn.Linear(3, 3), X_s, y_s, X_t, align="input", progress=False)


def test_shift_domain_and_a_short_coral_experiment():
    from minidl.transfer.fewshot_experiments import CORAL_RUNS, coral_markdown, run_coral, shift_domain

    x = np.random.default_rng(6).random((3, 1, 8, 8)).astype(np.float32)
    rotated = shift_domain(x, "rotate")
    np.testing.assert_array_equal(rotated[0, 0, :, 0], x[0, 0, 0, ::-1])
    np.testing.assert_array_equal(shift_domain(shift_domain(rotated, "rotate"), "rotate"), np.rot90(x, 3, (2, 3)))
    np.testing.assert_allclose(shift_domain(x, "invert"), 1 - x)
    with pytest.raises(ValueError, match="rotate"):
        shift_domain(x, "blur")
    r = run_coral([0], steps=3, progress=False)
    assert len(r) == len(CORAL_RUNS) and all(0 <= v["target"][0] <= 1 for v in r.values())
    assert "target accuracy %" in coral_markdown(r, [0], 3, "cmd")
