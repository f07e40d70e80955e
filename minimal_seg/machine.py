"""The machine a measurement ran on: CPU, thread settings, BLAS, library versions, load.

The bottom layer: it imports nothing from minimal_seg, so every tool that
reports a timing (``bench``, ``compare``) can record its machine the same
way.
"""
from __future__ import annotations

import os
import platform

import numpy

# The variables that change the numbers: BLAS and OpenMP threads, and minimal_seg's own settings.
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "MINIMAL_SEG_IM2COL_BUDGET", "MINIMAL_SEG_BACKEND", "MINIMAL_SEG_CUDA_KERNELS",
            "MINIMAL_SEG_TF32")


# OpenBLAS kernel sets (OPENBLAS_CORETYPE) that use AVX-512; any other one leaves it unused
AVX512_CORETYPES = ("SKYLAKEX", "COOPERLAKE", "SAPPHIRERAPIDS")


def _cpuinfo_field(name):
    """The value of the first ``name`` line of /proc/cpuinfo, or None (not Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_has_avx512():
    """True / False from the CPU's flags in /proc/cpuinfo (avx512f); None where unknown."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else "avx512f" in flags.split()


def blas_kernel_warning(info):
    """A warning when OPENBLAS_CORETYPE keeps OpenBLAS from the AVX-512 kernels this CPU has, else None.

    NumPy's OpenBLAS then runs older (e.g. Haswell's AVX2) kernels, while
    PyTorch's oneDNN, which ignores the variable, uses AVX-512: GEMMs of
    the course's shapes took up to 1.75x as long (256x576x2048 on one
    thread: 5.37 against 3.06 ms, docs/results.md), so a comparison with
    torch is not like for like.
    """
    coretype = (info.get("env") or {}).get("OPENBLAS_CORETYPE")
    if not coretype or not info.get("cpu_avx512") or coretype.upper() in AVX512_CORETYPES:
        return None
    return (f"WARNING: OPENBLAS_CORETYPE={coretype} makes NumPy's OpenBLAS run its {coretype} kernels on a "
            "CPU with AVX-512, which torch uses: GEMMs can take up to 1.75x as long; unset it to compare "
            "like for like")


def machine_info(backend_name="numpy", torch=None) -> dict:
    """Everything that changes the numbers: CPU, thread counts, BLAS, library versions, load.

    ``torch`` (the module, if the measurement used it) adds its version and
    thread count; ``backend_name="cupy"`` adds the GPU's name and CuPy's version.
    """
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_avx512": cpu_has_avx512(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "backend": backend_name,
        "env": {k: os.environ.get(k) for k in ENV_VARS},
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = os.getloadavg()
    info["blas"] = blas_info()
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    if backend_name == "cupy":
        import cupy

        info["gpu"] = gpu_name(cupy, cupy.cuda.Device().id)
        info["cupy"] = cupy.__version__
    return info


def gpu_name(cupy, device=0) -> str:
    """The name of GPU ``device`` as CUDA reports it (bytes in some CuPy versions, str in others)."""
    name = cupy.cuda.runtime.getDeviceProperties(device)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def blas_info():
    """The BLAS libraries loaded in this process (via threadpoolctl), or a line saying why not."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed (pip install threadpoolctl to report BLAS)"
    keys = ("internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [{k: lib.get(k) for k in keys} for lib in threadpoolctl.threadpool_info()]


def env_text(info) -> str:
    """The thread and budget variables that were set when ``info`` was taken, as "NAME=value, ..."."""
    return ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
