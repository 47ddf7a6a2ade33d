"""Build file for minidl: a deep-learning framework written from scratch on NumPy/CuPy."""
from setuptools import find_packages, setup

setup(
    name="minidl",
    version="0.1.0",
    description="A readable deep-learning framework on NumPy (CPU) and CuPy (GPU) with Numba kernels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["minidl", "minidl.*"]) + ["minidl.kernels"],
    package_dir={"minidl.kernels": "kernels"},
    install_requires=[
        "numpy>=1.24",
        "scipy>=1.9",
        "numba>=0.58",
        "tqdm>=4.60",
        "matplotlib>=3.5",
        "scikit-learn>=1.2",
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "hypothesis>=6",
            "scikit-learn>=1.2",
            "torch==2.13.0",
            "numba-cuda>=0.20",
            "onnx>=1.14",
            "onnxruntime>=1.16",
            "joblib>=1.2",
            "networkx>=3.0",
            "mpi4py>=3.1",
        ],
        "gpu": ["cupy-cuda12x"],
        # The CUDA 13 compiler (NVVM, NVRTC) as wheels: the tests then compile the CUDA kernels to PTX
        # and check their disk cache without a GPU (CI installs it). On a GPU machine the toolkit must
        # match the driver: numba-cuda[cu12] for a CUDA 12 driver.
        "cuda13": ["numba-cuda[cu13]>=0.20"],
        "onnx": ["onnx>=1.14", "onnxruntime>=1.16"],
        "mpi": ["mpi4py>=3.1"],
    },
    entry_points={"console_scripts": ["minidl=minidl.cli:main"]},
)
