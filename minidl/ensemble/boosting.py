"""Boosting with networks as members: AdaBoost (SAMME) and gradient boosting.

**AdaBoost, SAMME** (Zhu, Zou, Rosset & Hastie 2009; K classes, M rounds, learning rate nu).
Start from weights w_i = 1/N (or the normalised user weights). At round m:

    fit h_m on (X, y) with the weights w in the loss        (fit_member(..., sample_weight=w))
    err_m   = sum_i w_i [h_m(x_i) != y_i] / sum_i w_i
    alpha_m = nu * (log((1 - err_m) / err_m) + log(K - 1))
    w_i    <- w_i * exp(alpha_m [h_m(x_i) != y_i]),  then w <- w / sum w
    predict: argmax_k sum_m alpha_m [h_m(x) = k]

A member no better than chance (err_m >= 1 - 1/K) ends the loop (an error if it is the
first); a perfect one (err_m = 0) is kept with alpha = 1 and ends it, as in scikit-learn.
Networks are strong learners, so AdaBoost's defaults train each member briefly (5 epochs).

**Gradient boosting** (Friedman 2001): an additive model F_M = F_0 + nu sum_m s_m h_m, each
member fit (by least squares) to the negative gradient of the loss at the current F:

    regression, L = 1/2 (y - F)^2:                  r_i = y_i - F(x_i),         F_0 = mean(y)
    classification, L = -sum_k y_ik log softmax(F)_k: r_ik = y_ik - softmax(F(x_i))_k,
                                                      F_0 = log(class frequencies)

The member is trained on r / s_m, with s_m the standard deviation of r, so that late
rounds' small residuals are as easy to fit as the first; its output is scaled back by s_m.
``learning_rate`` nu is the shrinkage.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin

from .base import Factory, NetworkEnsemble, fit_member, member_seeds, softmax_np

__all__ = ["AdaBoostClassifier", "GradientBoostingClassifier", "GradientBoostingRegressor",
           "samme_update"]


def samme_update(weights: np.ndarray, miss: np.ndarray, n_classes: int,
                 learning_rate: float = 1.0) -> tuple[np.ndarray, float, float]:
    """One SAMME round: from sample weights w (N,) and the member's mistakes miss (N,) bool,
    return (new normalised weights, alpha, err) with

        err = sum w [miss] / sum w
        alpha = learning_rate * (log((1 - err) / err) + log(K - 1))
        w' = w * exp(alpha * miss) / sum(w * exp(alpha * miss))

    err must lie in (0, 1 - 1/K); the caller handles the perfect and the hopeless member.
    """
    w = np.asarray(weights, dtype=np.float64)
    miss = np.asarray(miss, dtype=bool)
    err = float(w[miss].sum() / w.sum())
    if not 0.0 < err < 1.0 - 1.0 / n_classes:
        raise ValueError(f"samme_update: the weighted error {err:.4g} must lie in (0, 1 - 1/K) = "
                         f"(0, {1 - 1 / n_classes:.4g})")
    alpha = learning_rate * (math.log((1.0 - err) / err) + math.log(n_classes - 1.0))
    new = w * np.exp(alpha * miss)
    return new / new.sum(), alpha, err


def _check_count(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")


def _check_rate(owner: str, value: Any) -> None:
    if not (isinstance(value, (int, float, np.floating)) and value > 0):
        raise ValueError(f"{owner}: learning_rate must be a positive number, got {value!r}")


class AdaBoostClassifier(ClassifierMixin, NetworkEnsemble):
    """AdaBoost (SAMME, for any number of classes) with networks trained on weighted losses.

    Args:
        factory: ``factory(n_features, n_classes) -> nn.Module``; None: ``default_mlp``.
        n_estimators: the most rounds M (fewer if a member is perfect or hopeless).
        learning_rate: nu, multiplies every alpha_m.
        epochs, lr, batch_size, weight_decay: each member's training (``fit_member``); few
            epochs by default, since boosting wants weak learners.
        standardize, random_state, verbose: as in ``BaggingClassifier``.

    Attributes after fit: ``estimators_``, ``estimator_weights_`` (alpha_m),
    ``estimator_errors_`` (err_m), ``sample_weights_`` (the weights each member was trained
    with, one (N,) array per member), ``classes_``.
    """

    def __init__(self, factory: Factory | None = None, n_estimators: int = 10, learning_rate: float = 1.0,
                 epochs: int = 5, lr: float = 1e-2, batch_size: int | None = 64, weight_decay: float = 0.0,
                 standardize: bool = True, random_state: int | None = None, verbose: bool = False) -> None:
        self.factory = factory
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "AdaBoostClassifier":
        """Run up to M SAMME rounds on X (N, *), y (N,), optional initial weights (N,)."""
        from tqdm.auto import tqdm

        _check_count(self._name, "n_estimators", self.n_estimators)
        _check_rate(self._name, self.learning_rate)
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        n, k = len(Xs), self.n_classes_
        if sample_weight is None:
            w = np.full(n, 1.0 / n)
        else:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (n,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
                raise ValueError(f"AdaBoostClassifier.fit: sample_weight must be (N,) = ({n},), finite, "
                                 f"non-negative with a positive sum; got shape {w.shape}")
            w = w / w.sum()
        seeds = member_seeds(self.random_state, self.n_estimators)
        self.estimators_, self.estimator_weights_, self.estimator_errors_, self.sample_weights_ = [], [], [], []
        for m in tqdm(range(self.n_estimators), desc=self._name, disable=not self.verbose, leave=False):
            module = self._build(self.factory, k, seeds[m], Xs[:2])
            fit_member(module, Xs, t, sample_weight=w, task="classification", seed=seeds[m],
                       **self._train_kwargs())
            miss = self._outputs(module, Xs, k).argmax(axis=1) != t
            err = float(w[miss].sum() / w.sum())
            if err <= 0.0:
                self._keep(module, 1.0, 0.0, w)
                break
            if err >= 1.0 - 1.0 / k:
                if m == 0:
                    raise ValueError(f"AdaBoostClassifier.fit: the first member's weighted error {err:.3f} is no "
                                     f"better than chance (1 - 1/K = {1 - 1 / k:.3f}); train members longer "
                                     "(epochs, lr) or use a stronger factory")
                break
            new_w, alpha, err = samme_update(w, miss, k, self.learning_rate)
            self._keep(module, alpha, err, w)
            w = new_w
        self.estimator_weights_ = np.asarray(self.estimator_weights_)
        self.estimator_errors_ = np.asarray(self.estimator_errors_)
        return self

    def _keep(self, module, alpha: float, err: float, w: np.ndarray) -> None:
        self.estimators_.append(module)
        self.estimator_weights_.append(alpha)
        self.estimator_errors_.append(err)
        self.sample_weights_.append(w.copy())

    def decision_function(self, X: Any) -> np.ndarray:
        """Weighted votes (N, K): sum_m alpha_m [h_m(x) = k] / sum_m alpha_m."""
        Xs = self._predict_inputs(X, "decision_function")
        votes = np.zeros((len(Xs), self.n_classes_))
        for module, alpha in zip(self.estimators_, self.estimator_weights_):
            votes[np.arange(len(Xs)), self._outputs(module, Xs, self.n_classes_).argmax(axis=1)] += alpha
        return votes / self.estimator_weights_.sum()

    def predict_proba(self, X: Any) -> np.ndarray:
        """The normalised weighted votes (N, K) (they sum to 1 per row)."""
        return self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,): argmax_k sum_m alpha_m [h_m(x) = k]."""
        self._check_fitted("predict")
        return self.classes_[self.decision_function(X).argmax(axis=1)]


