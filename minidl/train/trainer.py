"""The training loop as a small object: ``Trainer(model, loss_fn, optimizer).fit(loader)``.

The Trainer is sugar. The loop it runs is the one anybody writes by hand, and that stays
just as easy::

    model = LeNet5(input_size=8)
    opt = minidl.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(10):
        model.train()
        for x, y in train_loader:             # x (B, 1, 8, 8) float32, y (B,) int64
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        with minidl.no_grad():
            correct = sum(int((model(x).argmax(axis=1) == y).sum().item()) for x, y in val_loader)

What the Trainer adds on top: a tqdm bar per epoch (running loss, accuracy, samples/s),
validation after every epoch, a ``History`` of every metric, callbacks (early stopping,
checkpoints, LR schedules), a guard that stops at the first non-finite loss naming the
epoch and batch, exact resumption from a checkpoint, ``evaluate`` and ``predict``.

Conventions: a batch is ``(inputs, targets)`` (a tuple or list; extra items are ignored)
of Tensors or arrays; ``loss_fn(outputs, targets)`` returns the mean loss of the batch as a
one-element Tensor, so an epoch's loss is the batch losses averaged with weights equal to
the batch sizes. Training metrics are computed on the outputs seen during the epoch (in
training mode, with augmentation), as Keras does; validation metrics in eval mode.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import backend
from ..autograd import no_grad
from ..tensor import Tensor
from .callbacks import Callback, History, LRSchedulerCallback, load_checkpoint
from .metrics import get_metric

__all__ = ["Trainer", "NonFiniteLossError"]

CHECKPOINT_FORMAT = "minidl-trainer-checkpoint-1"


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the epoch and batch."""


def _rewrap(exc: BaseException, message: str) -> BaseException:
    """The same kind of exception with ``message`` in front (a ValueError if it cannot be)."""
    try:
        new = type(exc)(f"{message}: {exc}")
    except Exception:  # noqa: BLE001 - exotic constructors
        new = ValueError(f"{message}: {type(exc).__name__}: {exc}")
    return new


def _describe(x: Any) -> str:
    if isinstance(x, (Tensor, np.ndarray)):
        return f"shape {tuple(x.shape)} dtype {x.dtype}"
    return type(x).__name__


def _random_generators(dataset: Any) -> list[np.random.Generator]:
    """The NumPy Generators held by a dataset's transforms (through Subsets), in a fixed order."""
    found: list[np.random.Generator] = []
    seen: set[int] = set()

    def visit(obj: Any, depth: int) -> None:
        if obj is None or depth > 6:
            return
        if isinstance(obj, np.random.Generator):
            if id(obj) not in seen:
                seen.add(id(obj))
                found.append(obj)
            return
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, depth + 1)
            return
        for name in ("dataset", "transform", "target_transform", "transforms", "rng"):
            if hasattr(obj, name) and not isinstance(getattr(type(obj), name, None), property):
                visit(getattr(obj, name), depth + 1)

    visit(dataset, 0)
    return found


def _probability_rows(target: np.ndarray, output: np.ndarray) -> bool:
    """True when ``target`` holds class probabilities (N, K>1) matching ``output``'s shape:
    non-negative rows summing to 1 (one-hot, label-smoothed or mixup targets)."""
    if target.ndim != 2 or target.dtype.kind != "f" or target.shape != output.shape \
            or target.shape[1] < 2:
        return False
    return bool(np.all(target >= 0) and np.allclose(target.sum(axis=1), 1.0, atol=1e-4))


