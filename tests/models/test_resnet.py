"""ResNet with basic blocks: shapes, depth/width, PyTorch parity, a gradient check, errors."""
import numpy as np
import pytest

import minidl
from minidl.models import BasicBlock, ResNet, resnet


def test_resnet_shapes_on_digits_and_cifar_sizes():
    m = ResNet((1, 1, 1), (4, 8, 16), in_channels=1, num_classes=10)
    assert m(minidl.randn(2, 1, 8, 8)).shape == (2, 10)
    assert m.features(minidl.randn(2, 1, 8, 8)).shape == (2, 16)
    c = resnet(8, width=4, in_channels=3, num_classes=10)
    assert c(minidl.randn(2, 3, 32, 32)).shape == (2, 10)


def test_resnet_depth_and_width():
    r20 = resnet(20)
    assert r20.blocks == (3, 3, 3) and r20.widths == (16, 32, 64)
    # the paper's ResNet-20 for CIFAR-10 has about 0.27M parameters
    assert 0.26e6 < r20.num_parameters() < 0.28e6
    assert len(r20.layer2) == 3 and r20.layer2[0].downsample is not None and r20.layer2[1].downsample is None
    assert r20.layer1[0].downsample is None
    wide = ResNet((2, 2), (8, 24))
    assert wide.fc.in_features == 24 and not hasattr(wide, "layer3")


def test_basic_block_halves_the_map_with_stride_2():
    b = BasicBlock(4, 8, stride=2)
    assert b(minidl.randn(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert BasicBlock(4, 4)(minidl.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)


def _torch_resnet(blocks, widths, in_channels, num_classes):
    import torch.nn as tn

    class Block(tn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = tn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = tn.BatchNorm2d(cout)
            self.conv2 = tn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = tn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = tn.Sequential(tn.Conv2d(cin, cout, 1, stride, bias=False), tn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(tn.functional.relu(self.bn1(self.conv1(x)))))
            return tn.functional.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
            self.bn1 = tn.BatchNorm2d(widths[0])
            w = widths[0]
            self.stages = []
            for i, (n, c) in enumerate(zip(blocks, widths)):
                stage = tn.Sequential(*[Block(w if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1)
                                        for j in range(n)])
                setattr(self, f"layer{i + 1}", stage)
                self.stages.append(stage)
                w = c
            self.fc = tn.Linear(w, num_classes)

        def forward(self, x):
            h = tn.functional.relu(self.bn1(self.conv1(x)))
            for s in self.stages:
                h = s(h)
            return self.fc(h.mean(dim=(2, 3)))

    return Net()


def test_resnet_matches_a_torch_resnet_with_the_same_weights():
    torch = pytest.importorskip("torch", reason="PyTorch CPU is the reference")
    from minidl.transfer import load_torch_state_dict

    torch.manual_seed(0)
    ref = _torch_resnet((2, 1), (4, 6), 1, 3).double()
    with torch.no_grad():      # non-trivial running statistics and affine parameters
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    ours = load_torch_state_dict(ResNet((2, 1), (4, 6), 1, 3).double(), ref.state_dict())
    x = np.random.default_rng(2).standard_normal((4, 1, 8, 8))
    for train in (False, True):
        ref.train(train)
        ours.train(train)
        np.testing.assert_allclose(ours(minidl.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(),
                                   rtol=1e-9, atol=1e-10)


def test_resnet_gradcheck_tiny_instance():
    m = ResNet((1, 1), (2, 3), in_channels=1, num_classes=2).double()
    x = minidl.tensor(np.random.default_rng(0).standard_normal((2, 1, 4, 4)), requires_grad=True)
    convs = [m.conv1, m.layer2[0].downsample[0]]

    def run(x, *ws):     # the checker perturbs copies of its inputs: put the copies in the layers
        saved = [c._parameters["weight"] for c in convs]
        for c, w in zip(convs, ws):
            c._parameters["weight"] = w
        try:
            return m(x)
        finally:
            for c, w in zip(convs, saved):
                c._parameters["weight"] = w

    assert minidl.gradcheck(run, [x] + [c.weight.detach().requires_grad_() for c in convs])


def test_resnet_errors_name_the_problem():
    with pytest.raises(ValueError, match="6n \\+ 2"):
        resnet(10)
    with pytest.raises(ValueError, match="one entry per stage"):
        ResNet((1, 1), (8,))
    with pytest.raises(ValueError, match=r"expected images \(N, 3, H, W\)"):
        ResNet(in_channels=3)(minidl.randn(1, 1, 8, 8))
