"""Fine-tuning tools: freezing through a full optimizer step, per-group learning rates,
gradual unfreezing, feature hooks, head replacement, and their errors."""
import re

import numpy as np
import pytest

import minidl
import minidl.functional as F
from minidl import nn
from minidl.models import MLP, VGG, ResNet, resnet
from minidl.optim import SGD, Adam
from minidl.transfer import (FeatureExtractor, GradualUnfreezing, freeze, param_groups_by_depth,
                             param_groups_by_module, replace_head, trainable_parameters, unfreeze)


def _snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _train_step(model, opt, rng, shape=(6, 1, 8, 8), classes=10):
    x = minidl.tensor(rng.standard_normal(shape).astype(np.float32))
    y = rng.integers(0, classes, size=shape[0])
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
])
def test_frozen_parameters_receive_no_update_through_a_full_step(make_opt, rng):
    model = VGG("vgg_tiny", input_size=8, batch_norm=False)
    opt = make_opt(model.parameters())        # the optimizer holds every parameter
    _train_step(model, opt, rng)                # momentum / moments exist for all of them now
    frozen = freeze(model, "features")
    assert frozen == ["features.0.weight", "features.0.bias", "features.3.weight", "features.3.bias"]
    before = _snapshot(model)
    for _ in range(2):
        _train_step(model, opt, rng)
    after = model.state_dict()
    for k in before:
        if k.startswith("features"):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
            assert model.get_parameter(k).grad is None
        else:
            assert not np.array_equal(after[k], before[k]), f"{k} should still train"


def test_unfreeze_trains_again_and_patterns_select_by_name(rng):
    model = ResNet((1, 1), (4, 8))
    names = freeze(model)
    assert len(names) == len(list(model.parameters())) and trainable_parameters(model) == []
    assert unfreeze(model, "layer2.*.bn?.*") == ["layer2.0.bn1.weight", "layer2.0.bn1.bias",
                                                  "layer2.0.bn2.weight", "layer2.0.bn2.bias"]
    assert unfreeze(model, re.compile(r"^fc\.")) == ["fc.weight", "fc.bias"]
    assert unfreeze(model, model.layer1) == [n for n, _ in model.named_parameters() if n.startswith("layer1.")]
    trainable = {id(p) for p in trainable_parameters(model)}
    for name, p in model.named_parameters():
        expected = name.startswith(("layer1.", "fc.")) or (name.startswith("layer2.0.bn"))
        assert (id(p) in trainable) == expected == p.requires_grad, name
    # a module pattern covers every parameter below it, a list unions
    assert freeze(model, ["fc", "conv1"]) == ["conv1.weight", "fc.weight", "fc.bias"]


def test_freezing_a_name_that_matches_nothing_is_a_clear_error():
    model = MLP(4, (8,), 3)
    with pytest.raises(ValueError, match=r"freeze: pattern 'encoder\.\*' matches no parameter or module of MLP; "
                                         r"parameters: '1\.weight'"):
        freeze(model, "encoder.*")
    with pytest.raises(ValueError, match="unfreeze: regex 'nothing' matches no parameter"):
        unfreeze(model, re.compile("nothing"))
    with pytest.raises(ValueError, match="is not part of MLP"):
        freeze(model, nn.Linear(2, 2))
    with pytest.raises(TypeError, match="a pattern must be"):
        freeze(model, 3)
    assert all(p.requires_grad for p in model.parameters())      # nothing changed on error


def test_param_groups_get_their_own_learning_rates():
    model = VGG("vgg_tiny", input_size=8, batch_norm=False)
    groups = param_groups_by_depth(model, base_lr=0.1, decay=0.5)
    assert [g["lr"] for g in groups] == [0.05, 0.1]       # features, classifier
    opt = SGD(groups, lr=1.0)
    for p in model.parameters():
        p.grad = minidl.tensor(np.ones(p.shape, dtype=np.float32))
    before = _snapshot(model)
    opt.step()
    after = model.state_dict()
    for k in before:       # theta <- theta - lr * 1: each block moved by its own lr
        lr = 0.05 if k.startswith("features") else 0.1
        np.testing.assert_allclose(before[k] - after[k], lr, rtol=1e-5, err_msg=k)

    r = resnet(8, width=2)
    by_depth = param_groups_by_depth(r, 1.0, 0.5, blocks=["conv1", "bn1", "layer1", "layer2", "layer3", "fc"])
    assert [g["lr"] for g in by_depth] == [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0]
    by_module = param_groups_by_module(r, {"fc": 1e-2, "layer3": 1e-3}, default_lr=1e-4)
    assert [g["lr"] for g in by_module] == [1e-2, 1e-3, 1e-4]
    assert sum(len(g["params"]) for g in by_module) == len(list(r.parameters()))
    opt = Adam(by_module, lr=5.0)
    assert [g["lr"] for g in opt.param_groups] == [1e-2, 1e-3, 1e-4]
    with pytest.raises(ValueError, match="no module named 'head'"):
        param_groups_by_module(r, {"head": 1e-2})
    with pytest.raises(ValueError, match="decay must be in"):
        param_groups_by_depth(r, 1.0, 0.0)


