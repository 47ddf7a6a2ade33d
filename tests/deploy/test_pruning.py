"""Pruning: global magnitude reaches the asked sparsity and keeps it through fine-tuning;
structured pruning shrinks layers and keeps the outputs of the kept units."""
import numpy as np
import pytest

import minidl
import minidl.functional as F
import minidl.nn as nn
from minidl.deploy import count_parameters, global_magnitude_prune, predict, remove_masks, sparsity, structured_prune
from minidl.models import MLP, LeNet5


@pytest.mark.parametrize("amount", [0.5, 0.8, 0.9])
def test_global_pruning_reaches_the_asked_sparsity_and_removes_the_smallest(amount):
    model = LeNet5(input_size=8)
    weights = np.concatenate([m.weight.data.ravel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
    masks = global_magnitude_prune(model, amount)
    assert sparsity(model) == pytest.approx(amount, abs=1e-3)
    kept = np.concatenate([m.weight.data.ravel() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))])
    assert np.abs(weights[kept == 0]).max() <= np.abs(weights[kept != 0]).min()  # global threshold
    assert set(masks) == {"features.0", "features.3", "classifier.0", "classifier.2", "classifier.4"}


def test_pruned_weights_stay_zero_through_fine_tuning(rng):
    model = MLP(10, (16,), 3)
    global_magnitude_prune(model, 0.7)
    X = minidl.tensor(rng.standard_normal((32, 10)).astype(np.float32))
    y = minidl.tensor(rng.integers(0, 3, 32))
    opt = minidl.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(10):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    model(X)  # the pre-hook re-applies the masks before each forward
    assert sparsity(model) >= 0.7 - 1e-3
    remove_masks(model)
    assert "weight_mask" not in dict(model.named_buffers()) and sparsity(model) >= 0.7 - 1e-3
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())


def test_pruning_again_prunes_further_and_masks_are_not_saved():
    model = MLP(8, (8,), 2)
    global_magnitude_prune(model, 0.5)
    global_magnitude_prune(model, 0.75)
    assert sparsity(model) == pytest.approx(0.75, abs=0.01)
    assert not any("mask" in k for k in model.state_dict())
    with pytest.raises(ValueError, match="amount"):
        global_magnitude_prune(model, 1.0)


def test_structured_pruning_shrinks_shapes_and_keeps_kept_units(rng):
    model = LeNet5(input_size=8)
    small = structured_prune(model, 0.5)
    assert small.features[0].weight.shape == (3, 1, 5, 5)
    assert small.features[3].weight.shape == (8, 3, 5, 5)
    assert small.classifier[0].weight.shape == (60, 8 * 2 * 2)
    assert small.classifier[4].weight.shape == (10, 42)  # the output layer keeps its classes
    assert count_parameters(small) < 0.35 * count_parameters(model)
    # the first layer's kept channels compute exactly what they did before
    X = rng.random((4, 1, 8, 8)).astype(np.float32)
    norms = np.abs(model.features[0].weight.data).reshape(6, -1).sum(1)
    keep = np.sort(np.argsort(-norms)[:3])
    full = model.features[0](minidl.tensor(X)).numpy()
    np.testing.assert_allclose(small.features[0](minidl.tensor(X)).numpy(), full[:, keep], rtol=1e-6)


def test_structured_pruning_of_dead_units_changes_no_output(rng):
    """Units whose weights and bias are zero contribute nothing; removing them is exact."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 6), nn.ReLU(), nn.Linear(6, 3))
    model.eval()
    for c in (1, 3):
        model[0].weight.data[c] = 0
        model[0].bias.data[c] = 0
        model[1].bias.data[c] = 0        # BN of a zero channel: (0 - mean)/std * g + b; make it 0 by mean 0
    for j in (0, 2, 5):
        model[4].weight.data[j] = 0
        model[4].bias.data[j] = 0
    X = rng.random((5, 1, 5, 5)).astype(np.float32)
    small = structured_prune(model, 0.5)
    assert small[0].out_channels == 2 and small[1].num_features == 2 and small[4].weight.shape == (3, 50)
    np.testing.assert_allclose(predict(small, X), predict(model, X), rtol=1e-5, atol=1e-6)


def test_structured_pruning_needs_a_chain():
    with pytest.raises(ValueError, match="two Linear/Conv2d"):
        structured_prune(nn.Sequential(nn.Linear(3, 2)), 0.5)
