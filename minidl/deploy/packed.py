"""Packed state-dict files: every array of one stored dtype in ONE contiguous blob.

``minidl.save`` writes one ``.npy`` entry per array (a zip entry plus a 128-byte header
each, ~0.3 KiB), which is nothing for a large model and a lot for a 21k-parameter one
whose int8 weights take 21 KiB. A packed file (format version 2) stores instead

    header   b"MINIDLPK", version (uint8), flags (uint8: bit 0 = payload deflated),
             manifest length m (uint32 LE), payload length p (uint32 LE), CRC-32 of
             everything after the header (uint32 LE)                        22 bytes
    manifest m bytes: zlib-deflated UTF-8 JSON
             {"meta": <any JSON>, "blobs": [[stored dtype, nbytes], ...],
              "arrays": [[name, dtype, shape] or [name, dtype, shape, stored dtype], ...]}
    payload  p bytes: the blobs one after another (in "blobs" order), little-endian; the
             arrays lie in their stored dtype's blob one after another in "arrays" order,
             each C-contiguous; zlib-deflated (level 9) when flag bit 0 is set

Two things keep the file small:

* narrowing: an integer array is stored in the smallest integer dtype that holds every
  one of its values exactly (int8, uint8, int16, ...; the fourth field of its entry) and
  read back in its own dtype. An int8 model's int32 biases in accumulator units fit in
  int16 when |b_q| < 32768, its zero points in int8; nothing is rounded, so a round trip
  is bit for bit;
* deflate (``compress=True``, the default): Huffman coding of the bytes. Trained int8
  weights are not uniform over [-127, 127] (most codes are small), so their entropy is
  below 8 bits and deflate takes a few percent off them; sparse (pruned) weights shrink
  far more; bytes that deflate cannot shrink are kept plain. ``compress=False`` writes
  the blobs as they are.

An int8 model is then one int8 blob (weights and zero points), one int16 blob (the biases
that fit; the others stay int32), one float16 or float32 blob (weight scales) and one
float32 blob (input scales), and the file is those bytes, deflated, plus a few hundred
bytes of header and manifest.

Loading never runs code from the file (``json``, ``zlib`` and ``numpy.frombuffer`` only)
and checks everything first (magic, version, lengths, CRC, each entry's dtypes, shape and
bounds, and that the arrays fill their blobs exactly; a deflated payload is never
inflated past the bytes the manifest declares), so a truncated or corrupted file raises
a ``ValueError`` that says which, and nothing is returned half-read. Files of
format version 1 (explicit byte offsets, no narrowing) still load. Writes are atomic
(``minidl.serialization.atomic_write``).
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

__all__ = ["save_packed", "load_packed", "is_packed_file", "narrow_integer_dtype", "PACKED_VERSION"]

MAGIC = b"MINIDLPK"
PACKED_VERSION = 2
_HEADER = struct.Struct("<8sBBIII")  # magic, version, flags, manifest bytes, payload bytes, crc32
_DEFLATED = 1
_DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
           "float16", "float32", "float64", "complex64", "complex128")
_MAX_MANIFEST = 1 << 26  # bytes a manifest (names, shapes, meta) may inflate to
_NARROW = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")  # by item size


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


def narrow_integer_dtype(a: np.ndarray) -> np.dtype:
    """The smallest integer dtype (int8, uint8, int16, uint16, ...) holding every value of
    the integer array ``a`` exactly; ``a.dtype`` itself for other dtypes, empty arrays, or
    when nothing smaller fits."""
    if a.dtype.kind not in "iu" or a.size == 0:
        return a.dtype
    lo, hi = int(a.min()), int(a.max())
    for name in _NARROW:
        info = np.iinfo(name)
        if np.dtype(name).itemsize >= a.dtype.itemsize:
            break
        if info.min <= lo and hi <= info.max:
            return np.dtype(name)
    return a.dtype


def save_packed(state: dict, path: str | os.PathLike, meta: Any = None, compress: bool = True,
                narrow: bool = True) -> str:
    """Write the arrays of ``state`` ({name: array or Tensor}, e.g. a ``state_dict()``),
    grouped by stored dtype into one blob each, plus ``meta`` (any JSON value), to ``path``.

    ``narrow=True`` stores each integer array in the smallest integer dtype that holds its
    values exactly (``narrow_integer_dtype``); ``load_packed`` gives it back in its own
    dtype. ``compress=True`` deflates the payload (zlib level 9) unless that would make it
    larger (then it is stored plain, flag bit 0 unset). Returns the path written.
    Raises ``TypeError`` for a value that is not a numeric array, before writing anything.
    """
    arrays = [(str(k), _as_numpy(str(k), v)) for k, v in state.items()]
    blobs: dict[str, list[bytes]] = {}  # stored dtype -> bytes, in order of first appearance
    entries = []
    for name, a in arrays:
        stored = narrow_integer_dtype(a) if narrow else a.dtype
        entry = [name, a.dtype.name, list(a.shape)]
        if stored != a.dtype:
            entry.append(stored.name)
            a = a.astype(stored.newbyteorder("<"))  # exact: every value fits
        entries.append(entry)
        blobs.setdefault(stored.name, []).append(a.tobytes())
    manifest = {"meta": meta, "blobs": [[d, sum(map(len, parts))] for d, parts in blobs.items()],
                "arrays": entries}
    try:
        text = json.dumps(manifest, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_packed: meta must be plain JSON (dicts, lists, str, finite numbers): {e}") from None
    m = zlib.compress(text.encode("utf-8"), 9)
    payload = b"".join(b"".join(parts) for parts in blobs.values())
    flags = 0
    if compress:
        deflated = zlib.compress(payload, 9)
        if len(deflated) < len(payload):  # bytes that deflate cannot shrink (e.g. uniform codes) stay as they are
            payload, flags = deflated, _DEFLATED
    crc = zlib.crc32(payload, zlib.crc32(m))
    header = _HEADER.pack(MAGIC, PACKED_VERSION, flags, len(m), len(payload), crc)
    return atomic_write(path, lambda f: (f.write(header), f.write(m), f.write(payload)))


def is_packed_file(path: str | os.PathLike) -> bool:
    """True when ``path`` starts with the packed-file magic bytes."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _corrupt(path: str, why: str) -> ValueError:
    return ValueError(f"load_packed: {path!r} is truncated or corrupted ({why})")


