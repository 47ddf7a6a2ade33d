"""Stacking (stacked generalisation, Wolpert 1992) with networks as base members.

A meta-learner g learns to combine B base models from their predictions. Trained on
predictions for samples the base models were fit on, g would learn to trust overfit
models, so its training inputs are *out-of-fold* predictions. With k folds I_1..I_k of the
N training samples and base factories b = 1..B:

    for each fold j and base b:  fit h_bj on the samples outside I_j,
                                 z_i[b] = log p_bj(x_i) for i in I_j   (log-probabilities)
    fit g on (z_i, y_i), i = 1..N                   z_i = (z_i[1], ..., z_i[B]) (B*K values)
    refit each base h_b on all N samples; predict: g(log p_1(x), ..., log p_B(x))

so no meta-learner input comes from a model that saw that sample.

The default meta-learner is ``LogisticRegressionCV``: multinomial logistic regression with
an L2 penalty (written in minidl here) whose strength C is chosen by k-fold cross-validation
on the out-of-fold inputs. Fed log-probabilities, a logistic regression can express a
weighted geometric mean of the bases, softmax(sum_b a_b log p_b), which is where a strong
penalty pulls it (W -> 0 leaves the class priors; the CV picks how far to move from there),
and it can learn per-class corrections between bases. Unpenalised on B*K inputs it overfits
the N out-of-fold rows; the cross-validated C keeps it as simple as the data ask.
(Measured on the digits, 3 seeds, 5 folds: probabilities with C=1 gave 0.9748 test accuracy,
log-probabilities with C=1 0.9644 (overfit), with the cross-validated C 0.9778; see
benchmarks/RESULTS.md.)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from ..functional.loss import cross_entropy
from ..functional.reduce import log_softmax
from ..nn import Parameter
from ..optim import Adam
from ..tensor import Tensor
from ..train.selection import StratifiedKFold
from .bagging import _train_on_indices
from .base import (MLPFactory, NetworkEnsemble, NotFittedError, log_softmax_np, member_seeds, run_jobs,
                   softmax_np)

__all__ = ["StackingClassifier", "LogisticRegression", "LogisticRegressionCV", "default_stack",
           "fit_logistic_batch"]


def default_stack() -> list[tuple[str, MLPFactory]]:
    """The default base members: three one-hidden-layer MLPs that differ in width and
    activation (ReLU sized from the data, tanh 64, GELU 128), each strong on its own."""
    return [("mlp_relu", MLPFactory(None, "relu")),
            ("mlp_tanh_64", MLPFactory((64,), "tanh")),
            ("mlp_gelu_128", MLPFactory((128,), "gelu"))]


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression in minidl (the default stacking meta-learner).

    Minimises, full batch, with Adam for ``max_iter`` steps (float64)::

        L(W, b) = (1/N) sum_i -log softmax(x_i W + b)[y_i] + ||W||^2 / (2 C N)

    the objective of scikit-learn's ``LogisticRegression(C=C)`` divided by C N (the bias is
    not penalised). X (N, d) numbers, y (N,) labels; W is (d, K), b is (K,).
    """

    def __init__(self, C: float = 1.0, max_iter: int = 300, lr: float = 0.1) -> None:
        self.C = C
        self.max_iter = max_iter
        self.lr = lr

    def fit(self, X: Any, y: Any) -> "LogisticRegression":
        """Fit W (d, K) and b (K,) on X (N, d), y (N,); returns self."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"LogisticRegression.fit: X must be (N, d), got shape {X.shape}")
        if not self.C > 0:
            raise ValueError(f"LogisticRegression: C must be > 0, got {self.C!r}")
        self.classes_, t = np.unique(np.asarray(y), return_inverse=True)
        if len(t) != len(X):
            raise ValueError(f"LogisticRegression.fit: X has {len(X)} samples but y has {len(t)}")
        n, d = X.shape
        k = len(self.classes_)
        self.n_features_in_ = d
        W = Parameter(np.zeros((d, k)))
        b = Parameter(np.zeros(k))
        optimizer = Adam([W, b], lr=self.lr)
        Xt, tt = Tensor(X), Tensor(t.astype(np.int64))
        penalty = 1.0 / (2.0 * self.C * n)
        for _ in range(int(self.max_iter)):
            loss = cross_entropy(Xt @ W + b, tt) + penalty * (W * W).sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        self.coef_ = W.numpy().T.copy()        # (K, d), scikit-learn's layout
        self.intercept_ = b.numpy().copy()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(X W + b) (N, K)."""
        if not hasattr(self, "coef_"):
            raise NotFittedError("LogisticRegression.predict_proba: not fitted yet; call fit(X, y) first")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"LogisticRegression: X has shape {X.shape}; expected (N, {self.n_features_in_})")
        return softmax_np(X @ self.coef_.T + self.intercept_)

    def predict(self, X: Any) -> np.ndarray:
        """Labels (N,): classes_[argmax softmax(X W + b)]."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def fit_logistic_batch(X: np.ndarray, t: np.ndarray, n_classes: int, rows: np.ndarray, Cs: np.ndarray,
                       max_iter: int = 300, lr: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """P independent ``LogisticRegression`` fits at once, fit p on the rows ``rows[p]`` of X with C = Cs[p].

    The P objectives L_p(W_p, b_p) (``LogisticRegression``'s, each on its own n_p rows) are
    summed and minimised together by one Adam: the sum separates, and Adam's update is
    per coordinate, so each (W_p, b_p) follows the very steps of its own fit, in one graph
    per step instead of P.

    Args:
        X: (N, d) float64; t: (N,) class indices in 0..n_classes-1.
        rows: (P, N) bool, the training rows of each fit (each with n_p > 0).
        Cs: (P,) inverse penalty strengths.
    Returns: W (P, d, n_classes) and b (P, n_classes) as NumPy arrays.
    """
    rows = np.asarray(rows, dtype=bool)
    Cs = np.asarray(Cs, dtype=np.float64)
    n_rows = rows.sum(axis=1).astype(np.float64)                              # (P,) n_p
    P, d = len(rows), X.shape[1]
    W = Parameter(np.zeros((P, d, n_classes)))
    b = Parameter(np.zeros((P, 1, n_classes)))
    optimizer = Adam([W, b], lr=lr)
    Xt = Tensor(X)
    one_hot = Tensor(np.eye(n_classes)[t])                                    # (N, K)
    row_weight = Tensor(rows / n_rows[:, None])                               # (P, N): 1/n_p on p's rows
    penalty = Tensor((1.0 / (2.0 * Cs * n_rows)).reshape(P, 1, 1))
    for _ in range(int(max_iter)):
        nll = -(log_softmax(Xt @ W + b, axis=-1) * one_hot).sum(axis=-1)       # (P, N)
        loss = (nll * row_weight).sum() + (penalty * W * W).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return W.numpy(), b.numpy()[:, 0, :]


class LogisticRegressionCV(LogisticRegression):
    """``LogisticRegression`` whose C is chosen by stratified k-fold cross-validation.

    For each C in ``Cs``, fit on k-1 folds and score the held-out fold by its mean
    log-loss -(1/|I_j|) sum_{i in I_j} log p(y_i | x_i); ``C_`` is the C with the lowest
    loss averaged over the k folds (ties: the smaller C, the simpler model), and the model
    is refit with it on all of X (N, d), y (N,). Log-loss rather than accuracy: it is
    smooth in C and, on a few hundred rows, far less noisy than counting errors.

    Attributes after fit: ``C_``, ``cv_loss_`` (len(Cs),), plus ``LogisticRegression``'s.
    """

    def __init__(self, Cs: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0), cv: int = 3, max_iter: int = 300,
                 lr: float = 0.1, random_state: int | None = 0) -> None:
        self.Cs = Cs
        self.cv = cv
        self.max_iter = max_iter
        self.lr = lr
        self.random_state = random_state

    @property
    def C(self) -> float:
        """The chosen C once fitted (the parent's ``fit`` reads it)."""
        return getattr(self, "C_", self.Cs[0])

    def fit(self, X: Any, y: Any) -> "LogisticRegressionCV":
        """Pick C by k-fold log-loss on (X (N, d), y (N,)), then refit on all of it; returns self."""
        Cs = [float(c) for c in self.Cs]
        if not Cs or not all(c > 0 for c in Cs):
            raise ValueError(f"LogisticRegressionCV: Cs must be a non-empty list of positive values, got {self.Cs!r}")
        X = np.asarray(X, dtype=np.float64)
        labels = np.asarray(y)
        if X.ndim != 2 or len(labels) != len(X):
            raise ValueError(f"LogisticRegressionCV.fit: needs X (N, d) and y (N,), got shapes {X.shape} "
                             f"and {labels.shape}")
        classes, t = np.unique(labels, return_inverse=True)
        folds = list(StratifiedKFold(int(self.cv), shuffle=True, seed=self.random_state).split(X, t))
        # every (C, fold) fit at once: fit c * k + j trains C = Cs[c] on the rows outside fold j
        rows = np.ones((len(Cs) * len(folds), len(X)), dtype=bool)
        for j, (_, val) in enumerate(folds):
            rows[j::len(folds), val] = False
        W, b = fit_logistic_batch(X, t, len(classes), rows, np.repeat(Cs, len(folds)), self.max_iter, self.lr)
        losses = np.zeros((len(Cs), len(folds)))
        for c in range(len(Cs)):
            for j, (_, val) in enumerate(folds):
                p = c * len(folds) + j
                log_p = log_softmax_np(X[val] @ W[p] + b[p])
                losses[c, j] = -np.mean(log_p[np.arange(len(val)), t[val]])
        self.cv_loss_ = losses.mean(axis=1)
        self.C_ = Cs[int(np.argmin(self.cv_loss_))]
        super().fit(X, labels)
        return self


def _named(owner: str, estimators: Any) -> list[tuple[str, Any]]:
    if estimators is None:
        return default_stack()
    if callable(estimators) or not isinstance(estimators, Sequence) or len(estimators) == 0:
        raise TypeError(f"{owner}: estimators must be a non-empty list of factories or (name, factory) "
                        f"pairs, got {type(estimators).__name__}")
    named = []
    for i, item in enumerate(estimators):
        name, factory = item if isinstance(item, tuple) else (f"member{i}", item)
        if factory is not None and not callable(factory):
            raise TypeError(f"{owner}: estimator {name!r} must be a factory(n_features, n_outputs) -> "
                            f"nn.Module, got a {type(factory).__name__}")
        named.append((name, factory))
    return named


class StackingClassifier(ClassifierMixin, NetworkEnsemble):
    """Stacked network classifiers with a meta-learner on out-of-fold probabilities.

    Args:
        estimators: list of factories or (name, factory) pairs, each
            ``factory(n_features, n_classes) -> nn.Module``; None: ``default_stack()``.
        final_estimator: the meta-learner, any scikit-learn-style classifier (cloned before
            fitting); None: ``LogisticRegressionCV()`` (C chosen by 3-fold CV).
        cv: number of folds k (stratified, shuffled with ``random_state``) or a splitter
            with ``split(X, y)`` yielding (train_idx, val_idx).
        stack_method: what the meta-learner sees from each base: ``"log_proba"`` (the log of
            its class probabilities, the default) or ``"predict_proba"`` (the probabilities).
        passthrough: also give the meta-learner the (standardised, flattened) features.
        epochs, lr, batch_size, weight_decay, standardize, n_jobs, random_state, verbose:
            as in ``BaggingClassifier``; n_jobs parallelises the B * (k + 1) member fits.

    Attributes after fit: ``estimators_`` (B modules refit on all data), ``final_estimator_``,
    ``oof_predictions_`` (N, B*K) (the meta-learner's training inputs, per ``stack_method``),
    ``folds_`` (the (train_idx, val_idx) pairs), ``fold_estimators_`` (B lists of k modules), ``classes_``.
    """

    def __init__(self, estimators: Sequence | None = None, final_estimator: Any = None, cv: Any = 5,
                 stack_method: str = "log_proba", passthrough: bool = False, epochs: int = 20, lr: float = 1e-2,
                 batch_size: int | None = 64, weight_decay: float = 0.0, standardize: bool = True,
                 n_jobs: int | None = None, random_state: int | None = None, verbose: bool = False) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.cv = cv
        self.stack_method = stack_method
        self.passthrough = passthrough
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _folds(self, Xs: np.ndarray, t: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        if isinstance(self.cv, (int, np.integer)) and not isinstance(self.cv, bool):
            splitter = StratifiedKFold(int(self.cv), shuffle=True, seed=seed)
        elif hasattr(self.cv, "split") and not isinstance(self.cv, (str, bytes)):
            splitter = self.cv
        else:
            raise TypeError(f"StackingClassifier: cv must be an int >= 2 or a splitter with split(X, y), "
                            f"got {type(self.cv).__name__}")
        folds = [(np.asarray(tr), np.asarray(va)) for tr, va in splitter.split(Xs, t)]
        covered = np.concatenate([va for _, va in folds])
        if len(covered) != len(t) or len(np.unique(covered)) != len(t):
            raise ValueError("StackingClassifier: the cv folds' validation parts must cover every sample "
                             "exactly once (a partition), or some samples would have no out-of-fold prediction")
        for tr, va in folds:
            if np.intersect1d(tr, va).size:
                raise ValueError("StackingClassifier: a cv fold trains on samples it validates on")
        return folds

    def _stack(self, scores: np.ndarray) -> np.ndarray:
        """One base's meta-learner input from its scores (N, K), per ``stack_method``."""
        return log_softmax_np(scores) if self.stack_method == "log_proba" else softmax_np(scores)

    def _meta_features(self, probas: list[np.ndarray], Xs: np.ndarray) -> np.ndarray:
        Z = np.concatenate(probas, axis=1)
        if self.passthrough:
            Z = np.concatenate([Z, Xs.reshape(len(Xs), -1)], axis=1)
        return Z

    def fit(self, X: Any, y: Any) -> "StackingClassifier":
        """Fit the bases fold by fold, the meta-learner on their out-of-fold probabilities,
        then the bases on all of (X (N, *), y (N,)); returns self."""
        named = _named(self._name, self.estimators)
        if self.stack_method not in ("log_proba", "predict_proba"):
            raise ValueError(f"StackingClassifier: stack_method must be 'log_proba' or 'predict_proba', "
                             f"got {self.stack_method!r}")
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        n, k = len(Xs), self.n_classes_
        rng = np.random.default_rng(self.random_state)
        self.folds_ = self._folds(Xs, t, member_seeds(rng, 1)[0])
        everything = np.arange(n)
        plan = [(b, j, tr) for b in range(len(named)) for j, (tr, _) in enumerate(self.folds_)]
        plan += [(b, None, everything) for b in range(len(named))]
        seeds = member_seeds(rng, len(plan))
        jobs = [(self._name, named[b][1], self.n_features_in_, k, Xs, t, idx, seed, "classification",
                 self._train_kwargs()) for (b, _, idx), seed in zip(plan, seeds)]
        modules = run_jobs(_train_on_indices, jobs, self.n_jobs, self.verbose, desc=self._name)
        self.fold_estimators_ = [[] for _ in named]
        self.estimators_ = [None] * len(named)
        for (b, j, _), module in zip(plan, modules):
            if j is None:
                self.estimators_[b] = module
            else:
                self.fold_estimators_[b].append(module)
        self.named_estimators_ = {name: m for (name, _), m in zip(named, self.estimators_)}
        oof = [np.zeros((n, k)) for _ in named]
        for b in range(len(named)):
            for (_, va), module in zip(self.folds_, self.fold_estimators_[b]):
                oof[b][va] = self._stack(self._outputs(module, Xs[va], k))
        self.oof_predictions_ = np.concatenate(oof, axis=1)
        meta = LogisticRegressionCV() if self.final_estimator is None else clone(self.final_estimator)
        self.final_estimator_ = meta.fit(self._meta_features(oof, Xs), t)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """The meta-learner's inputs for X: the refit bases' log-probabilities or probabilities
        (N, B*K) (and the standardised features when ``passthrough``)."""
        Xs = self._predict_inputs(X, "transform")
        probas = [self._stack(self._outputs(m, Xs, self.n_classes_)) for m in self.estimators_]
        return self._meta_features(probas, Xs)

    def predict_proba(self, X: Any) -> np.ndarray:
        """The meta-learner's class probabilities (N, K) on the bases' (log-)probabilities."""
        return np.asarray(self.final_estimator_.predict_proba(self.transform(X)))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,)."""
        self._check_fitted("predict")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
