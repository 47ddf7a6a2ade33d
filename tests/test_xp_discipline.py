"""Static check: the code that runs inside a training step is written against ``xp``.

A NumPy call such as ``np.where(x > 0, x, 0)`` or ``np.add.at(out, i, g)`` inside an op's
``forward``/``backward``, a module's ``forward`` or an optimizer's update works on the CPU
and breaks (or silently copies to the host) once the arrays are CuPy arrays; so do
``.item()``, ``.tolist()``, ``.numpy()`` and ``to_numpy`` (a device-to-host sync per step).
No GPU is needed to find them: this test walks the syntax trees of the files in scope and
flags such calls in the functions that run per step. Legitimate NumPy uses (dtype objects,
shape arithmetic, ``np.errstate``) are allowed by name; anything else needs an entry in
``ALLOWED_SITES`` with the reason.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

SCOPE = (
    sorted((ROOT / "minidl" / "functional").glob("*.py"))
    + sorted((ROOT / "minidl" / "nn").glob("*.py"))
    + sorted((ROOT / "minidl" / "optim").glob("*.py"))
    + sorted((ROOT / "minidl" / "models").glob("*.py"))
    + [ROOT / "minidl" / name for name in ("autograd.py", "tensor.py", "creation.py")]
    + [ROOT / "minidl" / "train" / name for name in ("callbacks.py", "trainer.py")]
    + [ROOT / "minidl" / "data" / "dataloader.py"]
)

# Functions whose bodies run once (or more) per training step: every function of
# ``minidl/functional`` (the ops), and these by name elsewhere.
HOT_FUNCTIONS = {
    "forward", "backward", "_backward_arrays", "_backward_differentiable", "_target_distribution",
    "_update", "step", "adam_moment_step", "clip_grad_norm_", "clip_grad_value_", "max_norm_",
    "_train_epoch",
}

# NumPy names that never touch a data array: dtypes, shape arithmetic, error states.
ALLOWED_NUMPY = {
    "dtype", "float16", "float32", "float64", "int32", "int64", "bool_", "integer", "floating",
    "generic", "ndarray", "shape", "ndim", "prod", "broadcast_shapes", "errstate", "iinfo", "finfo",
    "result_type", "promote_types", "issubdtype", "inf", "nan", "pi", "newaxis", "exceptions",
}

# Host conversions: each is a device-to-host copy (and a sync) on a GPU.
HOST_METHODS = {"item", "tolist", "numpy", "get"}
HOST_FUNCTIONS = {"to_numpy", "to_scalar", "asnumpy"}
# float(x.data), int(a.sum()), bool(mask.any()): a hidden sync when the array is on a GPU.
SCALAR_CASTS = {"float", "int", "bool"}
REDUCTIONS = {"sum", "any", "all", "max", "min", "mean", "argmax", "argmin"}

VALIDATION = ("input validation: one boolean leaves the device per call so that a bad value raises "
              "a clear error (a GPU would gather out-of-range rows silently); the value itself is read "
              "only on the error path")

# (file relative to the repository, function, offending name): why it is fine there.
ALLOWED_SITES = {
    ("minidl/functional/shape.py", "backward", "argsort"):
        "Transpose.backward inverts the permutation of the axes, a tuple of Python ints",
    ("minidl/functional/shape.py", "forward", "cumsum"):
        "Concat.forward sums the input lengths along the axis: Python ints from the shapes",
    ("minidl/functional/shape.py", "backward", "broadcast_to"):
        "Pad.backward broadcasts pad_width, a tuple of Python ints",
    ("minidl/functional/shape.py", "backward", "asarray"):
        "Pad.backward reads pad_width, a tuple of Python ints",
    ("minidl/functional/shape.py", "unwrap_key", "asarray"):
        "a list index becomes an index array, which is then moved to the indexed array's device",
    ("minidl/functional/loss.py", "cosine_embedding_loss", "unique"):
        "builds the error message, after the validation found a bad target",
    ("minidl/functional/loss.py", "cosine_embedding_loss", "tolist"):
        "builds the error message, after the validation found a bad target",
    ("minidl/functional/loss.py", "cosine_embedding_loss", "to_numpy"):
        "builds the error message, after the validation found a bad target",
    ("minidl/functional/loss.py", "cosine_embedding_loss", "bool"): VALIDATION,
    ("minidl/functional/loss.py", "_class_target", "bool"): VALIDATION,
    ("minidl/functional/loss.py", "binary_cross_entropy", "bool"): VALIDATION,
    ("minidl/functional/loss.py", "binary_cross_entropy", "float"): VALIDATION,
    ("minidl/functional/embedding.py", "embedding", "bool"): VALIDATION,
    ("minidl/train/trainer.py", "_train_epoch", "item"):
        "the Trainer's NaN guard: the loss must be known finite before the update (one scalar per step)",
    ("minidl/train/trainer.py", "_train_epoch", "to_numpy"):
        "only when metrics or the progress bar need the outputs (documented: a copy per step on a GPU)",
    ("minidl/train/trainer.py", "_train_epoch", "asarray"):
        "a target that is not a Tensor is already a host object",
    ("minidl/train/trainer.py", "_train_epoch", "int"):
        "counts correct predictions on the host copy made for the progress bar",
    ("minidl/functional/attention.py", "attention", "bool"):
        "asked only for NumPy masks (xp is np); on a GPU the fix for fully masked rows is always applied",
    ("minidl/optim/regularization.py", "clip_grad_norm_", "asarray"):
        "the 0-d zero returned when no parameter has a gradient (no data array to follow)",
}


def _reads_an_array(node: ast.AST) -> bool:
    """True when an expression reads ``.data`` or reduces an array (``x.sum()``, ``m.any()``)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr == "data":
            return True
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.func.attr in REDUCTIONS:
            return True
    return False


