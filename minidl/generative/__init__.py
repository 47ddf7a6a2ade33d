"""Generative models: GAN and WGAN-GP (``gan.py``), a denoising autoencoder
(``autoencoder.py``), the variational autoencoder and its class-conditional form
(``vae.py``), and PNG image grids (``plots.py``).

``python -m minidl generative`` (``experiments.py``) trains them on the bundled digits and
writes the measured results to ``benchmarks/RESULTS.md``.
"""
from .plots import *  # noqa: F401,F403
from .gan import *  # noqa: F401,F403
from .autoencoder import *  # noqa: F401,F403
from .vae import *  # noqa: F401,F403
