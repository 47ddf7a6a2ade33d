"""Getting a trained model into use: inference, compression, calibration, robustness.

``inference`` (``inference_mode``, ``predict``), ``packed`` (compact state-dict files),
``quantization`` (post-training int8 and quantization-aware training), ``pruning``
(global magnitude and structured),
``distillation``, ``calibration`` (temperature scaling, ECE, thresholds, test-time
augmentation, conditional prediction) and ``adversarial`` (FGSM, PGD, adversarial
training). Saving lives in ``minidl.serialization`` (``minidl.save``/``minidl.load``) and
ONNX in ``minidl.onnx``.
"""
from .inference import *  # noqa: F401,F403
from .packed import *  # noqa: F401,F403
from .quantization import *  # noqa: F401,F403
from .pruning import *  # noqa: F401,F403
from .distillation import *  # noqa: F401,F403
from .calibration import *  # noqa: F401,F403
from .adversarial import *  # noqa: F401,F403
