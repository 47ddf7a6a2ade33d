"""Shared fixtures: the available backends, and a fresh seed for every test."""
import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

import minidl  # noqa: E402

DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    """Each test that takes ``device`` runs on every backend; CUDA skips without CuPy + GPU."""
    if request.param == "cuda" and not minidl.cupy_available():
        pytest.skip("CuPy with a CUDA device is not available on this machine")
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    minidl.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