class Trainer:
    """Fit, evaluate and predict with a model, a loss and an optimizer.

    Args:
        model: a ``minidl.nn.Module`` (anything callable with ``train()``, ``eval()``,
            ``state_dict()`` and ``load_state_dict()``).
        loss_fn: ``loss_fn(outputs, targets) -> scalar Tensor``, e.g. ``F.cross_entropy``
            or ``nn.CrossEntropyLoss()``.
        optimizer: a ``minidl.optim`` optimizer (``zero_grad``, ``step``, ``state_dict``).
        metrics: names known to ``minidl.train.get_metric`` (``"accuracy"``, ``"f1"``,
            ``"top5_accuracy"``, ``"mse"``, ...) or callables ``fn(y_true, outputs)``.
            Each is logged for training and (as ``val_<name>``) validation.
        callbacks: ``Callback`` objects (``EarlyStopping``, ``ModelCheckpoint``, ...).
        scheduler: an LR scheduler stepped once per epoch after validation (a
            ``ReduceLROnPlateau`` receives ``scheduler_monitor``).
        device: where the model and the batches live ("cpu" or "cuda").
        progress: show a tqdm bar per epoch.

    A NaN or infinite training loss raises ``NonFiniteLossError`` (naming the epoch and
    batch) before that batch's update; ``trainer.history`` keeps the completed epochs.
    Errors raised by the model or the loss (bad shapes, labels out of range or of the
    wrong dtype) are re-raised with the epoch, batch and the shapes/dtypes involved.
    """

    def __init__(self, model: Any, loss_fn: Callable[[Any, Any], Tensor], optimizer: Any,
                 metrics: Sequence[str | Callable] = ("accuracy",),
                 callbacks: Iterable[Callback] = (), scheduler: Any = None,
                 device: str = "cpu", progress: bool = True,
                 scheduler_monitor: str = "val_loss") -> None:
        if not callable(model):
            raise TypeError(f"Trainer: model must be callable (a Module), got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"Trainer: loss_fn must be callable, got {type(loss_fn).__name__}")
        for method in ("zero_grad", "step"):
            if not callable(getattr(optimizer, method, None)):
                raise TypeError(f"Trainer: optimizer must have a {method}() method, got "
                                f"{type(optimizer).__name__}")
        if isinstance(metrics, str):
            metrics = (metrics,)
        self.metrics: dict[str, Callable] = {}
        for m in metrics:
            fn = get_metric(m)                  # unknown names fail here, with the known list
            name = m.lower() if isinstance(m, str) else getattr(m, "__name__", type(m).__name__)
            if name in ("loss", "lr", "time") or name.startswith("val_"):
                raise ValueError(f"Trainer: metric name {name!r} is reserved; rename the metric")
            self.metrics[name] = fn
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"Trainer: callbacks must be Callback instances, got "
                                f"{type(cb).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_monitor = scheduler_monitor
        self.device = backend.Device(device)
        if self.device.type != "cpu":
            backend.array_module_for(self.device)       # a clear error without CuPy/GPU
        if hasattr(model, "to"):
            model.to(str(self.device))
        self.progress = bool(progress)
        self.history = History()
        self.epoch = 0                 # epochs completed
        self.stop_training = False
        self.train_loader: Any = None
        self._resuming = False

    # ------------------------------------------------------------------ batches
    def _to_device(self, x: Any) -> Any:
        if isinstance(x, Tensor):
            return x if x.device == self.device else x.to(str(self.device))
        if isinstance(x, np.ndarray):
            return Tensor(backend.to_device(x, self.device))
        if isinstance(x, dict):
            return {k: self._to_device(v) for k, v in x.items()}
        if isinstance(x, (tuple, list)):          # several inputs: (tokens, mask), ...
            moved = [self._to_device(v) for v in x]
            if isinstance(x, list):
                return moved
            return type(x)(*moved) if hasattr(x, "_fields") else tuple(moved)  # namedtuples keep their type
        return x

    def _split(self, batch: Any, where: str) -> tuple[Any, Any]:
        if isinstance(batch, (tuple, list)) and len(batch) >= 2:
            return self._to_device(batch[0]), self._to_device(batch[1])
        raise TypeError(f"Trainer: {where} must yield (inputs, targets) batches, got "
                        f"{type(batch).__name__}"
                        + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""))

    def _forward_loss(self, x: Any, y: Any, where: str) -> tuple[Tensor, Tensor]:
        try:
            out = self.model(x)
        except (ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise _rewrap(exc, f"Trainer: the model's forward failed at {where} (inputs "
                               f"{_describe(x)})") from exc
        try:
            loss = self.loss_fn(out, y)
        except (ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise _rewrap(exc, f"Trainer: the loss failed at {where} (outputs {_describe(out)}, "
                               f"targets {_describe(y)})") from exc
        if not isinstance(loss, Tensor) or loss.size != 1:
            raise TypeError(f"Trainer: loss_fn must return a one-element Tensor (the batch's mean "
                            f"loss), got {_describe(loss)} at {where}")
        return out, loss

    # ------------------------------------------------------------------ metrics
    def _compute_metrics(self, outputs: list[np.ndarray], targets: list[np.ndarray]) -> dict:
        if not self.metrics:
            return {}
        out = np.concatenate(outputs)
        tgt = np.concatenate(targets)
        if _probability_rows(tgt, out):
            tgt = tgt.argmax(axis=1)            # probability (e.g. mixup) targets -> labels
        return {name: float(fn(tgt, out)) for name, fn in self.metrics.items()}

    def _lr(self) -> float:
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            return float(groups[0]["lr"])
        return float(getattr(self.optimizer, "lr", math.nan))

    # ------------------------------------------------------------------ one epoch
    def _bar(self, loader: Any, epoch: int, epochs: int) -> Any:
        from tqdm.auto import tqdm

        total = len(loader) if hasattr(loader, "__len__") else None
        return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", unit="batch",
                    disable=not self.progress, leave=True, dynamic_ncols=True)

    def _train_epoch(self, loader: Any, epoch: int, bar: Any) -> dict:
        self.model.train()
        total = bar.total
        loss_sum, seen, correct = 0.0, 0, 0
        self._postfix: dict[str, str] = {}
        outputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        show_acc = "accuracy" in self.metrics
        start = time.perf_counter()
        for b, batch in enumerate(loader, 1):
            x, y = self._split(batch, "the training loader")
            where = f"epoch {epoch}, batch {b}" + (f" of {total}" if total else "")
            self.optimizer.zero_grad()
            out, loss = self._forward_loss(x, y, where)
            value = float(loss.item())
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"Trainer: the training loss is {value} at {where}; stopped before "
                    "this batch's update (the weights hold the previous step). Common "
                    "causes: a learning rate too high, unnormalised inputs, log(0) in a "
                    "custom loss")
            loss.backward()
            self.optimizer.step()
            n = int(x.shape[0]) if hasattr(x, "shape") else 1
            loss_sum += value * n
            seen += n
            if self.metrics or self.progress:       # (a device-to-host copy on a GPU)
                out_np = backend.to_numpy(out.data)
                y_np = backend.to_numpy(y.data) if isinstance(y, Tensor) else np.asarray(y)
            if self.metrics:
                outputs.append(out_np)
                targets.append(y_np)
            if self.progress:
                postfix = {"loss": f"{loss_sum / seen:.4f}"}
                if show_acc and out_np.ndim == 2 and y_np.ndim == 1:
                    correct += int((out_np.argmax(axis=1) == y_np).sum())
                    postfix["acc"] = f"{correct / seen:.4f}"
                postfix["samples/s"] = f"{seen / max(time.perf_counter() - start, 1e-9):.0f}"
                self._postfix = postfix
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
            batch_logs = {"loss": value, "size": n}
            for cb in self._active:
                cb.on_batch_end(self, b, batch_logs)
        if seen == 0:
            raise ValueError("Trainer.fit: the training loader yielded no batches")
        logs = {"loss": loss_sum / seen}
        logs.update(self._compute_metrics(outputs, targets))
        return logs

    # ------------------------------------------------------------------ public API
    def fit(self, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int = 1,
            resume: str | None = None) -> History:
        """Train for ``epochs`` epochs (counting those already done when resuming).

        After each epoch: validation on ``val_loader`` (if given), then the callbacks. With
        ``resume`` (a checkpoint written by ``ModelCheckpoint``) the model, optimizer,
        scheduler, History, callbacks' states and all random generators are restored and
        training continues with the next epoch, exactly as if it had never stopped.

        Returns the ``History``: ``history["loss"]``, ``history["val_accuracy"]``, ... one
        value per epoch, plus ``history["lr"]`` and ``history["time"]`` (seconds).
        """
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"Trainer.fit: epochs must be an integer >= 0, got {epochs!r}")
        self.train_loader = train_loader
        self.stop_training = False
        self.history = History()
        self._active = self._callback_list()
        if resume is not None:
            self.load_checkpoint(resume, train_loader)
        else:
            self.epoch = 0
        self._resuming = resume is not None
        for cb in self._active:
            cb.on_train_begin(self)
        self._resuming = False
        for epoch in range(self.epoch + 1, int(epochs) + 1):
            for cb in self._active:
                cb.on_epoch_begin(self, epoch)
            start = time.perf_counter()
            lr = self._lr()
            bar = self._bar(train_loader, epoch, int(epochs))
            try:
                logs = self._train_epoch(train_loader, epoch, bar)
                if val_loader is not None:
                    logs.update({"val_" + k: v for k, v in self.evaluate(val_loader).items()})
                    if self.progress:
                        shown = {"val_loss": f"{logs['val_loss']:.4f}"}
                        if "val_accuracy" in logs:
                            shown["val_acc"] = f"{logs['val_accuracy']:.4f}"
                        bar.set_postfix({**self._postfix, **shown})
            finally:
                bar.close()
            logs["lr"] = lr
            logs["time"] = time.perf_counter() - start
            for cb in self._active:
                cb.on_epoch_end(self, epoch, logs)
            self.epoch = epoch
            if self.stop_training:
                break
        for cb in self._active:
            cb.on_train_end(self)
        return self.history

    def _callback_list(self) -> list[Callback]:
        extra: list[Callback] = [self.history]
        if self.scheduler is not None:
            extra.append(LRSchedulerCallback(self.scheduler, self.scheduler_monitor))
        return sorted(extra + self.callbacks, key=lambda cb: cb.order)

    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Mean loss and every metric over ``loader``, in eval mode without a graph.

        Returns ``{"loss": ..., "accuracy": ..., ...}``.
        """
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        loss_sum, seen = 0.0, 0
        outputs: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        try:
            with no_grad():
                for b, batch in enumerate(loader, 1):
                    x, y = self._split(batch, "the evaluation loader")
                    out, loss = self._forward_loss(x, y, f"evaluation batch {b}")
                    n = int(x.shape[0])
                    loss_sum += float(loss.item()) * n
                    seen += n
                    outputs.append(backend.to_numpy(out.data))
                    targets.append(backend.to_numpy(y.data) if isinstance(y, Tensor) else np.asarray(y))
        finally:
            if was_training:
                self.model.train()
        if seen == 0:
            raise ValueError("Trainer.evaluate: the loader yielded no batches")
        logs = {"loss": loss_sum / seen}
        logs.update(self._compute_metrics(outputs, targets))
        return logs

    def predict(self, data: Any, batch_size: int = 256) -> np.ndarray:
        """The model's outputs, as one NumPy array, in eval mode without a graph.

        ``data`` is an array or Tensor of inputs (N, ...) (cut into batches of
        ``batch_size``), or a loader yielding inputs or ``(inputs, targets)`` batches.
        Returns (N, *output_shape), e.g. (N, K) logits; take ``.argmax(1)`` for labels.
        """
        was_training = getattr(self.model, "training", True)
        self.model.eval()
        outs = []
        try:
            with no_grad():
                if isinstance(data, (np.ndarray, Tensor)) or (
                        backend.cupy is not None and isinstance(data, backend.cupy.ndarray)):
                    if len(data) == 0:
                        raise ValueError("Trainer.predict: no inputs (an empty array)")
                    for i in range(0, len(data), batch_size):
                        chunk = data[i:i + batch_size]
                        x = self._to_device(chunk if isinstance(chunk, Tensor) else Tensor(chunk))
                        outs.append(backend.to_numpy(self.model(x).data))
                else:
                    for batch in data:
                        x = batch[0] if isinstance(batch, (tuple, list)) else batch
                        outs.append(backend.to_numpy(self.model(self._to_device(x)).data))
        finally:
            if was_training:
                self.model.train()
        if not outs:
            raise ValueError("Trainer.predict: the loader yielded no batches")
        return np.concatenate(outs)

    # ------------------------------------------------------------------ checkpoints
    def _callback_keys(self) -> list[tuple[str, Callback]]:
        counts: dict[str, int] = {}
        keyed = []
        for cb in self._active:
            name = type(cb).__name__
            counts[name] = counts.get(name, 0) + 1
            keyed.append((f"{name}#{counts[name]}", cb))
        return keyed

    def checkpoint_state(self, epoch: int) -> dict:
        """Everything needed to continue after ``epoch`` exactly (see ``ModelCheckpoint``)."""
        loader = self.train_loader
        state = {
            "format": CHECKPOINT_FORMAT,
            "epoch": int(epoch),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if hasattr(self.optimizer, "state_dict") else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None
            and hasattr(self.scheduler, "state_dict") else None,
            "loader": loader.state_dict() if hasattr(loader, "state_dict") else None,
            "transform_rngs": [g.bit_generator.state for g in
                               _random_generators(getattr(loader, "dataset", None))],
            "global_rng": backend.random_generator().bit_generator.state,
            "callbacks": {key: cb.state_dict() for key, cb in self._callback_keys()},
        }
        return state

    def load_checkpoint(self, path: str, train_loader: Any = None) -> dict:
        """Restore the model, optimizer, scheduler, callbacks and generators from ``path``.

        ``train_loader`` (default: the one of the last ``fit``) gets its shuffling state
        and its dataset's transform generators back. Returns the loaded state.
        """
        state = load_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"Trainer.load_checkpoint: {path!r} is not a Trainer checkpoint "
                             f"(format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if state["scheduler"] is not None:
            if self.scheduler is None:
                raise ValueError(f"Trainer.load_checkpoint: {path!r} holds a scheduler's state "
                                 "but this Trainer has no scheduler")
            self.scheduler.load_state_dict(state["scheduler"])
        loader = train_loader if train_loader is not None else self.train_loader
        if state["loader"] is not None and hasattr(loader, "load_state_dict"):
            loader.load_state_dict(state["loader"])
        gens = _random_generators(getattr(loader, "dataset", None))
        saved = state["transform_rngs"]
        if len(gens) != len(saved):
            raise ValueError(f"Trainer.load_checkpoint: the checkpoint holds {len(saved)} "
                             f"transform generators but this loader's dataset has {len(gens)}; "
                             "resume with the same data pipeline")
        for g, s in zip(gens, saved):
            g.bit_generator.state = s
        backend.random_generator().bit_generator.state = state["global_rng"]
        if not hasattr(self, "_active"):
            self._active = self._callback_list()
        for key, cb in self._callback_keys():
            if key in state["callbacks"]:
                cb.load_state_dict(state["callbacks"][key])
        self.epoch = int(state["epoch"])
        return state
