"""Word embeddings: skip-gram word2vec with negative sampling (``word2vec.py``)."""
from .word2vec import *  # noqa: F401,F403
