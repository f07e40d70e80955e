"""``run``: every table of the benchmark in one process, printed, and saved as JSON and PNG."""
from __future__ import annotations

import json
import os
import sys

import numpy

from .. import backend
from ..threads import blas_threads
from ..functional.conv import get_im2col_budget
from ..functional.kernels import use_kernels
from ..machine import machine_info
from .cases import pool_cases, quick_cases, quick_pool_cases, unet_cases
from .ops import summary, time_cases
from .pooling import pool_summary, time_pool_cases
from .report import format_report, plot
from .precision import precision_record, torch_modes
from .step import STEP_SHAPES, training_step_benchmarks
from .targets import GPU_TARGETS, TARGETS, check_targets
from .timing import import_torch, syncer


def run(backend_name=None, quick=False, repeats=None, warmup=None, batch=None, size=None, base=16,
        use_torch=True, json_path="bench.json", png_path="bench.png", seed=0, settle=0.15, stream=sys.stdout,
        kernels=True):
    """Run the benchmark, print the report, write JSON and PNG; returns the result dict.

    The conv and pooling cases are the U-Net's at ``batch`` images of
    ``size`` x ``size`` (default: the training step's shape, ``step.STEP_SHAPES``:
    8 of 64x64 on numpy, 32 of 128x128 on cupy). ``kernels=False`` runs
    with the CUDA kernels off (``functional.kernels.use_kernels``), to time
    both paths on a GPU. TF32 is the process's setting (``backend.set_tf32``,
    ``--tf32``); on a GPU the header states both sides' precision and torch is
    timed as it comes and with TF32 off (``precision.py``).

    The JSON holds: machine (``machine.machine_info``, the im2col budget and
    the BLAS thread count, which torch is set to as well; on a GPU the
    precision record), settings, ops (one row per conv case, all samples),
    summary, pool_ops, pool_summary, training and targets
    (``targets.check_targets``). The thread count is the process's: the
    command line picks it (``--threads``, see ``minimal_seg.threads``).
    """
    backend_name = backend_name or backend.get_backend()
    repeats = repeats or (3 if quick else 15)
    warmup = 1 if quick and warmup is None else (3 if warmup is None else warmup)
    batch, size = (b if b is not None else d for b, d in zip((batch, size), STEP_SHAPES[backend_name]))
    with backend.use_backend(backend_name) as xp, use_kernels(kernels):
        torch = import_torch(backend_name) if use_torch else None
        threads = blas_threads()
        if torch is not None and backend_name == "numpy" and threads:
            torch.set_num_threads(threads)  # both libraries on the same number of threads
        info = machine_info(backend_name, torch)
        info["blas_threads"] = threads
        info["im2col_budget_bytes"] = get_im2col_budget()
        if backend_name == "cupy":
            info["precision"] = precision_record(backend_name, torch)
        modes = torch_modes(backend_name, torch)
        sync = syncer(backend_name, torch)
        rng = numpy.random.default_rng(seed)
        cases = quick_cases() if quick else unet_cases(batch, size, base)
        pause = settle if backend_name == "numpy" else 0
        rows = time_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=pause, modes=modes)
        pools = time_pool_cases(quick_pool_cases() if quick else pool_cases(batch, size, base), xp, torch, repeats,
                                warmup, sync, rng, settle=pause)
        training = training_step_benchmarks(backend_name, quick, repeats, warmup, torch=torch, settle=settle,
                                            seed=seed, modes=modes)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = os.getloadavg()
    result = {
        "machine": info,
        "settings": {"backend": backend_name, "quick": quick, "repeats": repeats, "warmup": warmup,
                     "batch": batch, "size": size, "base": base, "dtype": "float32", "seed": seed,
                     "statistic": "median", "settle_s": settle, "cuda_kernels": kernels,
                     "targets": GPU_TARGETS if backend_name == "cupy" else TARGETS},
        "ops": rows,
        "summary": summary(rows),
        "pool_ops": pools,
        "pool_summary": pool_summary(pools),
        "training": training,
    }
    result["targets"] = check_targets(result)
    print(format_report(result), file=stream)
    for path, write in ((json_path, _write_json), (png_path, plot)):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            write(result, path)
            print(f"wrote {path}", file=stream)
    return result


def _write_json(result, path):
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
