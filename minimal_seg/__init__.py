"""minimal_seg: semantic segmentation from scratch in NumPy (and CuPy).

Read it bottom-up, in the order the lectures teach it::

    backend -> functional (forward/backward pairs) -> nn (layers) -> models -> train
"""
from .backend import array_module, asarray, get_backend, get_xp, set_backend, to_numpy, use_backend

__version__ = "0.1.0"

__all__ = ["array_module", "asarray", "get_backend", "get_xp", "set_backend", "to_numpy", "use_backend"]
