"""``Parameter``: a Tensor that a ``Module`` registers as one of its learnable weights.

Assigning a Parameter to a Module attribute (``self.weight = Parameter(...)``) registers
it, so that ``parameters()``, ``state_dict()`` and the optimizers find it. A Parameter is
a leaf with ``requires_grad=True`` unless told otherwise.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A learnable Tensor: ``Parameter(data, requires_grad=True)``.

    ``data`` is a Tensor, a NumPy/CuPy array or nested lists; the array is shared, not
    copied, when it is already an array (as ``torch.nn.Parameter`` shares its tensor).
    Only floating dtypes can require a gradient.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True):
        if data is None:
            data = np.empty((0,), dtype=backend.default_dtype())
        if isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=False)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"Parameter: only floating-point data can require grad, got dtype {self.data.dtype}; "
                "pass requires_grad=False for an integer parameter"
            )
        self.requires_grad = bool(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        # Pickles (and copies) as data + flag, on the device the data lives on.
        return (Parameter, (self.data, self.requires_grad))

    def __deepcopy__(self, memo: dict) -> "Parameter":
        """A new Parameter with a copy of the data (and of the gradient, as PyTorch does)."""
        if id(self) in memo:
            return memo[id(self)]
        new = Parameter(self.data.copy(), self.requires_grad)
        if self.grad is not None:
            new.grad = Tensor(self.grad.data.copy())
        memo[id(self)] = new
        return new
