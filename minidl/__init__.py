"""minidl: a deep-learning framework written from scratch on NumPy (CPU) and CuPy (GPU).

    import minidl
    import minidl.functional as F

    x = minidl.tensor([[1.0, 2.0]], requires_grad=True)
    y = F.tanh(x @ x.T).sum()
    y.backward()            # x.grad now holds dy/dx
"""
from __future__ import annotations

from . import host_memory  # noqa: F401  (first: glibc keeps freed memory for reuse, see there)
from . import backend
from .tensor import Tensor
from .autograd import Function, enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device, cupy_available, default_dtype, manual_seed, set_default_dtype
from .creation import (
    arange, as_tensor, empty, eye, from_numpy, full, full_like, linspace, ones, ones_like, rand,
    randint, randn, tensor, zeros, zeros_like,
)
from . import functional
from .functional.elementwise import (
    abs, add, clamp, clip, cos, div, erf, exp, gelu, leaky_relu, log, maximum, minimum, mul, neg,
    pow, relu, sigmoid, sin, softplus, sqrt, sub, tanh, where,
)
from .functional.reduce import (
    amax, amin, argmax, argmin, log_softmax, logsumexp, max, mean, min, softmax, std, sum, var,
)
from .functional.shape import (
    broadcast_to, cat, concat, flatten, pad, permute, reshape, split, squeeze, stack, swapaxes,
    transpose, unsqueeze,
)
from .functional.linalg import matmul
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .serialization import load, save

from . import config, nn, optim  # noqa: E402  (minidl.nn, minidl.optim after a plain `import minidl`)

float32, float64, int64, int32, bool_ = "float32", "float64", "int64", "int32", "bool"

__version__ = "0.1.0"


def __getattr__(name: str):
    # minidl.inference_mode / minidl.predict live in minidl.deploy, imported on first use.
    if name in ("inference_mode", "predict"):
        from .deploy import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'minidl' has no attribute {name!r}")
