"""Diverse ensembles: members that err differently, by design or by training.

An average of M members is better than its average member by exactly how much the members
disagree (Krogh & Vedelsby's ambiguity decomposition, for the squared error):

    (f_bar - y)^2 = (1/M) sum_i (f_i - y)^2  -  (1/M) sum_i (f_i - f_bar)^2,   f_bar = (1/M) sum_i f_i

so an ensemble gains from diversity as long as each member stays accurate. Two ways to get it:

- ``DiverseEnsembleClassifier``: members of different architectures (depth, width,
  activation) and seeds, each trained alone on all the data, averaged.
- Negative correlation learning (Liu & Yao 1999), ``NCLClassifier``/``NCLRegressor``
  (``NCLEnsemble`` is the classifier): all members trained *jointly*, member i minimising

      E_i = 1/2 (f_i - y)^2 + lambda p_i,     p_i = (f_i - f_bar) sum_{j != i} (f_j - f_bar)

  where p_i is treated as in the paper: the sum over j != i is held fixed, so that

      dE_i/df_i = (f_i - y) - lambda (f_i - f_bar) = (1 - lambda)(f_i - y) + lambda (f_bar - y).

  lambda = 0 trains the members independently; lambda = 1 trains each on the ensemble's
  error. For classification f_i = softmax(member i's scores) and y is one-hot.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from ..optim import Adam
from ..tensor import Tensor
from .bagging import _train_on_indices
from .base import (Factory, MLPFactory, NetworkEnsemble, check_factories, member_seeds, run_jobs, seeded,
                   softmax_np)

__all__ = ["DiverseEnsembleClassifier", "NCLClassifier", "NCLRegressor", "NCLEnsemble", "default_zoo",
           "ncl_loss", "disagreement"]


def default_zoo() -> list[MLPFactory]:
    """The default architectures of a diverse ensemble: ReLU, tanh, GELU and ELU MLPs of
    different depths and widths."""
    return [MLPFactory(None, "relu"), MLPFactory((32, 32), "tanh"), MLPFactory((128,), "gelu"),
            MLPFactory((64, 32), "elu")]


def disagreement(predictions: Sequence[np.ndarray]) -> float:
    """Mean pairwise disagreement of M label vectors (each (N,)):
    2 / (M (M - 1)) sum_{i<j} mean_n [a_i(n) != a_j(n)]; 0 when M < 2."""
    preds = [np.asarray(p) for p in predictions]
    m = len(preds)
    if m < 2:
        return 0.0
    total = sum(np.mean(preds[i] != preds[j]) for i in range(m) for j in range(i + 1, m))
    return float(2.0 * total / (m * (m - 1)))


class DiverseEnsembleClassifier(ClassifierMixin, NetworkEnsemble):
    """Members of different architectures and seeds, trained apart on all the data, voting.

    Args:
        factories: factories ``factory(n_features, n_classes) -> nn.Module`` cycled over the
            members; None: ``default_zoo()``.
        n_estimators: number of members (member m uses factories[m % len(factories)] and
            its own seed); None: one per factory.
        voting: ``"soft"`` (mean probability) or ``"hard"`` (fraction of votes).
        epochs, lr, batch_size, weight_decay, standardize, n_jobs, random_state, verbose:
            as in ``BaggingClassifier``.

    Attributes after fit: ``estimators_``, ``member_factories_``, ``estimators_seeds_``.
    ``member_predict(X)`` gives each member's labels, ``diversity(X)`` their mean pairwise
    disagreement. With a single factory this is a seed ensemble ("deep ensemble").
    """

    def __init__(self, factories: Sequence[Factory] | None = None, n_estimators: int | None = None,
                 voting: str = "soft", epochs: int = 20, lr: float = 1e-2, batch_size: int | None = 64,
                 weight_decay: float = 0.0, standardize: bool = True, n_jobs: int | None = None,
                 random_state: int | None = None, verbose: bool = False) -> None:
        self.factories = factories
        self.n_estimators = n_estimators
        self.voting = voting
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> "DiverseEnsembleClassifier":
        """Train every member on all of X (N, *), y (N,); returns self."""
        if self.voting not in ("soft", "hard"):
            raise ValueError(f"{self._name}: voting must be 'soft' or 'hard', got {self.voting!r}")
        zoo = default_zoo() if self.factories is None else check_factories(self._name, self.factories)
        m = len(zoo) if self.n_estimators is None else self.n_estimators
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"{self._name}: n_estimators must be a positive int or None, got {m!r}")
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self.member_factories_ = [zoo[i % len(zoo)] for i in range(m)]
        self.estimators_seeds_ = member_seeds(self.random_state, m)
        everything = np.arange(len(Xs))
        jobs = [(self._name, f, self.n_features_in_, self.n_classes_, Xs, t, everything, seed, "classification",
                 self._train_kwargs()) for f, seed in zip(self.member_factories_, self.estimators_seeds_)]
        self.estimators_ = run_jobs(_train_on_indices, jobs, self.n_jobs, self.verbose, desc=self._name)
        return self

    def _member_probas(self, Xs: np.ndarray) -> list[np.ndarray]:
        return [softmax_np(self._outputs(m, Xs, self.n_classes_)) for m in self.estimators_]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Mean member probability (soft) or vote fraction (hard), (N, K)."""
        probas = self._member_probas(self._predict_inputs(X, "predict_proba"))
        if self.voting == "soft":
            return np.mean(probas, axis=0)
        return np.mean([np.eye(self.n_classes_)[p.argmax(axis=1)] for p in probas], axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,)."""
        self._check_fitted("predict")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def member_predict(self, X: Any) -> np.ndarray:
        """Each member's own predicted labels, (M, N)."""
        probas = self._member_probas(self._predict_inputs(X, "member_predict"))
        return self.classes_[np.stack([p.argmax(axis=1) for p in probas])]

    def diversity(self, X: Any) -> float:
        """Mean pairwise disagreement of the members' predicted labels on X."""
        return disagreement(list(self.member_predict(X)))


