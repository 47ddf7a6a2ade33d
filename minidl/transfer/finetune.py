"""Fine-tuning tools: freezing, per-layer learning rates, gradual unfreezing, feature
extraction from named layers and swapping a model's head.

* ``freeze(model, pattern)`` / ``unfreeze(model, pattern)`` switch ``requires_grad`` off / on
  for the parameters a pattern names. A frozen parameter gets no gradient, so an optimizer
  skips it entirely: no weight decay, no momentum, no Adam moment update.
* ``param_groups_by_depth(model, base_lr, decay)``: discriminative fine-tuning (Howard and
  Ruder, 2018): the k-th block counted back from the output learns at base_lr * decay^k.
  ``param_groups_by_module(model, {"features": 1e-4, "classifier": 1e-2})`` sets the rates
  by hand.
* ``GradualUnfreezing``: start with only the head trainable, unfreeze one more block (from
  the output towards the input) every ``every`` calls of ``step()``.
* ``FeatureExtractor(model, ["features.3", "classifier.0"])``: forward hooks that keep the
  outputs of the named layers; ``.remove()`` takes the hooks away.
* ``replace_head(model, "classifier", new_head)``: put a new output layer in place, checking
  that its input width is the width the backbone produces.

Patterns name parameters ("features.0.weight") or modules ("features", which covers every
parameter below it). A string is a shell-style pattern (``fnmatch``: "layer*.bn?.*"), a
compiled ``re.Pattern`` is searched in the names, a ``Module`` names itself; a list mixes
them. A pattern that matches nothing is an error that lists the names there are.
"""
from __future__ import annotations

import fnmatch
import re
from collections import OrderedDict
from typing import Any, Sequence

from ..nn import Linear, Module
from ..nn.conv import Conv2d
from ..nn.parameter import Parameter
from ..tensor import Tensor

__all__ = ["freeze", "unfreeze", "trainable_parameters", "param_groups_by_depth", "param_groups_by_module",
           "GradualUnfreezing", "FeatureExtractor", "replace_head", "input_width"]

