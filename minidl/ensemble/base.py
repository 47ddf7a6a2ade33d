"""What every ensemble shares: the scikit-learn estimator base, training one member,
the default member, input checks, and training members in parallel.

Members are minidl networks built by a *factory*: any callable
``factory(n_features, n_outputs) -> nn.Module`` whose module maps a batch
(N, *feature_shape) to outputs (N, n_outputs) (class scores for a classifier, values for a
regressor). With no factory, ``default_mlp`` sizes a one-hidden-layer MLP from the data.

``fit_member`` trains one module in place with Adam on a *weighted* loss: the sample
weights w enter the loss itself,

    L = (1/N) sum_i w~_i l_i,   w~_i = N w_i / sum_j w_j,

with l_i the cross-entropy (classification) or the squared error averaged over outputs
(regression). Rescaling the weights to mean 1 keeps a mini-batch mean an unbiased estimate
of L, and makes weights of 0 and 1 exactly "train on the samples with weight 1".

Ensembles are scikit-learn estimators (``get_params``/``set_params`` from the ``__init__``
arguments, ``fit``/``predict``/``score``), so ``sklearn.base.clone``, ``cross_val_score``
and ``GridSearchCV`` work with them.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from .. import backend, nn
from ..autograd import no_grad
from ..functional.loss import cross_entropy
from ..models.mlp import MLP
from ..optim import Adam
from ..tensor import Tensor

__all__ = [
    "MLPFactory", "NetworkEnsemble", "NotFittedError", "build_member", "check_factories", "default_mlp",
    "fit_member", "log_softmax_np", "member_outputs", "member_seeds", "run_jobs", "seeded", "softmax_np",
]

Factory = Callable[[int, int], nn.Module]


# --------------------------------------------------------------------------- members

def default_mlp(n_features: int, n_outputs: int) -> nn.Module:
    """The default member: ``MLP(n_features, hidden=(h,), num_classes=n_outputs)``, ReLU,
    with h = clip(2 * n_features, 16, 64) hidden units.

    Input (N, *) with n_features values per sample, output (N, n_outputs).
    """
    hidden = int(min(64, max(16, 2 * n_features)))
    return MLP(n_features, hidden=(hidden,), num_classes=n_outputs)


class MLPFactory:
    """A picklable factory of ``MLP`` members: ``MLPFactory(hidden, activation)(n_features,
    n_outputs)`` returns ``MLP(n_features, hidden, n_outputs, activation=activation)``;
    ``hidden=None`` sizes one hidden layer from the data as ``default_mlp`` does, ``()``
    gives a linear (softmax-regression) member."""

    def __init__(self, hidden: Sequence[int] | None = None, activation: str = "relu") -> None:
        self.hidden = None if hidden is None else tuple(hidden)
        self.activation = activation

    def __call__(self, n_features: int, n_outputs: int) -> nn.Module:
        hidden = (int(min(64, max(16, 2 * n_features))),) if self.hidden is None else self.hidden
        return MLP(n_features, hidden=hidden, num_classes=n_outputs, activation=self.activation)

    def __repr__(self) -> str:
        return f"MLPFactory(hidden={self.hidden}, activation={self.activation!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MLPFactory) and (self.hidden, self.activation) == (other.hidden, other.activation)

    def __hash__(self) -> int:
        return hash((self.hidden, self.activation))


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with minidl's generators (parameter init, dropout) seeded by ``seed``,
    then restore them as they were, so fitting an ensemble leaves the user's stream alone.
    ``seed=None`` leaves the generators as they are."""
    if seed is None:
        yield
        return
    with backend.fork_rng(int(seed)):
        yield


def member_seeds(random_state: int | np.random.Generator | None, n: int) -> list[int]:
    """``n`` member seeds drawn from ``random_state`` (an int, a Generator or None)."""
    rng = random_state if isinstance(random_state, np.random.Generator) \
        else np.random.default_rng(random_state)
    return [int(s) for s in rng.integers(0, 2**31 - 1, size=n)]


def _describe_factory(factory: Any) -> str:
    return getattr(factory, "__qualname__", None) or type(factory).__name__