def ncl_loss(outputs: Sequence[Tensor], target: Tensor, lam: float) -> tuple[Tensor, float, float]:
    """The negative-correlation-learning objective of M members on a batch.

    outputs: M Tensors f_i (N, K); target y (N, K). Returns (loss, error, penalty) with

        loss    = (1/N) sum_n sum_i [1/2 ||f_i - y||^2 + lambda p_i],
        p_i     = (f_i - f_bar) . sum_{j != i}(f_j - f_bar) = -||f_i - f_bar||^2,

    the sum over j != i (= f_bar - f_i) and the f_bar in the first factor held constant, so
    that d loss / d f_i = ((f_i - y) - lambda (f_i - f_bar)) / N (Liu & Yao's gradient).
    ``error`` and ``penalty`` are the floats (1/N) sum 1/2 ||f_i - y||^2 and (1/N) sum p_i.
    """
    m = len(outputs)
    if m < 1:
        raise ValueError("ncl_loss: needs at least one member output")
    for f in outputs:
        if tuple(f.shape) != tuple(target.shape):
            raise ValueError(f"ncl_loss: member output shape {tuple(f.shape)} differs from the target's "
                             f"{tuple(target.shape)}")
    f_bar = outputs[0].detach()
    for f in outputs[1:]:
        f_bar = f_bar + f.detach()
    f_bar = f_bar * (1.0 / m)
    n = target.shape[0]
    error_terms, penalty_terms = [], []
    for f in outputs:
        others = f_bar - f.detach()                 # sum_{j != i} (f_j - f_bar), held fixed
        error_terms.append(0.5 * ((f - target) ** 2).sum())
        penalty_terms.append(((f - f_bar) * others).sum())
    error, penalty = error_terms[0], penalty_terms[0]
    for e, p in zip(error_terms[1:], penalty_terms[1:]):
        error = error + e
        penalty = penalty + p
    loss = (error + lam * penalty) * (1.0 / n)
    return loss, float(error.item()) / n, float(penalty.item()) / n