def _name_list(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _module_names(model: Module) -> list[str]:
    return [name for name, _ in model.named_modules() if name]


def _match_one(model: Module, pattern: Any, op: str) -> list[str]:
    """The parameter names of ``model`` that one pattern selects (error if none)."""
    params = list(model.named_parameters())
    if isinstance(pattern, Module):
        found = [prefix for prefix, m in model.named_modules() if m is pattern]
        if not found:
            raise ValueError(f"{op}: the module {type(pattern).__name__} given is not part of "
                             f"{type(model).__name__}")
        prefix = found[0]
        chosen = [n for n, _ in params if not prefix or n.startswith(prefix + ".")]
        if not chosen:
            raise ValueError(f"{op}: the module {prefix or type(model).__name__!r} has no parameters")
        return chosen
    if isinstance(pattern, re.Pattern):
        def hit(name: str) -> bool:
            return pattern.search(name) is not None
        shown = f"regex {pattern.pattern!r}"
    elif isinstance(pattern, str):
        if not pattern:
            raise ValueError(f"{op}: an empty pattern names nothing; pass None for every parameter")

        def hit(name: str) -> bool:
            return fnmatch.fnmatchcase(name, pattern)
        shown = f"pattern {pattern!r}"
    else:
        raise TypeError(f"{op}: a pattern must be a str (fnmatch), a compiled regex, a Module or a list of "
                        f"them, got {type(pattern).__name__}")
    modules = [m for m in _module_names(model) if hit(m)]
    chosen = []
    for name, _ in params:
        owners = name.split(".")[:-1]
        prefixes = {".".join(owners[:k]) for k in range(1, len(owners) + 1)}
        if hit(name) or prefixes & set(modules):
            chosen.append(name)
    if not chosen:
        raise ValueError(
            f"{op}: {shown} matches no parameter or module of {type(model).__name__}; parameters: "
            f"{_name_list([n for n, _ in params])}; modules: {_name_list(_module_names(model))}")
    return chosen


def _select(model: Module, pattern: Any, op: str) -> "OrderedDict[str, Parameter]":
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be an nn.Module, got {type(model).__name__}")
    params = OrderedDict(model.named_parameters())
    if pattern is None:
        if not params:
            raise ValueError(f"{op}: {type(model).__name__} has no parameters")
        return params
    patterns = list(pattern) if isinstance(pattern, (list, tuple)) else [pattern]
    if not patterns:
        raise ValueError(f"{op}: an empty list of patterns names nothing; pass None for every parameter")
    chosen: set[str] = set()
    for p in patterns:
        chosen.update(_match_one(model, p, op))
    return OrderedDict((n, p) for n, p in params.items() if n in chosen)


def freeze(model: Module, pattern: Any = None) -> list[str]:
    """Stop training the parameters ``pattern`` selects (every parameter when None).

    Sets ``requires_grad = False`` and drops any gradient already stored, so that a
    following ``optimizer.step()`` leaves them exactly as they are (no weight decay, no
    momentum). Batch-norm running statistics are buffers, not parameters: they still
    update in training mode; call ``.eval()`` on a frozen part to keep them fixed.
    Returns the names of the parameters frozen. Raises ``ValueError`` when a pattern
    matches nothing (listing the names there are).
    """
    selected = _select(model, pattern, "freeze")
    for p in selected.values():
        p.requires_grad_(False)
        p.grad = None
    return list(selected)


def unfreeze(model: Module, pattern: Any = None) -> list[str]:
    """Train again the parameters ``pattern`` selects (every parameter when None):
    ``requires_grad = True``. Returns their names; a pattern that matches nothing raises."""
    selected = _select(model, pattern, "unfreeze")
    for p in selected.values():
        p.requires_grad_(True)
    return list(selected)


def trainable_parameters(model: Module) -> list[Parameter]:
    """The parameters with ``requires_grad``, in registration order (for an optimizer that
    should only see what is being fine-tuned)."""
    return [p for p in model.parameters() if p.requires_grad]


def _blocks(model: Module, blocks: Sequence[str] | None, op: str) -> list[tuple[str, list[Parameter]]]:
    """(block name, its parameters) from input to output: the named sub-modules, or the
    direct children that hold parameters (a model's own parameters form a block "")."""
    if blocks is None:
        out = []
        own = list(model.parameters(recurse=False))
        if own:
            out.append(("", own))
        for name, child in model.named_children():
            ps = list(child.parameters())
            if ps:
                out.append((name, ps))
        if not out:
            raise ValueError(f"{op}: {type(model).__name__} has no parameters")
        return out
    out, seen = [], set()
    for name in blocks:
        if not isinstance(name, str):
            raise TypeError(f"{op}: blocks must be module names (str), got {type(name).__name__}")
        try:
            mod = model.get_submodule(name)
        except AttributeError as e:
            raise ValueError(f"{op}: no module named {name!r} in {type(model).__name__}; modules: "
                             f"{_name_list(_module_names(model))}") from e
        ps = [p for p in mod.parameters() if id(p) not in seen]
        if not ps:
            raise ValueError(f"{op}: the module {name!r} has no parameters (of its own, not in an earlier block)")
        seen.update(id(p) for p in ps)
        out.append((name, ps))
    return out


def param_groups_by_depth(model: Module, base_lr: float, decay: float = 0.5,
                          blocks: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Discriminative learning rates: one optimizer parameter group per block, the block k
    places before the last learning at ``lr_k = base_lr * decay^k``.

    ``blocks`` names the blocks from input to output (``["features", "classifier"]``);
    by default they are the model's direct children that hold parameters, in registration
    order. Parameters in none of the named blocks are not included (they stay untrained;
    freeze them or name them). Returns ``[{"params": [...], "lr": lr_k}, ...]``, ready for
    any ``minidl.optim`` optimizer, input side first.
    """
    if not base_lr > 0:
        raise ValueError(f"param_groups_by_depth: base_lr must be > 0, got {base_lr}")
    if not 0 < decay <= 1:
        raise ValueError(f"param_groups_by_depth: decay must be in (0, 1], got {decay}")
    found = _blocks(model, blocks, "param_groups_by_depth")
    last = len(found) - 1
    return [{"params": ps, "lr": base_lr * decay ** (last - i)} for i, (_, ps) in enumerate(found)]


def param_groups_by_module(model: Module, lrs: dict[str, float],
                           default_lr: float | None = None) -> list[dict[str, Any]]:
    """Parameter groups with a learning rate per named module: ``lrs = {"features": 1e-4,
    "classifier": 1e-2}``. Every other parameter goes in a last group at ``default_lr``
    (without an "lr" entry, i.e. the optimizer's own lr, when ``default_lr`` is None).
    A name that is not a module of ``model`` raises; a parameter named twice goes to the
    first module listed."""
    if not isinstance(lrs, dict) or not lrs:
        raise ValueError("param_groups_by_module: lrs must be a non-empty dict {module name: lr}")
    groups, seen = [], set()
    for name, ps in _blocks(model, list(lrs), "param_groups_by_module"):
        lr = lrs[name]
        if not lr >= 0:
            raise ValueError(f"param_groups_by_module: the learning rate of {name!r} must be >= 0, got {lr}")
        groups.append({"params": ps, "lr": lr})
        seen.update(id(p) for p in ps)
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        groups.append({"params": rest} if default_lr is None else {"params": rest, "lr": default_lr})
    return groups


class GradualUnfreezing:
    """ULMFiT's gradual unfreezing: train the last block first, then one more block every
    ``every`` calls of ``step()`` (e.g. once per epoch), from the output towards the input.

    Args:
        model: the model to fine-tune. At construction every parameter is frozen except
            those of the last block.
        blocks: block names from input to output (default: the direct children that hold
            parameters, in registration order).
        every: steps between two unfreezings (>= 1).

    Attributes: ``blocks`` (names, input to output), ``num_unfrozen`` (how many blocks from
    the end are trainable). Give the optimizer all the parameters (frozen ones have no
    gradient, so it skips them until they are unfrozen); ``param_groups_by_depth`` combines.
    """

    def __init__(self, model: Module, blocks: Sequence[str] | None = None, every: int = 1) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradualUnfreezing: every must be a positive integer, got {every!r}")
        found = _blocks(model, blocks, "GradualUnfreezing")
        self.model = model
        self.blocks = [name for name, _ in found]
        self._params = [ps for _, ps in found]
        self.every = every
        self.steps = 0
        self.num_unfrozen = 1
        freeze(model)
        self._apply()

    def _apply(self) -> None:
        for ps in self._params[len(self._params) - self.num_unfrozen:]:
            for p in ps:
                p.requires_grad_(True)

    @property
    def trainable_blocks(self) -> list[str]:
        """The names of the blocks currently trained, input side first."""
        return self.blocks[len(self.blocks) - self.num_unfrozen:]

    def step(self) -> None:
        """Count one step (epoch); every ``every`` steps unfreeze the next block down."""
        self.steps += 1
        if self.steps % self.every == 0 and self.num_unfrozen < len(self.blocks):
            self.num_unfrozen += 1
            self._apply()

    def state_dict(self) -> dict[str, int]:
        """The schedule's progress: ``{"steps", "num_unfrozen"}``."""
        return {"steps": self.steps, "num_unfrozen": self.num_unfrozen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume a schedule saved by ``state_dict`` (re-freezes the model to match)."""
        self.steps, self.num_unfrozen = int(state["steps"]), int(state["num_unfrozen"])
        freeze(self.model)
        self._apply()


class FeatureExtractor:
    """Collect the outputs of named layers while a model runs, through forward hooks.

    ``FeatureExtractor(model, ["features.3", "classifier.0"])``; calling it,
    ``feats = extractor(x)``, runs ``model(x)`` and returns an ordered dict
    ``{layer name: that layer's output Tensor}`` (the last call's; also at
    ``extractor.features``). With ``detach=True`` the outputs are cut from the graph.
    The hooks stay on the model (so ``model(x)`` also fills ``extractor.features``) until
    ``remove()``; ``with FeatureExtractor(...) as fe:`` removes them on exit.
    A name that is not a module of ``model`` raises ``ValueError`` listing the names.
    """

    def __init__(self, model: Module, layers: Sequence[str], detach: bool = False) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"FeatureExtractor: model must be an nn.Module, got {type(model).__name__}")
        if isinstance(layers, str):
            layers = [layers]
        layers = list(layers)
        if not layers:
            raise ValueError("FeatureExtractor: name at least one layer")
        self.model = model
        self.layers = layers
        self.detach = detach
        self.features: "OrderedDict[str, Tensor]" = OrderedDict()
        self._handles = []
        for name in layers:
            try:
                module = model.get_submodule(name)
            except AttributeError as e:
                raise ValueError(f"FeatureExtractor: no layer named {name!r} in {type(model).__name__}; layers: "
                                 f"{_name_list(_module_names(model), 30)}") from e
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def keep(module: Module, inputs: tuple, output: Any) -> None:
            self.features[name] = output.detach() if self.detach and isinstance(output, Tensor) else output
        return keep

    def __call__(self, *inputs: Any, **kwargs: Any) -> "OrderedDict[str, Tensor]":
        if not self._handles:
            raise RuntimeError("FeatureExtractor: the hooks were removed; build a new extractor")
        self.features = OrderedDict()
        self.model(*inputs, **kwargs)
        missing = [n for n in self.layers if n not in self.features]
        if missing:
            raise RuntimeError(f"FeatureExtractor: the layers {missing} did not run in the model's forward")
        return OrderedDict((n, self.features[n]) for n in self.layers)

    def remove(self) -> None:
        """Take the hooks off the model (the model runs as before)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc) -> bool:
        self.remove()
        return False


def input_width(module: Module) -> int | None:
    """The number of input features (or channels) ``module`` expects: its first Linear's
    ``in_features`` or first Conv2d's ``in_channels``; None when it has neither."""
    for m in module.modules():
        if isinstance(m, Linear):
            return m.in_features
        if isinstance(m, Conv2d):
            return m.in_channels
    return None


def replace_head(model: Module, name: str, new_head: Module, example_input: Any = None) -> Module:
    """Put ``new_head`` in place of the sub-module ``name`` (e.g. "fc", "classifier",
    "classifier.4") and return the old one.

    The width the backbone feeds the head is read from the old head's first Linear/Conv2d,
    or measured by running ``model(example_input)`` when given (needed when the old head
    has no Linear layer). If ``new_head``'s input width differs, ``ValueError`` names both.
    """
    if not isinstance(model, Module):
        raise TypeError(f"replace_head: model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(new_head, Module):
        raise TypeError(f"replace_head: new_head must be an nn.Module, got {type(new_head).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError("replace_head: name the head's module, e.g. 'fc' or 'classifier'")
    try:
        old = model.get_submodule(name)
    except AttributeError as e:
        raise ValueError(f"replace_head: no module named {name!r} in {type(model).__name__}; modules: "
                         f"{_name_list(_module_names(model), 30)}") from e
    expected = None
    if example_input is not None:
        seen: list[int] = []

        def record(module: Module, inputs: tuple) -> None:
            seen.append(int(inputs[0].shape[1] if inputs[0].ndim == 4 else inputs[0].shape[-1]))

        from ..autograd import no_grad

        modes = [(m, m.training) for m in model.modules()]
        model.eval()                     # no batch-norm statistics change while measuring
        try:
            with old.register_forward_pre_hook(record), no_grad():
                model(example_input)
        finally:
            for m, mode in modes:
                object.__setattr__(m, "training", mode)
        expected = seen[0] if seen else None
    if expected is None:
        expected = input_width(old)
    got = input_width(new_head)
    if expected is not None and got is not None and got != expected:
        raise ValueError(f"replace_head: the new head for {name!r} takes {got} input features, but the backbone "
                         f"of {type(model).__name__} produces {expected} (the old head {type(old).__name__} took "
                         f"{expected}); build the head with {expected} inputs")
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    parent._modules[leaf] = new_head      # in place: the head keeps its position (and state-dict order)
    return old

