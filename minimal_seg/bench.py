"""``python -m minimal_seg bench``: how fast are our convolutions, honestly measured?

For each op at the shapes of a small U-Net (depth 3, base 16 channels, batch
8, 64x64 images) and at its stride-2, dilation-2 and transposed variants,
three things are timed in the same process, as the median of repeats after
a warm-up, every repeat timing everything once:

- **ours**: ``conv2d_forward`` (+ ``conv2d_backward``) of minimal_seg;
- **torch**: ``torch.nn.functional.conv2d`` (+ autograd backward), if torch
  is installed (on the GPU with ``--backend cupy``);
- **GEMM**: the bare matrix products an im2col convolution needs, with the
  same FLOPs: forward ``W @ cols``; backward ``dout @ cols.T`` and
  ``W.T @ dout``, on contiguous operands. Each product is timed in both
  memory layouts (C = A @ B, or C.T = B.T @ A.T) during the warm-up and
  the faster one is kept, so GEMM is the best BLAS does; the products as
  written (C = A @ B) are timed too ("GEMM as written" in the totals).

ours / GEMM is the price of everything that is not a matrix product
(im2col, col2im, transposes, Python); ours / torch compares with a
production library. Ours and the GEMMs alternate; torch runs in its own
block after a pause (``settle``, see ``time_cases``), because the spinning
worker threads of one library slow the other down. A JSON file (all
samples) and a PNG chart record the run with the machine it ran on: CPU,
cores, thread counts, BLAS (via threadpoolctl), OPENBLAS_* and other
settings, load average.

The pooling ops of the same U-Net (``max_pool2d`` with indices, and
``max_unpool2d`` at the same shapes, as SegNet uses them) get a second
table: ours against torch, no GEMM. Then a whole training step of the
issue's U-Net (``training_step_benchmarks``): ours against the identical
PyTorch model with our initial weights, ms per step, images/s and peak
memory; batch 8 of 64x64 on the CPU, batch 32 of 128x128 with
``--backend cupy`` against torch CUDA.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy

from . import backend
from .functional.conv import (
    batch_chunks,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    get_im2col_budget,
)
from .functional.pool import max_pool2d_backward, max_pool2d_forward, max_unpool2d_backward, max_unpool2d_forward
from .functional.shapes import conv2d_output_shape, conv_transpose2d_output_shape

TARGETS = {"fwdbwd_over_gemm": 1.3, "fwdbwd_over_torch": 2.0, "fwdbwd_over_torch_stretch": 1.5,
           "pool_fwdbwd_over_torch": 2.0}
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "MINIMAL_SEG_IM2COL_BUDGET", "MINIMAL_SEG_BACKEND")


@dataclass(frozen=True)
class Case:
    """One op at one shape: conv2d (w: OC, C, KH, KW) or conv_transpose2d (w: C, OC, KH, KW)."""

    name: str
    op: str  # "conv2d" or "conv_transpose2d"
    n: int
    c: int
    oc: int
    size: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    dilation: int = 1

    @property
    def out_size(self):
        hw = (self.size, self.size)
        if self.op == "conv2d":
            return conv2d_output_shape(hw, self.kernel, self.stride, self.padding, self.dilation)
        return conv_transpose2d_output_shape(hw, self.kernel, self.stride, self.padding, 0, self.dilation)

    def gemm_shapes(self):
        """(M, K, L) of ``out = W @ cols``: M output rows, K = C*KH*KW, L columns.

        For the transposed conv these are the shapes of the conv it transposes
        (the one that maps its output back to its input).
        """
        kk = self.kernel * self.kernel
        if self.op == "conv2d":
            oh, ow = self.out_size
            return self.oc, self.c * kk, self.n * oh * ow
        return self.c, self.oc * kk, self.n * self.size * self.size

    def flops(self, backward=False):
        m, k, l = self.gemm_shapes()
        return 2 * m * k * l * (3 if backward else 1)

    def label(self):
        text = f"{self.c}->{self.oc} @{self.size}"
        if self.op == "conv_transpose2d":
            return f"convT k{self.kernel}s{self.stride} {text}"
        extra = "".join(f" {a}{v}" for a, v in (("s", self.stride), ("d", self.dilation)) if v != 1)
        return f"conv k{self.kernel} {text}{extra}"


def unet_cases(batch=8, size=64, base=16, in_channels=1, classes=4):
    """The distinct conv shapes of a depth-3 U-Net, plus stride-2 and dilation-2 variants of a mid layer."""
    b, s = base, size
    convs = [  # (C, OC, resolution): encoder, bottleneck, decoder after concatenation, head
        (in_channels, b, s), (b, b, s), (b, 2 * b, s // 2), (2 * b, 2 * b, s // 2),
        (2 * b, 4 * b, s // 4), (4 * b, 4 * b, s // 4), (4 * b, 8 * b, s // 8), (8 * b, 8 * b, s // 8),
        (8 * b, 4 * b, s // 4), (4 * b, 2 * b, s // 2), (2 * b, b, s),
    ]
    cases = [Case(f"conv{i}", "conv2d", batch, c, oc, r) for i, (c, oc, r) in enumerate(convs)]
    cases.append(Case("head", "conv2d", batch, b, classes, s, kernel=1, padding=0))
    cases.append(Case("stride2", "conv2d", batch, 2 * b, 2 * b, s // 2, stride=2))
    cases.append(Case("dilation2", "conv2d", batch, 2 * b, 2 * b, s // 2, padding=2, dilation=2))
    for i, (c, oc, r) in enumerate([(8 * b, 4 * b, s // 8), (4 * b, 2 * b, s // 4), (2 * b, b, s // 2)]):
        cases.append(Case(f"up{i}", "conv_transpose2d", batch, c, oc, r, kernel=2, stride=2, padding=0))
    return cases


def quick_cases():
    """Tiny shapes for a smoke test (a second or two)."""
    return [
        Case("conv", "conv2d", 2, 3, 4, 8),
        Case("stride2", "conv2d", 2, 4, 4, 8, stride=2),
        Case("dilation2", "conv2d", 2, 4, 4, 8, padding=2, dilation=2),
        Case("up", "conv_transpose2d", 2, 4, 3, 4, kernel=2, stride=2, padding=0),
    ]


@dataclass(frozen=True)
class PoolCase:
    """max_pool2d (with indices) of x (N, C, size, size), or max_unpool2d of its (N, C, size/k, size/k) output."""

    name: str
    op: str  # "max_pool2d" or "max_unpool2d"
    n: int
    c: int
    size: int  # the pool's input size = the unpool's output size
    kernel: int = 2

    def label(self):
        if self.op == "max_pool2d":
            return f"maxpool k{self.kernel} {self.c}ch @{self.size}"
        return f"maxunpool k{self.kernel} {self.c}ch @{self.size // self.kernel}"


def pool_cases(batch=8, size=64, base=16, depth=3):
    """The pools of the depth-3 U-Net (and the unpools SegNet puts at the same shapes)."""
    levels = [(base * 2 ** level, size // 2 ** level) for level in range(depth)]
    return [PoolCase(f"{op[4:]}{level}", op, batch, c, s) for op in ("max_pool2d", "max_unpool2d")
            for level, (c, s) in enumerate(levels)]


def quick_pool_cases():
    return [PoolCase("pool", "max_pool2d", 2, 4, 8), PoolCase("unpool", "max_unpool2d", 2, 4, 8)]


# ---- the machine ------------------------------------------------------------------


def cpu_model():
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(backend_name="numpy", torch=None):
    """Everything that changes the numbers: CPU, thread counts, BLAS, library versions, load."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
        "backend": backend_name,
        "env": {k: os.environ.get(k) for k in ENV_VARS},
        "im2col_budget_bytes": get_im2col_budget(),
    }
    if hasattr(os, "sched_getaffinity"):
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_start"] = os.getloadavg()
    try:
        import threadpoolctl

        info["blas"] = [
            {k: lib.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for lib in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed (pip install threadpoolctl to report BLAS)"
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    if backend_name == "cupy":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"]
        info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        info["cupy"] = cupy.__version__
    return info


def env_text(info) -> str:
    """The thread and budget variables that were set when ``info`` was taken, as "NAME=value, ..."."""
    return ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"


# ---- timing -------------------------------------------------------------------------


def _import_torch(backend_name):
    """torch, or None when it is not installed (or has no CUDA for the cupy backend)."""
    try:
        import torch
    except ImportError:
        return None
    if backend_name == "cupy" and not torch.cuda.is_available():
        return None
    return torch


def _syncer(backend_name, torch):
    if backend_name == "numpy":
        return lambda: None

    def sync():
        backend.synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    return sync


def _seconds(fn, sync):
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _faster(candidates, sync, tries=3):
    """The fastest of a few equivalent functions (timed ``tries`` times each)."""
    best = {name: min(_seconds(fn, sync) for _ in range(tries)) for name, fn in candidates.items()}
    name = min(best, key=best.get)
    return name, candidates[name]


def _gemm_functions(case, xp, rng, sync):
    """The bare GEMMs of the case: {"gemm": (fwd, fwdbwd), "gemm_ab": (None, fwdbwd)} and the layouts.

    "gemm" runs each product in its faster layout, "gemm_ab" as written, C = A @ B.
    """
    m, k, l = case.gemm_shapes()

    def rand(*shape):
        return xp.asarray(rng.standard_normal(shape, dtype=numpy.float32))

    products = {  # name: (A, B) for A @ B, and the same product computed transposed
        "forward W@cols": (rand(m, k), rand(k, l)),
        "weight grad dout@cols.T": (rand(m, l), rand(l, k)),
        "input grad W.T@dout": (rand(k, m), rand(m, l)),
    }
    chosen, as_written, layouts = {}, {}, {}
    for name, (a, b) in products.items():
        at, bt = xp.ascontiguousarray(a.T), xp.ascontiguousarray(b.T)
        candidates = {"C=A@B": lambda a=a, b=b: a @ b, "C.T=B.T@A.T": lambda at=at, bt=bt: bt @ at}
        layouts[name], chosen[name] = _faster(candidates, sync)
        as_written[name] = candidates["C=A@B"]
    # the forward of a transposed conv is the input gradient of the conv it transposes
    forward = chosen["input grad W.T@dout" if case.op == "conv_transpose2d" else "forward W@cols"]

    def fwdbwd(fns):
        return lambda: [fn() for fn in fns]

    return {"gemm": (forward, fwdbwd(chosen.values())), "gemm_ab": (None, fwdbwd(as_written.values()))}, layouts


def _case_functions(case, xp, torch, rng, sync):
    """{"ours": (fwd, fwdbwd), "torch": ..., "gemm": ...} for one case, plus GEMM layouts."""
    n, c, oc, s, k = case.n, case.c, case.oc, case.size, case.kernel
    x_np = rng.standard_normal((n, c, s, s), dtype=numpy.float32)
    w_shape = (oc, c, k, k) if case.op == "conv2d" else (c, oc, k, k)
    w_np = rng.standard_normal(w_shape, dtype=numpy.float32) / float(numpy.sqrt(c * k * k))
    b_np = rng.standard_normal((oc,), dtype=numpy.float32)
    dout_np = rng.standard_normal((n, oc) + tuple(case.out_size), dtype=numpy.float32)
    x, w, b, dout = (xp.asarray(a) for a in (x_np, w_np, b_np, dout_np))
    opts = dict(stride=case.stride, padding=case.padding, dilation=case.dilation)
    if case.op == "conv2d":
        forward, backward_fn = conv2d_forward, conv2d_backward
    else:
        forward, backward_fn = conv_transpose2d_forward, conv_transpose2d_backward

    def ours_fwd():
        return forward(x, w, b, **opts)

    def ours_fwdbwd():
        _, cache = forward(x, w, b, **opts)
        return backward_fn(dout, cache)

    fns = {"ours": (ours_fwd, ours_fwdbwd)}
    if torch is not None:
        device = "cuda" if xp is not numpy else "cpu"
        xt, wt, bt, dt = (torch.tensor(a, device=device) for a in (x_np, w_np, b_np, dout_np))
        for t in (xt, wt, bt):
            t.requires_grad_(True)
        tf = torch.nn.functional
        if case.op == "conv2d":
            def torch_op():
                return tf.conv2d(xt, wt, bt, case.stride, case.padding, case.dilation)
        else:
            def torch_op():
                return tf.conv_transpose2d(xt, wt, bt, case.stride, case.padding, 0, 1, case.dilation)

        def torch_fwdbwd():
            for t in (xt, wt, bt):
                t.grad = None
            torch_op().backward(dt)

        fns["torch"] = (torch_op, torch_fwdbwd)
    gemms, layouts = _gemm_functions(case, xp, rng, sync)
    fns.update(gemms)
    try:
        chunks = len(batch_chunks(x, case.gemm_shapes()[1] * case.gemm_shapes()[2] * 4 // n))
    except MemoryError:
        chunks = None
    return fns, {"gemm_layouts": layouts, "chunks": chunks}


def time_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=0.15):
    """Median ms of every (who, pass) of every conv case: one row dict per case (see ``_interleaved``)."""
    prepared = [_case_functions(case, xp, torch, rng, sync) for case in cases]
    samples = _interleaved([fns for fns, _ in prepared], repeats, warmup, sync, settle)
    return [_row(case, info, store) for case, (_, info), store in zip(cases, prepared, samples)]


def _interleaved(prepared, repeats, warmup, sync, settle):
    """Samples (ms) of every {who: (fwd, fwdbwd)} in ``prepared``: one dict of lists per case.

    Every repeat times everything once: first, for each case, ours and the
    GEMMs alternately (both run on NumPy's BLAS), then, after a pause, torch
    for each case. The pause matters on a CPU: after a call, OpenBLAS' worker
    threads keep spinning for 2**OPENBLAS_THREAD_TIMEOUT cycles (default
    2**28, about 0.1 s), and torch's OpenMP threads do the same; whichever
    library runs next while the other's threads still spin loses a core and
    looks up to twice as slow. ``settle`` seconds (0 on a GPU) let them sleep,
    and one untimed call wakes the next library's threads up again.
    """
    ours = tuple(who for who in prepared[0] if who != "torch")
    blocks = [ours, ("torch",)] if "torch" in prepared[0] else [ours]
    samples = [{} for _ in prepared]
    for rep in range(warmup + repeats):
        for block in blocks:
            _seconds(prepared[0][block[0]][0], sync)  # untimed: wakes this library's threads up
            for fns, store in zip(prepared, samples):
                for who in block:
                    for p, fn in zip(("fwd", "fwdbwd"), fns[who]):
                        if fn is None:
                            continue
                        t = _seconds(fn, sync)
                        if rep >= warmup:
                            store.setdefault(f"{who}_{p}", []).append(1e3 * t)
            if settle:
                time.sleep(settle)
    return samples


# ---- pooling ------------------------------------------------------------------------------


def _pool_functions(case, xp, torch, rng):
    """{"ours": (fwd, fwdbwd), "torch": (fwd, fwdbwd)} of a PoolCase; the indices come from a real pool."""
    k = case.kernel
    x_np = rng.standard_normal((case.n, case.c, case.size, case.size), dtype=numpy.float32)
    pooled_np, cache = max_pool2d_forward(x_np, k)
    indices_np = cache.indices
    if case.op == "max_pool2d":
        inputs, dout_np = (x_np,), rng.standard_normal(pooled_np.shape, dtype=numpy.float32)
        forward, backward_fn = (lambda a: max_pool2d_forward(a, k)), max_pool2d_backward
    else:
        inputs, dout_np = (pooled_np, indices_np), rng.standard_normal(x_np.shape, dtype=numpy.float32)
        forward, backward_fn = (lambda a, i: max_unpool2d_forward(a, i, k)), max_unpool2d_backward
    args, dout = [xp.asarray(a) for a in inputs], xp.asarray(dout_np)

    def ours_fwdbwd():
        _, c = forward(*args)
        return backward_fn(dout, c)

    fns = {"ours": (lambda: forward(*args), ours_fwdbwd)}
    if torch is not None:
        fns["torch"] = _torch_pool_functions(case, torch, inputs, dout_np, "cpu" if xp is numpy else "cuda")
    return fns


def _torch_pool_functions(case, torch, inputs, dout_np, device):
    """(fwd, fwdbwd) of ``F.max_pool2d(return_indices=True)`` or ``F.max_unpool2d``, autograd backward."""
    tf, k = torch.nn.functional, case.kernel
    a = torch.tensor(inputs[0], device=device, requires_grad=True)
    dt = torch.tensor(dout_np, device=device)
    if case.op == "max_pool2d":
        def op():
            return tf.max_pool2d(a, k, return_indices=True)[0]
    else:
        indices = torch.tensor(inputs[1], device=device)

        def op():
            return tf.max_unpool2d(a, indices, k)

    def fwdbwd():
        a.grad = None
        op().backward(dt)

    return op, fwdbwd


def time_pool_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=0.15):
    """Median ms of ours and torch, forward and forward+backward, per PoolCase (interleaved as conv)."""
    prepared = [_pool_functions(case, xp, torch, rng) for case in cases]
    samples = _interleaved(prepared, repeats, warmup, sync, settle)
    rows = []
    for case, store in zip(cases, samples):
        ms = {key: statistics.median(v) for key, v in store.items()}
        rows.append({"name": case.name, "label": case.label(), "op": case.op,
                     "shape": {"N": case.n, "C": case.c, "size": case.size, "kernel": case.kernel},
                     "ms": ms, "samples_ms": store, "ratios": _pool_ratios(ms)})
    return rows


def _pool_ratios(ms):
    return {f"{p}_over_torch": ms[f"ours_{p}"] / ms[f"torch_{p}"] for p in ("fwd", "fwdbwd") if f"torch_{p}" in ms}


def _pool_summary(rows):
    """Per op: summed medians, their ratio, and whether fwd+bwd / torch meets the target."""
    summary, target = {}, TARGETS["pool_fwdbwd_over_torch"]
    for op in ("max_pool2d", "max_unpool2d"):
        mine = [r for r in rows if r["op"] == op]
        if mine:
            total = {key: sum(r["ms"][key] for r in mine) for key in mine[0]["ms"]}
            ratios = _pool_ratios(total)
            summary[op] = {"cases": len(mine), "total_ms": total, "total_ratios": ratios}
            if "fwdbwd_over_torch" in ratios:
                summary[op]["target_met"] = ratios["fwdbwd_over_torch"] <= target
    return summary


def _row(case, info, samples):
    m, k, l = case.gemm_shapes()
    row = {
        "name": case.name, "label": case.label(), "op": case.op,
        "shape": {"N": case.n, "C": case.c, "OC": case.oc, "H": case.size, "W": case.size,
                  "kernel": case.kernel, "stride": case.stride, "padding": case.padding,
                  "dilation": case.dilation, "out": list(case.out_size)},
        "gemm_MKL": [m, k, l], "gemm_layouts": info["gemm_layouts"],
        "flops_fwd": case.flops(), "flops_fwdbwd": case.flops(backward=True),
        "cols_bytes": k * l * 4, "chunks": info["chunks"],
        "ms": {key: statistics.median(v) for key, v in samples.items()},
        "samples_ms": samples,
    }
    row["ratios"] = _ratios(row["ms"])
    row["gemm_gflops_fwdbwd"] = row["flops_fwdbwd"] / row["ms"]["gemm_fwdbwd"] / 1e6
    return row


def _ratios(ms):
    out = {"fwdbwd_over_gemm_ab": ms["ours_fwdbwd"] / ms["gemm_ab_fwdbwd"]}
    for p in ("fwd", "fwdbwd"):
        out[f"{p}_over_gemm"] = ms[f"ours_{p}"] / ms[f"gemm_{p}"]
        if f"torch_{p}" in ms:
            out[f"{p}_over_torch"] = ms[f"ours_{p}"] / ms[f"torch_{p}"]
            out[f"torch_{p}_over_gemm"] = ms[f"torch_{p}"] / ms[f"gemm_{p}"]
    return out


def _totals(rows):
    """Sum of the medians over some cases, their ratios, and the geometric mean of the per-case ratios."""
    total = {key: sum(r["ms"][key] for r in rows) for key in rows[0]["ms"]}
    geo = {key: float(numpy.exp(numpy.mean([numpy.log(r["ratios"][key]) for r in rows]))) for key in rows[0]["ratios"]}
    return {"cases": len(rows), "total_ms": total, "total_ratios": _ratios(total), "geomean_ratios": geo}


def _summary(rows):
    """Totals for conv2d (the shapes the targets are about), conv_transpose2d and all ops; targets met?"""
    summary = {"all": _totals(rows)}
    for op in ("conv2d", "conv_transpose2d"):
        if any(r["op"] == op for r in rows):
            summary[op] = _totals([r for r in rows if r["op"] == op])
    t = summary.get("conv2d", summary["all"])["total_ratios"]
    checks = {f"conv2d fwd+bwd / GEMM <= {TARGETS['fwdbwd_over_gemm']}": t["fwdbwd_over_gemm"] <= TARGETS["fwdbwd_over_gemm"]}
    if "fwdbwd_over_torch" in t:
        checks[f"conv2d fwd+bwd / torch <= {TARGETS['fwdbwd_over_torch']}"] = \
            t["fwdbwd_over_torch"] <= TARGETS["fwdbwd_over_torch"]
        checks[f"conv2d fwd+bwd / torch <= {TARGETS['fwdbwd_over_torch_stretch']} (stretch)"] = \
            t["fwdbwd_over_torch"] <= TARGETS["fwdbwd_over_torch_stretch"]
    summary["targets_met"] = checks
    return summary


# ---- the training step ----------------------------------------------------------------
#
# The tiny U-Net: depth 3, base 16 channels, 1 -> 4 classes, conv3x3+ReLU
# pairs (no BatchNorm), 2x2 max pooling, 2x2 stride-2 transposed-conv up, concatenated
# skips, pixelwise softmax cross-entropy, SGD with momentum. Ours is
# ``minimal_seg.models.UNet``; torch's is the same graph (``torch_unet_like``) with our
# initial weights copied in, so both run the very same numbers (tests/test_bench.py
# checks that one step gives the same loss and update).

UNET = {"in_channels": 1, "num_classes": 4, "base_channels": 16, "depth": 3}
SGD_SETTINGS = {"lr": 0.01, "momentum": 0.9}
STEP_SHAPES = {"numpy": (8, 64), "cupy": (32, 128)}  # (batch, size): issue #6 sections 2 and 3
QUICK_STEP_SHAPE = (2, 16)


def build_unet(seed=0):
    """Our U-Net of the issue: ``UNet(batch_norm=False, up="transpose", skips=True)``, float32."""
    from .models import UNet

    return UNet(**UNET, up="transpose", batch_norm=False, skips=True, seed=seed)


def torch_unet_like(model, torch, device="cpu"):
    """The same U-Net as ``model`` in PyTorch, with a copy of its current weights.

    The torch modules carry our layer names, so ``enc0.1.0.w`` is ``enc0.1.0.weight``:
    every double conv is ``Sequential(Sequential(conv, ReLU), Sequential(conv, ReLU))``.
    ``load_state_dict(strict=True)`` fails on any missing, extra or misshapen weight.
    """
    nn = torch.nn
    cfg = model.config
    assert not cfg["batch_norm"] and cfg["up"] == "transpose" and cfg["skips"], "only the issue's U-Net"

    def double_conv(c_in, c_out):
        return nn.Sequential(*(nn.Sequential(nn.Conv2d(a, c_out, 3, padding=1), nn.ReLU())
                               for a in (c_in, c_out)))

    class TorchUNet(nn.Module):
        def __init__(self, in_channels, num_classes, base_channels, depth):
            super().__init__()
            self.depth = depth
            widths = [base_channels * 2 ** level for level in range(depth + 1)]
            for level in range(depth):
                self.add_module(f"enc{level}", double_conv(([in_channels] + widths)[level], widths[level]))
                self.add_module(f"up{level}", nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2))
                self.add_module(f"dec{level}", double_conv(2 * widths[level], widths[level]))
            self.bottleneck = double_conv(widths[depth - 1], widths[depth])
            self.head = nn.Conv2d(base_channels, num_classes, 1)

        def forward(self, x):
            features = []
            for level in range(self.depth):
                x = getattr(self, f"enc{level}")(x)
                features.append(x)
                x = nn.functional.max_pool2d(x, 2)
            x = self.bottleneck(x)
            for level in reversed(range(self.depth)):
                x = torch.cat([features[level], getattr(self, f"up{level}")(x)], dim=1)
                x = getattr(self, f"dec{level}")(x)
            return self.head(x)

    net = TorchUNet(cfg["in_channels"], cfg["num_classes"], cfg["base_channels"], cfg["depth"])
    names = {"w": "weight", "b": "bias"}
    state = {}
    for name, value in model.named_parameters():
        prefix, key = name.rsplit(".", 1)
        state[f"{prefix}.{names[key]}"] = torch.from_numpy(backend.to_numpy(value).copy())
    net.load_state_dict(state, strict=True)
    return net.to(device)


def step_batch(batch, size, seed=0, classes=UNET["num_classes"], channels=UNET["in_channels"]):
    """A random float32 image batch (N, C, H, W) and int64 labels (N, H, W), on the host."""
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, size, size), dtype=numpy.float32)
    y = rng.integers(0, classes, size=(batch, size, size), dtype=numpy.int64)
    return x, y