def test_gradual_unfreezing_trains_one_more_block_each_epoch(rng):
    model = VGG("vgg_tiny", input_size=8, batch_norm=False)
    blocks = ["features.0", "features.3", "classifier.0", "classifier.2"]
    schedule = GradualUnfreezing(model, blocks=blocks, every=1)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    seen = []
    for epoch in range(5):
        before = _snapshot(model)
        _train_step(model, opt, rng)
        after = model.state_dict()
        seen.append([b for b in blocks if not np.array_equal(after[b + ".weight"], before[b + ".weight"])])
        assert seen[-1] == schedule.trainable_blocks
        schedule.step()
    assert seen == [blocks[3:], blocks[2:], blocks[1:], blocks, blocks]
    state = schedule.state_dict()
    fresh = GradualUnfreezing(model, blocks=blocks)
    assert fresh.trainable_blocks == blocks[3:]
    fresh.load_state_dict(state)
    assert fresh.trainable_blocks == blocks


def test_feature_extractor_returns_the_named_layer_outputs_and_can_be_removed(rng):
    model = VGG("vgg_tiny", input_size=8, batch_norm=False).eval()
    x = minidl.tensor(rng.standard_normal((3, 1, 8, 8)).astype(np.float32))
    fe = FeatureExtractor(model, ["features.2", "classifier.1"])
    feats = fe(x)
    assert list(feats) == ["features.2", "classifier.1"]
    expected_pool = model.features[:3](x).numpy()
    np.testing.assert_allclose(feats["features.2"].numpy(), expected_pool, rtol=1e-6)
    h = model.features(x).reshape(3, -1)
    np.testing.assert_allclose(feats["classifier.1"].numpy(), model.classifier[:2](h).numpy(), rtol=1e-6)
    assert feats["classifier.1"].requires_grad             # still on the graph unless detach=True
    detached = FeatureExtractor(model, "classifier.1", detach=True)
    assert not detached(x)["classifier.1"].requires_grad
    assert len(model.features[2]._forward_hooks) == 1 and len(model.classifier[1]._forward_hooks) == 2
    fe.remove()                     # only fe's hooks go; the other extractor keeps working
    assert len(model.features[2]._forward_hooks) == 0 and len(model.classifier[1]._forward_hooks) == 1
    detached.remove()
    with FeatureExtractor(model, ["features.0"]) as tmp:
        tmp(x)
        assert "features.0" in tmp.features
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(RuntimeError, match="hooks were removed"):
        fe(x)
    with pytest.raises(ValueError, match="no layer named 'features.9'"):
        FeatureExtractor(model, ["features.9"])


def test_removed_hooks_leave_the_model_as_before(rng):
    model = MLP(4, (5,), 2)
    x = minidl.tensor(rng.standard_normal((2, 4)).astype(np.float32))
    fe = FeatureExtractor(model, ["2"])
    model(x)
    assert fe.features["2"].shape == (2, 5)
    fe.remove()
    fe.features.clear()
    model(x)
    assert not fe.features and not model[2]._forward_hooks


def test_replace_head_keeps_the_backbone_and_checks_the_width(rng):
    model = resnet(8, width=2, num_classes=10)
    new = nn.Linear(8, 5)
    old = replace_head(model, "fc", new)
    assert isinstance(old, nn.Linear) and old.out_features == 10 and model.fc is new
    assert list(model.state_dict())[-2:] == ["fc.weight", "fc.bias"]
    assert model(minidl.randn(2, 1, 8, 8)).shape == (2, 5)

    vgg = VGG("vgg_tiny", input_size=8)
    replace_head(vgg, "classifier.2", nn.Linear(128, 3))      # inside a Sequential, same position
    assert [type(m).__name__ for m in vgg.classifier] == ["Linear", "ReLU", "Linear"]
    assert vgg(minidl.randn(2, 1, 8, 8)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"new head for 'fc' takes 16 input features, but the backbone of "
                                         r"ResNet produces 8"):
        replace_head(model, "fc", nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="no module named 'head'"):
        replace_head(model, "head", nn.Linear(8, 2))


def test_replace_head_measures_the_width_when_the_old_head_has_no_linear():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Identity())
    x = minidl.randn(2, 3, 4)
    with pytest.raises(ValueError, match="takes 5 input features, but the backbone of Sequential produces 6"):
        replace_head(model, "3", nn.Linear(5, 2), example_input=x)
    replace_head(model, "3", nn.Linear(6, 2), example_input=x)
    assert model(x).shape == (2, 2)


def test_measuring_the_width_changes_no_statistics_and_no_modes():
    model = resnet(8, width=2)
    model.layer1.eval()                                   # a mixed state, as when part is frozen
    before = _snapshot(model)
    replace_head(model, "fc", nn.Linear(8, 3), example_input=minidl.randn(4, 1, 8, 8))
    after = model.state_dict()
    for k in before:
        if not k.startswith("fc."):
            np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    assert model.training and model.layer2.training and not model.layer1.training
