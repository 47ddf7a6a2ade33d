"""Bagging (bootstrap aggregating, Breiman 1996) with networks as members.

Member m is trained on a bootstrap sample S_m: n draws with replacement from the N
training samples (``max_samples`` sets n). A sample is *out of bag* (OOB) for member m when
it is not in S_m; on average a fraction (1 - 1/N)^N ~ 1/e ~ 36.8% of the samples are OOB
for each member, which gives a free validation estimate: each sample is predicted by the
members that never saw it.

Combining M members with class probabilities p_m(x) (softmax of the member's scores):

    soft voting:  p(x) = (1/M) sum_m p_m(x),                predict argmax_k p(x)_k
    hard voting:  p(x)_k = (1/M) #{m : argmax p_m(x) = k},  predict argmax_k p(x)_k
    regression:   f(x) = (1/M) sum_m f_m(x)
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score

from .. import nn
from .base import (Factory, NetworkEnsemble, build_member, fit_member, member_seeds,
                   run_jobs, softmax_np)

__all__ = ["BaggingClassifier", "BaggingRegressor", "bootstrap_indices", "oob_mask"]


def bootstrap_indices(n_samples: int, n_draws: int, rng: np.random.Generator,
                      replace: bool = True) -> np.ndarray:
    """``n_draws`` indices into 0..n_samples-1, drawn uniformly with replacement (a bootstrap
    sample) or, with ``replace=False``, without (a random subset; needs n_draws <= n_samples)."""
    if not replace and n_draws > n_samples:
        raise ValueError(f"bootstrap_indices: cannot draw {n_draws} of {n_samples} samples without replacement")
    if replace:
        return rng.integers(0, n_samples, size=n_draws)
    return rng.choice(n_samples, size=n_draws, replace=False)


def oob_mask(n_samples: int, indices: np.ndarray) -> np.ndarray:
    """(n_samples,) bool: True for the samples *not* among ``indices`` (out of bag)."""
    mask = np.ones(n_samples, dtype=bool)
    mask[np.asarray(indices, dtype=np.int64)] = False
    return mask


def _n_draws(owner: str, max_samples: Any, n: int) -> int:
    if isinstance(max_samples, (bool, np.bool_)):
        raise TypeError(f"{owner}: max_samples must be a float in (0, 1] or a positive int, got {max_samples!r}")
    if isinstance(max_samples, (int, np.integer)):
        if not 1 <= max_samples:
            raise ValueError(f"{owner}: max_samples must be >= 1 as an int, got {max_samples}")
        return int(max_samples)
    if isinstance(max_samples, (float, np.floating)) and 0.0 < max_samples <= 1.0:
        return max(1, int(round(max_samples * n)))
    raise ValueError(f"{owner}: max_samples must be a float in (0, 1] or a positive int, got {max_samples!r}")


def _train_on_indices(owner: str, factory: Factory | None, n_features: int, n_outputs: int,
                      X: np.ndarray, y: np.ndarray, idx: np.ndarray, seed: int, task: str,
                      train_kwargs: dict) -> nn.Module:
    """Build a member and fit it on the rows ``idx`` (repeats included) of X, y."""
    module = build_member(owner, factory, n_features, n_outputs, seed, probe=X[idx[:2]])
    return fit_member(module, X[idx], y[idx], task=task, seed=seed, **train_kwargs)


class _Bagging(NetworkEnsemble):
    """Shared by the classifier and the regressor: draw the samples, train the members."""

    def _check_params(self) -> None:
        if isinstance(self.n_estimators, bool) or not isinstance(self.n_estimators, (int, np.integer)) \
                or self.n_estimators < 1:
            raise ValueError(f"{self._name}: n_estimators must be a positive int, got {self.n_estimators!r}")

    def _fit_members(self, X: np.ndarray, y: np.ndarray, n_outputs: int) -> None:
        self._check_params()
        n = len(X)
        draws = _n_draws(self._name, self.max_samples, n)
        rng = np.random.default_rng(self.random_state)
        self.estimators_samples_ = [bootstrap_indices(n, draws, rng, replace=self.bootstrap)
                                    for _ in range(self.n_estimators)]
        self.estimators_seeds_ = member_seeds(rng, self.n_estimators)
        jobs = [(self._name, self.factory, self.n_features_in_, n_outputs, X, y, idx, seed, self._task,
                 self._train_kwargs())
                for idx, seed in zip(self.estimators_samples_, self.estimators_seeds_)]
        self.estimators_ = run_jobs(_train_on_indices, jobs, self.n_jobs, self.verbose, desc=self._name)

    def _oob_members(self, n: int) -> list[np.ndarray]:
        return [oob_mask(n, idx) for idx in self.estimators_samples_]


class BaggingClassifier(ClassifierMixin, _Bagging):
    """Bagged network classifiers with soft or hard voting and an out-of-bag score.

    Args:
        factory: ``factory(n_features, n_classes) -> nn.Module`` giving class scores
            (N, n_classes); None: ``default_mlp``.
        n_estimators: number of members M.
        max_samples: draws per member, a fraction of N (float) or a count (int).
        bootstrap: draw with replacement (True) or take random subsets (False, "pasting").
        oob_score: compute ``oob_score_`` (accuracy of the OOB predictions) and
            ``oob_decision_function_`` (N, K), NaN rows for samples in every member's sample.
        voting: ``"soft"`` (mean of probabilities) or ``"hard"`` (fraction of votes).
        epochs, lr, batch_size, weight_decay: each member's training (``fit_member``). The
            defaults differ from the other ensembles' (20 epochs, no penalty): a bootstrap
            member sees only ~63% of the samples, each about 1.6 times per epoch, so it
            overfits its repeats sooner and gains from more, gentler steps; an L2 penalty of
            1e-3 and 30 epochs lifted the members' mean test accuracy on the digits from
            0.9666 to 0.9681 and the 10-member soft vote from 0.9733 to 0.9763 (3 seeds).
        standardize: scale features with the training set's mean and std.
        n_jobs: train members in that many processes (joblib); None: in this process;
            "mpi": split across the ranks of an `mpirun` launch, every rank gets all members.
        random_state: seeds the bootstrap samples and every member (init and batch order).
        verbose: a progress bar over members.

    Attributes after fit: ``estimators_`` (modules), ``estimators_samples_`` (index arrays),
    ``estimators_seeds_``, ``classes_``, ``n_features_in_``, and the OOB results.
    """

    def __init__(self, factory: Factory | None = None, n_estimators: int = 10, max_samples: float | int = 1.0,
                 bootstrap: bool = True, oob_score: bool = False, voting: str = "soft", epochs: int = 30,
                 lr: float = 1e-2, batch_size: int | None = 64, weight_decay: float = 1e-3,
                 standardize: bool = True, n_jobs: int | None = None, random_state: int | None = None,
                 verbose: bool = False) -> None:
        self.factory = factory
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.bootstrap = bootstrap
        self.oob_score = oob_score
        self.voting = voting
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> "BaggingClassifier":
        """Train M members on bootstrap samples of (X (N, *), y (N,)); returns self."""
        if self.voting not in ("soft", "hard"):
            raise ValueError(f"BaggingClassifier: voting must be 'soft' or 'hard', got {self.voting!r}")
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self._fit_members(Xs, t, self.n_classes_)
        if self.oob_score:
            self._compute_oob(Xs, t)
        return self

    def _member_probas(self, Xs: np.ndarray) -> list[np.ndarray]:
        return [softmax_np(self._outputs(m, Xs, self.n_classes_)) for m in self.estimators_]

    def _combine(self, probas: list[np.ndarray]) -> np.ndarray:
        if self.voting == "soft":
            return np.mean(probas, axis=0)
        votes = np.zeros_like(probas[0])
        for p in probas:
            votes[np.arange(len(p)), p.argmax(axis=1)] += 1.0
        return votes / len(probas)

    def _compute_oob(self, Xs: np.ndarray, t: np.ndarray) -> None:
        n = len(Xs)
        total = np.zeros((n, self.n_classes_))
        count = np.zeros(n)
        for module, mask in zip(self.estimators_, self._oob_members(n)):
            if not mask.any():
                continue
            p = softmax_np(self._outputs(module, Xs[mask], self.n_classes_))
            if self.voting == "hard":
                p = np.eye(self.n_classes_)[p.argmax(axis=1)]
            total[mask] += p
            count[mask] += 1
        seen = count > 0
        if not seen.all():
            warnings.warn(f"BaggingClassifier: {int((~seen).sum())} samples were in every member's "
                          "bootstrap sample and have no OOB prediction; use more estimators", stacklevel=3)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.oob_decision_function_ = total / count[:, None]
        self.oob_score_ = float(np.mean(self.oob_decision_function_[seen].argmax(axis=1) == t[seen])) \
            if seen.any() else float("nan")

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, K): mean member probability (soft) or vote fraction (hard)."""
        Xs = self._predict_inputs(X, "predict_proba")
        return self._combine(self._member_probas(Xs))

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (N,): ``classes_[argmax_k predict_proba(X)]``."""
        self._check_fitted("predict")
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class BaggingRegressor(RegressorMixin, _Bagging):
    """Bagged network regressors: f(x) = mean of the members' outputs; OOB R^2.

    Same arguments as ``BaggingClassifier`` except ``voting``; the factory is called as
    ``factory(n_features, n_targets)`` (n_targets = 1 for y of shape (N,)). With
    ``standardize`` the members also learn standardised targets, mapped back at predict.
    Attributes after fit: ``estimators_``, ``estimators_samples_``, ``oob_prediction_``,
    ``oob_score_`` (R^2 of the OOB predictions) when ``oob_score``.
    """

    _task = "regression"

    def __init__(self, factory: Factory | None = None, n_estimators: int = 10, max_samples: float | int = 1.0,
                 bootstrap: bool = True, oob_score: bool = False, epochs: int = 20, lr: float = 1e-2,
                 batch_size: int | None = 64, weight_decay: float = 0.0, standardize: bool = True,
                 n_jobs: int | None = None, random_state: int | None = None, verbose: bool = False) -> None:
        self.factory = factory
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.bootstrap = bootstrap
        self.oob_score = oob_score
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: Any, y: Any) -> "BaggingRegressor":
        """Train M members on bootstrap samples of (X (N, *), y (N,) or (N, K)); returns self."""
        Xs = self._fit_inputs(X)
        t = self._fit_targets(y, len(Xs))
        self.y_ndim_ = t.ndim
        self.n_outputs_ = 1 if t.ndim == 1 else t.shape[1]
        # Members learn standardised targets (y - y_mean_) / y_scale_ when ``standardize``.
        self.y_mean_ = t.mean(axis=0) if self.standardize else np.zeros(t.shape[1:])
        spread = t.std(axis=0) if self.standardize else np.ones(t.shape[1:])
        self.y_scale_ = np.where(spread > 1e-12, spread, 1.0)
        self._fit_members(Xs, (t - self.y_mean_) / self.y_scale_, self.n_outputs_)
        if self.oob_score:
            n = len(Xs)
            total = np.zeros((n, self.n_outputs_))
            count = np.zeros(n)
            for module, mask in zip(self.estimators_, self._oob_members(n)):
                if mask.any():
                    total[mask] += self._unscaled(self._outputs(module, Xs[mask], self.n_outputs_))
                    count[mask] += 1
            seen = count > 0
            if not seen.all():
                warnings.warn(f"BaggingRegressor: {int((~seen).sum())} samples have no OOB prediction; "
                              "use more estimators", stacklevel=2)
            with np.errstate(invalid="ignore", divide="ignore"):
                pred = total / count[:, None]
            self.oob_prediction_ = pred[:, 0] if t.ndim == 1 else pred
            self.oob_score_ = float(r2_score(t[seen], self.oob_prediction_[seen])) if seen.sum() > 1 \
                else float("nan")
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Mean member output: (N,) for 1-D training targets, else (N, K)."""
        Xs = self._predict_inputs(X, "predict")
        pred = np.mean([self._unscaled(self._outputs(m, Xs, self.n_outputs_)) for m in self.estimators_], axis=0)
        return pred[:, 0] if self.y_ndim_ == 1 else pred

    def _unscaled(self, out: np.ndarray) -> np.ndarray:
        """A member's (N, K) output back in the units of y."""
        return out * np.reshape(self.y_scale_, (1, -1)) + np.reshape(self.y_mean_, (1, -1))
