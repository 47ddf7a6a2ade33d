"""``Optimizer``: the base every update rule in ``minidl.optim`` builds on.

An optimizer holds ``param_groups``, a list of dicts, each with ``"params"`` (a list of
leaf Tensors) and that group's options (``lr``, ``momentum``...); options a group does not
set come from the optimizer's defaults. Per-parameter state (momentum buffers, running
averages, step counts) lives in ``state[param]`` as raw arrays on the parameter's device.

``state_dict()`` follows PyTorch's layout: ``{"state": {index: {...}}, "param_groups":
[{options..., "params": [index, ...]}]}`` with parameters numbered in group order, so a
saved optimizer can be loaded into a fresh one built over the same parameters.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np

from .. import backend
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks an option with no default: every param group must set it."""

    def __repr__(self) -> str:
        return "<required option>"


required = _Required()


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and state dicts.

    Subclasses call ``super().__init__(params, defaults)`` and define ``step()``, which
    reads each group's options and each parameter's ``.grad`` and updates ``p.data`` in
    place. ``params`` is an iterable of Tensors, or of dicts (parameter groups) holding
    ``"params"`` plus per-group options.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{self._name}: params must be an iterable of Tensors or of dicts (parameter groups), "
                "got a single Tensor; pass [tensor] or model.parameters()"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (missing ones take the defaults).

        Errors: a parameter already in a group, a non-floating or non-leaf tensor, an
        option this optimizer does not know, a required option left unset, bad values.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"{self._name}: a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{self._name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{self._name}: parameters must be given in a defined order (a list), not a set")
        params = list(params)
        index = len(self.param_groups)
        unknown = sorted(set(param_group) - set(self.defaults) - {"params", "initial_lr"})
        if unknown:
            raise TypeError(
                f"{self._name}: unknown option(s) {unknown} in parameter group {index}; "
                f"known options: {sorted(self.defaults)}"
            )
        seen_here: set[int] = set()
        already = {id(p) for g in self.param_groups for p in g["params"]}
        for j, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{self._name}: parameter {j} of group {index} is a {type(p).__name__}; expected a Tensor"
                )
            if p.data.dtype.kind != "f":
                raise TypeError(
                    f"{self._name}: parameter {j} of group {index} has dtype {p.data.dtype}; "
                    "only floating tensors can be optimized"
                )
            if p.creator is not None:
                raise ValueError(
                    f"{self._name}: parameter {j} of group {index} (shape {p.shape}) is not a leaf "
                    f"(it was made by {p.creator.name}); optimize the leaf tensors it was computed from"
                )
            if id(p) in seen_here:
                raise ValueError(
                    f"{self._name}: parameter {j} of group {index} (shape {p.shape}) appears twice in the group; "
                    "each parameter may be passed once"
                )
            if id(p) in already:
                raise ValueError(
                    f"{self._name}: parameter {j} of group {index} (shape {p.shape}) is already in another "
                    "parameter group; each parameter may belong to one group only"
                )
            seen_here.add(id(p))
        group = {"params": params}
        for key, default in self.defaults.items():
            value = param_group.get(key, default)
            if value is required:
                raise ValueError(f"{self._name}: parameter group {index} must set the option {key!r}")
            group[key] = value
        if "initial_lr" in param_group:
            group["initial_lr"] = param_group["initial_lr"]
        self._check_options(group, index)
        self.param_groups.append(group)

    def _check_options(self, group: dict[str, Any], index: int) -> None:
        """Validate one group's options; subclasses extend this with their own checks."""
        lr = group.get("lr")
        if lr is not None and lr is not required and not lr >= 0.0:
            raise ValueError(f"{self._name}: invalid learning rate {lr} in parameter group {index}; expected lr >= 0")

    # ------------------------------------------------------------------ gradients
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient: ``p.grad = None`` (or zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    xp = backend.get_array_module(p.grad.data)
                    p.grad = Tensor(xp.zeros_like(p.grad.data))

    def _params_with_grad(self, group: dict[str, Any]):
        """Yield ``(p, grad_array)`` for the parameters of ``group`` that have a gradient."""
        for p in group["params"]:
            if p.grad is None:
                continue
            g = p.grad.data
            if g.shape != p.data.shape:
                raise RuntimeError(
                    f"{self._name}.step: a parameter of shape {p.data.shape} has a gradient of shape {g.shape}"
                )
            yield p, g

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter once; ``closure`` (re-evaluating the loss) is optional."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        states = self.state
        update = self._update
        with no_grad():
            for group in self.param_groups:
                for p, g in self._params_with_grad(group):
                    state = states.get(p)
                    if state is None:
                        state = states[p] = {}
                    update(p, g, state, group, backend.get_array_module(p.data))
        return loss

    def _update(self, p: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any], xp) -> None:
        """One parameter's update: read ``grad`` (an array), change ``p.data`` in place."""
        raise NotImplementedError(f"{self._name} must define _update() or step()")

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: value}}, "param_groups": [{..., "params": [index]}]}``.

        Arrays in the state are NumPy copies; parameters are numbered in group order.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index_of.setdefault(id(p), len(index_of))
                packed["params"].append(index_of[id(p)])
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index_of[id(p)]] = {k: _copy_value(v, to_host=True) for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore options and per-parameter state saved by ``state_dict()``.

        The saved groups must match this optimizer's groups in number and sizes; saved state
        arrays must match their parameter's shape. Arrays move to each parameter's device.
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(
                f"{self._name}.load_state_dict: expected a dict with keys 'state' and 'param_groups', "
                f"got {sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__}"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{self._name}.load_state_dict: the saved state has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        params_by_index: dict[int, Tensor] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{self._name}.load_state_dict: saved parameter group {i} has {len(saved['params'])} "
                    f"parameters, this optimizer's group {i} has {len(group['params'])}"
                )
            unknown = sorted(set(saved) - set(self.defaults) - {"params", "initial_lr"})
            if unknown:
                raise ValueError(f"{self._name}.load_state_dict: unknown option(s) {unknown} in saved group {i}")
            for idx, p in zip(saved["params"], group["params"]):
                params_by_index[idx] = p
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, saved_state in state_dict["state"].items():
            if idx not in params_by_index:
                raise ValueError(f"{self._name}.load_state_dict: state for parameter {idx}, which no group holds")
            p = params_by_index[idx]
            xp = backend.get_array_module(p.data)
            restored = {}
            for k, v in saved_state.items():
                if isinstance(v, np.ndarray) or backend.get_array_module(v) is not np:
                    if v.shape != p.data.shape:
                        raise ValueError(
                            f"{self._name}.load_state_dict: state {k!r} of parameter {idx} has shape {v.shape}, "
                            f"but the parameter has shape {p.data.shape}"
                        )
                    v = xp.array(backend.to_device(v, backend.device_of(p.data)), dtype=p.data.dtype, copy=True)
                else:
                    v = copy.deepcopy(v)
                restored[k] = v
            new_state[p] = restored
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k != "params":
                    lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


def _copy_value(v: Any, to_host: bool) -> Any:
    if isinstance(v, np.ndarray):
        return v.copy()
    if backend.get_array_module(v) is not np:
        return backend.to_numpy(v) if to_host else v.copy()
    return copy.deepcopy(v)
