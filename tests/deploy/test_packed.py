"""Packed state-dict files: one blob per stored dtype, integer arrays narrowed to the
smallest exact dtype, deflate, exact round trips, a size of the arrays' bytes plus a small
header, clear errors for bad files (which return nothing), and the int8 digits LeNet at a
quarter of its float32 ``minidl.save`` file."""
import json
import os
import struct
import zlib

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.deploy.packed import (MAGIC, PACKED_VERSION, is_packed_file, load_packed, narrow_integer_dtype,
                                  save_packed)


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


def _manifest(path):
    raw = open(path, "rb").read()
    _, version, flags, m_len, p_len, _ = struct.unpack_from("<8sBBIII", raw)
    return json.loads(zlib.decompress(raw[22:22 + m_len])), flags, p_len


@pytest.mark.parametrize("compress,narrow", [(False, False), (False, True), (True, False), (True, True)])
def test_round_trip_keeps_names_order_dtypes_shapes_values_and_meta(compress, narrow, tmp_path, rng):
    state = _state(rng)
    meta = {"format": "test", "arch": {"name": "lenet", "sizes": [1, 2]}, "pi": 3.5}
    save_packed(state, tmp_path / "m.bin", meta, compress=compress, narrow=narrow)
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
    path = save_packed(state, tmp_path / "m.bin", compress=False)
    raw = open(path, "rb").read()
    manifest, flags, p_len = _manifest(path)
    blobs = manifest["blobs"]
    assert blobs == [["int8", 12 * 600], ["float32", 12 * 80]]
    assert p_len == 12 * 600 + 12 * 80 and flags == 0
    assert len(raw) - p_len < 300  # vs ~0.3 KiB per array in an .npz
    npz = os.path.getsize(minidl.save(state, tmp_path / "m.npz"))
    assert npz - p_len > 24 * 200


def test_deflate_shrinks_a_sparse_state(tmp_path):
    w = np.zeros((100, 100), np.float32)
    w[::10, ::10] = 1.0
    plain = os.path.getsize(save_packed({"w": w}, tmp_path / "a.bin", compress=False))
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


def _handmade(path, version, blobs, arrays, payload, meta=None, flags=0):
    """A packed file written byte by byte (here: the test's own writer, not save_packed's)."""
    manifest = zlib.compress(json.dumps({"meta": meta, "blobs": blobs, "arrays": arrays}).encode())
    body = manifest + payload
    header = struct.pack("<8sBBIII", MAGIC, version, flags, len(manifest), len(payload), zlib.crc32(body))
    path.write_bytes(header + body)
    return path


def test_a_version_1_manifest_that_points_past_its_blob_is_refused(tmp_path):
    path = _handmade(tmp_path / "m.bin", 1, [["int8", 4]], [["w", "int8", [2, 3], 0]], bytes(4))
    with pytest.raises(ValueError, match="runs past its blob"):
        load_packed(path)


@pytest.mark.parametrize("arrays,match", [
    ([["w", "int8", [2, 3]]], "take 6 bytes, their blob holds 8"),            # blob not filled
    ([["w", "int8", [3, 3]]], "take 9 bytes, their blob holds 8"),            # runs past the blob
    ([["w", "int32", [2, 2], "int8"], ["v", "int8", [5]]], "take 9 bytes"),
    ([["w", "float32", [2], "int8"], ["v", "int8", [6]]], "bad manifest entry"),  # floats are never narrowed
    ([["w", "int8", [8], "int16"]], "bad manifest entry"),                    # no int16 blob
    ([["w", "int8", [-8]]], "bad manifest entry"),
])
def test_a_version_2_manifest_that_does_not_fill_its_blobs_exactly_is_refused(arrays, match, tmp_path):
    path = _handmade(tmp_path / "m.bin", 2, [["int8", 8]], arrays, bytes(8))
    with pytest.raises(ValueError, match=match):
        load_packed(path)


