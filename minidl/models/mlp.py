"""The multi-layer perceptron: flatten, then Linear-activation(-dropout) blocks, then a
Linear layer to the class scores.

For ``hidden = (h1, ..., hL)`` and input x (N, *) with ``in_features`` values per sample::

    a0 = flatten(x)                      (N, in_features)
    ak = dropout(act(a(k-1) W_k^T + b_k))  (N, h_k),  k = 1..L
    logits = aL W_out^T + b_out          (N, num_classes)

``MLP`` is an ``nn.Sequential``, so its state-dict keys are those of the equivalent PyTorch
``nn.Sequential(nn.Flatten(), nn.Linear(...), nn.ReLU(), ...)``: ``"1.weight"``, ...
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import nn

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(),
    "leaky_relu": lambda: nn.LeakyReLU(),
    "gelu": lambda: nn.GELU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "elu": lambda: nn.ELU(),
    "silu": lambda: nn.SiLU(),
}


class MLP(nn.Sequential):
    """A fully connected classifier (or regressor, with ``num_classes`` outputs).

    Args:
        in_features: values per input sample (inputs are flattened from dim 1 on, so
            (N, 1, 28, 28) images work with ``in_features=784``).
        hidden: widths of the hidden layers, e.g. ``(256, 256)``; ``()`` gives a linear model.
        num_classes: number of outputs K.
        dropout: dropout probability after each hidden activation (0: no Dropout layers).
        activation: one of ``ACTIVATIONS`` (relu, leaky_relu, gelu, tanh, sigmoid, elu, silu).

    Input (N, *) with prod(*) = in_features; output (N, K) logits.
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (256,), num_classes: int = 10,
                 dropout: float = 0.0, activation: str = "relu") -> None:
        for name, value in (("in_features", in_features), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MLP: {name} must be a positive integer, got {value!r}")
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"MLP: hidden must be positive integer widths, got {hidden!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of "
                             f"{', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)
        self.in_features = in_features
        self.num_classes = num_classes

    def forward(self, x):
        features = 1
        for d in x.shape[1:]:
            features *= d
        if x.ndim < 2 or features != self.in_features:
            raise ValueError(f"MLP: expected inputs (N, *) with {self.in_features} values per "
                             f"sample, got shape {tuple(x.shape)}")
        return super().forward(x)
