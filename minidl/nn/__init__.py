"""Layers and models: ``import minidl.nn as nn``.

``nn.Module`` and ``nn.Parameter``, the containers, the layers (one family per file:
``linear.py``, ``conv.py``, ``pooling.py``, ``normalization.py``, ...), the activation
modules and the initialisers in ``nn.init``. Names, argument order, parameter names and
shapes follow PyTorch, so weights can be copied between the two by state-dict key.
"""
from . import init  # noqa: F401
from .parameter import *  # noqa: F401,F403
from .module import *  # noqa: F401,F403
from .containers import *  # noqa: F401,F403
from .linear import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .sparse import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
from .. import functional  # noqa: E402,F401  (minidl.nn.functional, as in PyTorch)
