"""Int8 quantization: per-channel weights, int32 accumulation verified against exact integer
arithmetic, outputs close to float, and quantization-aware training with a straight-through
estimator."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.deploy import (FakeQuantize, QATConv2d, QATLinear, QuantizedConv2d, QuantizedLinear, activation_qparams,
                           convert_qat, fake_quantize, predict, prepare_qat, quantize_affine, quantize_model, quantize_per_channel)


def test_per_channel_weights_use_the_full_int8_range(rng):
    w = rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * np.array([0.01, 1, 10, 100], np.float32)[:, None, None, None]
    q, s = quantize_per_channel(w)
    assert q.dtype == np.int8 and s.shape == (4,)
    assert np.all(np.abs(q.reshape(4, -1)).max(axis=1) == 127)
    err = np.abs(q * s[:, None, None, None] - w).reshape(4, -1).max(axis=1)
    assert np.all(err <= s / 2 + 1e-7)  # rounding error at most half a step, per channel


def test_zero_point_represents_zero_exactly():
    s, z = activation_qparams(-0.3, 2.0)
    q0 = quantize_affine(np.zeros(3, np.float32), s, z)
    assert np.all(q0 == z) and np.all((q0.astype(np.int32) - z) * s == 0.0) and -128 <= z <= 127
    q = quantize_affine(np.array([-0.3, 2.0], np.float32), s, z)
    assert list(q) == [-128, 127]
    s, z = activation_qparams(0.5, 2.0)  # widened to include 0
    assert z == -128


def test_linear_int32_accumulation_is_exact(rng):
    layer = nn.Linear(50, 7)
    x = rng.standard_normal((9, 50)).astype(np.float32)
    q = QuantizedLinear.from_float(layer, float(x.min()), float(x.max()))
    xq = q.quantize_input(x)
    acc = q.accumulate(xq)
    assert xq.dtype == np.int8 and acc.dtype == np.int32
    w = q.weight_int8.data.astype(np.int64)
    exact = (xq.astype(np.int64) - int(q.input_zero_point.data)) @ w.T
    np.testing.assert_array_equal(acc, exact)


def test_conv_int32_accumulation_is_exact(rng):
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2)
    x = rng.standard_normal((2, 4, 7, 7)).astype(np.float32)
    q = QuantizedConv2d.from_float(layer, float(x.min()), float(x.max()))
    xq = q.quantize_input(x)
    acc = q.accumulate(xq)
    assert acc.dtype == np.int32
    # the exact integer convolution of (x_q - z) with W_q, computed in float64 (exact for these sizes)
    centred = (xq.astype(np.float64) - int(q.input_zero_point.data))
    exact = F.conv2d(minidl.tensor(centred), minidl.tensor(q.weight_int8.data.astype(np.float64)), None,
                     2, 1, 1, 2).numpy()
    np.testing.assert_array_equal(acc, exact.astype(np.int64))


@pytest.mark.parametrize("make,shape", [(lambda: nn.Linear(30, 5), (16, 30)),
                                        (lambda: nn.Conv2d(3, 4, 3, padding=1), (4, 3, 6, 6)),
                                        (lambda: nn.Conv2d(2, 3, (3, 2), stride=(2, 1), dilation=(1, 2)), (3, 2, 8, 8))])
def test_quantized_outputs_are_close_to_float(make, shape, rng):
    layer = make()
    x = rng.standard_normal(shape).astype(np.float32)
    q = quantize_model(layer, x)
    ref = layer(minidl.tensor(x)).numpy()
    got = q(minidl.tensor(x)).numpy()
    # measured: error about 1% of the output range with 8-bit inputs and weights
    assert np.abs(got - ref).max() <= 0.02 * np.abs(ref).max()


def test_quantize_model_swaps_layers_keeps_order_and_quarter_size(rng):
    from minidl.models import LeNet5

    model = LeNet5(input_size=8)
    X = rng.random((64, 1, 8, 8)).astype(np.float32)
    q = quantize_model(model, X)
    assert [type(m).__name__ for m in q.features] == ["QuantizedConv2d", "ReLU", "MaxPool2d", "QuantizedConv2d",
                                                      "ReLU", "MaxPool2d"]
    assert isinstance(model.features[0], nn.Conv2d)  # the original is untouched
    f_bytes = sum(v.nbytes for v in model.state_dict().values())
    q_bytes = sum(v.nbytes for v in q.state_dict().values())
    assert q_bytes < 0.3 * f_bytes
    a, b = predict(model, X), predict(q, X)
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.95


def test_fake_quantize_straight_through_gradient():
    x = minidl.tensor(np.array([-3.0, -0.26, 0.0, 0.49, 1.0, 5.0]), requires_grad=True)
    y = fake_quantize(x, 0.5, 0, -2, 2)   # representable range [-1, 1]
    np.testing.assert_array_equal(y.numpy(), [-1.0, -0.5, 0.0, 0.5, 1.0, 1.0])
    gy = np.arange(1.0, 7.0)
    y.backward(minidl.tensor(gy))
    np.testing.assert_array_equal(x.grad.numpy(), gy * np.array([0, 1, 1, 1, 1, 0]))
    assert isinstance(y.creator, FakeQuantize)


def test_qat_trains_and_converts_to_int8(rng):
    X = rng.standard_normal((128, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    qat = prepare_qat(model, X)
    assert isinstance(qat[0], QATLinear) and isinstance(model[0], nn.Linear)
    opt = minidl.optim.Adam(qat.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(qat(minidl.tensor(X)), minidl.tensor(y))
        loss.backward()
        opt.step()
    int8 = convert_qat(qat)
    assert isinstance(int8[0], QuantizedLinear)
    acc = np.mean(predict(int8, X).argmax(1) == y)
    assert acc >= 0.9
    np.testing.assert_allclose(predict(int8, X), predict(qat, X), atol=0.05 * np.abs(predict(qat, X)).max())


def test_qat_conv_wrapper_runs(rng):
    qat = prepare_qat(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()))
    assert isinstance(qat[0], QATConv2d)
    out = qat(minidl.tensor(rng.random((2, 1, 5, 5)).astype(np.float32)))
    assert out.shape == (2, 2, 3, 3)
    out.sum().backward()
    assert qat[0].layer.weight.grad is not None


def test_bias_is_int32_in_accumulator_units_within_half_a_step(rng):
    from minidl.deploy import quantize_bias

    layer = nn.Linear(20, 6)
    x = rng.standard_normal((5, 20)).astype(np.float32)
    q = QuantizedLinear.from_float(layer, float(x.min()), float(x.max()))
    step = q.input_scale.data * q.weight_scale.data
    b = layer.bias.numpy()
    assert q.bias_int32.data.dtype == np.int32
    np.testing.assert_array_equal(q.bias_int32.data, np.rint(b.astype(np.float64) / step.astype(np.float64)))
    np.testing.assert_array_equal(quantize_bias(b, q.input_scale.data, q.weight_scale.data), q.bias_int32.data)
    assert np.all(np.abs(q.dequantized_bias() - b) <= 0.5 * step * (1 + 1e-6))
    # y = s_x s_w (acc + b_q): the float-bias formula to within half a step per channel
    acc = q.accumulate(q.quantize_input(x))
    with_float_bias = acc * step + b
    assert np.all(np.abs(q(minidl.tensor(x)).numpy() - with_float_bias) <= 0.5 * step * (1 + 1e-5) + 1e-6)


def test_float16_scales_are_exact_in_float16_and_clip_no_weight(rng):
    w = rng.standard_normal((8, 40)).astype(np.float32) * np.logspace(-6, 1, 8, dtype=np.float32)[:, None]
    q, s = quantize_per_channel(w, scale_dtype="float16")
    assert s.dtype == np.float16
    s32 = s.astype(np.float32)
    assert np.all(s32 >= np.abs(w).max(axis=1) / 127)  # rounded up: no weight beyond 127 steps
    err = np.abs(q * s32[:, None] - w).max(axis=1)
    assert np.all(err <= s32 / 2 * (1 + 1e-6))
    with pytest.raises(ValueError, match="scale_dtype"):
        quantize_per_channel(w, scale_dtype="int8")
    with pytest.raises(ValueError, match="overflows a float16 scale"):
        quantize_per_channel(np.full((1, 2), 1e7, np.float32), scale_dtype="float16")


def test_float16_scale_model_stays_close_to_the_float32_scale_model(rng):
    from minidl.models import LeNet5

    model = LeNet5(input_size=8)
    X = rng.random((64, 1, 8, 8)).astype(np.float32)
    q32, q16 = quantize_model(model, X), quantize_model(model, X, scale_dtype="float16")
    assert q16.features[0].weight_scale.data.dtype == np.float16
    a, b = predict(q32, X), predict(q16, X)
    assert np.abs(a - b).max() <= 0.02 * np.abs(a).max()
    with pytest.raises(ValueError, match="scale_dtype"):
        quantize_model(model, X, scale_dtype="bf16")


def test_quantized_layer_checks_its_buffers():
    with pytest.raises(TypeError, match="weights must be int8"):
        QuantizedLinear(np.zeros((2, 3), np.float32), np.ones(2, np.float32), None, 0.1, 0)
    with pytest.raises(ValueError, match=r"weight_scale must be float32 or float16 of shape \(2,\)"):
        QuantizedLinear(np.zeros((2, 3), np.int8), np.ones(3, np.float32), None, 0.1, 0)
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        QuantizedLinear(np.zeros((2, 3), np.int8), np.ones(2, np.float32), np.zeros(3), 0.1, 0)


def test_fake_quantize_keeps_no_backward_mask_when_nothing_is_recorded():
    x = minidl.tensor(np.linspace(-2, 2, 9), requires_grad=True)
    f = FakeQuantize(0.5, 0, -2, 2)
    with minidl.no_grad():
        y = f(x)
    assert not hasattr(f, "mask") and y.creator is None
    np.testing.assert_array_equal(y.numpy(), fake_quantize(x, 0.5, 0, -2, 2).numpy())
