"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their one-step cells.

Names, gate order, parameter shapes, input/output shapes and the default initialisation
follow PyTorch, so weights copy across one to one. For hidden size H, at each step t
(x_t the input, h the previous hidden state, sigma the logistic sigmoid):

    RNN:   h' = tanh(W_ih x_t + b_ih + W_hh h + b_hh)            (or relu)
    LSTM:  i, f, g, o = split(W_ih x_t + b_ih + W_hh h + b_hh)     gates in this order
           i, f, o = sigma(i), sigma(f), sigma(o);  g = tanh(g)
           c' = f * c + i * g;   h' = o * tanh(c')
    GRU:   r, z, n_x = split(W_ih x_t + b_ih);  r_h, z_h, n_h = split(W_hh h + b_hh)
           r = sigma(r + r_h);  z = sigma(z + z_h)
           n = tanh(n_x + r * n_h)                                 (b_hn inside the r *)
           h' = (1 - z) * n + z * h

The loop over time runs in Python with Tensor ops (so backpropagation through time is the
ordinary graph walk, and gradients of gradients work), but the input projection
W_ih x_t + b_ih is one matrix product over all time steps at once.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import backend
from ..autograd import Function
from ..functional.dropout import dropout
from ..functional.elementwise import relu, sigmoid, tanh
from ..functional.linalg import linear
from ..functional.shape import concat, stack
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class _Unbind(Function):
    """(x_0, ..., x_{n-1}) = the slices of x along ``axis``;  dx = stack(g_0, ..., g_{n-1}).

    One op for all slices, so that the backward builds the gradient once (indexing each
    slice separately would allocate a full-size zero gradient per slice).
    """

    def __init__(self, axis: int):
        self.axis = axis

    def forward(self, x):
        xp = backend.get_array_module(x)
        moved = xp.moveaxis(x, self.axis, 0)
        return tuple(moved[i] for i in range(moved.shape[0]))

    def backward(self, *gys):
        return stack(list(gys), self.axis)


def _unbind(x: Tensor, axis: int = 0) -> tuple:
    out = _Unbind(axis)(x)
    return out if isinstance(out, tuple) else (out,)


# ------------------------------------------------------------------------- one time step
# Each step takes xw = W_ih x_t + b_ih (already computed for all steps) and the state.

def _rnn_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, nonlinearity: str) -> Tensor:
    pre = xw + linear(h, w_hh, b_hh)
    return tanh(pre) if nonlinearity == "tanh" else relu(pre)


