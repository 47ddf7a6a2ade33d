"""load_torch_state_dict: models trained in PyTorch give the same outputs here (float64),
name mapping, and errors that name the missing or misshaped weight."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.models import MLP
from minidl.transfer import load_torch_state_dict

torch = pytest.importorskip("torch", reason="PyTorch CPU trains the models whose weights are imported")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: PyTorch's thread pool only contends with the other processes here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _train(net, x, y, steps=30):
    """A few Adam steps in PyTorch so the weights (and BN statistics) are not the initial ones."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _torch_cnn():
    tn = torch.nn
    return tn.Sequential(tn.Conv2d(1, 4, 3, padding=1), tn.BatchNorm2d(4), tn.ReLU(), tn.MaxPool2d(2),
                         tn.Conv2d(4, 6, 3, padding=1), tn.BatchNorm2d(6), tn.ReLU(), tn.MaxPool2d(2),
                         tn.Flatten(), tn.Linear(24, 10), tn.BatchNorm1d(10), tn.ReLU(), tn.Linear(10, 3))


def _minidl_cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(24, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))


def test_trained_torch_mlp_gives_the_same_outputs():
    torch.manual_seed(0)
    tn = torch.nn
    net = tn.Sequential(tn.Flatten(), tn.Linear(6, 16), tn.ReLU(), tn.Linear(16, 16), tn.ReLU(),
                        tn.Linear(16, 3)).double()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    _train(net, torch.tensor(x), torch.tensor(y))
    ours = load_torch_state_dict(MLP(6, (16, 16), 3).double(), net.state_dict())
    xt = rng.standard_normal((7, 6))
    np.testing.assert_allclose(ours(minidl.tensor(xt)).numpy(), net(torch.tensor(xt)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_trained_torch_cnn_with_batchnorm_gives_the_same_outputs():
    torch.manual_seed(0)
    net = _torch_cnn().double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 1, 8, 8))
    y = rng.integers(0, 3, 32)
    _train(net.train(), torch.tensor(x), torch.tensor(y))
    assert int(net[1].num_batches_tracked) == 30
    ours = load_torch_state_dict(_minidl_cnn().double(), net.state_dict())
    assert int(ours[1].num_batches_tracked.item()) == 30
    np.testing.assert_allclose(ours[1].running_var.numpy(), net[1].running_var.numpy(), rtol=0)
    xt = rng.standard_normal((5, 1, 8, 8))
    ours.eval()
    np.testing.assert_allclose(ours(minidl.tensor(xt)).numpy(), net(torch.tensor(xt)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)
    # and it fine-tunes from there: one step here equals one step in PyTorch (train mode, SGD)
    ours.train()
    net.train()
    xb, yb = rng.standard_normal((8, 1, 8, 8)), rng.integers(0, 3, 8)
    opt = minidl.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    loss = minidl.functional.cross_entropy(ours(minidl.tensor(xb)), yb)
    loss.backward()
    opt.step()
    topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    topt.zero_grad()
    tloss = torch.nn.functional.cross_entropy(net(torch.tensor(xb)), torch.tensor(yb))
    tloss.backward()
    topt.step()
    assert loss.item() == pytest.approx(tloss.item(), rel=1e-10)
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[k], v.numpy(), rtol=1e-9, atol=1e-12, err_msg=k)


def test_numpy_arrays_float32_and_name_map():
    torch.manual_seed(0)
    tn = torch.nn
    net = tn.Sequential(tn.Linear(5, 4), tn.Tanh(), tn.Linear(4, 2))

    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Linear(5, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x):
            return self.out(self.hidden(x).tanh())

    arrays = {k: v.numpy() for k, v in net.state_dict().items()}           # no torch tensors needed
    ours = load_torch_state_dict(Named(), arrays, name_map={"0.weight": "hidden.weight", "0.bias": "hidden.bias",
                                                            "2.weight": "out.weight", "2.bias": "out.bias"})
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_allclose(ours(minidl.tensor(x)).numpy(), net(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    fn_mapped = load_torch_state_dict(Named(), net.state_dict(),
                                      name_map=lambda k: k.replace("0.", "hidden.").replace("2.", "out."))
    np.testing.assert_array_equal(fn_mapped.out.weight.numpy(), arrays["2.weight"])


def test_missing_weight_is_named():
    torch.manual_seed(0)
    sd = _torch_cnn().state_dict()
    del sd["4.weight"]
    with pytest.raises(KeyError, match=r"missing weights '4\.weight'"):
        load_torch_state_dict(_minidl_cnn(), sd)
    extra = _torch_cnn().state_dict()
    extra["head.weight"] = torch.zeros(2, 2)
    with pytest.raises(KeyError, match=r"unexpected \(unused\) keys 'head\.weight'"):
        load_torch_state_dict(_minidl_cnn(), extra)
    model = _minidl_cnn()
    load_torch_state_dict(model, sd, strict=False)     # the rest loads; 4.weight keeps its value
    np.testing.assert_array_equal(model[0].weight.numpy(), sd["0.weight"].numpy())


def test_misshaped_weight_is_named_with_both_shapes():
    sd = _torch_cnn().state_dict()
    sd["9.weight"] = torch.zeros(10, 25)
    with pytest.raises(ValueError, match=r"shape mismatch for 9\.weight: the model has \(10, 24\), the state "
                                         r"dict \(10, 25\)"):
        load_torch_state_dict(_minidl_cnn(), sd)
    with pytest.raises(ValueError, match=r"3\.weight \(torch key 'fc\.weight'\): the model has \(3, 4\)"):
        load_torch_state_dict(MLP(5, (4,), 3), {"1.weight": np.zeros((4, 5)), "1.bias": np.zeros(4),
                                                "fc.weight": np.zeros((2, 4)), "3.bias": np.zeros(3)},
                              name_map={"fc.weight": "3.weight"})


def test_bad_values_and_skipping_the_batch_counters():
    with pytest.raises(TypeError, match=r"1\.weight has dtype <U1, not a number"):
        load_torch_state_dict(MLP(1, (1,), 1), {"1.weight": np.array([["a"]]), "1.bias": np.zeros(1),
                                                "3.weight": np.zeros((1, 1)), "3.bias": np.zeros(1)})
    sd = {k: v for k, v in _torch_cnn().state_dict().items() if not k.endswith("num_batches_tracked")}
    with pytest.raises(KeyError, match="num_batches_tracked"):
        load_torch_state_dict(_minidl_cnn(), sd)
    load_torch_state_dict(_minidl_cnn(), sd, skip_num_batches_tracked=True)
