"""The fixed problem every optimizer test trains: a 2-layer tanh network on least squares.

The same network is written with raw minidl tensors and raw torch tensors (float64, same
starting weights), so an optimizer can be stepped side by side with ``torch.optim``.
Parameters come in two groups, (W1, b1) and (W2, b2), so per-group options are exercised.
"""
import numpy as np
import pytest

import minidl

torch = pytest.importorskip("torch", reason="PyTorch (CPU) is the reference for optimizer parity tests")


class TwoLayerProblem:
    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(8, 3))
        self.y = rng.normal(size=(8, 2))
        self.init = [rng.normal(size=(4, 3)) * 0.5, rng.normal(size=4) * 0.1,
                     rng.normal(size=(2, 4)) * 0.5, rng.normal(size=2) * 0.1]

    # ------------------------------------------------------------------ minidl side
    def minidl_params(self):
        return [minidl.tensor(a, requires_grad=True) for a in self.init]

    def minidl_loss(self, params):
        w1, b1, w2, b2 = params
        h = minidl.tanh(minidl.tensor(self.x) @ w1.T + b1)
        out = h @ w2.T + b2
        return ((out - minidl.tensor(self.y)) ** 2).mean()

    # ------------------------------------------------------------------ torch side
    def torch_params(self):
        return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in self.init]

    def torch_loss(self, params):
        w1, b1, w2, b2 = params
        h = torch.tanh(torch.tensor(self.x) @ w1.T + b1)
        out = h @ w2.T + b2
        return ((out - torch.tensor(self.y)) ** 2).mean()

    # ------------------------------------------------------------------ driving
    @staticmethod
    def groups(params, lrs):
        """Two parameter groups with their own lr (None: use the optimizer's default lr)."""
        g1, g2 = {"params": params[:2]}, {"params": params[2:]}
        if lrs is not None:
            g1["lr"], g2["lr"] = lrs
        return [g1, g2]

    def run_minidl(self, make_opt, steps, params=None, opt=None):
        params = self.minidl_params() if params is None else params
        opt = make_opt(params) if opt is None else opt
        for _ in range(steps):
            opt.zero_grad()
            self.minidl_loss(params).backward()
            opt.step()
        return params, opt

    def run_torch(self, make_opt, steps):
        params = self.torch_params()
        opt = make_opt(params)
        for _ in range(steps):
            opt.zero_grad()
            self.torch_loss(params).backward()
            opt.step()
        return params, opt


@pytest.fixture
def problem():
    return TwoLayerProblem()


@pytest.fixture
def assert_matches_torch(problem):
    """``check(minidl_cls, torch_cls, lrs=(a, b), steps=50, **options)``: same parameters."""

    def check(minidl_cls, torch_cls, lrs=(0.05, 0.02), steps=50, rtol=1e-10, **options):
        ours, _ = problem.run_minidl(lambda ps: minidl_cls(problem.groups(ps, lrs), **options), steps)
        ref, _ = problem.run_torch(lambda ps: torch_cls(problem.groups(ps, lrs), **options), steps)
        start = problem.init
        for i, (a, b) in enumerate(zip(ours, ref)):
            b = b.detach().numpy()
            assert not np.allclose(b, start[i]), "the reference did not move: the test would prove nothing"
            np.testing.assert_allclose(a.numpy(), b, rtol=rtol, atol=1e-12,
                                       err_msg=f"parameter {i} differs from torch after {steps} steps")

    return check