def _inflate(path: str, data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress ``data``, refusing (before allocating more) a stream that inflates
    past ``limit`` bytes, e.g. a crafted file that would fill the memory."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        raise _corrupt(path, f"the {what} does not inflate: {e}") from None
    if len(out) > limit:
        raise _corrupt(path, f"the {what} inflates past the {limit} bytes it may take")
    if not inflater.eof or inflater.unused_data:
        raise _corrupt(path, f"the {what}'s deflate stream is incomplete or followed by extra bytes")
    return out


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)


def _entries_v1(path: str, arrays: list, sizes: dict) -> list[tuple[str, str, tuple, str, int]]:
    """Version 1 entries [name, dtype, shape, byte offset]: stored as saved, at that offset."""
    out = []
    for entry in arrays:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and entry[1] in sizes
                and _is_shape(entry[2]) and isinstance(entry[3], int) and entry[3] >= 0):
            raise _corrupt(path, f"bad manifest entry {str(entry)[:80]}")
        out.append((entry[0], entry[1], tuple(entry[2]), entry[1], entry[3]))
    return out


def _entries_v2(path: str, arrays: list, sizes: dict) -> list[tuple[str, str, tuple, str, int]]:
    """Version 2 entries [name, dtype, shape(, stored dtype)]: laid one after another in
    their stored dtype's blob, which they must fill exactly."""
    out, used = [], dict.fromkeys(sizes, 0)
    for entry in arrays:
        ok = (isinstance(entry, list) and len(entry) in (3, 4) and isinstance(entry[0], str)
              and entry[1] in _DTYPES and _is_shape(entry[2]))
        stored = entry[3] if ok and len(entry) == 4 else entry[1] if ok else None
        if not ok or stored not in sizes or (stored != entry[1] and not (entry[1] in _NARROW and stored in _NARROW)):
            raise _corrupt(path, f"bad manifest entry {str(entry)[:80]}")
        out.append((entry[0], entry[1], tuple(entry[2]), stored, used[stored]))
        used[stored] += int(np.prod(entry[2], dtype=np.int64)) * np.dtype(stored).itemsize
    for dtype, size in sizes.items():
        if used[dtype] != size:
            raise _corrupt(path, f"the arrays stored as {dtype} take {used[dtype]} bytes, their blob holds {size}")
    return out


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
    if version < 1:
        raise _corrupt(path, f"format version {version}")
    body = raw[_HEADER.size:]
    if len(body) != m_len + p_len:
        raise _corrupt(path, f"{len(body)} bytes after the header, the header says {m_len + p_len}")
    if zlib.crc32(body) != crc:
        raise _corrupt(path, "CRC-32 mismatch")
    try:
        manifest = json.loads(_inflate(path, body[:m_len], _MAX_MANIFEST, "manifest").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, f"{type(e).__name__}: {e}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("blobs"), list) \
            or not isinstance(manifest.get("arrays"), list):
        raise _corrupt(path, "the manifest lacks 'blobs' or 'arrays'")
    sizes, starts, total = {}, {}, 0
    for blob in manifest["blobs"]:
        if not (isinstance(blob, list) and len(blob) == 2 and blob[0] in _DTYPES and isinstance(blob[1], int)
                and blob[1] >= 0 and blob[0] not in sizes):
            raise _corrupt(path, f"bad blob entry {str(blob)[:80]}")
        sizes[blob[0]], starts[blob[0]] = blob[1], total
        total += blob[1]
    payload = body[m_len:]
    if flags & _DEFLATED:  # never inflated past the bytes the manifest declares
        payload = _inflate(path, payload, total, "payload")
    if total != len(payload):
        raise _corrupt(path, f"the blobs add up to {total} bytes, the payload holds {len(payload)}")
    entries = (_entries_v1 if version == 1 else _entries_v2)(path, manifest["arrays"], sizes)
    state = OrderedDict()
    for name, dtype, shape, stored, offset in entries:
        count = int(np.prod(shape, dtype=np.int64))
        if offset + count * np.dtype(stored).itemsize > sizes[stored]:
            raise _corrupt(path, f"array {name!r} {shape} {stored} at byte {offset} runs past its blob")
        flat = np.frombuffer(payload, dtype=np.dtype(stored).newbyteorder("<"), count=count,
                             offset=starts[stored] + offset)
        state[name] = flat.astype(dtype).reshape(shape)  # a native-order, writable copy in the saved dtype
    return state, manifest.get("meta")
