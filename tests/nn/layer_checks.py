"""Helpers shared by the layer tests: gradient checks through a layer's parameters, and
forward/backward parity with the PyTorch layer after copying the weights by state-dict key."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import minidl
from minidl import nn


def functional_call(module: nn.Module, params: dict, *args: Any) -> Any:
    """Run ``module(*args)`` with its parameters temporarily replaced by ``params`` (name -> Tensor)."""
    saved = []
    for name, t in params.items():
        path, _, leaf = name.rpartition(".")
        owner = module.get_submodule(path)
        saved.append((owner, leaf, owner._parameters[leaf]))
        owner._parameters[leaf] = t
    try:
        return module(*args)
    finally:
        for owner, leaf, p in saved:
            owner._parameters[leaf] = p


def layer_gradcheck(module: nn.Module, *inputs: minidl.Tensor, gradgrad: bool = False, seed_each_call: bool = False,
                    **kwargs: Any) -> bool:
    """gradcheck (and optionally gradgradcheck) of ``module`` w.r.t. its inputs AND its parameters.

    The module must already be float64. ``seed_each_call`` reseeds minidl before every
    forward, so a random layer (dropout) draws the same mask in every evaluation.
    """
    names = [n for n, _ in module.named_parameters()]
    params = [minidl.Tensor(p.data.copy(), requires_grad=True) for _, p in module.named_parameters()]
    n = len(inputs)

    def fn(*args):
        if seed_each_call:
            minidl.manual_seed(1234)
        return functional_call(module, dict(zip(names, args[n:])), *args[:n])

    check = minidl.gradgradcheck if gradgrad else minidl.gradcheck
    return check(fn, list(inputs) + params, **kwargs)


def copy_to_torch(module: nn.Module, torch_module: Any) -> Any:
    """Load minidl's state dict into the PyTorch module (float64) by key; returns it."""
    import torch

    torch_module.double()
    sd = {k: torch.from_numpy(np.array(v)) for k, v in module.state_dict().items()}
    torch_module.load_state_dict(sd, strict=True)
    return torch_module


def assert_parity(module: nn.Module, torch_module: Any, x: np.ndarray, rtol: float = 1e-10, atol: float = 1e-12,
                  call: Callable | None = None, seed: int = 0) -> None:
    """Same float64 input into both layers: outputs, input gradient and every parameter
    gradient (for a random upstream gradient) must agree to ``rtol``."""
    import torch

    tx = torch.tensor(x, requires_grad=True)
    mx = minidl.tensor(x, requires_grad=True)
    ty = torch_module(tx) if call is None else call(torch_module, tx)
    my = module(mx) if call is None else call(module, mx)
    np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=rtol, atol=atol, err_msg="forward")
    g = np.random.default_rng(seed).standard_normal(ty.shape)
    ty.backward(torch.from_numpy(g))
    my.backward(minidl.tensor(g))
    np.testing.assert_allclose(mx.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol, err_msg="input gradient")
    tparams = dict(torch_module.named_parameters())
    for name, p in module.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")