def _lstm_step(xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> tuple:
    gates = xw + linear(h, w_hh, b_hh)
    hidden = h.shape[-1]
    i, f, g, o = _unbind(gates.reshape(gates.shape[0], 4, hidden), 1)
    c_new = sigmoid(f) * c + sigmoid(i) * tanh(g)
    h_new = sigmoid(o) * tanh(c_new)
    return h_new, c_new


def _gru_step(xw: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    hidden = h.shape[-1]
    x_r, x_z, x_n = _unbind(xw.reshape(xw.shape[0], 3, hidden), 1)
    h_r, h_z, h_n = _unbind(linear(h, w_hh, b_hh).reshape(h.shape[0], 3, hidden), 1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    return (1.0 - z) * n + z * h


_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_size(name: str, what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: {what} must be a positive integer, got {value!r}")
    return value


def _new_weight(*shape: int) -> Parameter:
    """An uninitialised (zero) parameter; ``reset_parameters`` fills it."""
    return Parameter(np.zeros(shape, dtype=backend.default_dtype()))


# ------------------------------------------------------------------------------ layers

class RNNBase(Module):
    """Shared machinery of ``RNN``, ``LSTM`` and ``GRU`` (``mode`` picks the step).

    Parameters, for layer k (and ``_reverse`` for the backward direction):
    ``weight_ih_l{k}`` (G*H, in_k), ``weight_hh_l{k}`` (G*H, H), ``bias_ih_l{k}`` (G*H,),
    ``bias_hh_l{k}`` (G*H,), with G = 1 (RNN), 4 (LSTM) or 3 (GRU), in_0 = input_size and
    in_k = D*H after (D = 2 if bidirectional else 1). All start as U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_size(name, "input_size", input_size)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.num_layers = _check_size(name, "num_layers", num_layers)
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{name}: dropout must be a probability in [0, 1], got {dropout!r}")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        gates = _GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                setattr(self, "weight_ih" + suffix, _new_weight(gates, layer_input))
                setattr(self, "weight_hh" + suffix, _new_weight(gates, hidden_size))
                if self.bias:
                    setattr(self, "bias_ih" + suffix, _new_weight(gates))
                    setattr(self, "bias_hh" + suffix, _new_weight(gates))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _weights(self, layer: int, direction: int) -> tuple:
        suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
        w_ih = getattr(self, "weight_ih" + suffix)
        w_hh = getattr(self, "weight_hh" + suffix)
        b_ih = getattr(self, "bias_ih" + suffix) if self.bias else None
        b_hh = getattr(self, "bias_hh" + suffix) if self.bias else None
        return w_ih, b_ih, w_hh, b_hh

    def _check_input(self, x: Any) -> bool:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(x).__name__}")
        if x.ndim not in (2, 3):
            layout = "(N, L, input_size)" if self.batch_first else "(L, N, input_size)"
            raise ValueError(
                f"{name}: expected a 3-d input {layout} or an unbatched 2-d input (L, input_size), "
                f"got shape {x.shape}"
            )
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input with {self.input_size} features in its last dimension "
                f"(input_size={self.input_size}), got shape {x.shape}"
            )
        time_axis = 1 if x.ndim == 3 and self.batch_first else 0
        if x.shape[time_axis] == 0 or (x.ndim == 3 and x.shape[1 - time_axis] == 0):
            raise ValueError(f"{name}: expected a non-empty sequence and batch, got input of shape {x.shape}")
        return x.ndim == 3

    def _initial_state(self, state: Any, batched: bool, n: int, like: Tensor, what: str) -> Tensor:
        """The (num_layers*D, N, H) initial state: zeros, or ``state`` after a shape check."""
        expected = (self.num_layers * self.num_directions, n, self.hidden_size)
        if state is None:
            xp = backend.get_array_module(like.data)
            return Tensor(xp.zeros(expected, dtype=like.dtype))
        if not isinstance(state, Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a Tensor, got {type(state).__name__}")
        shown = expected if batched else (expected[0], expected[2])
        if state.shape != shown:
            raise ValueError(
                f"{type(self).__name__}: expected {what} of shape {shown} (num_layers * num_directions, "
                f"{'batch, ' if batched else ''}hidden_size), got {state.shape}"
            )
        return state if batched else state.unsqueeze(1)

    def _run(self, x: Tensor, h0: Tensor, c0: Tensor | None) -> tuple:
        """x (L, N, in); returns output (L, N, D*H), h_n (layers*D, N, H), c_n or None."""
        hs, cs = _unbind(h0, 0), (_unbind(c0, 0) if c0 is not None else None)
        h_last, c_last = [], []
        steps = x.shape[0]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                w_ih, b_ih, w_hh, b_hh = self._weights(layer, direction)
                xw = _unbind(linear(x, w_ih, b_ih), 0)  # one product for all steps
                index = layer * self.num_directions + direction
                h = hs[index]
                c = cs[index] if cs is not None else None
                out = [None] * steps
                for t in (range(steps) if direction == 0 else reversed(range(steps))):
                    if self.mode == "LSTM":
                        h, c = _lstm_step(xw[t], h, c, w_hh, b_hh)
                    elif self.mode == "GRU":
                        h = _gru_step(xw[t], h, w_hh, b_hh)
                    else:
                        h = _rnn_step(xw[t], h, w_hh, b_hh, "tanh" if self.mode == "RNN_TANH" else "relu")
                    out[t] = h
                outputs.append(stack(out, 0))
                h_last.append(h)
                c_last.append(c)
            x = outputs[0] if len(outputs) == 1 else concat(outputs, axis=-1)
            if self.dropout > 0.0 and self.training and layer < self.num_layers - 1:
                x = dropout(x, self.dropout, True)
        c_n = stack(c_last, 0) if c0 is not None else None
        return x, stack(h_last, 0), c_n

    def _forward(self, input: Tensor, hx: Any, cx: Any) -> tuple:
        batched = self._check_input(input)
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(1, 0, 2)
        n = x.shape[1]
        h0 = self._initial_state(hx, batched, n, x, "h_0")
        c0 = self._initial_state(cx, batched, n, x, "c_0") if self.mode == "LSTM" else None
        out, h_n, c_n = self._run(x, h0, c0)
        if not batched:
            out, h_n = out.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        elif self.batch_first:
            out = out.transpose(1, 0, 2)
        return out, h_n, c_n

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) (or relu), stacked.

    ``forward(input, hx=None)``: input (L, N, input_size), or (N, L, input_size) with
    ``batch_first=True``, or unbatched (L, input_size); hx (num_layers*D, N, H) or
    (num_layers*D, H), zeros by default. Returns ``(output, h_n)``: output (L, N, D*H)
    (batch first if asked) holding the last layer's h_t for every t (both directions
    concatenated), h_n (num_layers*D, N, H) the final state of every layer and direction.
    ``dropout`` is applied to each layer's output except the last, in training mode.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple:
        out, h_n, _ = self._forward(input, hx, None)
        return out, h_n


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o) in PyTorch's order, stacked.

    c_t = sigma(f) * c_{t-1} + sigma(i) * tanh(g),  h_t = sigma(o) * tanh(c_t), where
    (i, f, g, o) = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh split in four. ``forward(input,
    hx=None)`` with hx = (h_0, c_0), each (num_layers*D, N, H), zeros by default. Returns
    ``(output, (h_n, c_n))``; shapes as for ``RNN``. (PyTorch's ``proj_size`` is not
    supported.)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        if hx is None:
            h0 = c0 = None
        elif isinstance(hx, (tuple, list)) and len(hx) == 2:
            h0, c0 = hx
        else:
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of Tensors, or None")
        out, h_n, c_n = self._forward(input, h0, c0)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) in PyTorch's order, stacked.

    r = sigma(W_ir x + b_ir + W_hr h + b_hr),  z = sigma(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
    ``forward(input, hx=None)`` returns ``(output, h_n)``; shapes as for ``RNN``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple:
        out, h_n, _ = self._forward(input, hx, None)
        return out, h_n


# ------------------------------------------------------------------------------- cells

class RNNCellBase(Module):
    """One time step: parameters ``weight_ih`` (G*H, input_size), ``weight_hh`` (G*H, H),
    ``bias_ih``, ``bias_hh`` (G*H,), all U(-1/sqrt(H), 1/sqrt(H)) at the start."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int):
        super().__init__()
        name = type(self).__name__
        self.input_size = _check_size(name, "input_size", input_size)
        self.hidden_size = _check_size(name, "hidden_size", hidden_size)
        self.bias = bool(bias)
        self.weight_ih = _new_weight(gates * hidden_size, input_size)
        self.weight_hh = _new_weight(gates * hidden_size, hidden_size)
        if self.bias:
            self.bias_ih = _new_weight(gates * hidden_size)
            self.bias_hh = _new_weight(gates * hidden_size)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), as PyTorch does."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _prepare(self, input: Any, states: tuple) -> tuple:
        """Check shapes; return (x as (N, in), states as (N, H) each, batched?)."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"{name}: expected input of shape (N, {self.input_size}) or ({self.input_size},) "
                f"(input_size={self.input_size}), got {input.shape}"
            )
        batched = input.ndim == 2
        x = input if batched else input.unsqueeze(0)
        n = x.shape[0]
        out = []
        for what, s in states:
            if s is None:
                xp = backend.get_array_module(x.data)
                out.append(Tensor(xp.zeros((n, self.hidden_size), dtype=x.dtype)))
                continue
            expected = (n, self.hidden_size) if batched else (self.hidden_size,)
            if not isinstance(s, Tensor) or s.shape != expected:
                got = s.shape if isinstance(s, Tensor) else type(s).__name__
                raise ValueError(f"{name}: expected {what} of shape {expected}, got {got}")
            out.append(s if batched else s.unsqueeze(0))
        return x, out, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu). ``forward(input, hx=None)``:
    input (N, input_size) or (input_size,), hx (N, H) or (H,), zeros by default -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, 1)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (("hx", hx),))
        h = _rnn_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh, self.nonlinearity)
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o): ``forward(input, hx=None)`` with hx = (h, c),
    each (N, H) or (H,), zeros by default; returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, 4)

    def forward(self, input: Tensor, hx: tuple | None = None) -> tuple:
        if hx is not None and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError("LSTMCell: hx must be a tuple (h, c) of Tensors, or None")
        h0, c0 = (None, None) if hx is None else hx
        x, (h, c), batched = self._prepare(input, (("h", h0), ("c", c0)))
        h, c = _lstm_step(linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n; n = tanh(W_in x + b_in + r * (W_hn h + b_hn))):
    ``forward(input, hx=None)`` -> h', shapes as ``RNNCell``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__(input_size, hidden_size, bias, 3)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, (h,), batched = self._prepare(input, (("hx", hx),))
        h = _gru_step(linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)
