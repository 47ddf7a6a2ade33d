"""Loss modules (minidl/nn/loss.py): each matches its torch.nn counterpart built with the same
options (value and input gradient, float64), weights live in buffers and state_dict, and
bad options fail at construction."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the test oracle for the loss modules")

R = np.random.default_rng(3)
W4 = R.uniform(0.5, 2.0, 4)
X = R.standard_normal((5, 4))
Y = R.standard_normal((5, 4))
P = R.uniform(0.05, 0.95, (5, 4))
Q = R.uniform(0, 1, (5, 4))
IDX = np.array([0, 3, -1, 2, 1])
LOGP = np.log(R.dirichlet(np.ones(4), 5))
PROB = R.dirichlet(np.ones(4), 5)
SIGN = np.array([1.0, -1.0, -1.0, 1.0, -1.0])

# (name, minidl kwargs, torch kwargs built from the same values, inputs, which inputs get a gradient)
CASES = [
    ("CrossEntropyLoss", dict(weight=W4, ignore_index=-1, label_smoothing=0.1, reduction="sum"), [X, IDX], (0,)),
    ("CrossEntropyLoss", dict(), [X, PROB], (0, 1)),
    ("NLLLoss", dict(weight=W4, ignore_index=-1), [LOGP, IDX], (0,)),
    ("MSELoss", dict(reduction="none"), [X, Y], (0, 1)),
    ("L1Loss", dict(), [X, Y], (0, 1)),
    ("HuberLoss", dict(delta=0.5), [X, Y], (0, 1)),
    ("SmoothL1Loss", dict(beta=0.5, reduction="sum"), [X, Y], (0, 1)),
    ("BCELoss", dict(weight=W4), [P, Q], (0, 1)),
    ("BCEWithLogitsLoss", dict(weight=W4, pos_weight=W4[::-1].copy()), [X, Q], (0, 1)),
    ("KLDivLoss", dict(reduction="batchmean"), [LOGP, PROB], (0, 1)),
    ("KLDivLoss", dict(reduction="sum", log_target=True), [LOGP, np.log(PROB)], (0, 1)),
    ("CosineEmbeddingLoss", dict(margin=0.2), [X, Y, SIGN], (0, 1)),
    ("MarginRankingLoss", dict(margin=0.3, reduction="none"), [X[:, 0].copy(), Y[:, 0].copy(), SIGN], (0, 1)),
]


def _torch_kwargs(kw):
    return {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}


@pytest.mark.parametrize("name,kw,arrays,grad", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_loss_module_matches_torch_module(name, kw, arrays, grad):
    ours = getattr(nn, name)(**{k: minidl.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()})
    theirs = getattr(torch.nn, name)(**_torch_kwargs(kw))
    xs = [minidl.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    ts = [torch.tensor(a, requires_grad=i in grad) for i, a in enumerate(arrays)]
    y, ty = ours(*xs), theirs(*ts)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(minidl.tensor(g))
    ty.backward(torch.tensor(g))
    for i in grad:
        np.testing.assert_allclose(xs[i].grad.numpy(), ts[i].grad.numpy(), rtol=1e-9, atol=1e-12)


def test_weights_are_buffers_in_state_dict_with_torch_keys():
    ours = nn.BCEWithLogitsLoss(weight=minidl.tensor(W4), pos_weight=[1.0, 2.0, 3.0, 4.0])
    theirs = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(W4), pos_weight=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict()) == ["weight", "pos_weight"]
    np.testing.assert_array_equal(sd["weight"], W4)
    assert list(ours.parameters()) == []
    assert list(nn.CrossEntropyLoss().state_dict()) == []  # no weight, no key (as PyTorch)
    fresh = nn.CrossEntropyLoss(weight=np.ones(4))
    fresh.load_state_dict({"weight": W4})
    np.testing.assert_array_equal(fresh.weight.numpy(), W4)


def test_loss_module_inside_a_model_trains_down():
    minidl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    x = minidl.tensor(R.standard_normal((30, 4)))
    t = minidl.tensor((x.numpy()[:, 0] > 0).astype(np.int64) + (x.numpy()[:, 1] > 0))
    losses = []
    for _ in range(60):
        model.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        with minidl.no_grad():
            for p in model.parameters():
                p.data -= 0.5 * p.grad.data
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_repr_shows_the_options():
    assert repr(nn.CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(reduction='mean', label_smoothing=0.1)"
    assert repr(nn.HuberLoss(delta=2.0)) == "HuberLoss(reduction='mean', delta=2.0)"
    assert repr(nn.MarginRankingLoss(0.5, "sum")) == "MarginRankingLoss(margin=0.5, reduction='sum')"


def test_bad_options_fail_at_construction():
    with pytest.raises(ValueError, match=r"MSELoss: unknown reduction 'avg'"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: unknown reduction 'batchmean'"):
        nn.CrossEntropyLoss(reduction="batchmean")
    nn.KLDivLoss(reduction="batchmean")  # allowed there
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(ValueError, match=r"per-class weights \(C,\), got shape \(2, 2\)"):
        nn.NLLLoss(weight=np.ones((2, 2)))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.CrossEntropyLoss(ignore_index=None)
    with pytest.raises(ValueError, match="delta must be positive"):
        nn.HuberLoss(delta=-1.0)


def test_bad_targets_fail_at_the_call_with_clear_messages():
    with pytest.raises(IndexError, match=r"target value 9 is out of range for 4 classes"):
        nn.CrossEntropyLoss()(minidl.tensor(X), minidl.tensor(np.array([0, 1, 2, 3, 9])))
    with pytest.raises(ValueError, match=r"input shape \(5, 4\) and target shape \(5,\) differ"):
        nn.MSELoss()(minidl.tensor(X), minidl.tensor(Y[:, 0].copy()))
