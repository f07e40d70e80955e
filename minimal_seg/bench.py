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

``training_step_benchmarks`` is the hook for timing a whole U-Net training
step against an identical PyTorch model once the models exist.
"""
from __future__ import annotations

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
from .functional.shapes import conv2d_output_shape, conv_transpose2d_output_shape

TARGETS = {"fwdbwd_over_gemm": 1.3, "fwdbwd_over_torch": 2.0, "fwdbwd_over_torch_stretch": 1.5}
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


# ---- the machine ------------------------------------------------------------------


def _cpu_model():
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
        "cpu": _cpu_model(),
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
    """Median ms of every (who, pass) of every case: one row dict per case.

    Every repeat times everything once: first, for each case, ours and the
    GEMMs alternately (both run on NumPy's BLAS), then, after a pause, torch
    for each case. The pause matters on a CPU: after a call, OpenBLAS' worker
    threads keep spinning for 2**OPENBLAS_THREAD_TIMEOUT cycles (default
    2**28, about 0.1 s), and torch's OpenMP threads do the same; whichever
    library runs next while the other's threads still spin loses a core and
    looks up to twice as slow. ``settle`` seconds (0 on a GPU) let them sleep,
    and one untimed call wakes the next library's threads up again.
    """
    prepared = [_case_functions(case, xp, torch, rng, sync) for case in cases]
    blocks = [("ours", "gemm", "gemm_ab"), ("torch",)] if torch is not None else [("ours", "gemm", "gemm_ab")]
    samples = [{} for _ in cases]
    for rep in range(warmup + repeats):
        for block in blocks:
            _seconds(prepared[0][0][block[0]][0], sync)  # untimed: wakes this library's threads up
            for (fns, _), store in zip(prepared, samples):
                for who in block:
                    for p, fn in zip(("fwd", "fwdbwd"), fns[who]):
                        if fn is None:
                            continue
                        t = _seconds(fn, sync)
                        if rep >= warmup:
                            store.setdefault(f"{who}_{p}", []).append(1e3 * t)
            if settle:
                time.sleep(settle)
    return [_row(case, info, store) for case, (_, info), store in zip(cases, prepared, samples)]


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


# ---- the training-step hook ------------------------------------------------------------


def training_step_benchmarks(backend_name, quick, repeats, warmup):
    """HOOK: time one U-Net training step in minimal_seg and in an identical PyTorch model.

    Not implemented yet (the models do not exist yet). When they do, return a
    list of dicts, one per model, with these keys (``None`` where unknown)::

        {"model": "unet depth 3 base 16", "batch": 8, "size": 64,
         "ours_ms": ..., "torch_ms": ...,              # median ms per step, interleaved
         "ours_images_per_s": ..., "torch_images_per_s": ...,
         "ratio": ours_ms / torch_ms,
         "ours_peak_mib": ..., "torch_peak_mib": ...}   # e.g. tracemalloc / torch.cuda.max_memory_allocated

    ``run`` prints them as a second table and stores them under
    ``"training"`` in the JSON file; an empty list prints nothing.
    """
    return []


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
    env = ", ".join(f"{k}={v}" for k, v in info["env"].items() if v is not None) or "none set"
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
    lines.append("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in summ["targets_met"].items()))
    if result.get("training"):
        rows_t = [[t["model"], f"{t['batch']}x{t['size']}", _fmt(t.get("ours_ms")), _fmt(t.get("torch_ms")),
                   _fmt(t.get("ratio")), _fmt(t.get("ours_images_per_s"), 1), _fmt(t.get("torch_images_per_s"), 1),
                   _fmt(t.get("ours_peak_mib"), 0), _fmt(t.get("torch_peak_mib"), 0)]
                  for t in result["training"]]
        lines += ["", "training step", _table(rows_t, ["model", "batch", "ours ms", "torch ms", "ratio",
                                                      "ours img/s", "torch img/s", "ours MiB", "torch MiB"])]
    return "\n".join(lines)


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def plot(result, path):
    """Bar chart of the forward+backward ratios per op, with the target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    rows = result["ops"] + [{"label": f"TOTAL {op}" if op != "all" else "TOTAL", "ratios": summary[op]["total_ratios"]}
                            for op in ("conv2d", "conv_transpose2d", "all") if op in summary]
    labels = [r["label"] for r in rows]
    x = numpy.arange(len(rows))
    has_torch = "fwdbwd_over_torch" in rows[0]["ratios"]
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
    ax.set_title(f"minimal_seg conv ({info['backend']}) on {info.get('gpu', info['cpu'])}", fontsize=10)
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
        rows = time_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=settle if backend_name == "numpy" else 0)
    if hasattr(os, "getloadavg"):
        info["load_average_end"] = os.getloadavg()
    result = {
        "machine": info,
        "settings": {"backend": backend_name, "quick": quick, "repeats": repeats, "warmup": warmup,
                     "batch": batch, "size": size, "base": base, "dtype": "float32", "seed": seed,
                     "statistic": "median", "settle_s": settle, "targets": TARGETS},
        "ops": rows,
        "summary": _summary(rows),
        "training": training_step_benchmarks(backend_name, quick, repeats, warmup),
    }
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