def _is_hot(filename: str, function: str) -> bool:
    return filename.startswith("minidl/functional/") or function in HOT_FUNCTIONS


def _numpy_path(node: ast.AST) -> list[str] | None:
    """['where'] for np.where, ['add', 'at'] for np.add.at; None when not a NumPy attribute."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id in ("np", "numpy") and parts:
        return parts[::-1]
    return None


def violations_in(source: str, filename: str) -> list[str]:
    """Every disallowed call inside a hot function of ``source``, as 'file:line function: what'."""
    tree = ast.parse(source, filename)
    found = []

    def visit_function(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for node in ast.walk(fn):
            if isinstance(node, (ast.If, ast.While, ast.IfExp, ast.Assert)) and isinstance(node.test, ast.Call) \
                    and isinstance(node.test.func, ast.Attribute) and node.test.func.attr in ("any", "all"):
                # ``if mask.any():`` converts an array to a Python bool: a sync on a GPU
                if (filename, fn.name, "bool") not in ALLOWED_SITES:
                    found.append(f"{filename}:{node.lineno} {fn.name}: implicit bool({ast.unparse(node.test)}) "
                                 "(a hidden device-to-host sync on a GPU)")
            if not isinstance(node, ast.Call):
                continue
            what = None
            path = _numpy_path(node.func)
            if path is not None:
                if path[0] == "random":
                    what = "np." + ".".join(path) + " (draw on the device: backend.random_generator(xp))"
                elif path[0] not in ALLOWED_NUMPY:
                    what = "np." + ".".join(path) + " (use xp = backend.get_array_module(array))"
                name = path[-1]
            elif isinstance(node.func, ast.Attribute) and node.func.attr in HOST_METHODS and not node.args:
                what = f".{node.func.attr}() (a device-to-host copy in a training step)"
                name = node.func.attr
            elif isinstance(node.func, ast.Attribute) and node.func.attr in HOST_FUNCTIONS:
                what = f"{node.func.attr}() (a device-to-host copy in a training step)"
                name = node.func.attr
            elif isinstance(node.func, ast.Name) and node.func.id in HOST_FUNCTIONS:
                what = f"{node.func.id}() (a device-to-host copy in a training step)"
                name = node.func.id
            elif isinstance(node.func, ast.Name) and node.func.id in SCALAR_CASTS and node.args \
                    and _reads_an_array(node.args[0]):
                what = f"{node.func.id}({ast.unparse(node.args[0])}) (a hidden device-to-host sync on a GPU)"
                name = node.func.id
            if what is not None and (filename, fn.name, name) not in ALLOWED_SITES:
                found.append(f"{filename}:{node.lineno} {fn.name}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _is_hot(filename, node.name):
            visit_function(node)
    return sorted(found, key=lambda line: int(line.split(":")[1].split()[0]))


def _relative(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", [p for p in SCOPE if p.exists()], ids=_relative)
def test_per_step_code_uses_xp_not_numpy(path):
    problems = violations_in(path.read_text(), _relative(path))
    assert not problems, "NumPy-only or host-syncing calls in per-step code:\n" + "\n".join(problems)


def test_checker_flags_numpy_calls_in_an_op():
    source = '''
import numpy as np
class LeakyReLU(Function):
    def forward(self, x):
        return np.where(x > 0, x, 0.01 * x)
    def backward(self, gy):
        out = np.zeros(self.shape)
        np.add.at(out, self.index, gy.data)
        return gy
'''
    problems = violations_in(source, "minidl/functional/fake.py")
    assert len(problems) == 3
    assert "np.where" in problems[0] and "np.zeros" in problems[1] and "np.add.at" in problems[2]


def test_checker_flags_host_copies_and_host_random_draws():
    source = '''
import numpy as np
class Net(Module):
    def forward(self, x):
        scale = x.max().item()
        noise = np.random.default_rng(0).standard_normal(x.shape)
        return x * backend.to_numpy(self.mask) / scale + noise
class SGDish(Optimizer):
    def _update(self, p, grad, state, group, xp):
        p.data -= group["lr"] * grad.sum().tolist()
'''
    problems = violations_in(source, "minidl/nn/fake.py")
    text = "\n".join(problems)
    assert len(problems) == 4, text
    for needle in (".item()", "np.random.default_rng", "to_numpy()", ".tolist()"):
        assert needle in text


def test_checker_flags_scalar_casts_of_arrays():
    source = '''
class BatchNormish(Module):
    def forward(self, x):
        m = 1.0 / (float(self.count.data) + 1.0)
        if bool((x.data < 0).any()):
            raise ValueError("negative")
        if self.mask.any():
            x = x * self.mask
        return x * float(self.momentum) * int(x.shape[0])
'''
    problems = violations_in(source, "minidl/nn/fake.py")
    assert len(problems) == 3, problems
    assert "float(self.count.data)" in problems[0] and "bool(" in problems[1]
    assert "implicit bool(self.mask.any())" in problems[2]


def test_every_allowed_site_is_still_used():
    """An allow-list entry whose call has gone must be removed (so it cannot hide a new one)."""
    used = set()
    for path in SCOPE:
        if path.exists():
            saved = dict(ALLOWED_SITES)
            ALLOWED_SITES.clear()
            try:
                for line in violations_in(path.read_text(), _relative(path)):
                    used.update(k for k in saved if line.startswith(k[0] + ":") and f" {k[1]}: " in line
                                and (f"np.{k[2]}" in line or f"{k[2]}(" in line))
            finally:
                ALLOWED_SITES.update(saved)
    assert set(ALLOWED_SITES) == used, f"unused allow-list entries: {sorted(set(ALLOWED_SITES) - used)}"


def test_checker_allows_dtype_and_shape_arithmetic():
    source = '''
import numpy as np
class Reshape(Function):
    def forward(self, x):
        n = int(np.prod(x.shape[1:]))
        with np.errstate(divide="ignore"):
            y = x.reshape(-1, n).astype(np.dtype(np.float32))
        np.broadcast_shapes(x.shape, y.shape)
        return y
def helper(x):
    return np.where(x > 0, x, 0)   # outside minidl/functional and not a per-step name: not checked
'''
    assert violations_in(source, "minidl/nn/fake.py") == []
