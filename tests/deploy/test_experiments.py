"""The compress command: its help, and the training helper it uses."""
import numpy as np
import pytest

from minidl.cli import main as cli_main
from minidl.deploy import predict
from minidl.deploy.experiments import fit
from minidl.models import MLP


def test_compress_command_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["compress", "--help"])
    assert e.value.code == 0 and "--quick" in capsys.readouterr().out


def test_fit_lowers_the_loss_and_leaves_eval_mode(rng):
    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = MLP(5, (8,), 2)
    history = fit(model, X, y, epochs=15, lr=0.02, batch_size=20, progress=False)
    assert history[-1] < 0.5 * history[0] and not model.training
    assert np.mean(predict(model, X).argmax(1) == y) >= 0.9


@pytest.mark.slow
def test_compress_tiny_runs_end_to_end_without_touching_results(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    import benchmarks.report

    written = []
    monkeypatch.setattr(benchmarks.report, "write_section", lambda title, body: written.append(title))
    assert cli_main(["compress", "--tiny", "--no-write", "--no-progress", "--plots", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for section in ("## Compression (digits CNN)", "## Inference mode", "## Calibration", "## Adversarial robustness"):
        assert section in out
    assert "load_quantized identical: yes" in out and "eval mode, inference_mode()" in out
    assert (tmp_path / "calibration_reliability.png").exists()
    assert written == []
