"""Mean Teacher (Tarvainen and Valpola, 2017): consistency to an exponential-moving-average teacher.

Two copies of one network: the student f_theta, trained by gradient descent, and the
teacher f_theta', never trained, whose weights follow the student's as an exponential
moving average after every step:

    theta'_t = a_t theta'_(t-1) + (1 - a_t) theta_t,     a_t = min(1 - 1/(t + 1), a)

(the warm-up a_t lets the teacher forget its random start quickly). The student learns the
labels and to agree with the teacher on differently augmented views of every image:

    L = (1/B) sum_b CE(f_theta(aug(x_b)), y_b)
        + lambda w(t) (1/(N C)) sum_n ||softmax(f_theta(aug(u_n))) - softmax(f_theta'(aug'(u_n)))||^2

with the sigmoid ramp-up w(t) = exp(-5 (1 - t / T_r)^2) for t < T_r, 1 after. The teacher
averages the student over many steps, so its predictions are steadier targets, and it is
usually the better model to keep.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .. import creation
from ..autograd import no_grad
from ..data.dataset import _generator
from ..functional import cross_entropy, softmax
from ..nn import Module
from ..optim import Adam
from ..tensor import Tensor
from .pseudo_label import _check_sets, _device_of, weak_augment

__all__ = ["ema_update", "sigmoid_rampup", "consistency_loss", "MeanTeacher", "train_mean_teacher"]


def ema_update(teacher: Module, student: Module, alpha: float) -> None:
    """In place, for each pair of parameters (registration order):
    theta' <- alpha theta' + (1 - alpha) theta. Buffers (BatchNorm running statistics)
    are copied from the student. alpha in [0, 1]: 1 freezes the teacher, 0 copies."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"ema_update: alpha must be in [0, 1], got {alpha}")
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError(f"ema_update: the teacher has {len(t_params)} parameters but the student has "
                         f"{len(s_params)}; the teacher must be a copy of the student")
    for i, (t, s) in enumerate(zip(t_params, s_params)):
        if t.shape != s.shape:
            raise ValueError(f"ema_update: parameter {i} has shape {t.shape} in the teacher but {s.shape} "
                             "in the student")
        t.data *= alpha
        t.data += (1.0 - alpha) * s.data
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.data[...] = s.data


def sigmoid_rampup(step: int, rampup_steps: int) -> float:
    """w(t) = exp(-5 (1 - t / T_r)^2) for 0 <= t < T_r, 1 for t >= T_r (1 when T_r == 0)."""
    if rampup_steps < 0:
        raise ValueError(f"sigmoid_rampup: rampup_steps must be >= 0, got {rampup_steps}")
    if rampup_steps == 0 or step >= rampup_steps:
        return 1.0
    phase = 1.0 - max(step, 0) / rampup_steps
    return float(math.exp(-5.0 * phase * phase))


def consistency_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """Mean squared difference of the class probabilities, (N, C) each:
    (1/(N C)) sum ||softmax(z_s) - softmax(z_t)||^2. The teacher side is detached."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"consistency_loss: student logits {student_logits.shape} and teacher logits "
                         f"{teacher_logits.shape} must have the same shape")
    diff = softmax(student_logits, axis=1) - softmax(teacher_logits.detach(), axis=1)
    return (diff * diff).mean()


class MeanTeacher:
    """A student network and its EMA teacher.

    ``MeanTeacher(student, alpha=0.99)`` deep-copies the student into ``self.teacher`` and
    freezes the copy (``requires_grad=False``: it receives no gradients). ``update()``
    applies one EMA step with a_t = min(1 - 1/(t + 1), alpha), t counting the updates
    from 1 (``self.step``); ``teacher_logits(x)`` runs the teacher without recording a graph.
    """

    def __init__(self, student: Module, alpha: float = 0.99) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"MeanTeacher: alpha must be in [0, 1], got {alpha}")
        self.student = student
        self.teacher = copy.deepcopy(student)
        self.teacher.requires_grad_(False)
        self.alpha = float(alpha)
        self.step = 0

    def current_alpha(self) -> float:
        """The decay a_t that the next ``update()`` uses."""
        return min(1.0 - 1.0 / (self.step + 2), self.alpha)

    def update(self) -> float:
        """One EMA step of the teacher toward the student; returns the a_t used."""
        a = self.current_alpha()
        with no_grad():
            ema_update(self.teacher, self.student, a)
        self.step += 1
        return a

    def teacher_logits(self, x: Tensor) -> Tensor:
        with no_grad():
            return self.teacher(x)


def train_mean_teacher(model: Module, X_labeled: np.ndarray, y_labeled: np.ndarray, X_unlabeled: np.ndarray, *,
                       steps: int = 1000, batch_size: int = 32, mu: int = 4, alpha: float = 0.99,
                       consistency: float = 10.0, rampup_steps: int | None = None, lr: float = 3e-3,
                       weight_decay: float = 0.0, augment: Callable = weak_augment,
                       seed: int | None = None, progress: bool = True) -> tuple[Module, dict]:
    """Train ``model`` (the student) with Mean Teacher; returns (teacher, history).

    Each step draws B = ``batch_size`` labeled and mu B unlabeled images; the student sees
    one augmentation of each labeled and unlabeled image, the teacher another of the
    unlabeled ones (and of the labeled ones, which are unlabeled data too); Adam takes a
    step on L = CE + ``consistency`` w(t) L_cons (sigmoid ramp-up over ``rampup_steps``,
    default 40% of ``steps``); then the teacher takes its EMA step. ``history`` holds
    per-step ``loss``, ``loss_cons`` and ``weight``; ``history["student"]`` is the student.
    """
    _check_sets("train_mean_teacher", X_labeled, y_labeled, X_unlabeled)
    if not consistency >= 0:
        raise ValueError(f"train_mean_teacher: consistency weight must be >= 0, got {consistency}")
    rng = _generator(seed)
    device = _device_of(model)
    mt = MeanTeacher(model, alpha)
    opt = Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    rampup = int(0.4 * steps) if rampup_steps is None else int(rampup_steps)
    history: dict = {"loss": [], "loss_cons": [], "weight": []}
    B, M = int(batch_size), int(mu) * int(batch_size)
    y_labeled = np.asarray(y_labeled)
    model.train()
    mt.teacher.train()
    for step in tqdm(range(steps), desc="Mean Teacher", disable=not progress, leave=False):
        li = rng.choice(len(X_labeled), size=B, replace=B > len(X_labeled))
        ui = rng.choice(len(X_unlabeled), size=M, replace=M > len(X_unlabeled))
        images = np.concatenate([X_labeled[li], X_unlabeled[ui]])
        student_logits = model(creation.tensor(augment(images, rng), device=device))
        teacher_logits = mt.teacher_logits(creation.tensor(augment(images, rng), device=device))
        y = creation.tensor(y_labeled[li], device=device)
        w = sigmoid_rampup(step, rampup)
        loss_cons = consistency_loss(student_logits, teacher_logits)
        loss = cross_entropy(student_logits[:B], y) + consistency * w * loss_cons
        opt.zero_grad()
        loss.backward()
        opt.step()
        mt.update()
        history["loss"].append(loss.item())
        history["loss_cons"].append(loss_cons.item())
        history["weight"].append(w)
    history["student"] = model
    return mt.teacher, history
