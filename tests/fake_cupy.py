"""A stand-in for the parts of CuPy that the TF32 switch and the bench's precision report touch, for CPU tests.

``install(monkeypatch)`` puts a fake ``cupy`` (one GPU, compute capability
``capability``) and its ``cupy._core._routines_linalg`` into ``sys.modules``.
Its ``set_compute_type`` records every call in ``linalg.calls`` and, like
CuPy's, falls back to DEFAULT for TF32 on a GPU older than 8.0; its
``get_compute_type`` reads ``CUPY_TF32`` while the type is TBD, as CuPy's does.
The constants are CuPy's (cupy/_core/_routines_linalg.pxd). No array, no kernel:
nothing here runs on a GPU.
"""
import os
import sys
import types
import warnings

import numpy

COMPUTE_TYPES = {"COMPUTE_TYPE_TBD": 0, "COMPUTE_TYPE_DEFAULT": 1, "COMPUTE_TYPE_PEDANTIC": 2,
                 "COMPUTE_TYPE_FP16": 3, "COMPUTE_TYPE_FP32": 4, "COMPUTE_TYPE_FP64": 5,
                 "COMPUTE_TYPE_BF16": 6, "COMPUTE_TYPE_TF32": 7}


def _linalg(capability):
    linalg = types.ModuleType("cupy._core._routines_linalg")
    vars(linalg).update(COMPUTE_TYPES)
    linalg.calls = []
    linalg.types = {}  # dtype char -> compute type

    def set_compute_type(dtype, compute_type):
        linalg.calls.append((numpy.dtype(dtype), compute_type))
        if compute_type in (6, 7) and capability < 80:
            warnings.warn("COMPUTE_TYPE_BF16 and COMPUTE_TYPE_TF32 are only available on GPUs with compute "
                          "capability 8.0 or higher. COMPUTE_TYPE_DEFAULT will be used instead.")
            compute_type = 1
        linalg.types[numpy.dtype(dtype).char] = compute_type

    def get_compute_type(dtype):
        char = numpy.dtype(dtype).char
        if linalg.types.get(char, 0) == 0:
            tf32 = char in "fF" and int(os.getenv("CUPY_TF32", "0")) > 0
            linalg.types[char] = 7 if tf32 and capability >= 80 else 1
        return linalg.types[char]

    linalg.set_compute_type, linalg.get_compute_type = set_compute_type, get_compute_type
    linalg.compute_type_to_str = {v: k for k, v in COMPUTE_TYPES.items()}.get
    return linalg


def install(monkeypatch, capability=90):
    """Put the fake CuPy into ``sys.modules`` (monkeypatch undoes it); returns its ``_routines_linalg``."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "0.0-fake"
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    core = types.ModuleType("cupy._core")
    core._routines_linalg = linalg = _linalg(capability)
    cupy._core = core
    for name, module in (("cupy", cupy), ("cupy._core", core), ("cupy._core._routines_linalg", linalg)):
        monkeypatch.setitem(sys.modules, name, module)
    return linalg
