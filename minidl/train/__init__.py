"""Training and evaluation: metrics, model selection, plots (the training loop builds on these)."""
from .metrics import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .selection import *  # noqa: F401,F403
from .callbacks import *  # noqa: F401,F403
from .trainer import *  # noqa: F401,F403
