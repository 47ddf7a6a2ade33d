"""Callbacks: small objects the training loop calls at fixed points of every run.

The ``Trainer`` calls, in this order::

    on_train_begin(trainer)
    for each epoch:
        on_epoch_begin(trainer, epoch)
        for each batch:  ... forward, backward, step ...  on_batch_end(trainer, batch, logs)
        on_epoch_end(trainer, epoch, logs)      # logs: {"loss": .., "val_loss": .., "lr": ..}
    on_train_end(trainer)

Epochs and batches are counted from 1. A callback stops the run by setting
``trainer.stop_training = True``. Callbacks run sorted by their ``order`` (lower first, ties
in the order given): the scheduler step (-50) and the ``History`` (-100) come before the
user's callbacks (0), and ``ModelCheckpoint`` (100) last, so that a checkpoint holds the
state of everything else at the end of the epoch.

Checkpoints are NumPy ``.npz`` files holding only arrays and one JSON text that describes
how the arrays nest (no pickled Python objects, so loading one can never run code).
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "LRSchedulerCallback",
           "save_checkpoint", "load_checkpoint", "pack_state", "unpack_state"]

# Metrics that are better when larger: ``mode="auto"`` maximises a monitored name that
# contains one of these, and minimises everything else (losses, errors).
_MAXIMISED = ("acc", "precision", "recall", "f1", "r2", "auc")


class Callback:
    """Base class: override the hooks you need; every hook does nothing by default.

    ``state_dict()`` / ``load_state_dict()`` let a checkpoint carry the callback's own
    state (e.g. EarlyStopping's patience counter), so that a resumed run decides exactly
    as an uninterrupted one would.
    """

    order = 0

    def on_train_begin(self, trainer: Any) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, trainer: Any, epoch: int) -> None:
        """Called before the first batch of ``epoch`` (counted from 1)."""

    def on_batch_end(self, trainer: Any, batch: int, logs: dict) -> None:
        """Called after the optimizer step of ``batch`` (from 1); logs has ``loss`` and ``size``."""

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        """Called after validation; ``logs`` holds the epoch's metrics, e.g. ``val_loss``."""

    def on_train_end(self, trainer: Any) -> None:
        """Called once after the last epoch (also after an early stop)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""


class History(Callback, Mapping):
    """Every epoch's metrics: ``history["val_loss"]`` is the list of one value per epoch.

    Keys follow Keras: ``loss``, ``accuracy`` (training), ``val_loss``, ``val_accuracy``
    (validation), plus ``lr`` (learning rate of the first parameter group during the epoch)
    and ``time`` (seconds the epoch took). ``history.epoch`` lists the epoch numbers.
    A History is a read-only mapping, so ``plot_learning_curves(history, path)`` takes it.
    """

    order = -100

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        self.epoch.append(int(epoch))
        n_before = len(self.epoch) - 1
        for key, value in logs.items():
            # A metric that appears late (e.g. validation started mid-run) is padded with NaN.
            values = self.history.setdefault(key, [math.nan] * n_before)
            values.append(float(value))
        for key, values in self.history.items():
            if len(values) < len(self.epoch):
                values.append(math.nan)

    def __getitem__(self, key: str) -> list[float]:
        if key not in self.history:
            raise KeyError(f"History: no metric {key!r}; recorded: {sorted(self.history)}")
        return self.history[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)

    def __len__(self) -> int:
        return len(self.history)

    def select(self, *names: str) -> dict[str, list[float]]:
        """The curves whose names are given (and their ``val_`` partners), for plotting."""
        out = {}
        for name in names:
            for key in (name, "val_" + name):
                if key in self.history:
                    out[key] = self.history[key]
        return out

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.history.items() if v}
        return f"History(epochs={len(self.epoch)}, last={last})"

    def state_dict(self) -> dict:
        return {"history": {k: list(v) for k, v in self.history.items()}, "epoch": list(self.epoch)}

    def load_state_dict(self, state: dict) -> None:
        self.history = {k: [float(x) for x in v] for k, v in state["history"].items()}
        self.epoch = [int(e) for e in state["epoch"]]


def _resolve_mode(mode: str, monitor: str, who: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        name = monitor.lower()
        return "max" if any(tag in name for tag in _MAXIMISED) else "min"
    return mode


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        hint = " (validation metrics need a val_loader in fit())" if monitor.startswith("val_") else ""
        raise KeyError(f"{who}: monitored metric {monitor!r} is not in this epoch's logs{hint}; "
                       f"available: {sorted(logs)}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when the monitored metric has not improved for ``patience`` epochs.

    An epoch improves on the best value so far when ``value < best - min_delta`` (mode
    ``"min"``) or ``value > best + min_delta`` (mode ``"max"``); ``"auto"`` picks ``"max"``
    for accuracy-like names (acc, precision, recall, f1, r2) and ``"min"`` otherwise. After
    ``patience`` epochs in a row without improvement the run stops; ``stopped_epoch`` is the
    epoch it stopped after and ``best_epoch`` the best one. With ``restore_best_weights`` the
    model gets the weights of the best epoch back when training ends.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 0, got {patience!r}")
        if min_delta < 0:
            raise ValueError(f"EarlyStopping: min_delta must be >= 0, got {min_delta}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = _resolve_mode(mode, monitor, "EarlyStopping")
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = 0
        self.wait = 0
        self.stopped_epoch = 0
        self.best_weights: dict | None = None

    def on_train_begin(self, trainer: Any) -> None:
        if trainer is not None and getattr(trainer, "_resuming", False):
            return                               # state came from the checkpoint
        self._reset()

    def improved(self, value: float) -> bool:
        """True when ``value`` beats the best so far by more than ``min_delta``."""
        if math.isnan(value):
            return False
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, int(epoch), 0
            if self.restore_best_weights:
                self.best_weights = {k: np.array(v, copy=True)
                                     for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = int(epoch)
            trainer.stop_training = True

    def on_train_end(self, trainer: Any) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best_weights = state["best_weights"]


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler once per epoch, after validation.

    A ``ReduceLROnPlateau`` scheduler is given the monitored metric (``monitor``,
    ``val_loss`` by default, falling back to ``loss`` when there is no validation);
    every other scheduler is stepped without arguments.
    """

    order = -50

    def __init__(self, scheduler: Any, monitor: str = "val_loss") -> None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"LRSchedulerCallback: expected a scheduler with a step() method, got "
                            f"{type(scheduler).__name__}")
        self.scheduler = scheduler
        self.monitor = monitor

    def _wants_metric(self) -> bool:
        try:
            from ..optim.lr_scheduler import ReduceLROnPlateau
        except ImportError:
            return type(self.scheduler).__name__ == "ReduceLROnPlateau"
        return isinstance(self.scheduler, ReduceLROnPlateau)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        if self._wants_metric():
            monitor = self.monitor
            if monitor not in logs and monitor.startswith("val_") and monitor[4:] in logs:
                monitor = monitor[4:]
            self.scheduler.step(_monitored(logs, monitor, "LRSchedulerCallback"))
        else:
            self.scheduler.step()


