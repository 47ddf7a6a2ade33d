"""DataLoader: coverage, seeded shuffling, drop_last, collate, prefetch, samplers, errors."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl
from minidl.data import DataLoader, Dataset, TensorDataset, default_collate, numpy_collate


class ListDataset(Dataset):
    """Samples from a Python list (no get_batch: exercises the per-sample collate path)."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _ids(loader):
    """Per epoch, the list of sample ids (first field) of each batch."""
    return [np.asarray(b[0].numpy() if hasattr(b[0], "numpy") else b[0]).tolist()
            for b in loader]


def test_every_sample_once_per_epoch_with_shuffle():
    ds = TensorDataset(np.arange(103), np.arange(103) * 2.0)
    loader = DataLoader(ds, batch_size=10, shuffle=True, seed=0)
    assert len(loader) == 11
    for _ in range(3):
        seen = [i for batch in _ids(loader) for i in batch]
        assert sorted(seen) == list(range(103))


def test_batches_are_tensors_without_grad_and_labels_int64():
    X = np.random.default_rng(0).random((20, 1, 4, 4)).astype(np.float32)
    y = np.arange(20, dtype=np.int32) % 3
    xb, yb = next(iter(DataLoader(TensorDataset(X, y), batch_size=8)))
    assert isinstance(xb, minidl.Tensor) and isinstance(yb, minidl.Tensor)
    assert xb.shape == (8, 1, 4, 4) and xb.dtype == np.float32
    assert yb.dtype == np.int64 and not xb.requires_grad
    np.testing.assert_array_equal(xb.numpy(), X[:8])


def test_same_seed_same_batches_and_epochs_differ():
    ds = TensorDataset(np.arange(64))
    a = DataLoader(ds, batch_size=16, shuffle=True, seed=123)
    b = DataLoader(ds, batch_size=16, shuffle=True, seed=123)
    a1, a2 = _ids(a), _ids(a)
    b1, b2 = _ids(b), _ids(b)
    assert a1 == b1 and a2 == b2
    assert a1 != a2                       # a fresh permutation each epoch
    c1 = _ids(DataLoader(ds, batch_size=16, shuffle=True, seed=124))
    assert c1 != a1


def test_no_shuffle_keeps_order():
    ds = TensorDataset(np.arange(10))
    assert _ids(DataLoader(ds, batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drop_last_drops_the_short_batch():
    ds = TensorDataset(np.arange(10))
    loader = DataLoader(ds, batch_size=4, drop_last=True, shuffle=True, seed=1)
    assert len(loader) == 2
    batches = _ids(loader)
    assert [len(b) for b in batches] == [4, 4]
    assert len(DataLoader(ds, batch_size=4)) == 3


def test_manual_seed_makes_unseeded_loaders_reproducible():
    ds = TensorDataset(np.arange(30))
    minidl.manual_seed(5)
    a = _ids(DataLoader(ds, batch_size=7, shuffle=True))
    minidl.manual_seed(5)
    b = _ids(DataLoader(ds, batch_size=7, shuffle=True))
    assert a == b


def test_tuple_collate_applies_dtype_rules():
    items = [(np.full((2,), i, np.float64), np.float32(i), i, 0.5 * i, np.uint8(i), i % 2 == 0)
             for i in range(5)]
    batch = DataLoader(ListDataset(items), batch_size=5)
    x64, x32, label, pyfloat, u8, flag = next(iter(batch))
    assert x64.dtype == np.float64 and x64.shape == (5, 2)
    assert x32.dtype == np.float32 and x32.shape == (5,)
    assert label.dtype == np.int64
    assert pyfloat.dtype == np.float32
    assert u8.dtype == np.int64
    assert flag.dtype == np.bool_
    np.testing.assert_array_equal(flag.numpy(), [True, False, True, False, True])


def test_dict_collate_collates_each_key():
    items = [{"image": np.ones((1, 2, 2), np.float32) * i, "label": i, "meta": {"w": 1.0}}
             for i in range(6)]
    batch = next(iter(DataLoader(ListDataset(items), batch_size=4)))
    assert set(batch) == {"image", "label", "meta"}
    assert batch["image"].shape == (4, 1, 2, 2)
    np.testing.assert_array_equal(batch["label"].numpy(), [0, 1, 2, 3])
    assert batch["meta"]["w"].shape == (4,)


def test_collate_errors_are_clear():
    with pytest.raises(ValueError, match="different shapes"):
        numpy_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(TypeError, match="dict with keys"):
        numpy_collate([{"a": 1}, {"b": 1}])
    with pytest.raises(TypeError, match="expected an array"):
        numpy_collate([object(), object()])
    with pytest.raises(TypeError, match="dtype complex"):
        numpy_collate([np.zeros(2, complex), np.zeros(2, complex)])


def test_default_collate_and_numpy_collate_agree():
    samples = [(np.arange(3.0) + i, i) for i in range(4)]
    t = default_collate(samples)
    n = numpy_collate(samples)
    np.testing.assert_array_equal(t[0].numpy(), n[0])
    np.testing.assert_array_equal(t[1].numpy(), n[1])


def test_batch_fetch_path_equals_per_sample_path():
    rng = np.random.default_rng(0)
    X, y = rng.random((37, 3)).astype(np.float32), rng.integers(0, 4, 37)
    fast = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, seed=9)
    slow = DataLoader(ListDataset(list(zip(X, y))), batch_size=8, shuffle=True, seed=9)
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
        assert xf.dtype == xs.dtype and yf.dtype == ys.dtype


def test_prefetch_gives_identical_batches():
    ds = TensorDataset(np.arange(50), np.arange(50) * 0.5)
    plain = DataLoader(ds, batch_size=6, shuffle=True, seed=4)
    pre = DataLoader(ds, batch_size=6, shuffle=True, seed=4, prefetch=3)
    for _ in range(2):
        assert _ids(plain) == _ids(pre)


def test_prefetch_runs_in_a_background_thread_and_propagates_errors():
    class Failing(ListDataset):
        def __getitem__(self, i):
            if i == 7:
                raise RuntimeError("broken sample 7")
            self.thread = threading.current_thread().name
            return self.items[i]

    ds = Failing(list(range(10)))
    loader = DataLoader(ds, batch_size=2, prefetch=2)
    with pytest.raises(RuntimeError, match="broken sample 7"):
        for _ in loader:
            pass
    assert ds.thread == "minidl-DataLoader-prefetch"


def test_prefetch_stops_cleanly_when_the_loop_breaks():
    loader = DataLoader(TensorDataset(np.arange(1000)), batch_size=1, prefetch=2)
    before = threading.active_count()
    for i, _ in enumerate(loader):
        if i == 3:
            break
    import gc
    gc.collect()
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.05)
    assert threading.active_count() <= before


