"""ONNX import: minidl -> ONNX -> minidl round trips give the same outputs; a model exported
by PyTorch runs and fine-tunes here; unsupported ops are named."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX import tests need the onnx package")

import minidl  # noqa: E402
import minidl.functional as F  # noqa: E402
import minidl.nn as nn  # noqa: E402
import minidl.optim  # noqa: E402
from minidl.onnx import GraphModule, OnnxImportError, export, load  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy ONNX exporter

_spec = importlib.util.spec_from_file_location("onnx_export_cases", Path(__file__).with_name("test_export.py"))
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)
CASES, Residual, _with_stats = _cases.CASES, _cases.Residual, _cases._with_stats


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_gives_the_same_outputs(name, tmp_path, rng):
    make, shape, shape2 = CASES[name]
    model = _with_stats(make(), rng)
    path = export(model, rng.standard_normal(shape).astype(np.float32), tmp_path / "m.onnx")
    back = load(path)
    assert isinstance(back, GraphModule) and not back.training
    x = rng.standard_normal(shape2).astype(np.float32)
    model.eval()
    np.testing.assert_allclose(back(minidl.tensor(x)).numpy(), model(minidl.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)


def test_round_trip_of_custom_forward_and_embedding(tmp_path, rng):
    model = Residual()
    back = load(export(model, rng.standard_normal((3, 4)).astype(np.float32), tmp_path / "r.onnx"))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    np.testing.assert_allclose(back(minidl.tensor(x)).numpy(), model(minidl.tensor(x)).numpy(), rtol=1e-6, atol=1e-6)
    emb = nn.Sequential(nn.Embedding(9, 3), nn.Flatten(), nn.Linear(6, 2))
    back = load(export(emb, rng.integers(0, 9, (2, 2)), tmp_path / "e.onnx"))
    ids = rng.integers(0, 9, (4, 2))
    np.testing.assert_allclose(back(minidl.tensor(ids)).numpy(), emb(minidl.tensor(ids)).numpy(), rtol=1e-6)


def test_weighted_nodes_become_minidl_layers_with_the_same_weights(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    back = load(export(model, rng.standard_normal((2, 1, 4, 4)).astype(np.float32), tmp_path / "m.onnx"))
    kinds = [type(m).__name__ for m in back.layers.values()]
    assert kinds == ["Conv2d", "BatchNorm2d", "Linear"]
    np.testing.assert_array_equal(list(back.layers.values())[2].weight.data, model[4].weight.data)
    assert back.num_parameters() == model.num_parameters()


def _torch_model():
    torch = pytest.importorskip("torch", reason="the PyTorch-exported-model tests need torch")
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.LayerNorm(8), torch.nn.GELU(), torch.nn.Linear(8, 3),
    )


def test_model_exported_by_pytorch_runs_the_same_here(tmp_path, rng):
    import torch

    tm = _torch_model()
    with torch.no_grad():  # make the batch norm statistics non-trivial
        tm[1].running_mean.normal_()
        tm[1].running_var.uniform_(0.5, 2.0)
    tm.eval()
    path = tmp_path / "torch.onnx"
    torch.onnx.export(tm, torch.randn(2, 1, 4, 4), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    model = load(path)
    x = rng.standard_normal((5, 1, 4, 4)).astype(np.float32)
    with torch.no_grad():
        expected = tm(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(minidl.tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_imported_model_fine_tunes(tmp_path, rng):
    tm = _torch_model().eval()
    import torch

    path = tmp_path / "torch.onnx"
    torch.onnx.export(tm, torch.randn(2, 1, 4, 4), str(path), dynamo=False, opset_version=17,
                      dynamic_axes={"input": {0: "n"}}, input_names=["input"])
    model = load(path).train()
    x = minidl.tensor(rng.standard_normal((16, 1, 4, 4)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 3, 16))
    opt = minidl.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0]


def test_unsupported_onnx_op_is_named(tmp_path):
    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["x"], ["r"], name="ok"), h.make_node("Cos", ["r"], ["y"], name="cosine")],
                         "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    with pytest.raises(OnnxImportError, match=r"Cos \(node 'cosine'\)"):
        load(model)


def test_copies_and_quantization_of_an_imported_model_use_their_own_layers(tmp_path, rng):
    import copy

    from minidl.deploy import QuantizedConv2d, QuantizedLinear, predict, quantize_model

    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4))
    back = load(export(model, rng.random((2, 1, 4, 4)).astype(np.float32), tmp_path / "m.onnx"))
    X = rng.random((8, 1, 4, 4)).astype(np.float32)
    clone = copy.deepcopy(back)
    for p in clone.parameters():
        p.data[...] = 0
    np.testing.assert_allclose(predict(back, X), predict(model, X), rtol=1e-6)
    assert np.all(predict(clone, X) == 0)
    q = quantize_model(back, X)
    assert {type(m) for m in q.layers.values()} == {QuantizedConv2d, QuantizedLinear}
    ref = predict(model, X)
    assert np.abs(predict(q, X) - ref).max() < 0.03 * np.abs(ref).max()