class ModelCheckpoint(Callback):
    """Save the training state at the end of epochs, to a ``.npz`` file at ``path``.

    The file holds the model's ``state_dict``, the optimizer's (and scheduler's) state, the
    epoch, the History and every callback's state, the training DataLoader's shuffling
    generator, the generators of its dataset's random transforms and minidl's global
    generator: ``Trainer.fit(..., resume=path)`` continues from it bit for bit.

    ``path`` may contain ``{epoch}`` (and any logged metric, e.g. ``{val_loss:.3f}``) to
    keep one file per epoch. With ``save_best_only`` a file is written only when the
    monitored metric improves (``mode`` as in ``EarlyStopping``). Writes are atomic: a
    temporary file in the same directory, then ``os.replace``.
    """

    order = 100

    def __init__(self, path: str | os.PathLike, monitor: str = "val_loss",
                 save_best_only: bool = True, mode: str = "auto") -> None:
        self.path = os.fspath(path)
        self.monitor = monitor
        self.save_best_only = bool(save_best_only)
        self.mode = _resolve_mode(mode, monitor, "ModelCheckpoint")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.last_saved: str | None = None

    def on_train_begin(self, trainer: Any) -> None:
        if not getattr(trainer, "_resuming", False):
            self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict) -> None:
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        path = self.path.format(epoch=epoch, **logs)
        save_checkpoint(path, trainer.checkpoint_state(epoch))
        self.last_saved = path

    def state_dict(self) -> dict:
        return {"best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.best = float(state["best"])


# ----------------------------------------------------------------- checkpoint files

def pack_state(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Split a nested state (dicts, lists, tuples, numbers, strings, None, arrays, Tensors)
    into a JSON-able skeleton and a flat ``{key: array}`` dict for ``np.savez``.

    Arrays become ``{"__array__": key}``, Tensors ``{"__tensor__": key}``, tuples
    ``{"__tuple__": [...]}`` and dicts ``{"__dict__": [[key, value], ...]}`` (so that integer
    keys such as the optimizer's parameter indices survive). ``unpack_state`` inverts it.
    """
    arrays: dict[str, np.ndarray] = {}

    def walk(x: Any) -> Any:
        if isinstance(x, Tensor):
            key = f"a{len(arrays)}"
            arrays[key] = backend.to_numpy(x.data)
            return {"__tensor__": key}
        if isinstance(x, np.ndarray) or (backend.cupy is not None and isinstance(x, backend.cupy.ndarray)):
            key = f"a{len(arrays)}"
            arrays[key] = backend.to_numpy(x)
            return {"__array__": key}
        if isinstance(x, Mapping):
            return {"__dict__": [[walk(k), walk(v)] for k, v in x.items()]}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v) for v in x]}
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, (bool, np.bool_)):
            return bool(x)
        if isinstance(x, (int, np.integer)):
            return int(x)
        if isinstance(x, (float, np.floating)):
            return float(x)
        if x is None or isinstance(x, str):
            return x
        raise TypeError(f"checkpoint: cannot store a value of type {type(x).__name__} ({x!r:.60}); "
                        "states may hold arrays, Tensors, numbers, strings, None, lists, tuples "
                        "and dicts")

    return walk(obj), arrays


def unpack_state(skeleton: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Rebuild the nested state that ``pack_state`` split."""
    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "__array__" in x:
                return np.array(arrays[x["__array__"]])
            if "__tensor__" in x:
                return Tensor(np.array(arrays[x["__tensor__"]]))
            if "__tuple__" in x:
                return tuple(walk(v) for v in x["__tuple__"])
            return {walk(k): walk(v) for k, v in x["__dict__"]}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(skeleton)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> str:
    """Write ``state`` (see ``pack_state``) to the ``.npz`` file ``path`` atomically."""
    path = os.fspath(path)
    skeleton, arrays = pack_state(dict(state))
    arrays["__skeleton__"] = np.array(json.dumps(skeleton))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ckpt-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``save_checkpoint`` (never unpickles anything)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_checkpoint: no checkpoint file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        skeleton = json.loads(str(arrays.pop("__skeleton__")))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"load_checkpoint: {path!r} is not a minidl checkpoint (.npz written by "
                         f"ModelCheckpoint/save_checkpoint): {exc}") from exc
    return unpack_state(skeleton, arrays)