def test_sampler_hook_decides_the_order():
    class EvensFirst:
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(list(range(0, self.n, 2)) + list(range(1, self.n, 2)))

        def __len__(self):
            return self.n

    loader = DataLoader(TensorDataset(np.arange(6)), batch_size=3, sampler=EvensFirst(6))
    assert _ids(loader) == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(ValueError, match="either shuffle=True or a sampler"):
        DataLoader(TensorDataset(np.arange(6)), shuffle=True, sampler=EvensFirst(6))


def test_state_dict_resumes_the_shuffle_exactly():
    ds = TensorDataset(np.arange(40))
    a = DataLoader(ds, batch_size=8, shuffle=True, seed=2)
    _ids(a)
    state = a.state_dict()
    epoch2 = _ids(a)
    b = DataLoader(ds, batch_size=8, shuffle=True, seed=999)
    b.load_state_dict(state)
    assert _ids(b) == epoch2


def test_empty_dataset_and_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        DataLoader(TensorDataset(np.zeros((0, 3))), batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=0)
    with pytest.raises(ValueError, match="prefetch"):
        DataLoader(TensorDataset(np.zeros(3)), prefetch=-1)
    with pytest.raises(TypeError, match="__len__ and __getitem__"):
        DataLoader(5)


def test_subset_of_an_augmented_image_dataset_batches_like_per_sample_fetching():
    from minidl.data import ImageDataset, Subset
    from minidl.data.transforms import GaussianNoise

    rng = np.random.default_rng(1)
    X, y = rng.random((30, 1, 4, 4)).astype(np.float32), rng.integers(0, 3, 30)
    idx = rng.permutation(30)[:20]
    fast = DataLoader(Subset(ImageDataset(X, y, GaussianNoise(0.1, seed=5)), idx),
                      batch_size=6, shuffle=True, seed=2)
    slow = DataLoader(Subset(ImageDataset(X, y, GaussianNoise(0.1, seed=5)), idx),
                      batch_size=6, shuffle=True, seed=2, collate_fn=default_collate)
    assert fast._batch_fetch and not slow._batch_fetch
    for (xf, yf), (xs, ys) in zip(fast, slow):
        np.testing.assert_array_equal(xf.numpy(), xs.numpy())
        np.testing.assert_array_equal(yf.numpy(), ys.numpy())
        assert xf.dtype == np.float32 and yf.dtype == np.int64


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 20), shuffle=st.booleans(),
       drop_last=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_loader_partitions_the_dataset_for_any_sizes(n, batch_size, shuffle, drop_last, seed):
    loader = DataLoader(TensorDataset(np.arange(n)), batch_size=batch_size, shuffle=shuffle,
                        drop_last=drop_last, seed=seed, collate_fn=numpy_collate)
    batches = [b[0].tolist() for b in loader]
    assert len(batches) == len(loader)
    assert all(len(b) == batch_size for b in batches[:-1])
    seen = [i for b in batches for i in b]
    assert len(seen) == len(set(seen))
    if drop_last:
        assert len(seen) == (n // batch_size) * batch_size
    else:
        assert sorted(seen) == list(range(n))