@pytest.mark.parametrize("payload,match", [
    (lambda: zlib.compress(bytes(20_000_000), 9), "inflates past the 8 bytes"),  # 20 KB inflating to 20 MB
    (lambda: zlib.compress(bytes(8)) + b"tail", "followed by extra bytes"),
    (lambda: zlib.compress(bytes(8))[:-3], "incomplete"),
    (lambda: b"not deflate at all", "does not inflate"),
])
def test_a_deflated_payload_is_checked_against_the_declared_blobs_before_it_is_inflated(payload, match, tmp_path):
    path = _handmade(tmp_path / "m.bin", 2, [["int8", 8]], [["w", "int8", [8]]], payload(), flags=1)
    with pytest.raises(ValueError, match=match):
        load_packed(path)
    ok = _handmade(tmp_path / "ok.bin", 2, [["int8", 8]], [["w", "int8", [8]]], zlib.compress(bytes(8)), flags=1)
    np.testing.assert_array_equal(load_packed(ok)[0]["w"], np.zeros(8, np.int8))


def test_a_version_1_file_still_loads(tmp_path, rng):
    w = rng.integers(-127, 128, (3, 4)).astype(np.int8)
    b = np.array([70000, -3, 5], np.int32)
    s = rng.random(3).astype(np.float16)
    payload = w.tobytes() + b.astype("<i4").tobytes() + s.astype("<f2").tobytes()
    path = _handmade(tmp_path / "v1.bin", 1, [["int8", 12], ["int32", 12], ["float16", 6]],
                     [["w", "int8", [3, 4], 0], ["b", "int32", [3], 0], ["s", "float16", [3], 0]], payload,
                     meta={"format": "minidl.int8"})
    state, meta = load_packed(path)
    assert list(state) == ["w", "b", "s"] and meta == {"format": "minidl.int8"}
    for name, ref in (("w", w), ("b", b), ("s", s)):
        assert state[name].dtype == ref.dtype
        np.testing.assert_array_equal(state[name], ref)


@pytest.mark.parametrize("values,dtype,narrowed", [
    ([-3997, 1602, 0], np.int32, np.int16), ([-128, 127], np.int32, np.int8), ([0, 200], np.int32, np.uint8),
    ([0, 40000], np.int32, np.uint16), ([-1, 40000], np.int32, np.int32), ([-2**40, 1], np.int64, np.int64),
    ([2**63 + 5], np.uint64, np.uint64), ([0, 2**31], np.uint64, np.uint32), ([1, 2], np.int8, np.int8),
    ([], np.int32, np.int32), ([1.0, 2.0], np.float32, np.float32), ([True], np.bool_, np.bool_),
])
def test_narrow_integer_dtype_is_the_smallest_that_holds_every_value(values, dtype, narrowed):
    a = np.array(values, dtype)
    got = narrow_integer_dtype(a)
    assert got == np.dtype(narrowed)
    np.testing.assert_array_equal(a.astype(got).astype(dtype), a)


def test_integer_arrays_are_stored_narrowed_and_read_back_in_their_own_dtype(tmp_path):
    state = {"w": np.array([-127, 3, 127], np.int8), "bias": np.array([-3997, 1602, 31000], np.int32),
             "zero_point": np.array(-128, np.int32), "wide": np.array([-70000, 70000], np.int32),
             "steps": np.array(12, np.int64), "scale": np.array([0.5, 0.25], np.float16)}
    path = save_packed(state, tmp_path / "m.bin", compress=False)
    manifest, _, p_len = _manifest(path)
    stored = {e[0]: (e[3] if len(e) == 4 else e[1]) for e in manifest["arrays"]}
    assert stored == {"w": "int8", "bias": "int16", "zero_point": "int8", "wide": "int32", "steps": "int8",
                      "scale": "float16"}
    assert manifest["blobs"] == [["int8", 3 + 1 + 1], ["int16", 6], ["int32", 8], ["float16", 4]]
    assert p_len == 5 + 6 + 8 + 4
    back, _ = load_packed(path)
    for name, ref in state.items():
        assert back[name].dtype == ref.dtype and back[name].shape == ref.shape
        np.testing.assert_array_equal(back[name], ref)
    plain = save_packed(state, tmp_path / "plain.bin", compress=False, narrow=False)
    assert _manifest(plain)[2] == 3 + 12 + 4 + 8 + 8 + 4


