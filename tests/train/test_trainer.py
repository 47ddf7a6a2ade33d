"""Trainer: history, evaluation, the NaN guard, clear errors, and equality with a hand loop."""
import math

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset
from minidl.train import metrics
from minidl.train.callbacks import Callback
from minidl.train.trainer import NonFiniteLossError, Trainer


def _data(n=40, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    w = rng.standard_normal((d, k))
    y = (X @ w).argmax(1).astype(np.int64)
    return X, y


def _parts(seed=0, lr=0.1, batch_size=8, n=40):
    minidl.manual_seed(seed)
    X, y = _data(n)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    train = DataLoader(TensorDataset(X[:32], y[:32]), batch_size=batch_size, shuffle=True, seed=1)
    val = DataLoader(TensorDataset(X[32:], y[32:]), batch_size=3)     # uneven last batch
    return model, opt, train, val, X, y


class BatchLog(Callback):
    def __init__(self):
        self.batches = []
        self.params = []

    def on_epoch_begin(self, trainer, epoch):
        self.batches.append([])

    def on_batch_end(self, trainer, batch, logs):
        self.batches[-1].append((batch, logs["loss"], logs["size"]))
        self.params.append(trainer.model.state_dict())


def test_fit_records_every_metric_for_train_and_validation():
    model, opt, train, val, _, _ = _parts()
    t = Trainer(model, F.cross_entropy, opt, metrics=("accuracy", "f1", "top_k_accuracy"),
                progress=False)
    h = t.fit(train, val, epochs=3)
    assert set(h) == {"loss", "accuracy", "f1", "top_k_accuracy", "val_loss", "val_accuracy",
                      "val_f1", "val_top_k_accuracy", "lr", "time"}
    assert all(len(v) == 3 for v in h.values()) and h.epoch == [1, 2, 3]
    assert h["lr"] == [0.1, 0.1, 0.1] and all(s > 0 for s in h["time"])
    assert h["loss"][-1] < h["loss"][0]
    assert all(v == 1.0 for v in h["top_k_accuracy"])        # k=5 >= 3 classes
    assert t.epoch == 3


def test_epoch_loss_is_the_size_weighted_mean_of_batch_losses():
    model, opt, _, val, X, y = _parts()
    train = DataLoader(TensorDataset(X[:30], y[:30]), batch_size=8)     # 8, 8, 8, 6
    log = BatchLog()
    h = Trainer(model, F.cross_entropy, opt, callbacks=[log], progress=False).fit(train, epochs=2)
    for epoch, batches in enumerate(log.batches):
        assert [b[2] for b in batches] == [8, 8, 8, 6] and [b[0] for b in batches] == [1, 2, 3, 4]
        expected = sum(loss * size for _, loss, size in batches) / 30
        assert h["loss"][epoch] == pytest.approx(expected, rel=1e-12)


def test_evaluate_matches_numpy_on_the_whole_set():
    model, opt, _, val, X, y = _parts()
    t = Trainer(model, F.cross_entropy, opt, metrics=("accuracy", "f1_micro"), progress=False)
    res = t.evaluate(val)
    with minidl.no_grad():
        logits = model(minidl.tensor(X[32:])).numpy().astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert res["loss"] == pytest.approx(-logp[np.arange(8), y[32:]].mean(), rel=1e-5)
    assert res["accuracy"] == np.mean(logits.argmax(1) == y[32:])
    assert res["f1_micro"] == pytest.approx(res["accuracy"])
    assert model.training                                 # evaluate restores the mode


def test_trainer_equals_a_hand_written_loop():
    model, opt, train, val, _, _ = _parts()
    Trainer(model, F.cross_entropy, opt, progress=False).fit(train, val, epochs=3)
    by_trainer = model.state_dict()

    model, opt, train, val, _, _ = _parts()
    for _ in range(3):
        model.train()
        for x, y in train:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, by_trainer[k], err_msg=k)


