"""Ensembles of minidl networks, with scikit-learn's estimator interface.

One file per method: ``bagging.py`` (bootstrap aggregating, out-of-bag score),
``boosting.py`` (AdaBoost SAMME, gradient boosting), ``stacking.py`` (out-of-fold
stacking with a minidl logistic-regression meta-learner), ``diverse.py`` (members of
different architectures and seeds; negative correlation learning). ``base.py`` holds what
they share: the estimator base, ``fit_member`` (weighted-loss training of one member) and
``default_mlp``.

    from minidl.ensemble import BaggingClassifier
    clf = BaggingClassifier(n_estimators=5, random_state=0).fit(X, y)
"""
from .base import MLPFactory, NotFittedError, default_mlp, fit_member, member_outputs
from .bagging import BaggingClassifier, BaggingRegressor, bootstrap_indices, oob_mask
from .boosting import (AdaBoostClassifier, GradientBoostingClassifier, GradientBoostingRegressor,
                       samme_update)
from .stacking import LogisticRegression, LogisticRegressionCV, StackingClassifier, default_stack
from .diverse import (DiverseEnsembleClassifier, NCLClassifier, NCLEnsemble, NCLRegressor, default_zoo,
                      disagreement, ncl_loss)

__all__ = [
    "MLPFactory", "NotFittedError", "default_mlp", "fit_member", "member_outputs",
    "BaggingClassifier", "BaggingRegressor", "bootstrap_indices", "oob_mask",
    "AdaBoostClassifier", "GradientBoostingClassifier", "GradientBoostingRegressor", "samme_update",
    "LogisticRegression", "LogisticRegressionCV", "StackingClassifier", "default_stack",
    "DiverseEnsembleClassifier", "NCLClassifier", "NCLEnsemble", "NCLRegressor", "default_zoo",
    "disagreement", "ncl_loss",
]
