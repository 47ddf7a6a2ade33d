"""Fixtures for the ensemble tests: small data sets, and one BLAS thread.

The members are tiny MLPs; multi-threaded BLAS on matrices this small costs more in
thread hand-offs than it saves (measured ~10x slower on a loaded 2-core machine).
"""
import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="session")
def blobs3():
    """120 samples, 6 features, 3 well separated classes (float32, int64)."""
    X, y = make_classification(n_samples=120, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
                               n_clusters_per_class=1, class_sep=2.0, random_state=0)
    return X.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="session")
def regression_data():
    X, y = make_regression(n_samples=120, n_features=5, noise=1.0, random_state=0)
    return X.astype(np.float32), y


FAST = dict(epochs=4, batch_size=32, lr=2e-2)
