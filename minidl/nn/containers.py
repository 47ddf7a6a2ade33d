"""Containers of modules: ``Sequential`` (a pipeline), ``ModuleList`` and ``ModuleDict``.

Their children are registered under the names PyTorch gives them ("0", "1", ... or the
dictionary keys), so state-dict keys such as ``"0.weight"`` match PyTorch's.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Iterator, Mapping

from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(owner: str, m: Any, where: str) -> "Module":
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: {where} must be a Module, got {type(m).__name__}")
    return m


class _IndexedModules(Module):
    """Shared behaviour of Sequential and ModuleList: children named "0", "1", ..."""

    def _index(self, idx: int) -> int:
        n = len(self._modules)
        if not isinstance(idx, int):
            raise TypeError(f"{type(self).__name__} indices must be integers or slices, got {type(idx).__name__}")
        if not -n <= idx < n:
            raise IndexError(f"{type(self).__name__}: index {idx} is out of range for length {n}")
        return idx % n

    def _renumber(self, modules: list) -> None:
        self._modules.clear()
        for i, m in enumerate(modules):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __setitem__(self, idx: int, module: Module) -> None:
        _check_module(type(self).__name__, module, f"item {idx}")
        key = list(self._modules)[self._index(idx)]
        self._modules[key] = module

    def __delitem__(self, idx: int | slice) -> None:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            del mods[idx]
        else:
            del mods[self._index(idx)]
        self._renumber(mods)

    def append(self, module: Module) -> "_IndexedModules":
        """Add ``module`` at the end."""
        _check_module(type(self).__name__, module, "an appended item")
        self._modules[str(len(self._modules))] = module
        return self

    def extend(self, modules: Iterable[Module]) -> "_IndexedModules":
        """Append each module of ``modules``."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``."""
        _check_module(type(self).__name__, module, "an inserted item")
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def __dir__(self):
        return [k for k in super().__dir__() if not k.isdigit()]


class Sequential(_IndexedModules):
    """Modules applied one after the other: ``Sequential(m0, m1, ...)(x) = ...m1(m0(x))``.

    Also ``Sequential(OrderedDict(name=module, ...))`` for named children. Indexing gives a
    child; slicing gives a new Sequential over the same child modules.
    """

    def __init__(self, *modules: Module | "OrderedDict[str, Module]"):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, _check_module("Sequential", m, f"entry '{name}'"))
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), _check_module("Sequential", m, f"argument {i}"))

    def __getitem__(self, idx: int | slice) -> Module:
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[self._index(idx)]

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_IndexedModules):
    """A list of modules whose parameters are registered (``ModuleList([m0, m1])``).

    It has no forward of its own: iterate over it in the owner's forward.
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Module | "ModuleList":
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(self._index(idx))]

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return ModuleList(list(self) + list(other))

    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(
            "ModuleList has no forward(): iterate over its modules in the owning module's forward"
        )


class ModuleDict(Module):
    """An ordered dictionary of modules whose parameters are registered."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {list(self._modules)})")
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, _check_module("ModuleDict", module, f"value for {key!r}"))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        """The keys, in insertion order."""
        return self._modules.keys()

    def values(self):
        """The modules, in insertion order."""
        return self._modules.values()

    def items(self):
        """(key, module) pairs, in insertion order."""
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove ``key`` and return its module."""
        m = self[key]
        del self._modules[key]
        return m

    def clear(self) -> None:
        """Remove every entry."""
        self._modules.clear()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Add (or replace) the entries of a mapping or of an iterable of (key, module) pairs."""
        items = modules.items() if isinstance(modules, Mapping) else modules
        for pair in items:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"ModuleDict.update: expected (key, module) pairs, got {pair!r}")
            key, m = pair
            self[key] = m

    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward(): pick its modules by key in the owner's forward")
