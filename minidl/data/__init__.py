"""Data: datasets that ship offline, the DataLoader, and augmentations.

``from minidl.data import DataLoader, TensorDataset, load_digits, transforms``
"""
from . import transforms
from .dataloader import (DataLoader, RandomSampler, SequentialSampler, default_collate,
                         numpy_collate)
from .dataset import Dataset, Subset, TensorDataset, random_split
from .datasets import (CIFAR10, CIFAR10_CLASSES, FASHION_MNIST_CLASSES, MNIST, MNIST_CLASSES,
                       DatasetFileError, Digits, FashionMNIST, ImageDataset, load_breast_cancer,
                       load_cifar10, load_digits, load_iris, load_mnist, load_wine, make_blobs,
                       make_moons, make_spirals)

__all__ = [
    "transforms", "DataLoader", "RandomSampler", "SequentialSampler", "default_collate",
    "numpy_collate", "Dataset", "Subset", "TensorDataset", "random_split",
    "CIFAR10", "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "MNIST", "MNIST_CLASSES",
    "DatasetFileError", "Digits", "FashionMNIST", "ImageDataset", "load_breast_cancer",
    "load_cifar10", "load_digits", "load_iris", "load_mnist", "load_wine", "make_blobs",
    "make_moons", "make_spirals",
]