def test_predict_takes_arrays_tensors_and_loaders():
    model, opt, train, val, X, _ = _parts()
    t = Trainer(model, F.cross_entropy, opt, progress=False)
    with minidl.no_grad():
        ref = model(minidl.tensor(X)).numpy()
    np.testing.assert_allclose(t.predict(X, batch_size=7), ref, rtol=1e-6)
    np.testing.assert_allclose(t.predict(minidl.tensor(X)), ref, rtol=1e-6)
    np.testing.assert_allclose(t.predict(val), ref[32:], rtol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        t.predict(X[:0])


def test_nan_guard_names_epoch_and_batch_and_skips_the_update():
    model, opt, train, _, _, _ = _parts()
    calls = {"n": 0}

    def loss_fn(out, y):
        calls["n"] += 1
        loss = F.cross_entropy(out, y)
        return loss * math.nan if calls["n"] == 7 else loss     # epoch 2, batch 3 (4 per epoch)

    log = BatchLog()
    t = Trainer(model, loss_fn, opt, callbacks=[log], progress=False)
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at epoch 2, batch 3 of 4"):
        t.fit(train, epochs=5)
    assert len(log.params) == 6                            # six good steps, then the stop
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, log.params[-1][k])
    assert t.history["loss"] and len(t.history["loss"]) == 1
    assert isinstance(NonFiniteLossError("x"), FloatingPointError)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_nan_guard_catches_a_diverging_learning_rate():
    X, _ = _data(32)
    Y = X[:, :1] * 2.0
    model = nn.Linear(5, 1)
    opt = optim.SGD(model.parameters(), lr=10.0)           # far beyond 2 / lambda_max: diverges
    loader = DataLoader(TensorDataset(X, Y), batch_size=8)
    with pytest.raises(NonFiniteLossError, match=r"loss is (inf|nan) at epoch \d+, batch \d of 4"):
        Trainer(model, F.mse_loss, opt, metrics=(), progress=False).fit(loader, epochs=100)


def test_labels_out_of_range_are_reported_through_the_trainer():
    model, opt, _, _, X, y = _parts()
    bad = y[:16].copy()
    bad[3] = 7
    loader = DataLoader(TensorDataset(X[:16], bad), batch_size=8)
    with pytest.raises((IndexError, ValueError), match=r"epoch 1, batch 1 of 2.*targets shape \(8,\) "
                                                       r"dtype int64.*out of range"):
        Trainer(model, F.cross_entropy, opt, progress=False).fit(loader, epochs=1)


def test_labels_of_the_wrong_dtype_are_reported_through_the_trainer():
    model, opt, _, _, X, y = _parts()
    loader = DataLoader(TensorDataset(X[:16], y[:16].astype(np.float32)), batch_size=8)
    with pytest.raises((TypeError, ValueError), match=r"Trainer: the loss failed at epoch 1, batch 1.*"
                                                      r"dtype float32.*integer"):
        Trainer(model, F.cross_entropy, opt, progress=False).fit(loader, epochs=1)


def test_a_model_input_mismatch_names_the_batch():
    model, opt, _, _, X, y = _parts()
    loader = DataLoader(TensorDataset(X[:, :4], y), batch_size=8)
    with pytest.raises(Exception, match=r"forward failed at epoch 1, batch 1.*shape \(8, 4\)"):
        Trainer(model, F.cross_entropy, opt, progress=False).fit(loader, epochs=1)


def test_unknown_metric_name_lists_the_known_ones():
    model, opt, *_ = _parts()
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'.*Did you mean 'accuracy'"):
        Trainer(model, F.cross_entropy, opt, metrics=("acuracy",))
    def loss(y_true, y_pred):
        return 0.0

    with pytest.raises(ValueError, match="reserved"):
        Trainer(model, F.cross_entropy, opt, metrics=(loss,))


