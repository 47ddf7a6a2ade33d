"""ONNX export: every supported layer checked against onnxruntime (float32, 1e-5), with a
batch size other than the example's; custom forwards; unsupported layers/ops refused by
name with no file written."""
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export tests need the onnx package")
ort = pytest.importorskip("onnxruntime", reason="ONNX export tests need onnxruntime to run the files")

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.nn as nn  # noqa: E402
from minidl.models import MLP, LeNet5  # noqa: E402
from minidl.onnx import OnnxExportError, export  # noqa: E402


def _f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _with_stats(model, rng):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.data[...] = rng.standard_normal(m.num_features)
            m.running_var.data[...] = rng.random(m.num_features) + 0.5
            m.weight.data[...] = rng.standard_normal(m.num_features)
            m.bias.data[...] = rng.standard_normal(m.num_features)
    return model


# name -> (model factory, example input shape or int-sampler, input shape for the second run)
CASES = {
    "Linear": (lambda: nn.Linear(5, 3), (4, 5), (7, 5)),
    "Linear_no_bias_3d": (lambda: nn.Linear(5, 3, bias=False), (4, 2, 5), (6, 2, 5)),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 2, 7, 7), (5, 2, 7, 7)),
    "Conv2d_groups_dilation": (lambda: nn.Conv2d(4, 6, (3, 2), padding=2, dilation=2, groups=2), (2, 4, 7, 6), (3, 4, 7, 6)),
    "Conv2d_same": (lambda: nn.Conv2d(2, 2, 3, padding="same"), (2, 2, 5, 5), (3, 2, 5, 5)),
    "ConvTranspose2d": (lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 2, 4, 4), (3, 2, 4, 4)),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 2, 7, 7), (3, 2, 7, 7)),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), (2, 3, 6, 6), (4, 3, 6, 6)),
    "AvgPool2d_pad_excluded": (lambda: nn.AvgPool2d(3, 1, 1, count_include_pad=False), (2, 3, 5, 5), (1, 3, 5, 5)),
    "AdaptiveAvgPool2d_global": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 5, 4), (3, 3, 5, 4)),
    "AdaptiveAvgPool2d_2x2": (lambda: nn.AdaptiveAvgPool2d(2), (2, 3, 6, 4), (3, 3, 6, 4)),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (4, 3, 5, 5), (2, 3, 5, 5)),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), (4, 3), (9, 3)),
    "LayerNorm": (lambda: nn.LayerNorm((3, 4)), (2, 3, 4), (5, 3, 4)),
    "Dropout": (lambda: nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), (3, 4), (6, 4)),
    "Flatten": (lambda: nn.Flatten(), (2, 3, 2, 2), (4, 3, 2, 2)),
    "Flatten_2_3": (lambda: nn.Flatten(2, 3), (2, 3, 2, 2), (4, 3, 2, 2)),
    "ReLU": (lambda: nn.ReLU(), (3, 6), (5, 6)),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.2), (3, 6), (5, 6)),
    "GELU": (lambda: nn.GELU(), (3, 6), (5, 6)),
    "GELU_tanh": (lambda: nn.GELU("tanh"), (3, 6), (5, 6)),
    "Sigmoid": (lambda: nn.Sigmoid(), (3, 6), (5, 6)),
    "Tanh": (lambda: nn.Tanh(), (3, 6), (5, 6)),
    "ELU": (lambda: nn.ELU(0.7), (3, 6), (5, 6)),
    "SiLU": (lambda: nn.SiLU(), (3, 6), (5, 6)),
    "Softplus": (lambda: nn.Softplus(), (3, 6), (5, 6)),
    "Softplus_beta": (lambda: nn.Softplus(beta=2.0), (3, 6), (5, 6)),
    "Hardtanh": (lambda: nn.Hardtanh(-0.5, 0.5), (3, 6), (5, 6)),
    "Softmax": (lambda: nn.Softmax(dim=1), (3, 6), (5, 6)),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=-1), (3, 6), (5, 6)),
    "LeNet5": (lambda: LeNet5(input_size=8), (4, 1, 8, 8), (9, 1, 8, 8)),
    "MLP": (lambda: MLP(16, (8, 8), 3, dropout=0.2, activation="gelu"), (4, 1, 4, 4), (2, 1, 4, 4)),
}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_export_matches_onnxruntime_with_another_batch_size(name, tmp_path, rng):
    make, shape, shape2 = CASES[name]
    model = _with_stats(make(), rng)
    path = export(model, _f32(rng, *shape), tmp_path / "m.onnx")
    onnx.checker.check_model(onnx.load(path), full_check=True)
    x2 = _f32(rng, *shape2)
    model.eval()
    expected = model(minidl.tensor(x2)).numpy()
    got = _run(path, x2)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_embedding_export_takes_int64_ids(tmp_path, rng):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
    path = export(model, rng.integers(0, 10, (2, 3)), tmp_path / "e.onnx")
    ids = rng.integers(0, 10, (5, 3))
    np.testing.assert_allclose(_run(path, ids), model(minidl.tensor(ids)).numpy(), rtol=1e-5, atol=1e-5)


