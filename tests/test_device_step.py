"""A training step makes no hidden host round trips, on every backend.

On a machine without a GPU the counter is told to count every conversion to a host value
(``include_host_arrays=True``), so any ``.item()``/``.numpy()``/``to_numpy`` inside the
forward pass, the loss, the backward pass or the optimizer step is caught here too.
"""
import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import backend, nn, optim


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(4 * 4 * 4, 16), nn.LayerNorm(16), nn.GELU(),
        nn.Linear(16, 10),
    )


@pytest.mark.parametrize("make_opt", [
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda p: optim.Adam(p, lr=1e-3, amsgrad=True),
    lambda p: optim.AdamW(p, lr=1e-3),
    lambda p: optim.RMSprop(p, lr=1e-3, centered=True, momentum=0.5),
    lambda p: optim.Adagrad(p, lr=1e-2),
], ids=["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_training_step_makes_no_host_round_trips(device, make_opt):
    model = _model().to(device)
    opt = make_opt(model.parameters())
    rng = np.random.default_rng(0)
    x = minidl.tensor(rng.standard_normal((8, 1, 8, 8)).astype(np.float32), device=device)
    y = minidl.tensor(rng.integers(0, 10, 8), device=device)

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    step()  # first step creates optimizer state
    with backend.count_host_transfers(include_host_arrays=(device == "cpu")) as counter:
        loss = step()
    assert counter.count == 0, f"host round trips in a training step: {counter.events}"
    assert np.isfinite(loss.item())


def test_counter_sees_item_and_numpy_calls():
    x = minidl.tensor([1.0, 2.0])
    with backend.count_host_transfers(include_host_arrays=True) as counter:
        x.sum().item()
        x.numpy()
    assert counter.count == 2


# ------------------------------------------------------------------ more layers, losses, schedulers
# Each case runs two training steps (the first creates optimizer state) and counts host
# conversions in the second: the forward, the loss, the backward, clipping, the optimizer
# step and the scheduler step together.

def _count_host_copies_in_a_step(device, model, inputs, loss_fn, make_opt=None, make_sched=None):
    opt = (make_opt or (lambda p: optim.Adam(p, lr=1e-3)))(model.parameters())
    sched = make_sched(opt) if make_sched is not None else None

    def step():
        opt.zero_grad()
        loss = loss_fn(model(*inputs))
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        return loss

    step()
    with backend.count_host_transfers(include_host_arrays=(device == "cpu")) as counter:
        loss = step()
    assert counter.count == 0, f"host round trips in a training step: {counter.events}"
    assert np.isfinite(loss.item())


class _Recurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = getattr(nn, kind)(3, 5, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(10, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


class _Attention(nn.Module):
    def __init__(self, padding):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True)
        self.head = nn.Linear(8, 4)
        self.padding = padding

    def forward(self, x):
        out, weights = self.attn(x, x, x, key_padding_mask=self.padding, is_causal=True)
        return self.head(out.mean(axis=1)) + weights.sum() * 0.0


class _Encoder(nn.Module):
    def __init__(self, padding):
        super().__init__()
        layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(8, 4)
        self.padding = padding

    def forward(self, x):
        return self.head(self.encoder(x, src_key_padding_mask=self.padding).mean(axis=1))


class _Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(12, 6, padding_idx=0)
        self.norm = nn.BatchNorm1d(6, momentum=None)   # cumulative running average
        self.head = nn.Linear(6, 4)

    def forward(self, tokens):
        return self.head(self.norm(self.embed(tokens).mean(axis=1)))


def _images(device, rng):
    return minidl.tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32), device=device)


def _layer_cases():
    def recurrent(kind):
        def build(device, rng):
            x = minidl.tensor(rng.standard_normal((4, 6, 3)).astype(np.float32), device=device)
            return _Recurrent(kind).to(device), (x,)
        return build

    def attention(module):
        def build(device, rng):
            x = minidl.tensor(rng.standard_normal((4, 5, 8)).astype(np.float32), device=device)
            pad = np.zeros((4, 5), dtype=bool)
            pad[1, 3:] = True
            return module(minidl.tensor(pad, device=device)).to(device), (x,)
        return build

    def bag(device, rng):
        tokens = minidl.tensor(rng.integers(0, 12, (4, 7)), device=device)
        return _Bag().to(device), (tokens,)

    def conv_transpose(device, rng):
        model = nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1), nn.ConvTranspose2d(3, 2, 2, stride=2), nn.AvgPool2d(2),
            nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.SiLU(), nn.Linear(18, 4), nn.Dropout(0.3),
        )
        return model.to(device), (_images(device, rng),)

    return {
        "rnn": recurrent("RNN"), "lstm": recurrent("LSTM"), "gru": recurrent("GRU"),
        "multihead_attention": attention(_Attention), "transformer_encoder": attention(_Encoder),
        "embedding_batchnorm_cumulative": bag, "conv_transpose_avg_adaptive_pool": conv_transpose,
    }


