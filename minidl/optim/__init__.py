"""Optimizers, learning-rate schedules and regularization pieces.

One file per update rule (``gd.py``, ``sgd.py``, ``adagrad.py``, ``rmsprop.py``,
``adam.py``, ``adamw.py``), each with its equation in the docstring and PyTorch's
names and defaults; ``lr_scheduler`` for schedules; ``regularization`` for penalties,
gradient clipping, max-norm constraints and decoupled weight decay.
"""
from . import lr_scheduler
from .optimizer import Optimizer
from .gd import GD
from .sgd import SGD
from .adagrad import Adagrad
from .rmsprop import RMSprop
from .adam import Adam
from .adamw import AdamW
from .regularization import (
    clip_grad_norm_, clip_grad_value_, decoupled_weight_decay_, l1_penalty, l2_penalty, max_norm_,
)

__all__ = [
    "Optimizer", "GD", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "lr_scheduler",
    "l1_penalty", "l2_penalty", "clip_grad_norm_", "clip_grad_value_", "max_norm_",
    "decoupled_weight_decay_",
]
