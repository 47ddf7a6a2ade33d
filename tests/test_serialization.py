"""minidl.save / minidl.load: round trips for every layer type, optimizers and schedulers;
bad files (truncated, corrupted, wrong kind, newer version) are refused and change nothing."""
import json
from collections import Counter, OrderedDict
import os
import zipfile

import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl import optim
from minidl.optim import lr_scheduler
from minidl.serialization import FORMAT_VERSION, load, save

LAYERS = {
    "Linear": lambda: nn.Linear(4, 3),
    "Bilinear": lambda: nn.Bilinear(3, 2, 4),
    "Conv2d": lambda: nn.Conv2d(2, 3, 3, groups=1),
    "ConvTranspose2d": lambda: nn.ConvTranspose2d(2, 3, 3, stride=2),
    "BatchNorm1d": lambda: nn.BatchNorm1d(5),
    "BatchNorm2d": lambda: nn.BatchNorm2d(3),
    "LayerNorm": lambda: nn.LayerNorm((2, 3)),
    "Embedding": lambda: nn.Embedding(7, 3),
    "RNN": lambda: nn.RNN(3, 4, num_layers=2, batch_first=True),
    "LSTM": lambda: nn.LSTM(3, 4, batch_first=True),
    "GRU": lambda: nn.GRU(3, 4, batch_first=True),
    "MultiheadAttention": lambda: nn.MultiheadAttention(8, 2, batch_first=True),
    "TransformerEncoderLayer": lambda: nn.TransformerEncoderLayer(8, 2, 16, batch_first=True),
    "Sequential": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)),
}


def _randomize(module: nn.Module, rng) -> None:
    for _, p in list(module.named_parameters()) + list(module.named_buffers()):
        if p.data.dtype.kind == "f":
            p.data[...] = rng.standard_normal(p.data.shape).astype(p.data.dtype)
        else:
            p.data[...] = rng.integers(0, 100, p.data.shape)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_state_dict_round_trip_for_every_layer_type(name, tmp_path, rng):
    src, dst = LAYERS[name](), LAYERS[name]()
    _randomize(src, rng)
    save(src.state_dict(), tmp_path / "m.npz")
    dst.load_state_dict(load(tmp_path / "m.npz"))
    a, b = src.state_dict(), dst.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k])


def test_nested_values_come_back_with_their_types(tmp_path):
    obj = {"a": np.arange(6, dtype=np.int32).reshape(2, 3), 3: [1, 2.5, "x", None, True],
           "t": (np.float32(1.5), float("inf")), "tensor": minidl.tensor([1.0, 2.0]),
           "nested": {"deep": [np.zeros((0, 2), np.float64)]}}
    obj["counter"] = Counter([2, 2, 5])
    obj["ordered"] = OrderedDict([("z", 1), ("a", 2)])
    out = load(save(obj, tmp_path / "o.npz"))
    assert type(out["counter"]) is Counter and out["counter"] == Counter([2, 2, 5])
    assert type(out["ordered"]) is OrderedDict and list(out["ordered"]) == ["z", "a"]
    assert out["a"].dtype == np.int32 and out["a"].shape == (2, 3)
    assert out[3] == [1, 2.5, "x", None, True]
    assert isinstance(out["t"], tuple) and out["t"][0] == np.float32(1.5) and out["t"][0].dtype == np.float32
    assert out["t"][1] == float("inf")
    np.testing.assert_array_equal(out["tensor"], [1.0, 2.0])
    assert out["nested"]["deep"][0].shape == (0, 2)


def _train_steps(model, opt, sched, steps, x, y):
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()