def ours_training_step(model, optimizer, x, y):
    """One SGD step of our model on (x, y), both already on the model's backend.

    Returns the loss as a 0-d array of that backend: nothing leaves the device.
    """
    from . import functional as F

    logits = model(x)
    loss, cache = F.softmax_cross_entropy_forward(logits, y)
    model.zero_grad()
    model.backward(F.softmax_cross_entropy_backward(1.0, cache))
    optimizer.step()
    return loss


def torch_training_step(net, optimizer, x, y, torch):
    """The same step in PyTorch; the loss stays a 0-d tensor on the device."""
    optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    optimizer.step()
    return loss


def make_training_steps(batch, size, xp, torch, seed=0):
    """{"ours": step, "torch": step}: ``functools.partial`` of the step functions, bound to a
    model, its optimiser and a fixed batch (``step.args``).

    The batch is sent to the device once, here; a step then never copies
    between host and device (its loss stays there too).
    """
    from .optim import SGD

    model = build_unet(seed)
    opt = SGD(model.parameters(), **SGD_SETTINGS)
    x_np, y_np = step_batch(batch, size, seed)
    x, y = xp.asarray(x_np), xp.asarray(y_np)
    steps = {"ours": functools.partial(ours_training_step, model, opt, x, y)}
    if torch is not None:
        device = "cpu" if xp is numpy else "cuda"
        net = torch_unet_like(model, torch, device)
        topt = torch.optim.SGD(net.parameters(), **SGD_SETTINGS)
        xt, yt = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        steps["torch"] = functools.partial(torch_training_step, net, topt, xt, yt, torch)
    return steps