def build_member(owner: str, factory: Factory | None, n_features: int, n_outputs: int,
                 seed: int | None, probe: np.ndarray | None = None) -> nn.Module:
    """``factory(n_features, n_outputs)`` under ``seeded(seed)``, checked to be a Module; when
    ``probe`` (a few input rows) is given, also checked to map it to (rows, n_outputs)."""
    factory = default_mlp if factory is None else factory
    if not callable(factory):
        raise TypeError(f"{owner}: a factory must be callable as factory(n_features, n_outputs) "
                        f"-> nn.Module, got a {type(factory).__name__}")
    with seeded(seed):
        module = factory(n_features, n_outputs)
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"{owner}: the factory {_describe_factory(factory)} returned a {type(module).__name__}, "
            f"expected a minidl.nn.Module mapping (N, {n_features}) inputs to (N, {n_outputs}) outputs"
        )
    if probe is not None:
        out = member_outputs(module, probe)
        module.train()
        if out.shape != (len(probe), n_outputs):
            raise ValueError(
                f"{owner}: the module built by {_describe_factory(factory)} maps inputs of shape "
                f"{tuple(probe.shape)} to outputs of shape {out.shape}; expected ({len(probe)}, {n_outputs}) "
                f"({n_outputs} = number of classes or targets)"
            )
    return module


def fit_member(module: nn.Module, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None, *,
               task: str = "classification", epochs: int = 20, lr: float = 1e-2,
               batch_size: int | None = 64, weight_decay: float = 0.0,
               seed: int | None = None) -> nn.Module:
    """Train ``module`` in place with Adam on the sample-weighted loss; returns it.

    Per mini-batch B (reshuffled each epoch by a generator seeded with ``seed``)::

        loss = (1/|B|) sum_{i in B} w~_i l_i,   w~_i = N w_i / sum_j w_j
        l_i = -log softmax(f(x_i))[y_i]                  (task="classification")
        l_i = (1/K) sum_k (f(x_i)_k - y_ik)^2            (task="regression")

    Args:
        module: maps X[B] (|B|, *) to (|B|, K) scores; K = number of classes (``y`` holds
            class indices 0..K-1) or number of regression targets (``y`` (N,) or (N, K)).
            A module without trainable parameters is returned untouched.
        X: (N, *) float inputs. y: (N,) int64 classes, or (N,)/(N, K) float targets.
        sample_weight: (N,) non-negative weights with a positive sum; None means all 1.
        batch_size: mini-batch size; None for full-batch training.
        seed: seeds the batch order and minidl's generators (dropout) during training.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"fit_member: task must be 'classification' or 'regression', got {task!r}")
    X = np.asarray(X)
    n = len(X)
    y = np.asarray(y)
    if len(y) != n:
        raise ValueError(f"fit_member: X has {n} samples but y has {len(y)}")
    if sample_weight is None:
        w = np.ones(n, dtype=X.dtype)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(f"fit_member: sample_weight must have shape ({n},), got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("fit_member: sample_weight must be finite, non-negative and sum to > 0")
        w = (w * (n / w.sum())).astype(X.dtype)
    if task == "regression":
        y = y.astype(X.dtype)
        targets_2d = y.ndim == 2
    elif y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"fit_member: classification needs integer class indices y of shape ({n},), "
                         f"got shape {y.shape} dtype {y.dtype}")
    params = [p for p in module.parameters() if p.requires_grad]
    if not params or epochs <= 0:
        return module
    optimizer = Adam(params, lr=lr, weight_decay=weight_decay)
    order_rng = np.random.default_rng(seed)
    step = n if batch_size is None else max(1, int(batch_size))
    module.train()
    with seeded(seed):
        for _ in range(int(epochs)):
            order = order_rng.permutation(n) if step < n else np.arange(n)
            for start in range(0, n, step):
                idx = order[start:start + step]
                out = module(Tensor(X[idx]))
                if task == "classification":
                    per_sample = cross_entropy(out, Tensor(y[idx]), reduction="none")
                else:
                    target = y[idx] if targets_2d else y[idx].reshape(-1, 1)
                    if out.ndim == 1:
                        out = out.reshape(-1, 1)
                    if tuple(out.shape) != target.shape:
                        raise ValueError(f"fit_member: the module returned outputs of shape "
                                         f"{tuple(out.shape)} for regression targets of shape {target.shape}")
                    per_sample = ((out - Tensor(target)) ** 2).mean(axis=1)
                loss = (per_sample * Tensor(w[idx])).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    module.eval()
    return module


def member_outputs(module: nn.Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """The module's raw outputs on X (N, *) as a NumPy array (N, K), in eval mode, no graph."""
    module.eval()
    chunks = []
    with no_grad():
        for start in range(0, len(X), batch_size):
            out = module(Tensor(X[start:start + batch_size]))
            if not isinstance(out, Tensor):
                raise TypeError(f"member_outputs: the module's forward returned a {type(out).__name__}, "
                                "expected a Tensor")
            chunks.append(backend.to_numpy(out.data))
    out = np.concatenate(chunks, axis=0)
    return out.reshape(len(out), -1)


