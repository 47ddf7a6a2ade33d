"""``minidl.save(obj, path)`` / ``minidl.load(path)``: state dicts in a safe ``.npz`` file.

What can be saved: nested dicts (string or integer keys; OrderedDict and Counter keep
their type), lists and tuples of arrays
(NumPy, CuPy or Tensors), Python numbers, strings, booleans and None: exactly what module,
optimizer and scheduler ``state_dict()`` return.

The file layout is a plain NumPy ``.npz`` (a zip of ``.npy`` files):

* ``__minidl__``: a uint8 array holding UTF-8 JSON, the manifest
  ``{"format": "minidl.save", "version": 1, "tree": ...}``, where ``tree`` mirrors ``obj``
  with every array replaced by ``{"__array__": "a17"}`` (the name of its ``.npy`` entry);
* ``a0``, ``a1``, ...: the arrays, in the order they appear in ``obj``.

Loading uses ``numpy.load(allow_pickle=False)`` and ``json``, so a file can never run code.
A file from a newer format version, a truncated or corrupted file, or a file that is not a
minidl save raises a ``ValueError`` that says which; everything is read and checked before
``load`` returns, so a caller that loads and then applies (``model.load_state_dict(...)``)
changes nothing when the file is bad.

Writes are atomic: the data goes to a temporary file in the target's directory, is flushed
and ``fsync``-ed, and then ``os.replace``-d over the target, so a crash in the middle of a
save leaves the previous file intact.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from collections import Counter, OrderedDict
from typing import Any, Callable

import numpy as np

from . import backend
from .tensor import Tensor

__all__ = ["save", "load", "atomic_write", "FORMAT_VERSION"]

FORMAT = "minidl.save"
FORMAT_VERSION = 1
_MANIFEST = "__minidl__"


def _encode(obj: Any, arrays: list, where: str) -> Any:
    """The JSON skeleton of ``obj``; arrays are appended to ``arrays`` and referenced by name."""
    if isinstance(obj, Tensor):
        obj = obj.data
    if backend.cupy is not None and isinstance(obj, backend.cupy.ndarray):
        obj = backend.to_numpy(obj)
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufc":
            raise TypeError(f"save: the array at {where} has dtype {obj.dtype}; only numeric and bool arrays can be saved")
        name = f"a{len(arrays)}"
        arrays.append(obj if obj.flags.c_contiguous else np.ascontiguousarray(obj))  # (keeps 0-d arrays 0-d)
        return {"__array__": name}
    if isinstance(obj, np.generic):
        return {"__scalar__": obj.item(), "dtype": str(obj.dtype)}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            return {"__float__": repr(obj)}
        return obj
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(k).__name__} ({k!r}) at {where}")
            items.append([k, _encode(v, arrays, f"{where}[{k!r}]")])
        kind = "counter" if isinstance(obj, Counter) else "ordered" if isinstance(obj, OrderedDict) else "dict"
        return {"__dict__": items, "kind": kind}
    if isinstance(obj, (list, tuple)):
        body = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return {"__tuple__": body} if isinstance(obj, tuple) else {"__list__": body}
    raise TypeError(
        f"save: cannot save a {type(obj).__name__} at {where}; only dicts, lists, tuples, arrays, "
        "Tensors, numbers, strings, booleans and None are allowed (save a state_dict(), not a module)"
    )


def _decode(node: Any, arrays: dict, where: str) -> Any:
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict):
        if "__array__" in node:
            name = node["__array__"]
            if name not in arrays:
                raise ValueError(f"load: the file is corrupted: array {name!r} ({where}) is missing")
            return arrays[name]
        if "__scalar__" in node:
            return np.dtype(node["dtype"]).type(node["__scalar__"])
        if "__float__" in node:
            return float(node["__float__"])
        if "__dict__" in node:
            out = {"counter": Counter, "ordered": OrderedDict}.get(node.get("kind"), dict)()
            for k, v in node["__dict__"]:
                out[k] = _decode(v, arrays, f"{where}[{k!r}]")
            return out
        if "__list__" in node:
            return [_decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(node["__list__"])]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays, f"{where}[{i}]") for i, v in enumerate(node["__tuple__"]))
    raise ValueError(f"load: the file is corrupted: unreadable entry at {where}")


def save(obj: Any, path: str | os.PathLike, compress: bool = False) -> str:
    """Write ``obj`` (a state dict, or nested dicts/lists of them) to ``path`` atomically.

    ``compress=True`` deflates the arrays (smaller files for pruned, mostly-zero weights).
    Returns the path written. Raises ``TypeError`` naming the first value that cannot be
    saved, before anything is written.
    """
    arrays: list = []
    tree = _encode(obj, arrays, "obj")
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "tree": tree, "arrays": len(arrays)}
    payload = {f"a{i}": a for i, a in enumerate(arrays)}
    payload[_MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    return atomic_write(path, lambda f: (np.savez_compressed if compress else np.savez)(f, **payload))


def atomic_write(path: str | os.PathLike, write: Callable[[Any], Any]) -> str:
    """Run ``write(f)`` on a temporary file next to ``path``, flush and ``fsync`` it, then
    ``os.replace`` it over ``path``: a crash midway leaves any previous file intact.
    Returns the path written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".minidl-save-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _read_all(path: str) -> dict:
    """Every entry of the npz, fully read (so a truncated entry fails here, not later)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no such file {path!r}") from None
    if not raw.startswith(b"PK"):
        raise ValueError(f"load: {path!r} is not a minidl save file (not a .npz/zip archive)")
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            return {name: z[name] for name in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as e:
        raise ValueError(f"load: {path!r} is truncated or corrupted ({type(e).__name__}: {e})") from None


def load(path: str | os.PathLike) -> Any:
    """Read what ``save`` wrote: arrays come back as NumPy arrays, containers as they were.

    Raises ``ValueError`` for a file that is truncated or corrupted, is not a minidl save,
    or was written by a newer format version than this minidl reads.
    """
    path = os.fspath(path)
    entries = _read_all(path)
    if _MANIFEST not in entries:
        raise ValueError(f"load: {path!r} is an .npz file but not a minidl save (no {_MANIFEST!r} manifest); "
                         "was it written by numpy.savez or a training checkpoint?")
    try:
        manifest = json.loads(entries.pop(_MANIFEST).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"load: {path!r} has a corrupted manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"load: {path!r} is not a minidl save (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"load: {path!r} was written in format version {version!r}, newer than the "
                         f"version {FORMAT_VERSION} this minidl reads; upgrade minidl to load it")
    if manifest.get("arrays") != len(entries):
        raise ValueError(f"load: {path!r} is corrupted: the manifest lists {manifest.get('arrays')} arrays, "
                         f"the file holds {len(entries)}")
    return _decode(manifest["tree"], entries, "obj")
