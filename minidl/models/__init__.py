"""Ready-made models, one file per architecture: ``from minidl.models import LeNet5, MLP``."""
from .lenet import *  # noqa: F401,F403
from .mlp import *  # noqa: F401,F403
from .vgg import *  # noqa: F401,F403
from .resnet import *  # noqa: F401,F403
from .transformer import *  # noqa: F401,F403