@pytest.mark.parametrize("case", sorted(_layer_cases()))
def test_layer_training_step_makes_no_host_round_trips(device, case):
    rng = np.random.default_rng(0)
    model, inputs = _layer_cases()[case](device, rng)
    y = minidl.tensor(rng.integers(0, 4, 4), device=device)
    _count_host_copies_in_a_step(device, model, inputs, lambda out: F.cross_entropy(out, y))


def _loss_cases(device, rng):
    def t(a):
        return minidl.tensor(np.asarray(a), device=device)

    labels = t(rng.integers(0, 4, 6))
    labels_ignored = t(np.array([0, 1, -100, 3, 2, 1]))
    probs = t(rng.dirichlet(np.ones(4), 6).astype(np.float32))
    values = t(rng.standard_normal((6, 4)).astype(np.float32))
    bits = t((rng.random((6, 4)) > 0.5).astype(np.float32))
    signs = t(np.array([1, -1, 1, 1, -1, -1], dtype=np.float32))
    class_w = t(np.array([1.0, 2.0, 0.5, 1.0], dtype=np.float32))
    nll = nn.NLLLoss(weight=class_w).to(device)             # modules are built before the step
    bce_logits = nn.BCEWithLogitsLoss(pos_weight=class_w).to(device)
    return {
        "CrossEntropyLoss(weight, ignore_index, label_smoothing)":
            nn.CrossEntropyLoss(weight=class_w, label_smoothing=0.1).to(device),
        "cross_entropy_ignore_index": lambda out: F.cross_entropy(out, labels_ignored),
        "cross_entropy_probabilities": lambda out: F.cross_entropy(out, probs, label_smoothing=0.05),
        "NLLLoss": lambda out: nll(F.log_softmax(out, axis=1), labels),
        "MSELoss": lambda out: nn.MSELoss()(out, values),
        "L1Loss": lambda out: nn.L1Loss(reduction="sum")(out, values),
        "HuberLoss": lambda out: nn.HuberLoss(delta=0.5)(out, values),
        "SmoothL1Loss": lambda out: nn.SmoothL1Loss(beta=0.5)(out, values),
        "BCELoss": lambda out: nn.BCELoss()(F.sigmoid(out), bits),
        "BCEWithLogitsLoss(pos_weight)": lambda out: bce_logits(out, bits),
        "KLDivLoss(batchmean)": lambda out: nn.KLDivLoss(reduction="batchmean")(F.log_softmax(out, axis=1), probs),
        "CosineEmbeddingLoss": lambda out: nn.CosineEmbeddingLoss(margin=0.1)(out, values, signs),
        "MarginRankingLoss": lambda out: nn.MarginRankingLoss(margin=0.2)(out[:, 0], out[:, 1], signs),
    }, labels


@pytest.mark.parametrize("name", sorted(_loss_cases("cpu", np.random.default_rng(0))[0]))
def test_every_loss_in_a_training_step_makes_no_host_round_trips(device, name):
    rng = np.random.default_rng(1)
    losses, labels = _loss_cases(device, rng)
    loss = losses[name]
    if isinstance(loss, nn.Module) and name.startswith("CrossEntropyLoss"):
        loss_fn = lambda out: loss(out, labels)  # noqa: E731
    else:
        loss_fn = loss
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 4)).to(device)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32), device=device)
    _count_host_copies_in_a_step(device, model, (x,), loss_fn)