class Residual(nn.Module):
    """A forward with ops between layers: concat, add, mul by a parameter, reshape, transpose, matmul."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 3)
        self.b = nn.Linear(4, 3)
        self.scale = nn.Parameter(np.linspace(0.5, 2.0, 6).astype(np.float32))
        self.proj = nn.Parameter(np.ones((3, 3), np.float32) * 0.1)

    def forward(self, x):
        h = minidl.concat([self.a(x), F.relu(self.b(x))], axis=1) * self.scale
        h = h.reshape(h.shape[0], 2, 3).transpose(0, 2, 1)   # (N, 3, 2)
        h = F.tanh(h) + 1.0
        z = h.transpose(0, 2, 1) @ self.proj                 # (N, 2, 3)
        return F.log_softmax(z - F.sigmoid(z) / 2.0, axis=-1)


def test_custom_forward_ops_are_traced(tmp_path, rng):
    model = Residual()
    path = export(model, _f32(rng, 5, 4), tmp_path / "r.onnx")
    x = _f32(rng, 8, 4)
    np.testing.assert_allclose(_run(path, x), model(minidl.tensor(x)).numpy(), rtol=1e-5, atol=1e-5)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"Concat", "Reshape", "Transpose", "MatMul", "LogSoftmax", "Gemm"} <= ops


def test_static_batch_export_fixes_the_batch_dimension(tmp_path, rng):
    path = export(nn.Linear(3, 2), _f32(rng, 4, 3), tmp_path / "s.onnx", dynamic_batch=False)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [4, 3]
    dyn = export(nn.Linear(3, 2), _f32(rng, 4, 3), tmp_path / "d.onnx")
    assert onnx.load(dyn).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_export_restores_training_mode_and_grad_flags(tmp_path, rng):
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Dropout(0.5))
    model[0].weight.requires_grad = False
    export(model, _f32(rng, 4, 3), tmp_path / "m.onnx")
    assert all(m.training for m in model.modules())
    assert model[0].weight.requires_grad is False and model[0].bias.requires_grad is True
    assert int(model[1].num_batches_tracked.data) == 0  # traced in eval mode: running stats untouched


@pytest.mark.parametrize("layer,name", [(lambda: nn.LSTM(4, 4, batch_first=True), "LSTM"),
                                        (lambda: nn.MultiheadAttention(4, 2), "MultiheadAttention"),
                                        (lambda: nn.Bilinear(4, 4, 2), "Bilinear")])
def test_unsupported_layer_is_named_and_nothing_is_written(layer, name, tmp_path, rng):
    model = nn.Sequential(nn.Linear(4, 4), layer())
    path = tmp_path / "bad.onnx"
    with pytest.raises(OnnxExportError, match=name):
        export(model, _f32(rng, 2, 4), path)
    assert not path.exists() and os.listdir(tmp_path) == []


class MaxOverFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(x).max(axis=1)


def test_unsupported_op_is_named_and_nothing_is_written(tmp_path, rng):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"previous")
    with pytest.raises(OnnxExportError, match="op Max"):
        export(MaxOverFeatures(), _f32(rng, 2, 4), path)
    assert path.read_bytes() == b"previous"


def test_batch_norm_without_running_stats_is_refused(tmp_path, rng):
    with pytest.raises(OnnxExportError, match="track_running_stats"):
        export(nn.BatchNorm1d(3, track_running_stats=False), _f32(rng, 4, 3), tmp_path / "b.onnx")


def test_layer_computing_outside_the_graph_is_refused(tmp_path, rng):
    from minidl.deploy import quantize_model

    X = _f32(rng, 8, 4)
    int8 = quantize_model(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), X)
    with pytest.raises(OnnxExportError, match="QuantizedLinear computes its output outside"):
        export(int8, X, tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()