def _int8_lenet(rng, epochs=0):
    """A LeNet5 for 8x8 digits (trained ``epochs`` epochs on them) and its int8 copy."""
    from minidl.deploy import quantize_model
    from minidl.models import LeNet5
    from minidl.train.demo import digits_splits

    X_tr, _, X_te, y_tr, _, y_te = digits_splits(0)
    minidl.manual_seed(0)
    model = LeNet5(input_size=8)
    if epochs:
        from minidl.deploy.experiments import fit

        fit(model, X_tr, y_tr, epochs, progress=False)
    return model, quantize_model(model, X_tr[:256], scale_dtype="float16"), X_te, y_te


@pytest.mark.parametrize("compress", [False, True])
def test_int8_model_round_trip_is_bit_exact_and_narrower_than_its_arrays(compress, tmp_path, rng):
    from minidl.deploy import predict
    from minidl.deploy.checkpoint import infer_arch, load_quantized, save_quantized

    model, q, X, _ = _int8_lenet(rng)
    path = save_quantized(q, infer_arch(model.state_dict(), 8), tmp_path / "q.bin", compress=compress)
    back = load_quantized(path)
    np.testing.assert_array_equal(predict(back, X), predict(q, X))
    for (k, v), (k2, v2) in zip(q.state_dict().items(), back.state_dict().items()):
        assert k == k2 and v.dtype == v2.dtype
        np.testing.assert_array_equal(v, v2)
    manifest, flags, p_len = _manifest(path)
    assert compress or flags == 0
    stored = {e[0]: e[3] if len(e) == 4 else e[1] for e in manifest["arrays"]}
    sd = q.state_dict()
    for k, v in sd.items():  # int32 biases in int16 where |b_q| < 2^15 (here: the two convolutions)
        fits = v.dtype.kind == "i" and np.abs(v.astype(np.int64)).max() < 2**15
        assert stored[k] == (narrow_integer_dtype(v).name if fits else v.dtype.name), k
    assert stored["features.0.bias_int32"] == "int16" and stored["features.0.input_zero_point"] == "int8"
    if not compress:
        assert p_len == sum(v.size * np.dtype(stored[k]).itemsize for k, v in sd.items())


def test_deflate_shrinks_int8_weights_with_a_peaked_distribution(tmp_path, rng):
    from minidl.deploy import quantize_per_channel

    w_q, scale = quantize_per_channel(rng.standard_normal((64, 256)).astype(np.float32), scale_dtype="float16")
    state = {"weight_int8": w_q, "weight_scale": scale}
    plain = os.path.getsize(save_packed(state, tmp_path / "a.bin", compress=False))
    packed = os.path.getsize(save_packed(state, tmp_path / "b.bin"))  # compress=True is the default
    codes = np.unique(w_q, return_counts=True)[1] / w_q.size
    entropy_bytes = w_q.size * float(-(codes * np.log2(codes)).sum()) / 8
    assert entropy_bytes < 0.95 * w_q.nbytes  # Gaussian weights: their codes carry ~7.4 bits each
    assert entropy_bytes < packed < 0.95 * plain  # deflate gets most of it, never past the entropy
    back, _ = load_packed(tmp_path / "b.bin")
    np.testing.assert_array_equal(back["weight_int8"], w_q)
    uniform = {"weight_int8": rng.integers(-127, 128, (64, 256)).astype(np.int8)}  # 8 bits each: no gain
    plain = os.path.getsize(save_packed(uniform, tmp_path / "c.bin", compress=False))
    assert os.path.getsize(save_packed(uniform, tmp_path / "d.bin")) == plain  # kept plain, not grown
    assert _manifest(tmp_path / "d.bin")[1] == 0
    np.testing.assert_array_equal(load_packed(tmp_path / "d.bin")[0]["weight_int8"], uniform["weight_int8"])


