"""Callbacks: early stopping on scripted curves, checkpoint files, exact resumption."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn, optim
from minidl.data import DataLoader, TensorDataset, transforms
from minidl.data.datasets import ImageDataset
from minidl.train.callbacks import (Callback, EarlyStopping, History, LRSchedulerCallback,
                                    ModelCheckpoint, load_checkpoint, pack_state,
                                    save_checkpoint, unpack_state)
from minidl.train.trainer import Trainer


def _fake_trainer():
    """A stand-in for the Trainer: a model whose weight we set to the epoch number."""
    model = nn.Linear(2, 1)
    return SimpleNamespace(model=model, stop_training=False)


def _run_scripted(callback, values, key="val_loss"):
    """Feed ``values`` (one per epoch) to the callback; return the last epoch run."""
    trainer = _fake_trainer()
    callback.on_train_begin(trainer)
    last = 0
    for epoch, v in enumerate(values, 1):
        trainer.model.weight.data[...] = epoch
        callback.on_epoch_end(trainer, epoch, {key: v})
        last = epoch
        if trainer.stop_training:
            break
    callback.on_train_end(trainer)
    return last, trainer


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    curve = [1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.69, 0.5]
    es = EarlyStopping(patience=3)
    last, _ = _run_scripted(es, curve)
    assert last == 6 and es.stopped_epoch == 6
    assert es.best_epoch == 3 and es.best == 0.7


def test_early_stopping_patience_counter_resets_on_improvement():
    curve = [1.0, 1.1, 1.2, 0.9, 1.0, 1.1, 1.2]
    es = EarlyStopping(patience=3)
    last, _ = _run_scripted(es, curve)
    assert last == 7 and es.best_epoch == 4


def test_early_stopping_min_delta_ignores_small_improvements():
    curve = [1.0, 0.97, 0.95, 0.5]
    es = EarlyStopping(patience=2, min_delta=0.05)
    last, _ = _run_scripted(es, curve)
    assert last == 3 and es.best_epoch == 1
    es = EarlyStopping(patience=2)
    last, _ = _run_scripted(es, curve)
    assert last == 4 and es.best_epoch == 4


def test_early_stopping_auto_mode_maximises_accuracy():
    es = EarlyStopping(monitor="val_accuracy", patience=2)
    assert es.mode == "max"
    last, _ = _run_scripted(es, [0.5, 0.9, 0.8, 0.85, 0.95], key="val_accuracy")
    assert last == 4 and es.best_epoch == 2
    assert EarlyStopping(monitor="val_loss").mode == "min"
    assert EarlyStopping(monitor="val_accuracy", mode="min").mode == "min"


def test_early_stopping_restores_the_best_weights():
    es = EarlyStopping(patience=2, restore_best_weights=True)
    last, trainer = _run_scripted(es, [1.0, 0.5, 0.6, 0.7, 0.1])
    assert last == 4
    np.testing.assert_array_equal(trainer.model.weight.data, np.full((1, 2), 2.0, np.float32))


def test_early_stopping_without_restore_keeps_the_last_weights():
    es = EarlyStopping(patience=2)
    _, trainer = _run_scripted(es, [1.0, 0.5, 0.6, 0.7])
    np.testing.assert_array_equal(trainer.model.weight.data, np.full((1, 2), 4.0, np.float32))


def test_early_stopping_nan_never_counts_as_improvement():
    es = EarlyStopping(patience=1)
    last, _ = _run_scripted(es, [1.0, math.nan, 0.5])
    assert last == 2 and es.best_epoch == 1


def test_monitoring_a_missing_metric_names_the_available_ones():
    es = EarlyStopping(monitor="val_loss")
    with pytest.raises(KeyError, match=r"val_loss.*val_loader.*\['loss'\]"):
        _run_scripted(es, [1.0], key="loss")


def test_bad_callback_options_are_rejected():
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="largest")
    with pytest.raises(ValueError, match="min_delta"):
        EarlyStopping(min_delta=-0.1)
    with pytest.raises(TypeError, match="step"):
        LRSchedulerCallback(object())


def test_history_records_each_epoch_and_pads_late_metrics():
    h = History()
    h.on_epoch_end(None, 1, {"loss": 1.0})
    h.on_epoch_end(None, 2, {"loss": 0.5, "val_loss": 0.7})
    assert h["loss"] == [1.0, 0.5] and h.epoch == [1, 2]
    assert math.isnan(h["val_loss"][0]) and h["val_loss"][1] == 0.7
    assert set(h) == {"loss", "val_loss"} and len(h) == 2
    assert h.select("loss") == {"loss": [1.0, 0.5], "val_loss": h["val_loss"]}
    with pytest.raises(KeyError, match="recorded"):
        h["accuracy"]


def test_pack_and_unpack_round_trip_nested_states():
    state = {
        "state": {0: {"step": 3, "exp_avg": np.arange(4.0)}, 1: {"m": minidl.tensor([1.0, 2.0])}},
        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1], "name": None}],
        "best": math.inf,
        "rng": np.random.default_rng(5).bit_generator.state,
        "flag": True,
    }
    skeleton, arrays = pack_state(state)
    json.dumps(skeleton)                                   # JSON-able: no pickles needed
    back = unpack_state(json.loads(json.dumps(skeleton)), arrays)
    assert set(back["state"]) == {0, 1}                    # integer keys survive
    np.testing.assert_array_equal(back["state"][0]["exp_avg"], np.arange(4.0))
    assert isinstance(back["state"][1]["m"], minidl.Tensor)
    np.testing.assert_array_equal(back["state"][1]["m"].numpy(), [1.0, 2.0])
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert back["best"] == math.inf and back["flag"] is True
    assert back["rng"] == state["rng"]                     # 128-bit integers survive


def test_pack_state_rejects_objects_that_would_need_pickle():
    with pytest.raises(TypeError, match="cannot store a value of type function"):
        pack_state({"fn": lambda x: x})


def test_save_checkpoint_is_atomic_and_loads_without_pickle(tmp_path):
    path = tmp_path / "sub" / "ck.npz"
    save_checkpoint(path, {"w": np.ones((2, 3), np.float32), "epoch": 4})
    assert sorted(os.listdir(tmp_path / "sub")) == ["ck.npz"]      # no temporary file left
    with np.load(path, allow_pickle=False) as f:
        assert "__skeleton__" in f.files
    back = load_checkpoint(path)
    assert back["epoch"] == 4 and back["w"].dtype == np.float32


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a minidl checkpoint"):
        load_checkpoint(bad)


class _SavingTrainer(SimpleNamespace):
    def checkpoint_state(self, epoch):
        return {"epoch": epoch}


def test_model_checkpoint_save_best_only_writes_on_improvement(tmp_path):
    ck = ModelCheckpoint(tmp_path / "ep{epoch}.npz", monitor="val_loss")
    trainer = _SavingTrainer(stop_training=False)
    ck.on_train_begin(trainer)
    for epoch, v in enumerate([1.0, 0.5, 0.7, 0.4], 1):
        ck.on_epoch_end(trainer, epoch, {"val_loss": v})
    assert sorted(os.listdir(tmp_path)) == ["ep1.npz", "ep2.npz", "ep4.npz"]
    assert load_checkpoint(tmp_path / "ep4.npz")["epoch"] == 4


def test_model_checkpoint_every_epoch(tmp_path):
    ck = ModelCheckpoint(tmp_path / "last.npz", save_best_only=False)
    trainer = _SavingTrainer(stop_training=False)
    for epoch in (1, 2, 3):
        ck.on_epoch_end(trainer, epoch, {"loss": 1.0})
    assert load_checkpoint(tmp_path / "last.npz")["epoch"] == 3


def test_callbacks_run_in_order_history_scheduler_user_checkpoint():
    assert History.order < LRSchedulerCallback.order < Callback.order < ModelCheckpoint.order


# ------------------------------------------------------------- with a real Trainer

def _setup(seed=0):
    """A tiny CNN-free pipeline with every source of randomness: shuffling, a random
    transform, dropout; returns a fresh (trainer parts, loaders)."""
    minidl.manual_seed(seed)
    rng = np.random.default_rng(42)
    X = rng.standard_normal((48, 1, 4, 4)).astype(np.float32)
    y = (X.reshape(48, -1).sum(1) > 0).astype(np.int64)
    tf = transforms.Compose([transforms.RandomShift(1, seed=1), transforms.GaussianNoise(0.1, seed=2)])
    train = DataLoader(ImageDataset(X[:32], y[:32], transform=tf), batch_size=8, shuffle=True, seed=3)
    val = DataLoader(TensorDataset(X[32:], y[32:]), batch_size=16)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Dropout(0.3), nn.Linear(12, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return model, opt, sched, train, val


def test_resume_from_checkpoint_continues_bit_for_bit(tmp_path):
    model, opt, sched, train, val = _setup()
    Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False).fit(train, val, epochs=4)
    straight = model.state_dict()

    model, opt, sched, train, val = _setup()
    path = tmp_path / "ck.npz"
    t = Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False,
                callbacks=[ModelCheckpoint(path, save_best_only=False)])
    t.fit(train, val, epochs=2)
    minidl.manual_seed(123)                 # disturb the global generator: resume restores it

    model, opt, sched, train, val = _setup(seed=99)      # fresh objects, different init
    t = Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False)
    history = t.fit(train, val, epochs=4, resume=str(path))
    resumed = model.state_dict()
    assert history.epoch == [1, 2, 3, 4] and len(history["loss"]) == 4
    assert list(straight) == list(resumed)
    for k in straight:
        np.testing.assert_array_equal(straight[k], resumed[k], err_msg=k)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.7 ** 4)


def test_resume_without_restoring_the_generators_would_differ(tmp_path):
    """The bit-for-bit test above can fail: skipping the RNG restore changes the result."""
    model, opt, sched, train, val = _setup()
    Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False).fit(train, val, epochs=4)
    straight = model.state_dict()
    model, opt, sched, train, val = _setup()
    path = tmp_path / "ck.npz"
    Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False,
            callbacks=[ModelCheckpoint(path, save_best_only=False)]).fit(train, val, epochs=2)
    state = load_checkpoint(path)
    state["loader"] = None                              # forget the shuffling state
    save_checkpoint(path, state)
    model, opt, sched, train, val = _setup(seed=99)
    Trainer(model, F.cross_entropy, opt, scheduler=sched, progress=False).fit(
        train, val, epochs=4, resume=str(path))
    resumed = model.state_dict()
    assert any(not np.array_equal(straight[k], resumed[k]) for k in straight)


def test_early_stopping_in_a_real_fit_restores_the_best_epoch():
    model, opt, _, train, val = _setup()

    class Snapshots(Callback):
        def __init__(self):
            self.weights = {}

        def on_epoch_end(self, trainer, epoch, logs):
            self.weights[epoch] = trainer.model.state_dict()

    snaps = Snapshots()
    opt = optim.SGD(model.parameters(), lr=0.5)   # large steps: a noisy val curve
    es = EarlyStopping(patience=2, restore_best_weights=True)
    history = Trainer(model, F.cross_entropy, opt, progress=False,
                      callbacks=[snaps, es]).fit(train, val, epochs=30)
    vl = history["val_loss"]
    best = int(np.argmin(vl)) + 1
    assert es.best_epoch == best
    assert len(vl) == es.stopped_epoch and es.stopped_epoch == best + 2
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snaps.weights[best][k])


def test_lr_scheduler_callback_feeds_the_metric_to_reduce_on_plateau():
    p = nn.Parameter(np.zeros(2, np.float32))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    cb = LRSchedulerCallback(sched, monitor="val_loss")
    for epoch, v in enumerate([1.0, 1.0, 1.0], 1):
        cb.on_epoch_end(None, epoch, {"loss": 0.3, "val_loss": v})
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
