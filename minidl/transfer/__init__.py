"""Transfer learning: fine-tuning tools (``finetune.py``), PyTorch weights (``torch_weights.py``),
few-shot prototypical networks (``protonet.py``) and Deep CORAL domain adaptation (``coral.py``)."""
from .finetune import *  # noqa: F401,F403
from .torch_weights import *  # noqa: F401,F403
from .protonet import *  # noqa: F401,F403
from .coral import *  # noqa: F401,F403
