"""Matrix products: ``matmul`` (NumPy's rules, batched and 1-d cases) and ``linear``."""
from __future__ import annotations

from .. import backend, config
from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _new_tensor

__all__ = ["matmul", "linear"]


def _matmul_shapes_error(a_shape: tuple, b_shape: tuple) -> ValueError:
    k_b = b_shape[-2] if len(b_shape) > 1 else b_shape[0]
    if a_shape[-1] != k_b:
        return ValueError(f"matmul: shapes {a_shape} and {b_shape} do not align ({a_shape[-1]} != {k_b})")
    return ValueError(f"matmul: the batch dimensions of {a_shape} and {b_shape} do not broadcast")


class MatMul(Function):
    """C = A @ B;  dA = dC @ B^T, dB = A^T @ dC (summed over broadcast batch axes).

    A 1-d A is treated as a row (1, n) and a 1-d B as a column (n, 1), and the added axis
    is removed from C, exactly as NumPy does. A plain ``backward()`` computes the two
    products on the raw arrays; under ``create_graph=True`` they are Tensor ops.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
        kernel = config.select("matmul", backend.get_array_module(a, b))  # minidl.config.kernels
        try:
            return kernel.matmul(a, b)
        except ValueError:
            raise _matmul_shapes_error(a.shape, b.shape) from None

    def backward(self, gy):
        if is_grad_enabled():
            return self._backward_differentiable(gy)
        return self._backward_arrays(gy)

    def _backward_arrays(self, gy):
        """The same gradients on raw arrays, for a plain backward (no create_graph)."""
        a, b = self.inputs[0].data, self.inputs[1].data
        kernel = config.select("matmul", backend.get_array_module(a, b))
        xp = backend.get_array_module(a, b)
        a2 = a if a.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.ndim > 1 else b.reshape(-1, 1)
        g = gy.data
        if a.ndim == 1:
            g = _insert_axis(g, -2)
        if b.ndim == 1:
            g = _insert_axis(g, -1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = _new_tensor(_sum_to_array(kernel.matmul(g, xp.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape),
                             False, None, 0)
        if self.needs_input_grad[1]:
            gb = _new_tensor(_sum_to_array(kernel.matmul(xp.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape),
                             False, None, 0)
        return ga, gb

    def _backward_differentiable(self, gy):
        a, b = self.inputs
        a2 = a if a.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.ndim > 1 else b.reshape(-1, 1)
        if a.ndim == 1:
            gy = gy.unsqueeze(-2)
        if b.ndim == 1:
            gy = gy.unsqueeze(-1)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = sum_to(matmul(gy, b2.mT), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            gb = sum_to(matmul(a2.mT, gy), b2.shape).reshape(b.shape)
        return ga, gb


def _insert_axis(g, axis: int):
    """``g`` with a size-1 axis inserted at ``axis`` (counted as in ``unsqueeze``)."""
    shape = list(g.shape)
    shape.insert(axis % (len(shape) + 1), 1)
    return g.reshape(shape)


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's broadcasting rules: (..., n, k) @ (..., k, m) -> (..., n, m)."""
    return MatMul()(a, b)


class Linear(Function):
    """y = x W^T + b for x (..., in), W (out, in), b (out,);
    dx = gy W, dW = gy^T x (over all leading axes), db = sum of gy over leading axes.

    Only the gradients that are needed are computed. A plain ``backward()`` (no
    ``create_graph``) computes them on the raw arrays: three BLAS/reduction calls and no
    graph; with ``create_graph=True`` the same formulas run as Tensor ops, so that they
    can be differentiated again.
    """

    def forward(self, x, w, b=None):
        if w.ndim != 2 or x.ndim == 0 or x.shape[-1] != w.shape[1]:
            raise ValueError(
                f"linear: input of shape {x.shape} does not match weight of shape {w.shape} "
                f"(expected input (..., {w.shape[1] if w.ndim == 2 else '?'}) and weight (out, in))"
            )
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: bias of shape {b.shape} does not match weight of shape {w.shape}")
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        if is_grad_enabled():
            return self._backward_differentiable(gy)
        return self._backward_arrays(gy)

    def _backward_arrays(self, gy):
        x, w = self.inputs[0].data, self.inputs[1].data
        need = self.needs_input_grad
        g = gy.data
        gx = _new_tensor(g @ w, False, None, 0) if need[0] else None
        gw = gb = None
        g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
        if need[1]:
            x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
            gw = _new_tensor(g2.T @ x2, False, None, 0)
        if len(need) == 2:
            return gx, gw
        if need[2]:
            gb = _new_tensor(g2.sum(axis=0), False, None, 0)
        return gx, gw, gb

    def _backward_differentiable(self, gy):
        x, w = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = matmul(gy, w) if need[0] else None
        gw = gb = None
        if need[1] or (len(need) > 2 and need[2]):
            g2 = gy.reshape(-1, gy.shape[-1]) if gy.ndim != 2 else gy
            if need[1]:
                x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
                gw = matmul(g2.T, x2)
            if len(need) > 2 and need[2]:
                gb = g2.sum(axis=0)
        return (gx, gw) if len(need) == 2 else (gx, gw, gb)


def linear(x, weight, bias=None) -> Tensor:
    """Affine map x W^T + b, PyTorch's layout: weight (out_features, in_features)."""
    return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)


from .reduce import sum_to, _sum_to_array  # noqa: E402
