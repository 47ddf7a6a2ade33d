"""The export and quantize commands on small checkpoints; checkpoint architecture inference."""
import os

import numpy as np
import pytest

import minidl
from minidl.cli import main as cli_main
from minidl.deploy import predict
from minidl.deploy.checkpoint import infer_arch, load_model, load_quantized, save_model
from minidl.models import MLP, LeNet5


def test_export_command_writes_a_checked_onnx_file(tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="the export command compares with onnxruntime")
    model = LeNet5(input_size=8)
    minidl.save(model.state_dict(), tmp_path / "lenet.npz")  # a bare state dict
    out = tmp_path / "lenet.onnx"
    assert cli_main(["export", str(tmp_path / "lenet.npz"), "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and "batch 5: max |difference|" in text


def test_export_command_for_an_mlp_with_static_batch(tmp_path, capsys):
    pytest.importorskip("onnx", reason="export needs onnx")
    save_model(MLP(64, (16,), 10, dropout=0.3), tmp_path / "mlp.npz")
    out = tmp_path / "mlp.onnx"
    assert cli_main(["export", str(tmp_path / "mlp.npz"), "--onnx", str(out), "--static-batch", "--batch", "2",
                     "--no-check"]) == 0
    import onnx

    assert [d.dim_value for d in onnx.load(out).graph.input[0].type.tensor_type.shape.dim] == [2, 64]


def test_quantize_command_writes_a_loadable_int8_model(tmp_path, capsys):
    model = LeNet5(input_size=8)
    save_model(model, tmp_path / "f.npz")
    out = tmp_path / "q.npz"
    assert cli_main(["quantize", str(tmp_path / "f.npz"), "--out", str(out), "--num-calibration", "64"]) == 0
    assert "int8" in capsys.readouterr().out
    from minidl.deploy.packed import is_packed_file

    assert is_packed_file(out)
    q = load_quantized(out)
    X = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    ref = predict(model, X)
    assert np.abs(predict(q, X) - ref).max() < 0.05 * np.abs(ref).max()


def test_commands_have_help(capsys):
    for command in ("export", "quantize"):
        with pytest.raises(SystemExit) as e:
            cli_main([command, "--help"])
        assert e.value.code == 0
    assert "--onnx" in capsys.readouterr().out


@pytest.mark.parametrize("model", [LeNet5(input_size=8), LeNet5(input_size=28, channels=(4, 8)),
                                   MLP(10, (7, 5), 3), MLP(10, (6,), 2, dropout=0.5)])
def test_architecture_is_inferred_from_a_bare_state_dict(model, tmp_path):
    minidl.save(model.state_dict(), tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    assert type(back) is type(model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)


def test_unknown_state_dict_is_refused():
    with pytest.raises(ValueError, match="neither a LeNet5"):
        infer_arch({"encoder.weight": np.zeros((2, 2))})


@pytest.mark.parametrize("compress", [False, True])
def test_packed_int8_checkpoint_reloads_with_identical_outputs_and_few_extra_bytes(compress, tmp_path, rng):
    from minidl.deploy import quantize_model
    from minidl.deploy.checkpoint import save_quantized

    model = LeNet5(input_size=8)
    X = rng.random((32, 1, 8, 8)).astype(np.float32)
    q = quantize_model(model, X, scale_dtype="float16")
    path = save_quantized(q, infer_arch(model.state_dict()), tmp_path / "q.bin", compress=compress)
    back = load_quantized(path)
    np.testing.assert_array_equal(predict(back, X), predict(q, X))
    for (k, v), (k2, v2) in zip(q.state_dict().items(), back.state_dict().items()):
        assert k == k2 and v.dtype == v2.dtype
        np.testing.assert_array_equal(v, v2)
    arrays = sum(v.nbytes for v in q.state_dict().values())
    assert os.path.getsize(path) <= arrays + 600  # header + deflated manifest with the architecture


def test_int8_checkpoint_in_the_earlier_npz_layout_still_loads(tmp_path, rng):
    from minidl.deploy import quantize_model

    model = LeNet5(input_size=8)
    X = rng.random((32, 1, 8, 8)).astype(np.float32)
    q = quantize_model(model, X)
    float_state = model.state_dict()
    old = {}  # the earlier layout kept the float32 biases under "bias"
    for k, v in q.state_dict().items():
        if k.endswith(".bias_int32"):
            old[k[:-len("_int32")]] = float_state[k[:-len("_int32")]]
        else:
            old[k] = v
    minidl.save({"format": "minidl.int8", "arch": infer_arch(model.state_dict()), "model": old}, tmp_path / "q.npz")
    back = load_quantized(tmp_path / "q.npz")
    np.testing.assert_array_equal(predict(back, X), predict(q, X))
    with pytest.raises(ValueError, match="not an int8 model"):
        minidl.save({"format": "other"}, tmp_path / "x.npz")
        load_quantized(tmp_path / "x.npz")