class _GradientBoosting(NetworkEnsemble):
    """The boosting loop and the constructor shared by the regressor and the classifier
    (scikit-learn's ``get_params`` reads the inherited ``__init__`` signature)."""

    def __init__(self, factory: Factory | None = None, n_estimators: int = 10, learning_rate: float = 0.5,
                 epochs: int = 20, lr: float = 1e-2, batch_size: int | None = 64, weight_decay: float = 0.0,
                 standardize: bool = True, random_state: int | None = None, verbose: bool = False) -> None:
        self.factory = factory
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.random_state = random_state
        self.verbose = verbose

    def _boost(self, Xs: np.ndarray, F: np.ndarray, negative_gradient, loss) -> None:
        from tqdm.auto import tqdm

        _check_count(self._name, "n_estimators", self.n_estimators)
        _check_rate(self._name, self.learning_rate)
        seeds = member_seeds(self.random_state, self.n_estimators)
        self.estimators_, self.scales_, self.train_loss_ = [], [], [loss(F)]
        k = F.shape[1]
        for m in tqdm(range(self.n_estimators), desc=self._name, disable=not self.verbose, leave=False):
            r = negative_gradient(F)
            scale = float(r.std())
            if scale < 1e-12:
                break
            module = self._build(self.factory, k, seeds[m], Xs[:2])
            fit_member(module, Xs, r / scale, task="regression", seed=seeds[m], **self._train_kwargs())
            F = F + self.learning_rate * scale * self._outputs(module, Xs, k)
            self.estimators_.append(module)
            self.scales_.append(scale)
            self.train_loss_.append(loss(F))

    def _staged_scores(self, Xs: np.ndarray) -> Iterator[np.ndarray]:
        F = np.repeat(self.init_[None, :], len(Xs), axis=0)
        for module, scale in zip(self.estimators_, self.scales_):
            F = F + self.learning_rate * scale * self._outputs(module, Xs, F.shape[1])
            yield F

    def _scores(self, Xs: np.ndarray) -> np.ndarray:
        F = np.repeat(self.init_[None, :], len(Xs), axis=0)
        for F in self._staged_scores(Xs):
            pass
        return F


