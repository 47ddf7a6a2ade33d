"""The export and quantize commands on small checkpoints; checkpoint architecture inference."""
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
