"""Graph learning: the graph convolution layer and the graph autoencoder (``gcn.py``)."""
from .gcn import *  # noqa: F401,F403