# ---- peak memory of a step ------------------------------------------------------------


def numpy_peak_bytes(batch, size, seed=0):
    """Peak bytes NumPy holds during a steady-state training step of our U-Net (tracemalloc).

    NumPy reports its data buffers to tracemalloc. Tracing starts before the
    model is built, so the peak counts everything alive: weights, gradients,
    momentum, the batch, the layers' caches (kept from the previous step until
    the next forward replaces them) and the step's temporaries. The second
    step is measured: the first one creates the caches.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        step = make_training_steps(batch, size, numpy, None, seed)["ours"]
        step()
        tracemalloc.reset_peak()
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def torch_cpu_peak_bytes(net, optimizer, x, y, torch):
    """Peak bytes of a PyTorch CPU training step: what it held before + the largest growth during it.

    Before the step (gradients set to None) torch holds the weights, the
    momentum buffers and the batch: their sizes are summed exactly. During
    the step, ``torch.profiler(profile_memory=True)`` records every CPU
    allocation (+bytes) and free (-bytes); the running sum of those records,
    in time order, peaks at the step's largest growth. It sees torch's CPU
    allocator only (not oneDNN's private scratch buffers, if any).
    Uses ``prof.profiler.kineto_results``, which is not a public API: None
    (printed as "-") if a torch version no longer has it.
    """
    from torch.profiler import ProfilerActivity, profile

    optimizer.zero_grad(set_to_none=True)
    held = [p for p in net.parameters()] + [x, y]
    held += [b for s in optimizer.state.values() for b in s.values() if torch.is_tensor(b)]
    before = sum(t.numel() * t.element_size() for t in held)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        torch_training_step(net, optimizer, x, y, torch)
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:  # the private API moved: say "unknown" rather than guess
        return None
    records = sorted((e.start_ns(), e.nbytes()) for e in events
                     if e.name() == "[memory]" and e.device_type().name == "CPU")
    growth = numpy.cumsum([b for _, b in records]) if records else numpy.zeros(1)
    return before + max(0, int(growth.max()))


def cupy_peak_bytes(step):
    """Peak bytes CuPy's memory pool hands out during ``step()`` (everything alive counts).

    The pool keeps no peak, so every allocation goes through a wrapper that
    notes the pool's ``used_bytes()`` right after it; frees return blocks to
    the pool as arrays die, which ``used_bytes`` reflects.
    """
    import cupy

    pool = cupy.get_default_memory_pool()
    peak = [pool.used_bytes()]

    def malloc(nbytes):
        memory = pool.malloc(nbytes)
        peak[0] = max(peak[0], pool.used_bytes())
        return memory

    cupy.cuda.set_allocator(malloc)
    try:
        step()
        backend.synchronize()
    finally:
        cupy.cuda.set_allocator(pool.malloc)
    return peak[0]


def torch_cuda_peak_bytes(step, torch):
    """Peak bytes torch's CUDA caching allocator hands out during ``step()`` (everything alive counts)."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


# ---- timing the step ----------------------------------------------------------------------


def time_training_steps(steps, repeats, warmup, sync, settle=0.15):
    """ms per step of each of ``steps`` ({name: fn}): {name: [samples]}, interleaved as the ops are.

    The same loop as ``time_cases`` (``_interleaved``): ours, a pause (``settle``,
    0 on a GPU) for the other library's spinning threads to sleep, then torch.
    """
    prepared = [{name: (step, None) for name, step in steps.items()}]  # a step has no separate backward
    store = _interleaved(prepared, repeats, warmup, sync, settle)[0]
    return {name: store[f"{name}_fwd"] for name in steps}


def training_step_benchmarks(backend_name, quick, repeats, warmup, torch=None, settle=0.15, seed=0):
    """Time one U-Net training step in minimal_seg and in the identical PyTorch model.

    numpy: batch 8 of 64x64 against torch CPU; cupy: batch 32 of 128x128
    against torch CUDA; ``quick``: batch 2 of 16x16. Returns a list with one
    dict per model (``None`` where unknown)::

        {"model": "unet depth 3 base 16", "batch": 8, "size": 64,
         "ours_ms": ..., "torch_ms": ...,              # median ms per step, interleaved
         "ours_images_per_s": ..., "torch_images_per_s": ...,
         "ratio": ours_ms / torch_ms,
         "ours_peak_mib": ..., "torch_peak_mib": ...,  # see numpy_peak_bytes and friends
         "samples_ms": {"ours": [...], "torch": [...]}, "peak_method": {...}}

    ``run`` prints them as a second table and stores them under
    ``"training"`` in the JSON file.
    """
    batch, size = QUICK_STEP_SHAPE if quick else STEP_SHAPES[backend_name]
    with backend.use_backend(backend_name) as xp:
        steps = make_training_steps(batch, size, xp, torch, seed)
        sync = _syncer(backend_name, torch)
        samples = time_training_steps(steps, repeats, warmup, sync, settle if backend_name == "numpy" else 0)
        peaks, method = _step_peaks(backend_name, steps, batch, size, torch, seed)
    ms = {name: statistics.median(v) for name, v in samples.items()}
    row = {"model": f"unet depth {UNET['depth']} base {UNET['base_channels']}", "batch": batch, "size": size,
           "ours_ms": ms["ours"], "torch_ms": ms.get("torch"),
           "ours_images_per_s": 1e3 * batch / ms["ours"],
           "torch_images_per_s": 1e3 * batch / ms["torch"] if "torch" in ms else None,
           "ratio": ms["ours"] / ms["torch"] if "torch" in ms else None,
           "ours_peak_mib": peaks.get("ours"), "torch_peak_mib": peaks.get("torch"),
           "samples_ms": samples, "peak_method": method, "sgd": SGD_SETTINGS}
    return [row]


def _step_peaks(backend_name, steps, batch, size, torch, seed):
    """Peak MiB of one step for ours and torch, and how each was measured."""
    mib = 2.0 ** -20
    if backend_name == "cupy":
        peaks = {"ours": cupy_peak_bytes(steps["ours"]) * mib}
        method = {"ours": "cupy memory pool used_bytes after every allocation"}
        if torch is not None:
            peaks["torch"] = torch_cuda_peak_bytes(steps["torch"], torch) * mib
            method["torch"] = "torch.cuda.max_memory_allocated"
        return peaks, method
    peaks = {"ours": numpy_peak_bytes(batch, size, seed) * mib}
    method = {"ours": "tracemalloc peak (numpy buffers), steady-state step, all live arrays"}
    if torch is not None:
        torch_bytes = torch_cpu_peak_bytes(*steps["torch"].args)
        peaks["torch"] = None if torch_bytes is None else torch_bytes * mib
        method["torch"] = "weights + momentum + batch, plus the peak of torch.profiler's CPU allocation records"
    return peaks, method


# ---- report -------------------------------------------------------------------------------


def _table(rows, columns):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(columns, widths)))]
    for r in rows:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def format_report(result):
    """The printed report: machine, per-op table, totals and targets, training steps."""
    info, rows, summ = result["machine"], result["ops"], result["summary"]
    blas = info.get("blas")
    if isinstance(blas, list):
        blas = "; ".join(f"{b['internal_api']} {b['version']} ({b.get('architecture')}, "
                         f"{b['num_threads']} threads)" for b in blas)
    env = env_text(info)
    lines = [
        f"minimal_seg bench ({info['backend']}): {result['settings']['repeats']} repeats after "
        f"{result['settings']['warmup']} warm-up, medians, interleaved; float32",
        f"cpu: {info['cpu']} ({info.get('usable_cpus', info['cpu_count'])} usable cores)"
        + (f"; gpu: {info['gpu']}" if "gpu" in info else ""),
        f"numpy {info['numpy']}; torch {info.get('torch', 'not installed')}"
        + (f" ({info['torch_threads']} threads)" if "torch_threads" in info else ""),
        f"blas: {blas}",
        f"env: {env}; im2col budget {info['im2col_budget_bytes'] / 2**20:.0f} MiB",
        f"load average at start {tuple(round(v, 2) for v in info.get('load_average_start', ()))}, "
        f"at end {tuple(round(v, 2) for v in info.get('load_average_end', ()))}",
    ]
    load = info.get("load_average_start")
    cores = info.get("usable_cpus", info["cpu_count"]) or 1
    if info["backend"] == "numpy" and load and load[0] > 0.5 * cores:
        lines.append(f"WARNING: other processes were running (1-minute load average {load[0]:.1f} on "
                     f"{cores} cores when the bench started): timings are noisy")
    has_torch = "torch_fwd" in rows[0]["ms"]
    columns = ["op", "GEMM fwd", "ours fwd", "/GEMM"] + (["torch fwd", "/torch"] if has_torch else [])
    columns += ["GEMM f+b", "ours f+b", "/GEMM"] + (["torch f+b", "/torch"] if has_torch else [])
    columns += ["GFLOP/s"]
    table = []
    totals = [(f"total {op}" if op != "all" else "total", summ[op]) for op in ("conv2d", "conv_transpose2d", "all")
              if op in summ]
    for r in rows + [{"label": label, "ms": t["total_ms"], "ratios": t["total_ratios"]} for label, t in totals] \
            + [{"label": "geometric mean", "ms": None, "ratios": summ["all"]["geomean_ratios"]}]:
        ms, ra = r["ms"], r["ratios"]
        cells = [r["label"]]
        for p in ("fwd", "fwdbwd"):
            cells += [f"{ms[f'gemm_{p}']:.2f}" if ms else "", f"{ms[f'ours_{p}']:.2f}" if ms else "",
                      f"{ra[f'{p}_over_gemm']:.2f}"]
            if has_torch:
                cells += [f"{ms[f'torch_{p}']:.2f}" if ms else "", f"{ra[f'{p}_over_torch']:.2f}"]
        cells.append(f"{r['gemm_gflops_fwdbwd']:.0f}" if "gemm_gflops_fwdbwd" in r else "")
        table.append(cells)
    lines += ["", "times in ms (f+b = forward + backward); GEMM = the bare GEMMs, each in its faster layout; "
              "GFLOP/s of those", _table(table, columns), ""]
    for label, t in totals:
        tr = t["total_ratios"]
        text = f"{label} ({t['cases']} shapes): ours/GEMM fwd+bwd {tr['fwdbwd_over_gemm']:.2f}"
        if has_torch:
            text += f", ours/torch {tr['fwdbwd_over_torch']:.2f}, torch/GEMM {tr['torch_fwdbwd_over_gemm']:.2f}"
        text += f"; ours/GEMM as written (C = A @ B) {tr['fwdbwd_over_gemm_ab']:.2f}"
        lines.append(text)
    if result.get("pool_ops"):
        lines += ["", "pooling (times in ms)", _pool_table(result["pool_ops"], result["pool_summary"]), ""]
    lines.append("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in summ["targets_met"].items()))
    if result.get("training"):
        rows_t = [[t["model"], f"{t['batch']}x{t['size']}", _fmt(t.get("ours_ms")), _fmt(t.get("torch_ms")),
                   _fmt(t.get("ratio")), _fmt(t.get("ours_images_per_s"), 1), _fmt(t.get("torch_images_per_s"), 1),
                   _fmt(t.get("ours_peak_mib"), 0), _fmt(t.get("torch_peak_mib"), 0)]
                  for t in result["training"]]
        lines += ["", "training step", _table(rows_t, ["model", "batch", "ours ms", "torch ms", "ratio",
                                                      "ours img/s", "torch img/s", "ours MiB", "torch MiB"])]
    return "\n".join(lines)


def _pool_table(rows, summary):
    """ours vs torch per pooling case, then the totals per op."""
    has_torch = "torch_fwd" in rows[0]["ms"]
    columns = ["op", "ours fwd"] + (["torch fwd", "/torch"] if has_torch else []) + ["ours f+b"] \
        + (["torch f+b", "/torch"] if has_torch else [])
    table = []
    totals = [{"label": f"total {op}", "ms": t["total_ms"], "ratios": t["total_ratios"]} for op, t in summary.items()]
    for r in rows + totals:
        cells = [r["label"]]
        for p in ("fwd", "fwdbwd"):
            cells.append(f"{r['ms'][f'ours_{p}']:.2f}")
            if has_torch:
                cells += [f"{r['ms'][f'torch_{p}']:.2f}", f"{r['ratios'][f'{p}_over_torch']:.2f}"]
        table.append(cells)
    return _table(table, columns)


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def plot(result, path):
    """Bar chart of the forward+backward ratios per op (conv, then pooling), with the target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    rows = result["ops"] + [{"label": f"TOTAL {op}" if op != "all" else "TOTAL", "ratios": summary[op]["total_ratios"]}
                            for op in ("conv2d", "conv_transpose2d", "all") if op in summary]
    has_torch = "fwdbwd_over_torch" in rows[0]["ratios"]
    if has_torch:  # the pooling ops have no GEMM: only their ours / torch bar (NaN draws no bar)
        rows += [{"label": r["label"], "ratios": {"fwdbwd_over_gemm": float("nan"), **r["ratios"]}}
                 for r in result.get("pool_ops", [])]
    labels = [r["label"] for r in rows]
    x = numpy.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows) + 2), 4.5))
    width = 0.4 if has_torch else 0.6
    ax.bar(x - (width / 2 if has_torch else 0), [r["ratios"]["fwdbwd_over_gemm"] for r in rows], width,
           label="ours / bare GEMMs")
    ax.axhline(TARGETS["fwdbwd_over_gemm"], color="C0", ls="--", lw=1, label=f"target {TARGETS['fwdbwd_over_gemm']}")
    if has_torch:
        ax.bar(x + width / 2, [r["ratios"]["fwdbwd_over_torch"] for r in rows], width, label="ours / torch")
        ax.axhline(TARGETS["fwdbwd_over_torch"], color="C1", ls="--", lw=1,
                   label=f"target {TARGETS['fwdbwd_over_torch']}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("time ratio, forward + backward")
    info = result["machine"]
    ax.set_title(f"minimal_seg conv and pooling ({info['backend']}) on {info.get('gpu', info['cpu'])}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(backend_name=None, quick=False, repeats=None, warmup=None, batch=8, size=64, base=16,
        use_torch=True, json_path="bench.json", png_path="bench.png", seed=0, settle=0.15, stream=sys.stdout):
    """Run the benchmark, print the report, write JSON and PNG; returns the result dict."""
    backend_name = backend_name or backend.get_backend()
    repeats = repeats or (3 if quick else 15)
    warmup = 1 if quick and warmup is None else (3 if warmup is None else warmup)
    with backend.use_backend(backend_name) as xp:
        torch = _import_torch(backend_name) if use_torch else None
        info = machine_info(backend_name, torch)
        sync = _syncer(backend_name, torch)
        rng = numpy.random.default_rng(seed)
        cases = quick_cases() if quick else unet_cases(batch, size, base)
        pause = settle if backend_name == "numpy" else 0
        rows = time_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=pause)
        pools = time_pool_cases(quick_pool_cases() if quick else pool_cases(batch, size, base), xp, torch, repeats,
                                warmup, sync, rng, settle=pause)
    training = training_step_benchmarks(backend_name, quick, repeats, warmup, torch=torch, settle=settle, seed=seed)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = os.getloadavg()
    result = {
        "machine": info,
        "settings": {"backend": backend_name, "quick": quick, "repeats": repeats, "warmup": warmup,
                     "batch": batch, "size": size, "base": base, "dtype": "float32", "seed": seed,
                     "statistic": "median", "settle_s": settle, "targets": TARGETS},
        "ops": rows,
        "summary": _summary(rows),
        "pool_ops": pools,
        "pool_summary": _pool_summary(pools),
        "training": training,
    }
    for op, total in result["pool_summary"].items():
        if "target_met" in total:
            result["summary"]["targets_met"][f"{op} fwd+bwd / torch <= {TARGETS['pool_fwdbwd_over_torch']}"] = \
                total["target_met"]
    print(format_report(result), file=stream)
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {json_path}", file=stream)
    if png_path:
        os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
        plot(result, png_path)
        print(f"wrote {png_path}", file=stream)
    return result
