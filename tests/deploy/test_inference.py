"""inference_mode records no graph; predict batches, restores modes and equals one big forward."""
import numpy as np
import pytest

import minidl
import minidl.nn as nn
from minidl.deploy import inference_mode, is_inference_mode, predict


def test_inference_mode_records_no_graph_and_nests():
    w = minidl.tensor(np.ones((3, 2)), requires_grad=True)
    with inference_mode():
        assert is_inference_mode() and not minidl.is_grad_enabled()
        with inference_mode():
            y = minidl.tensor(np.ones((1, 3))) @ w
        assert is_inference_mode()
        assert not y.requires_grad and y.creator is None
    assert not is_inference_mode() and minidl.is_grad_enabled()
    assert (minidl.tensor(np.ones((1, 3))) @ w).requires_grad


def test_inference_mode_as_decorator_and_disabled():
    @inference_mode()
    def f(w):
        return (w * 2).requires_grad

    w = minidl.tensor([1.0], requires_grad=True)
    assert f(w) is False
    with inference_mode(False):
        assert (w * 2).requires_grad and not is_inference_mode()


def test_predict_batches_equal_one_forward_and_restore_modes(rng):
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    X = rng.standard_normal((103, 5)).astype(np.float32)
    out = predict(model, X, batch_size=10)
    assert out.shape == (103, 3) and isinstance(out, np.ndarray)
    assert all(m.training for m in model.modules())
    model.eval()
    np.testing.assert_allclose(out, model(minidl.tensor(X)).numpy(), rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_predict_takes_several_inputs_and_checks_arguments(rng):
    class Two(nn.Module):
        def forward(self, a, b):
            return a * b

    a, b = rng.standard_normal((7, 2)), rng.standard_normal((7, 2))
    np.testing.assert_allclose(predict(Two(), (a, b), batch_size=3), a * b)
    with pytest.raises(ValueError, match="batch_size"):
        predict(Two(), (a, b), batch_size=0)


def test_batches_follow_the_model_device(rng):
    from minidl.deploy import batch_to, model_device

    model = nn.Linear(3, 2)
    assert str(model_device(model)) == "cpu" and str(model_device(lambda x: x)) == "cpu"
    x = rng.standard_normal((4, 3))
    t = batch_to(x, model)
    assert isinstance(t, minidl.Tensor) and t.device == model.weight.device
    np.testing.assert_array_equal(t.numpy(), x)
