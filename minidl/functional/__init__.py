"""The differentiable ops, as functions: ``import minidl.functional as F``.

Elementwise and reduction ops, shapes and indexing, matrix products, and (in their own
files) convolution, pooling, normalization, dropout and losses.
"""
from .elementwise import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .shape import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .conv import conv2d, conv_transpose2d  # noqa: F401
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d  # noqa: F401
from .activation import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .dropout import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