_SCHEDULES = {
    "SGD+StepLR": (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-4),
                   lambda o: optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)),
    "GD+LambdaLR": (lambda p: optim.GD(p, lr=0.1),
                    lambda o: optim.lr_scheduler.LambdaLR(o, lambda epoch: 1.0 / (1 + epoch))),
    "Adam+CosineAnnealingLR": (lambda p: optim.Adam(p, lr=1e-2, weight_decay=1e-4),
                               lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=5)),
    "AdamW(amsgrad)+LinearLR": (lambda p: optim.AdamW(p, lr=1e-2, amsgrad=True),
                                lambda o: optim.lr_scheduler.LinearLR(o, start_factor=0.5, total_iters=3)),
    "RMSprop+ExponentialLR": (lambda p: optim.RMSprop(p, lr=1e-2, alpha=0.9, weight_decay=1e-4),
                              lambda o: optim.lr_scheduler.ExponentialLR(o, gamma=0.9)),
    "Adagrad+MultiStepLR": (lambda p: optim.Adagrad(p, lr=1e-2, lr_decay=0.01),
                            lambda o: optim.lr_scheduler.MultiStepLR(o, milestones=[1, 3], gamma=0.5)),
    "SGD+SequentialLR": (lambda p: optim.SGD(p, lr=0.1, nesterov=True, momentum=0.5),
                         lambda o: optim.lr_scheduler.SequentialLR(
                             o, [optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=1),
                                 optim.lr_scheduler.StepLR(o, step_size=1)], milestones=[1])),
}


@pytest.mark.parametrize("name", sorted(_SCHEDULES))
def test_every_optimizer_and_scheduler_step_makes_no_host_round_trips(device, name):
    rng = np.random.default_rng(2)
    make_opt, make_sched = _SCHEDULES[name]
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).to(device)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32), device=device)
    y = minidl.tensor(rng.integers(0, 3, 6), device=device)
    _count_host_copies_in_a_step(device, model, (x,), lambda out: F.cross_entropy(out, y), make_opt, make_sched)


def test_counter_sees_a_host_copy_planted_in_a_module_forward():
    """The harness can fail: a module that reads a value back mid-step is caught."""
    class Leaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x):
            out = self.fc(x)
            return out * (1.0 if out.max().item() < 1e9 else 0.0)

    rng = np.random.default_rng(3)
    x = minidl.tensor(rng.standard_normal((6, 5)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 3, 6))
    with pytest.raises(AssertionError, match="host round trips"):
        _count_host_copies_in_a_step("cpu", Leaky(), (x,), lambda out: F.cross_entropy(out, y))


def test_collate_keeps_samples_on_their_device(device):
    """Samples that are Tensors on a device are batched there (no per-sample host copy)."""
    from minidl.data import DataLoader

    rng = np.random.default_rng(4)
    xs = [minidl.tensor(rng.standard_normal(3), device=device) for _ in range(5)]   # float64 samples
    ys = [minidl.tensor(np.int32(i % 2), device=device) for i in range(5)]
    loader = DataLoader(list(zip(xs, ys)), batch_size=4)
    with backend.count_host_transfers(include_host_arrays=False) as counter:
        x, y = next(iter(loader))
    assert counter.count == 0, counter.events
    assert x.device == backend.Device(device) and y.device == backend.Device(device)
    assert x.shape == (4, 3) and x.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(x.numpy(), np.stack([t.numpy() for t in xs[:4]]))


def test_numpy_scalars_and_index_arrays_follow_the_tensor(device):
    """NumPy scalars are numbers, NumPy index arrays are indices: both work on any device,
    and repeated indices accumulate in the gradient (scatter-add on either backend)."""
    x = minidl.tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True, device=device)
    y = x * np.float32(2.0) + np.float64(1.0) * x
    assert y.device == backend.Device(device)
    picked = x[np.array([0, 0, 2])]
    (picked * np.float32(1.0)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 1.0])
    with minidl.no_grad():
        z = minidl.tensor(np.zeros(3, dtype=np.float32), device=device)
        z[[0, 2]] = 5.0
    np.testing.assert_array_equal(z.numpy(), [5.0, 0.0, 5.0])
    np.testing.assert_allclose(y.numpy(), [3.0, 6.0, 9.0])
