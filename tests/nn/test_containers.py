"""Sequential, ModuleList and ModuleDict: registration, indexing, slicing, errors."""
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn


def test_sequential_chains_modules_in_order():
    a, b = nn.Linear(3, 4), nn.Linear(4, 2)
    s = nn.Sequential(a, nn.Tanh(), b)
    x = minidl.randn(5, 3)
    np.testing.assert_allclose(s(x).numpy(), b(a(x).tanh()).numpy(), rtol=1e-6)


def test_sequential_names_match_pytorch():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    named = nn.Sequential(OrderedDict([("enc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["enc.weight", "enc.bias"]
    assert named.enc is named[0]


def test_sequential_indexing_slicing_len_append():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    tail = s[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 2 and tail[1] is layers[2]
    s.append(nn.Sigmoid())
    assert len(s) == 4 and isinstance(s[3], nn.Sigmoid)
    assert list(s) == layers + [s[3]]
    with pytest.raises(IndexError, match="index 7 is out of range for length 4"):
        s[7]


def test_sequential_delete_and_insert_renumber():
    s = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Tanh())
    del s[1]
    assert [type(m).__name__ for m in s] == ["Linear", "Tanh"]
    assert list(s._modules) == ["0", "1"]
    s.insert(0, nn.Identity())
    assert [type(m).__name__ for m in s] == ["Identity", "Linear", "Tanh"]


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match="Sequential: argument 1 must be a Module, got function"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_module_list_registers_parameters():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6
    assert list(ml.state_dict())[:2] == ["0.weight", "0.bias"]
    ml.append(nn.Linear(2, 1))
    ml += [nn.ReLU()]
    assert len(ml) == 5 and isinstance(ml[-1], nn.ReLU)
    assert isinstance(ml[1:3], nn.ModuleList) and len(ml[1:3]) == 2
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        ml(minidl.zeros(2))


def test_module_list_inside_a_model():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]
    assert net(minidl.randn(3, 2)).shape == (3, 2)


def test_module_dict():
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    assert list(md.keys()) == ["enc", "dec"] and len(md) == 2 and "enc" in md
    md["act"] = nn.ReLU()
    assert list(md) == ["enc", "dec", "act"]
    assert list(md.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert isinstance(md.pop("act"), nn.ReLU) and "act" not in md
    with pytest.raises(KeyError, match="ModuleDict has no key 'zz'"):
        md["zz"]
    with pytest.raises(TypeError, match="must be a Module"):
        md["x"] = 3