def softmax_np(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of scores z (N, K): exp(z - max) / sum exp(z - max)."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def log_softmax_np(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of scores z (N, K): z - max - log sum exp(z - max), finite even
    where the probability underflows to 0."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------- parallel jobs

def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], n_jobs: int | str | None = None,
             progress: bool = False, desc: str = "members") -> list[Any]:
    """``[fn(*job) for job in jobs]``, in worker processes (joblib) when ``n_jobs`` is not
    None or 1, with a tqdm bar over finished jobs when ``progress``. Results keep the jobs'
    order. Each worker is a fresh process, so ``fn`` and its results must pickle (minidl
    modules do).

    ``n_jobs="mpi"``: the same code under ``mpirun -n P``: rank r runs jobs r, r + P, ...,
    and the results are gathered so that every rank ends with all of them, in order. Ranks
    sharing a machine split its cores for BLAS/OpenMP/Numba (``distributed.pin_threads``).
    """
    from tqdm.auto import tqdm

    if n_jobs == "mpi":
        from ..distributed import get_comm
        from ..distributed.threads import pin_threads

        comm = get_comm()
        pin_threads(comm)
        mine = [fn(*job) for job in tqdm(jobs[comm.rank::comm.size], desc=desc,
                                          disable=not (progress and comm.rank == 0), leave=False)]
        gathered = comm.allgather(mine)
        return [gathered[i % comm.size][i // comm.size] for i in range(len(jobs))]
    bar = tqdm(total=len(jobs), desc=desc, disable=not progress, leave=False)
    try:
        if n_jobs in (None, 1) or len(jobs) <= 1:
            results = []
            for job in jobs:
                results.append(fn(*job))
                bar.update(1)
            return results
        from joblib import Parallel, delayed

        results = []
        for result in Parallel(n_jobs=n_jobs, return_as="generator")(delayed(fn)(*job) for job in jobs):
            results.append(result)
            bar.update(1)
        return results
    finally:
        bar.close()


# --------------------------------------------------------------------------- estimator base

def _as_float_array(owner: str, X: Any, what: str = "X") -> np.ndarray:
    if isinstance(X, Tensor):
        X = backend.to_numpy(X.data)
    try:
        X = np.asarray(X)
    except Exception as e:  # ragged lists and the like
        raise ValueError(f"{owner}: {what} must be array-like, got {type(X).__name__} ({e})") from None
    if X.dtype.kind not in "fiub":
        raise ValueError(f"{owner}: {what} must hold numbers, got dtype {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{owner}: {what} must have shape (n_samples, n_features) or (n_samples, *), "
                         f"got shape {X.shape}; reshape a single feature with X.reshape(-1, 1)")
    if len(X) == 0:
        raise ValueError(f"{owner}: {what} has no samples (shape {X.shape})")
    X = X.astype(np.float32) if X.dtype != np.float64 else X
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{owner}: {what} contains NaN or infinity")
    return X


class NetworkEnsemble(BaseEstimator):
    """Base of the ensembles: input checks, standardisation, member building and output.

    Subclasses define ``__init__`` with every argument defaulted and stored unchanged
    (scikit-learn's rule, so ``get_params`` and ``clone`` work) and call, in ``fit``,
    ``self._fit_inputs(X)`` then build/train members with ``self._build``/``self._train``.

    Shared arguments (attributes of the same name): ``epochs``, ``lr``, ``batch_size``,
    ``weight_decay`` (each member's Adam training, see ``fit_member``), ``standardize``
    (scale every feature to mean 0, std 1 with the training set's statistics before it
    reaches the members), ``random_state``, ``n_jobs`` and ``verbose`` (a progress bar).
    """

    _task = "classification"

    # ------------------------------------------------------------------ inputs
    @property
    def _name(self) -> str:
        return type(self).__name__

    def _fit_inputs(self, X: Any) -> np.ndarray:
        """Check X at fit time, remember its feature shape, fit the scaler; returns X scaled."""
        X = _as_float_array(f"{self._name}.fit", X)
        self.feature_shape_ = tuple(X.shape[1:])
        self.n_features_in_ = int(np.prod(self.feature_shape_))
        flat = X.reshape(len(X), -1)
        if self.standardize:
            self.mean_ = flat.mean(axis=0)
            scale = flat.std(axis=0)
            self.scale_ = np.where(scale > 1e-12, scale, 1.0).astype(X.dtype)
        else:
            self.mean_ = np.zeros(self.n_features_in_, dtype=X.dtype)
            self.scale_ = np.ones(self.n_features_in_, dtype=X.dtype)
        return self._scale(X)

    def _scale(self, X: np.ndarray) -> np.ndarray:
        flat = (X.reshape(len(X), -1) - self.mean_) / self.scale_
        return np.ascontiguousarray(flat.reshape(X.shape), dtype=X.dtype)

    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "feature_shape_") or not hasattr(self, "estimators_"):
            raise NotFittedError(f"{self._name}.{method}: this {self._name} is not fitted yet; "
                                 "call fit(X, y) before using it")

    def _predict_inputs(self, X: Any, method: str) -> np.ndarray:
        """Check X at predict time (fitted? same feature shape?); returns X scaled."""
        self._check_fitted(method)
        X = _as_float_array(f"{self._name}.{method}", X)
        if tuple(X.shape[1:]) != self.feature_shape_:
            raise ValueError(
                f"{self._name}.{method}: X has samples of shape {tuple(X.shape[1:])} "
                f"({int(np.prod(X.shape[1:]))} features) but the ensemble was fitted on "
                f"{self.feature_shape_} ({self.n_features_in_} features)"
            )
        return self._scale(X)

    def _fit_targets(self, y: Any, n: int) -> np.ndarray:
        """Classification: encode labels as 0..K-1 (``classes_``); regression: float targets."""
        if isinstance(y, Tensor):
            y = backend.to_numpy(y.data)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1 and self._task == "classification":
            y = y.ravel()
        if len(y) != n:
            raise ValueError(f"{self._name}.fit: X has {n} samples but y has {len(y)}")
        if self._task == "classification":
            if y.ndim != 1:
                raise ValueError(f"{self._name}.fit: y must be a 1-D array of class labels, got shape {y.shape}")
            self.classes_, encoded = np.unique(y, return_inverse=True)
            self.n_classes_ = len(self.classes_)
            if self.n_classes_ < 2:
                raise ValueError(f"{self._name}.fit: y holds a single class {self.classes_[0]!r}; "
                                 "a classifier needs at least 2")
            return encoded.astype(np.int64)
        if y.dtype.kind not in "fiub" or y.ndim not in (1, 2):
            raise ValueError(f"{self._name}.fit: y must be numeric of shape (N,) or (N, K), "
                             f"got shape {y.shape} dtype {y.dtype}")
        y = y.astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError(f"{self._name}.fit: y contains NaN or infinity")
        return y

    # ------------------------------------------------------------------ members
    def _build(self, factory: Factory | None, n_outputs: int, seed: int | None,
               probe: np.ndarray | None = None) -> nn.Module:
        return build_member(self._name, factory, self.n_features_in_, n_outputs, seed, probe)

    def _train_kwargs(self) -> dict:
        return dict(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size,
                    weight_decay=self.weight_decay)

    def _outputs(self, module: nn.Module, X: np.ndarray, n_outputs: int) -> np.ndarray:
        out = member_outputs(module, X)
        if out.shape != (len(X), n_outputs):
            raise ValueError(f"{self._name}: a member returned outputs of shape {out.shape} for "
                             f"{len(X)} samples; expected ({len(X)}, {n_outputs})")
        return out


def check_factories(owner: str, factories: Any) -> list:
    """A list of factories (a single callable, or None meaning the default, is one)."""
    if factories is None:
        return [default_mlp]
    if callable(factories):
        return [factories]
    if isinstance(factories, Iterable):
        out = list(factories)
        if not out:
            raise ValueError(f"{owner}: got an empty list of factories")
        for f in out:
            if f is not None and not callable(f):
                raise TypeError(f"{owner}: every factory must be callable as factory(n_features, "
                                f"n_outputs) -> nn.Module, got a {type(f).__name__}")
        return [default_mlp if f is None else f for f in out]
    raise TypeError(f"{owner}: factories must be a callable or a list of callables, got {type(factories).__name__}")