class _NCL(NetworkEnsemble):
    """Joint training of M members on ``ncl_loss``; the subclass maps scores to f_i."""

    def _member_f(self, scores: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define _member_f (scores -> f_i)")

    def _fit_joint(self, Xs: np.ndarray, Y: np.ndarray, n_outputs: int) -> None:
        from tqdm.auto import tqdm

        if isinstance(self.n_estimators, bool) or not isinstance(self.n_estimators, (int, np.integer)) \
                or self.n_estimators < 2:
            raise ValueError(f"{self._name}: n_estimators must be an int >= 2, got {self.n_estimators!r}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"{self._name}: lam must be in [0, 1] (Liu & Yao's range), got {self.lam!r}")
        zoo = check_factories(self._name, self.factories)
        seeds = member_seeds(self.random_state, self.n_estimators + 1)
        self.estimators_ = [self._build(zoo[i % len(zoo)], n_outputs, seeds[i], Xs[:2]) for i in range(self.n_estimators)]
        params = [p for m in self.estimators_ for p in m.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"{self._name}: the members have no trainable parameters")
        optimizer = Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        order_rng = np.random.default_rng(seeds[-1])
        n = len(Xs)
        step = n if self.batch_size is None else max(1, int(self.batch_size))
        Y = Y.astype(Xs.dtype)
        self.history_ = {"error": [], "penalty": []}
        for module in self.estimators_:
            module.train()
        with seeded(seeds[-1]):
            for _ in tqdm(range(int(self.epochs)), desc=self._name, disable=not self.verbose, leave=False):
                order = order_rng.permutation(n)
                err_sum = pen_sum = 0.0
                for start in range(0, n, step):
                    idx = order[start:start + step]
                    x = Tensor(Xs[idx])
                    outputs = [self._member_f(m(x)) for m in self.estimators_]
                    loss, err, pen = ncl_loss(outputs, Tensor(Y[idx]), self.lam)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    err_sum += err * len(idx)
                    pen_sum += pen * len(idx)
                self.history_["error"].append(err_sum / n)
                self.history_["penalty"].append(pen_sum / n)
        for module in self.estimators_:
            module.eval()

    def _member_values(self, Xs: np.ndarray, n_outputs: int) -> list[np.ndarray]:
        raise NotImplementedError(f"{type(self).__name__} must define _member_values (each member's f_i)")

    def ambiguity(self, X: Any) -> float:
        """Krogh & Vedelsby's ambiguity on X: (1/N) sum_n (1/M) sum_i ||f_i(x_n) - f_bar(x_n)||^2."""
        values = self._member_values(self._predict_inputs(X, "ambiguity"), self._n_out)
        f_bar = np.mean(values, axis=0)
        return float(np.mean([((v - f_bar) ** 2).sum(axis=1).mean() for v in values]))


class NCLClassifier(ClassifierMixin, _NCL):
    """Negative correlation learning for classification: M members trained jointly on
    ``ncl_loss`` with f_i = softmax(scores_i) and one-hot targets; predicts argmax f_bar.

    Args:
        factories: a factory or a list cycled over the members (different architectures
            allowed); None: ``default_mlp``.
        n_estimators: M (>= 2). lam: lambda in [0, 1], the strength of the penalty.
        epochs, lr, batch_size, weight_decay: the joint Adam training (every member sees
            the same batches). standardize, random_state, verbose: as in ``BaggingClassifier``.

    Attributes after fit: ``estimators_``, ``history_`` (per epoch: mean error term and
    mean penalty sum_i p_i per sample), ``classes_``.
    """

    def __init__(self, factories: Factory | Sequence[Factory] | None = None, n_estimators: int = 5,
                 lam: float = 0.5, epochs: int = 20, lr: float = 1e-2, batch_size: int | None = 64,
                 weight_decay: float = 0.0, standardize: bool = True, random_state: int | None = None,
                 verbose: bool = False) -> None:
        self.factories = factories
        self.n_estimators = n_estimators
        self.lam = lam
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose

    def _member_f(self, scores: Tensor) -> Tensor:
        return scores.softmax(axis=1)

    @property
    def _n_out(self) -> int:
        return self.n_classes_

    def fit(self, X: Any, y: Any) -> "NCLClassifier":
        """Train the M members jointly on X (N, *), y (N,); returns self."""
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self._fit_joint(Xs, np.eye(self.n_classes_)[t], self.n_classes_)
        return self

    def _member_values(self, Xs: np.ndarray, n_outputs: int) -> list[np.ndarray]:
        return [softmax_np(self._outputs(m, Xs, n_outputs)) for m in self.estimators_]

    def predict_proba(self, X: Any) -> np.ndarray:
        """f_bar(x) = (1/M) sum_i softmax(scores_i(x)), (N, K)."""
        return np.mean(self._member_values(self._predict_inputs(X, "predict_proba"), self.n_classes_), axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,)."""
        self._check_fitted("predict")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class NCLRegressor(RegressorMixin, _NCL):
    """Negative correlation learning for regression (Liu & Yao's setting): f_i = member
    outputs on standardised targets; predicts f_bar mapped back to y's units.

    Arguments and attributes as ``NCLClassifier``; y (N,) or (N, K).
    """

    _task = "regression"

    def __init__(self, factories: Factory | Sequence[Factory] | None = None, n_estimators: int = 5,
                 lam: float = 0.5, epochs: int = 20, lr: float = 1e-2, batch_size: int | None = 64,
                 weight_decay: float = 0.0, standardize: bool = True, random_state: int | None = None,
                 verbose: bool = False) -> None:
        self.factories = factories
        self.n_estimators = n_estimators
        self.lam = lam
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose

    def _member_f(self, scores: Tensor) -> Tensor:
        return scores

    @property
    def _n_out(self) -> int:
        return self.n_outputs_

    def fit(self, X: Any, y: Any) -> "NCLRegressor":
        """Train the M members jointly on X (N, *), y (N,) or (N, K); returns self."""
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self.y_ndim_ = t.ndim
        Y = t.reshape(len(t), -1)
        self.n_outputs_ = Y.shape[1]
        self.y_mean_ = Y.mean(axis=0) if self.standardize else np.zeros(self.n_outputs_)
        spread = Y.std(axis=0) if self.standardize else np.ones(self.n_outputs_)
        self.y_scale_ = np.where(spread > 1e-12, spread, 1.0)
        self._fit_joint(Xs, (Y - self.y_mean_) / self.y_scale_, self.n_outputs_)
        return self

    def _member_values(self, Xs: np.ndarray, n_outputs: int) -> list[np.ndarray]:
        return [self._outputs(m, Xs, n_outputs) for m in self.estimators_]

    def predict(self, X: Any) -> np.ndarray:
        """f_bar(x) in y's units: (N,) for 1-D training targets, else (N, K)."""
        f_bar = np.mean(self._member_values(self._predict_inputs(X, "predict"), self.n_outputs_), axis=0)
        pred = f_bar * self.y_scale_ + self.y_mean_
        return pred[:, 0] if self.y_ndim_ == 1 else pred


NCLEnsemble = NCLClassifier
