"""Packed state-dict files: every array of one dtype in ONE contiguous blob.

``minidl.save`` writes one ``.npy`` entry per array (a zip entry plus a 128-byte header
each, ~0.3 KiB), which is nothing for a large model and a lot for a 21k-parameter one
whose int8 weights take 21 KiB. A packed file stores instead

    header   b"MINIDLPK", version (uint8), flags (uint8: bit 0 = payload deflated),
             manifest length m (uint32 LE), payload length p (uint32 LE), CRC-32 of
             everything after the header (uint32 LE)                        22 bytes
    manifest m bytes: zlib-deflated UTF-8 JSON
             {"meta": <any JSON>, "blobs": [[dtype, nbytes], ...],
              "arrays": [[name, dtype, shape, byte offset in its dtype's blob], ...]}
    payload  p bytes: the blobs one after another (in "blobs" order), little-endian,
             each array C-contiguous at its offset; zlib-deflated when flag bit 0 is set

so an int8 model is one int8 blob (all weights), one int32 blob (biases, zero points) and
one float blob (scales), and the file is the arrays' bytes plus a few hundred bytes.

Loading never runs code from the file (``json`` and ``numpy.frombuffer`` only) and checks
everything first (magic, version, lengths, CRC, each entry's dtype, shape and bounds), so
a truncated or corrupted file raises a ``ValueError`` that says which, and nothing is
returned half-read. Writes are atomic (``minidl.serialization.atomic_write``).
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from collections import OrderedDict
from typing import Any

import numpy as np

from .. import backend
from ..serialization import atomic_write
from ..tensor import Tensor

__all__ = ["save_packed", "load_packed", "is_packed_file", "PACKED_VERSION"]

MAGIC = b"MINIDLPK"
PACKED_VERSION = 1
_HEADER = struct.Struct("<8sBBIII")  # magic, version, flags, manifest bytes, payload bytes, crc32
_DEFLATED = 1
_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
           "float16", "float32", "float64", "complex64", "complex128")


def _as_numpy(name: str, value: Any) -> np.ndarray:
    data = value.data if isinstance(value, Tensor) else value
    if not isinstance(data, np.ndarray):
        if not hasattr(data, "shape"):
            raise TypeError(f"save_packed: {name!r} is a {type(value).__name__}, expected an array or Tensor")
        data = backend.to_numpy(data)
    if data.dtype.name not in _DTYPES:
        raise TypeError(f"save_packed: {name!r} has dtype {data.dtype}; packable dtypes: {', '.join(_DTYPES)}")
    data = data.astype(data.dtype.newbyteorder("<"), copy=False)
    return data if data.flags.c_contiguous else data.copy(order="C")  # (0-d stays 0-d)


def save_packed(state: dict, path: str | os.PathLike, meta: Any = None, compress: bool = False) -> str:
    """Write the arrays of ``state`` ({name: array or Tensor}, e.g. a ``state_dict()``),
    grouped by dtype into one blob each, plus ``meta`` (any JSON value), to ``path``.

    ``compress=True`` deflates the payload (zlib level 9). Returns the path written.
    Raises ``TypeError`` for a value that is not a numeric array, before writing anything.
    """
    arrays = [(str(k), _as_numpy(str(k), v)) for k, v in state.items()]
    order = []  # dtypes in order of first appearance
    for _, a in arrays:
        if a.dtype.name not in order:
            order.append(a.dtype.name)
    blobs = {d: [] for d in order}
    sizes = {d: 0 for d in order}
    entries = []
    for name, a in arrays:
        d = a.dtype.name
        entries.append([name, d, list(a.shape), sizes[d]])
        blobs[d].append(a.tobytes())
        sizes[d] += a.nbytes
    manifest = {"meta": meta, "blobs": [[d, sizes[d]] for d in order], "arrays": entries}
    try:
        text = json.dumps(manifest, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_packed: meta must be plain JSON (dicts, lists, str, finite numbers): {e}") from None
    m = zlib.compress(text.encode("utf-8"), 9)
    payload = b"".join(b"".join(blobs[d]) for d in order)
    flags = 0
    if compress:
        payload, flags = zlib.compress(payload, 9), _DEFLATED
    crc = zlib.crc32(payload, zlib.crc32(m))
    header = _HEADER.pack(MAGIC, PACKED_VERSION, flags, len(m), len(payload), crc)
    return atomic_write(path, lambda f: (f.write(header), f.write(m), f.write(payload)))


def is_packed_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the packed-file magic bytes."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(f"load_packed: {path!r} is truncated or corrupted ({why})")


def _check_entry(path: str, entry: Any, sizes: dict) -> tuple[str, np.dtype, tuple, int]:
    ok = (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and entry[1] in sizes
          and isinstance(entry[2], list) and all(isinstance(s, int) and s >= 0 for s in entry[2])
          and isinstance(entry[3], int) and entry[3] >= 0)
    if not ok:
        raise _corrupt(path, f"bad manifest entry {str(entry)[:80]}")
    name, dtype, shape, offset = entry[0], np.dtype(entry[1]), tuple(entry[2]), entry[3]
    if offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > sizes[entry[1]]:
        raise _corrupt(path, f"array {name!r} {shape} {dtype} at byte {offset} runs past its blob")
    return name, dtype, shape, offset


def load_packed(path: str | os.PathLike) -> tuple[OrderedDict, Any]:
    """Read a file written by ``save_packed``: returns (state as an OrderedDict of NumPy
    arrays in the saved order and dtypes, meta).

    Raises ``ValueError`` for a file that is not a packed file, comes from a newer
    format version, or is truncated or corrupted.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"load_packed: no such file {path!r}") from None
    if not raw.startswith(MAGIC):
        raise ValueError(f"load_packed: {path!r} is not a packed minidl file (it does not start with {MAGIC!r})")
    if len(raw) < _HEADER.size:
        raise _corrupt(path, f"{len(raw)} bytes, shorter than the {_HEADER.size}-byte header")
    _, version, flags, m_len, p_len, crc = _HEADER.unpack_from(raw)
    if version > PACKED_VERSION:
        raise ValueError(f"load_packed: {path!r} was written in packed format version {version}, newer than the "
                         f"version {PACKED_VERSION} this minidl reads; upgrade minidl to load it")
    body = raw[_HEADER.size:]
    if len(body) != m_len + p_len:
        raise _corrupt(path, f"{len(body)} bytes after the header, the header says {m_len + p_len}")
    if zlib.crc32(body) != crc:
        raise _corrupt(path, "CRC-32 mismatch")
    try:
        manifest = json.loads(zlib.decompress(body[:m_len]).decode("utf-8"))
        payload = body[m_len:]
        if flags & _DEFLATED:
            payload = zlib.decompress(payload)
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("blobs"), list) \
            or not isinstance(manifest.get("arrays"), list):
        raise _corrupt(path, "the manifest lacks 'blobs' or 'arrays'")
    sizes, starts, total = {}, {}, 0
    for blob in manifest["blobs"]:
        if not (isinstance(blob, list) and len(blob) == 2 and blob[0] in _DTYPES and isinstance(blob[1], int)
                and blob[1] >= 0):
            raise _corrupt(path, f"bad blob entry {str(blob)[:80]}")
        sizes[blob[0]], starts[blob[0]] = blob[1], total
        total += blob[1]
    if total != len(payload):
        raise _corrupt(path, f"the blobs add up to {total} bytes, the payload holds {len(payload)}")
    state = OrderedDict()
    for entry in manifest["arrays"]:
        name, dtype, shape, offset = _check_entry(path, entry, sizes)
        count = int(np.prod(shape, dtype=np.int64))
        flat = np.frombuffer(payload, dtype=dtype.newbyteorder("<"), count=count, offset=starts[entry[1]] + offset)
        state[name] = flat.astype(dtype).reshape(shape)  # a native-order, writable copy
    return state, manifest.get("meta")
