"""Self-supervised learning: representations learned from unlabeled images.

``losses`` holds the objectives (NT-Xent, InfoNCE, BYOL, SimSiam, SwAV with
Sinkhorn-Knopp); one file per method (``simclr``, ``moco``, ``byol``, ``simsiam``,
``swav``) holds its model and a ``pretrain(encoder, unlabeled_data, ...)`` that returns
the trained encoder; ``augment`` makes the two views, ``encoders`` the networks,
``momentum`` the EMA copies of MoCo and BYOL, and ``evaluate`` measures a frozen encoder
by linear probe and k-NN. ``python -m minidl ssl`` runs the digits experiment.

    from minidl.ssl import simclr, DigitEncoder, linear_probe
    encoder = simclr.pretrain(DigitEncoder(), unlabeled_images, epochs=30)
    accuracy = linear_probe(encoder, X_labelled, y_labelled, X_test, y_test)
"""
from .losses import *  # noqa: F401,F403
from .augment import BatchAugment, TwoViews, digits_augmentation  # noqa: F401
from .encoders import DigitEncoder, prediction_head, projection_head  # noqa: F401
from .evaluate import extract_features, knn_accuracy, linear_probe  # noqa: F401
from . import byol, moco, simclr, simsiam, swav  # noqa: F401
