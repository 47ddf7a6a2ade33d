"""``Module``: the base class of every layer and model.

A Module owns three ordered tables, filled by plain attribute assignment in ``__init__``:

* ``_parameters``: the ``Parameter`` objects (``self.weight = Parameter(...)``),
* ``_buffers``: state that is saved but not learned (``self.register_buffer("running_mean", t)``),
* ``_modules``: sub-modules (``self.fc1 = Linear(4, 8)``).

Everything else follows from those tables, in registration order: ``parameters()``
yields a module's own parameters and then its children's, depth first, exactly as
PyTorch does, so that a state dict's keys (``"fc1.weight"``, ``"bn.running_var"``) are the
same in both frameworks and weights can be copied across by name.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Any, Callable, Iterator

import numpy as np

from .. import backend
from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle"]

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class RemovableHandle:
    """Returned by ``register_forward_hook``/``register_forward_pre_hook``; ``.remove()`` undoes it."""

    _next_id = 0

    def __init__(self, table: "OrderedDict[int, Callable]"):
        self._table = table
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._table.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False


def _shape_str(shape: tuple) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Module:
    """Base class of layers and models.

    Subclasses call ``super().__init__()`` first, then assign their parameters, buffers
    and sub-modules, and define ``forward(*inputs)``. Calling the module runs the
    forward pre-hooks, ``forward`` and the forward hooks.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    # ------------------------------------------------------------------ registration
    def _check_initialised(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {what} before Module.__init__() is called; "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._check_initialised("parameters")
            self._remove_everywhere(name)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._check_initialised("sub-modules")
            self._remove_everywhere(name)
            self._modules[name] = value
        elif "_parameters" in self.__dict__ and name in self._parameters:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to parameter "
                    f"'{name}' (a Parameter or None is expected)"
                )
            self._parameters[name] = None
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to sub-module "
                    f"'{name}' (a Module or None is expected)"
                )
            self._modules[name] = None
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{type(self).__name__}: cannot assign a {type(value).__name__} to buffer "
                    f"'{name}' (a Tensor or None is expected)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove_everywhere(self, name: str) -> None:
        self.__dict__.pop(name, None)
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if name in self._buffers:
            del self._buffers[name]
            self._non_persistent.discard(name)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: look in the three tables.
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = d.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._check_initialised("parameters")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_parameter: invalid parameter name {name!r} (non-empty, no '.')")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"register_parameter: '{name}' must be a Parameter or None, got {type(param).__name__}"
            )
        self._remove_everywhere(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register ``tensor`` as state that is not learned (saved in ``state_dict`` when persistent)."""
        self._check_initialised("buffers")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: invalid buffer name {name!r} (non-empty, no '.')")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: '{name}' is already a parameter or sub-module")
        if name in self.__dict__:
            raise KeyError(f"register_buffer: attribute '{name}' already exists")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register ``module`` as a child under ``name`` (what ``self.name = module`` does)."""
        self._check_initialised("sub-modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module: '{name}' must be a Module or None, got {type(module).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"add_module: invalid module name {name!r} (non-empty, no '.')")
        self._remove_everywhere(name)
        self._modules[name] = module

    register_module = add_module

    # ------------------------------------------------------------------ calling
    def forward(self, *inputs: Any) -> Any:
        """The computation; every subclass defines it (call the module, not forward, to run hooks)."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks:
            for hook in list(self._forward_pre_hooks.values()):
                result = hook(self, inputs)
                if result is not None:
                    inputs = result if isinstance(result, tuple) else (result,)
        output = self.forward(*inputs, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, inputs, output)
                if result is not None:
                    output = result
        return output

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after each forward; a non-None return replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs)`` before each forward; a non-None return replaces the inputs."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ traversal
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for this module and every descendant, depth first; "" names self."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from child.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) for the direct children, in registration order."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator["Module"]:
        """The direct children, in registration order."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, table: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, value in getattr(mod, table).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield mod_prefix + ("." if mod_prefix else "") + name, value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) in registration order; a shared parameter appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The Parameters in registration order (own first, then each child's, depth first)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer Tensor) in registration order."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers in registration order."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> "Module":
        """The descendant at dotted path ``target`` (``"encoder.layers.0"``); "" is self."""
        if target == "":
            return self
        mod: Module = self
        walked = []
        for part in target.split("."):
            child = mod._modules.get(part) if isinstance(mod, Module) else None
            if child is None:
                where = ".".join(walked) or type(self).__name__
                raise AttributeError(
                    f"get_submodule: {where} has no sub-module '{part}' "
                    f"(its children: {list(mod._modules)})"
                )
            walked.append(part)
            mod = child
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"fc1.weight"``)."""
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters or mod._parameters[name] is None:
            raise AttributeError(f"get_parameter: {type(mod).__name__} has no parameter '{name}'")
        return mod._parameters[name]

    def apply(self, fn: Callable[["Module"], Any]) -> "Module":
        """Call ``fn`` on every child (recursively) and then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (dropout active, batch norm uses batch statistics) here and below."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        """Set evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient recording on or off for every parameter (freezing a model)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (set to None, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = Tensor(backend.get_array_module(p.grad.data).zeros_like(p.grad.data))

    # ------------------------------------------------------------------ devices and dtypes
    def _apply_to_arrays(self, fn: Callable[[Any], Any], floating_only: bool = False) -> "Module":
        """Replace the data of every parameter, gradient and buffer with ``fn(data)``, in place,
        keeping the Parameter objects (so optimizers holding them stay valid)."""
        def convert(t: Tensor) -> None:
            if floating_only and t.data.dtype.kind != "f":
                return
            t.data = fn(t.data)
            if t.grad is not None:
                t.grad = Tensor(fn(t.grad.data))

        seen: set[int] = set()
        for m in self.modules():
            for table in (m._parameters, m._buffers):
                for t in table.values():
                    if t is not None and id(t) not in seen:
                        seen.add(id(t))
                        convert(t)
        return self

    def to(self, device: Any = None, dtype: Any = None) -> "Module":
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``, in place."""
        if isinstance(device, (np.dtype, type)) and dtype is None:
            device, dtype = None, device
        if device is not None:
            dev = backend.Device(device)
            self._apply_to_arrays(lambda a: backend.to_device(a, dev))
        if dtype is not None:
            dt = np.dtype(dtype)
            if dt.kind != "f":
                raise TypeError(f"Module.to: dtype must be floating, got {dt}")
            self._apply_to_arrays(lambda a: a.astype(dt), floating_only=True)
        return self

    def cpu(self) -> "Module":
        """Move parameters and buffers to the host: ``to("cpu")``."""
        return self.to("cpu")

    def cuda(self) -> "Module":
        """Move parameters and buffers to the GPU: ``to("cuda")``."""
        return self.to("cuda")

    def double(self) -> "Module":
        """Cast floating parameters and buffers to float64 (for gradient checks)."""
        return self.to(dtype=np.float64)

    def float(self) -> "Module":
        """Cast floating parameters and buffers to float32."""
        return self.to(dtype=np.float32)

    # ------------------------------------------------------------------ state
    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """(key, Tensor) for every persistent entry of the state dict, in PyTorch's order:
        per module (depth first), its parameters then its persistent buffers."""
        for prefix, mod in self.named_modules(remove_duplicate=False):
            head = prefix + "." if prefix else ""
            for name, p in mod._parameters.items():
                if p is not None:
                    yield head + name, p
            for name, b in mod._buffers.items():
                if b is not None and name not in mod._non_persistent:
                    yield head + name, b

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """An ordered mapping ``dotted name -> NumPy array copy`` of all parameters and buffers."""
        return OrderedDict((k, backend.to_numpy(t.data).copy()) for k, t in self._state_items())

    def load_state_dict(self, state_dict: Any, strict: bool = True):
        """Copy the arrays of ``state_dict`` into the parameters and buffers, in place.

        Values may be NumPy arrays, CuPy arrays or Tensors; they are cast to each
        parameter's dtype and device. Raises ``KeyError`` naming missing or unexpected keys
        (when ``strict``) and ``ValueError`` naming every key whose shape differs. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        own = OrderedDict(self._state_items())
        given = OrderedDict(state_dict)
        missing = [k for k in own if k not in given]
        unexpected = [k for k in given if k not in own]
        mismatched = []
        for k, t in own.items():
            if k in given:
                v = given[k]
                shape = tuple(v.shape) if hasattr(v, "shape") else np.shape(v)
                if shape != tuple(t.data.shape):
                    mismatched.append(f"'{k}': expected shape {_shape_str(t.data.shape)}, got {_shape_str(shape)}")
        name = type(self).__name__
        if mismatched:
            raise ValueError(f"load_state_dict of {name}: shape mismatch for " + "; ".join(mismatched))
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("missing keys " + ", ".join(repr(k) for k in missing))
            if unexpected:
                parts.append("unexpected keys " + ", ".join(repr(k) for k in unexpected))
            raise KeyError(f"load_state_dict of {name}: " + "; ".join(parts))
        for k, t in own.items():
            if k not in given:
                continue
            v = given[k]
            v = v.data if isinstance(v, Tensor) else v
            v = v if hasattr(v, "shape") else np.asarray(v)
            t.data[...] = backend.to_device(v, backend.device_of(t.data))
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (overridden by layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        return type(self).__name__ + "(\n  " + "\n  ".join(lines) + "\n)"

    def num_parameters(self, only_trainable: bool = False) -> int:
        """The number of scalar parameters (those with requires_grad when ``only_trainable``)."""
        return int(sum(p.data.size for p in self.parameters() if p.requires_grad or not only_trainable))

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