class GradientBoostingRegressor(RegressorMixin, _GradientBoosting):
    """Gradient boosting of network regressors on the squared error.

    F(x) = mean(y) + nu sum_m s_m h_m(x), member m fit to the residuals (y - F_{m-1}) / s_m.

    Args: ``factory`` (``factory(n_features, n_targets)``), ``n_estimators`` M,
    ``learning_rate`` nu, and the member training arguments of ``BaggingRegressor``.
    Attributes after fit: ``estimators_``, ``scales_`` (s_m), ``init_`` (F_0),
    ``train_loss_`` (1/2 mean squared residual before the first and after every member).
    """

    _task = "regression"

    def fit(self, X: Any, y: Any) -> "GradientBoostingRegressor":
        """Boost on X (N, *) and y (N,) or (N, K); returns self."""
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self.y_ndim_ = t.ndim
        Y = t.reshape(len(t), -1)
        self.n_outputs_ = Y.shape[1]
        self.init_ = Y.mean(axis=0)
        F0 = np.repeat(self.init_[None, :], len(Y), axis=0)
        self._boost(Xs, F0, lambda F: Y - F, lambda F: float(0.5 * np.mean((Y - F) ** 2)))
        return self

    def staged_predict(self, X: Any) -> Iterator[np.ndarray]:
        """The prediction after each member in turn (for learning curves over M)."""
        Xs = self._predict_inputs(X, "staged_predict")
        for F in self._staged_scores(Xs):
            yield F[:, 0] if self.y_ndim_ == 1 else F

    def predict(self, X: Any) -> np.ndarray:
        """F(x): (N,) for 1-D training targets, else (N, K)."""
        F = self._scores(self._predict_inputs(X, "predict"))
        return F[:, 0] if self.y_ndim_ == 1 else F


class GradientBoostingClassifier(ClassifierMixin, _GradientBoosting):
    """Gradient boosting of networks on the multinomial deviance (K scores, also for K = 2).

    F_0 = log(class frequencies); member m fits (Y - softmax(F_{m-1})) / s_m, Y one-hot;
    p(x) = softmax(F(x)).

    Args and attributes as ``GradientBoostingRegressor``; ``train_loss_`` is the mean
    deviance -1/N sum_i log p(x_i)[y_i].
    """

    def fit(self, X: Any, y: Any) -> "GradientBoostingClassifier":
        """Boost on X (N, *) and labels y (N,); returns self."""
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        Y = np.eye(self.n_classes_)[t]
        self.init_ = np.log(Y.mean(axis=0))
        F0 = np.repeat(self.init_[None, :], len(Y), axis=0)

        def deviance(F: np.ndarray) -> float:
            logp = F - F.max(axis=1, keepdims=True)
            logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
            return float(-np.mean(logp[np.arange(len(t)), t]))

        self._boost(Xs, F0, lambda F: Y - softmax_np(F), deviance)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The additive scores F(x) (N, K)."""
        return self._scores(self._predict_inputs(X, "decision_function"))

    def predict_proba(self, X: Any) -> np.ndarray:
        """softmax(F(x)) (N, K)."""
        return softmax_np(self.decision_function(X))

    def staged_predict_proba(self, X: Any) -> Iterator[np.ndarray]:
        """softmax(F_m(x)) after each member m in turn."""
        Xs = self._predict_inputs(X, "staged_predict_proba")
        for F in self._staged_scores(Xs):
            yield softmax_np(F)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,): classes_[argmax_k F(x)_k]."""
        self._check_fitted("predict")
        return self.classes_[self.decision_function(X).argmax(axis=1)]
