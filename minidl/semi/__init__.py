"""Semi-supervised learning and learning from imbalanced or incremental data.

One method per file: ``kmeans.py`` (K-means, k-means++, cluster-then-label),
``pseudo_label.py`` (FixMatch-style pseudo-labelling), ``mixmatch.py``, ``mean_teacher.py``,
``imbalanced.py`` (class weights, focal loss, class-balanced sampler) and ``incremental.py``
(class-incremental learning with exemplar replay). ``python -m minidl semi`` runs the
measured experiments (``experiments.py``).
"""
from .kmeans import *  # noqa: F401,F403
from .imbalanced import *  # noqa: F401,F403
from .pseudo_label import *  # noqa: F401,F403
from .mixmatch import *  # noqa: F401,F403
from .mean_teacher import *  # noqa: F401,F403
from .incremental import *  # noqa: F401,F403
