from .word2vec import *  # noqa: F401,F403
