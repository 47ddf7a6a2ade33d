"""Packed state-dict files: one blob per dtype, exact round trips, a size of the arrays'
bytes plus a small header, and clear errors for bad files (which return nothing)."""
import os
import struct
import zlib

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.deploy.packed import MAGIC, PACKED_VERSION, is_packed_file, load_packed, save_packed


def _state(rng):
    return {
        "w8": rng.integers(-127, 128, (6, 1, 5, 5)).astype(np.int8),
        "scale16": rng.random(6).astype(np.float16),
        "b32": rng.integers(-10**6, 10**6, 6).astype(np.int32),
        "zero_d": np.array(3.25, np.float32),
        "empty": np.zeros((0, 4), np.float64),
        "w8_b": rng.integers(-127, 128, (3, 7)).astype(np.int8),
        "transposed": np.arange(12.0).reshape(3, 4).T,  # not C-contiguous
        "flags": np.array([True, False, True]),
        "tensor": minidl.tensor(rng.standard_normal((2, 3)).astype(np.float32)),
    }


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip_keeps_names_order_dtypes_shapes_values_and_meta(compress, tmp_path, rng):
    state = _state(rng)
    meta = {"format": "test", "arch": {"name": "lenet", "sizes": [1, 2]}, "pi": 3.5}
    save_packed(state, tmp_path / "m.bin", meta, compress=compress)
    back, meta_back = load_packed(tmp_path / "m.bin")
    assert list(back) == list(state) and meta_back == meta
    for name, value in state.items():
        ref = value.numpy() if isinstance(value, minidl.Tensor) else value
        assert back[name].dtype == ref.dtype and back[name].shape == ref.shape, name
        np.testing.assert_array_equal(back[name], ref)
        assert back[name].flags.writeable and back[name].flags.c_contiguous
    assert is_packed_file(tmp_path / "m.bin")


def test_one_blob_per_dtype_and_only_a_small_header(tmp_path, rng):
    state = {f"layer{i}.weight": rng.integers(-127, 128, (20, 30)).astype(np.int8) for i in range(12)}
    state.update({f"layer{i}.scale": rng.random(20).astype(np.float32) for i in range(12)})
    path = save_packed(state, tmp_path / "m.bin")
    raw = open(path, "rb").read()
    _, _, flags, m_len, p_len, _ = struct.unpack_from("<8sBBIII", raw)
    manifest = zlib.decompress(raw[22:22 + m_len])
    import json

    blobs = json.loads(manifest)["blobs"]
    assert blobs == [["int8", 12 * 600], ["float32", 12 * 80]]
    assert p_len == 12 * 600 + 12 * 80 and flags == 0
    assert len(raw) - p_len < 300  # vs ~0.3 KiB per array in an .npz
    npz = os.path.getsize(minidl.save(state, tmp_path / "m.npz"))
    assert npz - p_len > 24 * 200


def test_deflate_shrinks_a_sparse_state(tmp_path):
    w = np.zeros((100, 100), np.float32)
    w[::10, ::10] = 1.0
    plain = os.path.getsize(save_packed({"w": w}, tmp_path / "a.bin"))
    packed = os.path.getsize(save_packed({"w": w}, tmp_path / "b.bin", compress=True))
    assert packed < plain / 20
    np.testing.assert_array_equal(load_packed(tmp_path / "b.bin")[0]["w"], w)


def test_a_module_state_dict_loads_back_into_the_module(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    save_packed(model.state_dict(), tmp_path / "m.bin")
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    other.load_state_dict(load_packed(tmp_path / "m.bin")[0])
    x = minidl.tensor(rng.random((2, 1, 4, 4)).astype(np.float32))
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


@pytest.mark.parametrize("damage,match", [
    (lambda raw: raw[:-5], "truncated or corrupted"),
    (lambda raw: raw[:15], "shorter than the 22-byte header"),
    (lambda raw: raw[:40] + bytes([raw[40] ^ 0xFF]) + raw[41:], "CRC-32 mismatch"),
    (lambda raw: raw + b"\0", "truncated or corrupted"),
    (lambda raw: b"PK\3\4" + raw[4:], "not a packed minidl file"),
    (lambda raw: raw[:8] + bytes([PACKED_VERSION + 1]) + raw[9:], "newer than the version"),
])
def test_bad_files_raise_a_clear_error(damage, match, tmp_path, rng):
    path = save_packed(_state(rng), tmp_path / "m.bin", {"a": 1})
    raw = open(path, "rb").read()
    assert raw.startswith(MAGIC)
    with open(path, "wb") as f:
        f.write(damage(raw))
    with pytest.raises(ValueError, match=match):
        load_packed(path)


def test_a_manifest_that_points_past_its_blob_is_refused(tmp_path):
    import json

    manifest = zlib.compress(json.dumps({"meta": None, "blobs": [["int8", 4]],
                                         "arrays": [["w", "int8", [2, 3], 0]]}).encode())
    payload = bytes(4)
    body = manifest + payload
    header = struct.pack("<8sBBIII", MAGIC, PACKED_VERSION, 0, len(manifest), len(payload), zlib.crc32(body))
    (tmp_path / "m.bin").write_bytes(header + body)
    with pytest.raises(ValueError, match="runs past its blob"):
        load_packed(tmp_path / "m.bin")


def test_bad_values_are_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "m.bin"
    save_packed({"w": np.ones(3, np.float32)}, target)
    before = target.read_bytes()
    with pytest.raises(TypeError, match="'s' is a str"):
        save_packed({"w": np.zeros(2), "s": "text"}, target)
    with pytest.raises(TypeError, match="dtype object"):
        save_packed({"o": np.array([None, 1], dtype=object)}, target)
    with pytest.raises(TypeError, match="meta must be plain JSON"):
        save_packed({"w": np.zeros(2)}, target, meta={"f": float("nan")})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.bin"]  # no temporary file left behind
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_packed(tmp_path / "missing.bin")