@pytest.mark.parametrize("make", [
    lambda p: (optim.Adam(p, lr=0.01, amsgrad=True), lambda o: lr_scheduler.StepLR(o, 2, 0.5)),
    lambda p: (optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True), lambda o: lr_scheduler.CosineAnnealingLR(o, 5)),
    lambda p: (optim.RMSprop(p, lr=0.01, centered=True), lambda o: lr_scheduler.ExponentialLR(o, 0.9)),
    lambda p: (optim.AdamW(p, lr=0.01), lambda o: lr_scheduler.MultiStepLR(o, [2, 4, 5], 0.5)),
    lambda p: (optim.Adagrad(p, lr=0.1), lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 0.5, total_iters=2), lr_scheduler.StepLR(o, 2)], milestones=[2])),
])
def test_optimizer_and_scheduler_resume_bit_for_bit(make, tmp_path, rng):
    x = minidl.tensor(rng.standard_normal((8, 3)))
    y = minidl.tensor(rng.standard_normal((8, 2)))

    def build():
        minidl.manual_seed(1)
        model = nn.Linear(3, 2).double()
        opt, sched_of = make(model.parameters())
        return model, opt, sched_of(opt)

    m1, o1, s1 = build()
    _train_steps(m1, o1, s1, 6, x, y)

    m2, o2, s2 = build()
    _train_steps(m2, o2, s2, 3, x, y)
    save({"model": m2.state_dict(), "optim": o2.state_dict(), "sched": s2.state_dict()}, tmp_path / "ck.npz")
    m3, o3, s3 = build()
    ck = load(tmp_path / "ck.npz")
    m3.load_state_dict(ck["model"])
    o3.load_state_dict(ck["optim"])
    s3.load_state_dict(ck["sched"])
    _train_steps(m3, o3, s3, 3, x, y)
    for k, v in m1.state_dict().items():
        np.testing.assert_array_equal(v, m3.state_dict()[k])
    assert o1.param_groups[0]["lr"] == o3.param_groups[0]["lr"]


def _model_and_file(tmp_path, rng):
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    _randomize(model, rng)
    other = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    path = save(other.state_dict(), tmp_path / "w.npz")
    return model, path


def _assert_unchanged(model, before):
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_truncated_file_raises_and_leaves_model_unchanged(tmp_path, rng):
    model, path = _model_and_file(tmp_path, rng)
    before = model.state_dict()
    data = open(path, "rb").read()
    for cut in (len(data) // 2, len(data) - 30, 10):
        open(path, "wb").write(data[:cut])
        with pytest.raises(ValueError, match="truncated or corrupted"):
            model.load_state_dict(load(path))
    _assert_unchanged(model, before)


def test_corrupted_bytes_raise(tmp_path, rng):
    model, path = _model_and_file(tmp_path, rng)
    before = model.state_dict()
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle:middle + 40] = b"\xff" * 40
    open(path, "wb").write(bytes(data))
    with pytest.raises(ValueError):
        model.load_state_dict(load(path))
    _assert_unchanged(model, before)


def test_wrong_kind_of_file_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a minidl save"):
        load(text)
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(3))
    with pytest.raises(ValueError, match="not a minidl save"):
        load(plain)


def _rewrite_manifest(path, change):
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    manifest = json.loads(entries["__minidl__"].tobytes())
    change(manifest)
    entries["__minidl__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(path, **entries)


def test_newer_format_version_is_refused(tmp_path, rng):
    model, path = _model_and_file(tmp_path, rng)
    before = model.state_dict()
    _rewrite_manifest(path, lambda m: m.update(version=FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="newer"):
        model.load_state_dict(load(path))
    _assert_unchanged(model, before)


def test_missing_array_is_reported(tmp_path):
    path = save({"w": np.ones(3), "v": np.zeros(2)}, tmp_path / "x.npz")
    with np.load(path) as z:
        entries = {k: z[k] for k in z.files if k != "a1"}
    np.savez(path, **entries)
    with pytest.raises(ValueError, match="corrupted"):
        load(path)


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = save({"w": np.ones(3)}, tmp_path / "ck.npz")
    with pytest.raises(TypeError, match="cannot save a object"):
        save({"w": np.zeros(3), "bad": object()}, path)
    np.testing.assert_array_equal(load(path)["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]  # no temporary left behind


def test_saving_a_module_itself_is_refused_with_advice(tmp_path):
    with pytest.raises(TypeError, match="state_dict"):
        save(nn.Linear(2, 2), tmp_path / "m.npz")
    assert not os.path.exists(tmp_path / "m.npz")


def test_file_is_a_plain_npz_readable_without_pickle(tmp_path):
    path = save({"w": np.arange(3.0)}, tmp_path / "p.npz")
    assert zipfile.is_zipfile(path)
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == ["__minidl__", "a0"]


def test_compressed_files_are_smaller_for_sparse_weights(tmp_path):
    w = np.zeros((200, 200), np.float32)
    w[::10, ::10] = 1
    plain = os.path.getsize(save({"w": w}, tmp_path / "a.npz"))
    small = os.path.getsize(save({"w": w}, tmp_path / "b.npz", compress=True))
    assert small < plain / 10
    np.testing.assert_array_equal(load(tmp_path / "b.npz")["w"], w)


def test_minidl_exports_save_and_load():
    assert minidl.save is save and minidl.load is load
