"""Dataset, TensorDataset, Subset, random_split."""
import numpy as np
import pytest

import minidl
from minidl.data import Dataset, Subset, TensorDataset, random_split


def test_tensor_dataset_returns_rows_of_each_array():
    X = np.arange(12.0).reshape(6, 2)
    y = np.arange(6)
    ds = TensorDataset(X, y)
    assert len(ds) == 6
    xi, yi = ds[4]
    np.testing.assert_array_equal(xi, X[4])
    assert yi == 4


def test_tensor_dataset_accepts_minidl_tensors():
    X = minidl.tensor(np.arange(6.0).reshape(3, 2))
    ds = TensorDataset(X, np.array([0, 1, 2]))
    np.testing.assert_array_equal(ds[2][0], [4.0, 5.0])


def test_tensor_dataset_mismatched_lengths_is_a_clear_error():
    with pytest.raises(ValueError, match=r"same first dimension.*\(5, 2\).*\(4,\)"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_rejects_no_arrays_and_scalars():
    with pytest.raises(ValueError, match="at least one array"):
        TensorDataset()
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.zeros(3), np.float32(1.0))


def test_base_dataset_says_what_to_implement():
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]
    with pytest.raises(NotImplementedError, match="__len__"):
        len(Dataset())


def test_subset_maps_indices_and_checks_range():
    ds = TensorDataset(np.arange(10))
    sub = Subset(ds, [7, 2, 5])
    assert len(sub) == 3
    assert [int(sub[i][0]) for i in range(3)] == [7, 2, 5]
    np.testing.assert_array_equal(sub.get_batch(np.array([2, 0]))[0], [5, 7])
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        Subset(ds, [3, 10])
    with pytest.raises(TypeError, match="integers"):
        Subset(ds, [0.5])


def test_random_split_partitions_the_dataset_reproducibly():
    ds = TensorDataset(np.arange(103))
    a, b, c = random_split(ds, [0.7, 0.2, 0.1], seed=3)
    assert (len(a), len(b), len(c)) == (73, 20, 10)    # floor 72/20/10, remainder to the first
    all_idx = np.concatenate([a.indices, b.indices, c.indices])
    np.testing.assert_array_equal(np.sort(all_idx), np.arange(103))
    a2, _, _ = random_split(ds, [0.7, 0.2, 0.1], seed=3)
    np.testing.assert_array_equal(a.indices, a2.indices)
    x, y = random_split(ds, [100, 3], seed=0)
    assert (len(x), len(y)) == (100, 3)


def test_random_split_wrong_lengths_is_a_clear_error():
    ds = TensorDataset(np.arange(10))
    with pytest.raises(ValueError, match="sum to 9 but the dataset has 10"):
        random_split(ds, [5, 4])
    with pytest.raises(ValueError, match="non-negative integers"):
        random_split(ds, [0.5, 0.3])


def test_random_split_without_seed_follows_manual_seed():
    ds = TensorDataset(np.arange(50))
    minidl.manual_seed(11)
    a = random_split(ds, [25, 25])[0].indices
    minidl.manual_seed(11)
    b = random_split(ds, [25, 25])[0].indices
    np.testing.assert_array_equal(a, b)