def test_bad_arguments_are_rejected():
    model, opt, train, *_ = _parts()
    with pytest.raises(TypeError, match="zero_grad"):
        Trainer(model, F.cross_entropy, object())
    with pytest.raises(TypeError, match="Callback"):
        Trainer(model, F.cross_entropy, opt, callbacks=[object()])
    t = Trainer(model, F.cross_entropy, opt, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        t.fit(train, epochs=-1)
    with pytest.raises(TypeError, match=r"\(inputs, targets\)"):
        t.fit([minidl.randn(4, 5)], epochs=1)
    with pytest.raises(TypeError, match="one-element Tensor"):
        Trainer(model, lambda o, y: o, opt, progress=False).fit(train, epochs=1)


def test_custom_metric_callable_and_regression_metrics():
    minidl.manual_seed(0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3)).astype(np.float32)
    Y = (X @ np.array([[1.0], [-2.0], [0.5]], np.float32)) + 0.1
    model = nn.Linear(3, 1)

    def max_error(y_true, y_pred):
        return float(np.max(np.abs(np.asarray(y_true) - np.asarray(y_pred))))

    t = Trainer(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), metrics=("r2", "mse", max_error),
                progress=False)
    h = t.fit(DataLoader(TensorDataset(X, Y), batch_size=16), epochs=30)
    assert h["r2"][-1] > 0.99 and h["mse"][-1] < 0.01 and "max_error" in h
    res = t.evaluate(DataLoader(TensorDataset(X, Y), batch_size=64))
    pred = t.predict(X)
    assert res["r2"] == pytest.approx(metrics.r2_score(Y, pred), rel=1e-6)
    assert res["loss"] == pytest.approx(np.mean((pred - Y) ** 2), rel=1e-4)


def test_scheduler_steps_once_per_epoch_and_plateau_gets_the_val_loss():
    model, opt, train, val, _, _ = _parts()
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    h = Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False).fit(train, val, epochs=3)
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])

    # Only a 50% drop of val_loss counts as progress: epoch 2 is "bad", so epoch 3 runs at half.
    model, opt, train, val, _, _ = _parts()
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0, threshold=0.5)
    h = Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False).fit(train, val, epochs=3)
    assert h["val_loss"][1] > 0.5 * h["val_loss"][0]
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.05])


def test_progress_bar_shows_loss_accuracy_and_speed(capsys):
    model, opt, train, val, _, _ = _parts()
    Trainer(model, F.cross_entropy, opt, progress=True).fit(train, val, epochs=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss=" in err and "acc=" in err and "samples/s=" in err
    assert "val_loss=" in err and "val_acc=" in err


def test_stop_training_from_a_callback_ends_the_run():
    class StopAt2(Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.stop_training = epoch == 2

    model, opt, train, *_ = _parts()
    h = Trainer(model, F.cross_entropy, opt, callbacks=[StopAt2()], progress=False).fit(train, epochs=10)
    assert h.epoch == [1, 2]


def test_fit_evaluate_predict_on_every_device(device):
    """On CUDA the model is moved and batches follow it; results come back as NumPy."""
    model, opt, train, val, X, _ = _parts()
    opt = optim.SGD(model.parameters(), lr=0.1)
    t = Trainer(model, F.cross_entropy, opt, device=device, progress=False)
    h = t.fit(train, val, epochs=2)
    assert len(h["val_accuracy"]) == 2
    assert str(next(iter(model.parameters())).device).startswith(device)
    assert isinstance(t.predict(X), np.ndarray) and t.predict(X).shape == (40, 3)


def test_asking_for_cuda_without_a_gpu_fails_clearly():
    if minidl.cupy_available():
        pytest.skip("a CUDA device is available here; the error path cannot be exercised")
    model, opt, *_ = _parts()
    with pytest.raises(RuntimeError, match="CuPy"):
        Trainer(model, F.cross_entropy, opt, device="cuda")