@pytest.mark.parametrize("damage", [lambda raw: raw[:len(raw) // 2], lambda raw: raw[:-1],
                                    lambda raw: raw[:100] + bytes([raw[100] ^ 1]) + raw[101:]])
def test_a_damaged_int8_file_raises_and_leaves_the_target_model_unchanged(damage, tmp_path, rng):
    from minidl.deploy.checkpoint import infer_arch, load_quantized, save_quantized

    model, q, _, _ = _int8_lenet(rng)
    path = save_quantized(q, infer_arch(model.state_dict(), 8), tmp_path / "q.bin", compress=True)
    raw = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(damage(raw))
    with pytest.raises(ValueError, match="truncated or corrupted"):
        load_quantized(path)
    before = {k: v.copy() for k, v in q.state_dict().items()}  # the int8 model a caller would overwrite
    with pytest.raises(ValueError, match="truncated or corrupted"):
        q.load_state_dict(load_packed(path)[0])
    for k, v in q.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.slow
def test_int8_digits_lenet_file_is_at_most_a_quarter_of_the_float32_minidl_save_file(tmp_path, rng):
    """Issue 10's size goal, measured on real files: the digits LeNet trained 10 epochs
    (seeded, about a second), quantized with float16 scales and saved by save_quantized
    (narrowed, deflated) vs its float32 state dict saved by minidl.save. Not a timing: a
    seeded run's file sizes move by tens of bytes at most (float rounding in training),
    and the bound is ~200 bytes away (0.248x when written; plain or unnarrowed files are
    0.254x and 0.251x, so the test fails without either step). The accuracy goal is
    checked too: int8 within 1 point of float32."""
    from minidl.deploy import predict
    from minidl.deploy.checkpoint import infer_arch, load_quantized, save_quantized

    model, q, X_te, y_te = _int8_lenet(rng, epochs=10)
    float_file = os.path.getsize(minidl.save(model.state_dict(), tmp_path / "f.npz"))
    int8_path = save_quantized(q, infer_arch(model.state_dict(), 8), tmp_path / "q.bin", compress=True)
    assert os.path.getsize(int8_path) <= 0.25 * float_file
    plain = os.path.getsize(save_quantized(q, infer_arch(model.state_dict(), 8), tmp_path / "p.bin", compress=False))
    assert os.path.getsize(int8_path) < plain
    acc_f = np.mean(predict(model, X_te).argmax(1) == y_te)
    acc_q = np.mean(predict(load_quantized(int8_path), X_te).argmax(1) == y_te)
    assert acc_f > 0.9 and abs(acc_q - acc_f) <= 0.01


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


def test_quantize_command_writes_a_deflated_file_by_default_and_a_plain_one_with_no_compress(tmp_path, capsys):
    from minidl.cli import main as cli_main
    from minidl.deploy import predict
    from minidl.deploy.checkpoint import load_quantized, save_model
    from minidl.models import LeNet5

    save_model(LeNet5(input_size=8), tmp_path / "f.npz")
    outs = {}
    for name, extra in (("default", []), ("plain", ["--no-compress"])):
        outs[name] = tmp_path / f"{name}.bin"
        assert cli_main(["quantize", str(tmp_path / "f.npz"), "--out", str(outs[name]),
                         "--num-calibration", "32"] + extra) == 0
    text = capsys.readouterr().out
    assert "(deflated)" in text and "(plain)" in text and "vs the float32 minidl.save file" in text
    assert _manifest(outs["default"])[1] == 1 and _manifest(outs["plain"])[1] == 0
    assert os.path.getsize(outs["default"]) < os.path.getsize(outs["plain"])
    X = np.random.default_rng(0).random((8, 1, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(predict(load_quantized(outs["default"]), X), predict(load_quantized(outs["plain"]), X))
