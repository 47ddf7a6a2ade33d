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


def test_inference_mode_is_exported_lazily_from_minidl():
    assert minidl.inference_mode is inference_mode and minidl.predict is predict


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


def _model():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Dropout(0.3), nn.Flatten(), nn.Linear(16, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3))


def _live_functions() -> int:
    import gc

    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), minidl.Function))  # (type(): no lazy-module lookups)


def _module_state(model):
    return [(name, sorted(vars(m)), [(k, id(v), None if v is None else v.data.copy())
                                      for k, v in m._buffers.items()]) for name, m in model.named_modules()]


def test_inference_mode_forward_keeps_no_function_no_grad_and_no_new_layer_state(rng):
    model = _model().eval()
    x = minidl.tensor(rng.standard_normal((5, 2, 4, 4)).astype(np.float32))
    state = _module_state(model)
    before = _live_functions()
    with inference_mode():
        y = model(x)
    assert y.creator is None and not y.requires_grad
    assert _live_functions() == before  # nothing recorded stays alive with the output
    assert all(p.grad is None for p in model.parameters())
    after = _module_state(model)
    assert [(n, keys) for n, keys, _ in after] == [(n, keys) for n, keys, _ in state]
    for (_, _, bufs_a), (_, _, bufs_b) in zip(after, state):
        for (k, ida, va), (k2, idb, vb) in zip(bufs_a, bufs_b):
            assert k == k2 and ida == idb
            np.testing.assert_array_equal(va, vb)
    y_graph = model(x)  # the same forward with recording on: the check above can fail
    assert y_graph.creator is not None and _live_functions() > before
    np.testing.assert_allclose(y.numpy(), y_graph.numpy(), rtol=1e-6, atol=1e-7)


def test_inference_mode_output_holds_only_its_own_memory(rng):
    from minidl.deploy.experiments import held_bytes

    x = minidl.tensor(rng.standard_normal((64, 2, 8, 8)).astype(np.float32))
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3)).eval()

    def run_inference():
        with inference_mode():
            return model(x)

    out_bytes = 64 * 3 * 4
    held_inference = held_bytes(run_inference)
    held_graph = held_bytes(lambda: model(x))
    assert held_inference < out_bytes + 4096
    assert held_graph > 64 * 4 * 64 * 4  # the graph keeps at least the conv output (N, 4, 8, 8) float32
