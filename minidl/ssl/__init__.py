"""Self-supervised learning: representations learned from unlabeled images.

``losses`` holds the objectives (NT-Xent, InfoNCE, BYOL, SimSiam, SwAV with
Sinkhorn-Knopp); one file per method (``simclr``, ``moco``, ``byol``, ``simsiam``,
``swav``) holds its model and a ``pretrain(encoder, unlabeled_data, ...)`` that returns
the trained encoder; ``evaluate`` measures a frozen encoder by linear probe and k-NN.
"""
from .losses import *  # noqa: F401,F403
