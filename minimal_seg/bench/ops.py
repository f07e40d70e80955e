"""The conv table: ours, torch and the bare GEMMs per case, their medians, ratios and totals.

- **ours**: ``conv2d_forward`` (+ ``conv2d_backward``) of minimal_seg, its default method;
- **winograd**: the same with ``method="winograd"`` at every 3x3 stride-1 conv ("fast" does not
  take it: it made the training step slower; the totals against ours are in the summary);
- **torch**: ``torch.nn.functional.conv2d`` (+ autograd backward), if torch
  is installed (on the GPU with ``--backend cupy``, where it is timed twice:
  as it comes, cuDNN in TF32, and as **torch_fp32**, TF32 off: ``precision.py``);
- **GEMM**: the bare matrix products an im2col convolution needs, with the
  same FLOPs: forward ``W @ cols``; backward ``dout @ cols.T`` and
  ``W.T @ dout``, on contiguous operands. Each product is timed in both
  memory layouts (C = A @ B, or C.T = B.T @ A.T) during the warm-up and
  the faster one is kept, so GEMM is the best BLAS does; the products as
  written (C = A @ B) are timed too ("GEMM as written" in the totals).

ours / GEMM is the price of everything that is not a matrix product
(im2col, col2im, transposes, Python); ours / torch compares with a
production library.
"""
from __future__ import annotations

import statistics

import numpy

from ..functional._im2col_budget import batch_chunks
from ..functional.conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward
from ..functional._winograd import applies as winograd_applies
from .targets import unet_conv_rows
from .timing import TORCH_RUNS, fastest, interleaved


def time_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=0.15, modes=None):
    """Median ms of every (who, pass) of every conv case: one row dict per case (see ``timing.interleaved``;
    ``modes``: torch timed once more with TF32 off, ``precision.torch_modes``)."""
    prepared = [case_functions(case, xp, torch, rng, sync) for case in cases]
    samples = interleaved([fns for fns, _ in prepared], repeats, warmup, sync, settle, modes)
    return [_row(case, info, store) for case, (_, info), store in zip(cases, prepared, samples)]


def case_functions(case, xp, torch, rng, sync):
    """{"ours": (fwd, fwdbwd), "torch": ..., "gemm": ..., "gemm_ab": ...} for one case, and facts about it."""
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

    def ours(method):
        def fwdbwd():
            _, cache = forward(x, w, b, **opts, method=method)
            return backward_fn(dout, cache)

        return (lambda: forward(x, w, b, **opts, method=method)), fwdbwd

    fns = {"ours": ours("fast")}
    if case.op == "conv2d" and winograd_applies(w_shape, (case.stride,) * 2, (case.dilation,) * 2):
        fns["winograd"] = ours("winograd")  # forced everywhere, for the comparison
    if torch is not None:
        fns["torch"] = _torch_functions(case, torch, (x_np, w_np, b_np, dout_np), "cpu" if xp is numpy else "cuda")
    gemms, layouts = _gemm_functions(case, xp, rng, sync)
    fns.update(gemms)
    m, kk, l = case.gemm_shapes()
    try:
        chunks = len(batch_chunks(x, kk * l * 4 // n))
    except MemoryError:
        chunks = None
    return fns, {"gemm_layouts": layouts, "chunks": chunks}


def _torch_functions(case, torch, arrays, device):
    """(fwd, fwdbwd) of ``torch.nn.functional.conv2d`` or ``conv_transpose2d``, autograd backward."""
    xt, wt, bt, dt = (torch.tensor(a, device=device) for a in arrays)
    for t in (xt, wt, bt):
        t.requires_grad_(True)
    tf = torch.nn.functional
    if case.op == "conv2d":
        def op():
            return tf.conv2d(xt, wt, bt, case.stride, case.padding, case.dilation)
    else:
        def op():
            return tf.conv_transpose2d(xt, wt, bt, case.stride, case.padding, 0, 1, case.dilation)

    def fwdbwd():
        for t in (xt, wt, bt):
            t.grad = None
        op().backward(dt)

    return op, fwdbwd


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
        layouts[name], chosen[name] = fastest(candidates, sync)
        as_written[name] = candidates["C=A@B"]
    # the forward of a transposed conv is the input gradient of the conv it transposes
    forward = chosen["input grad W.T@dout" if case.op == "conv_transpose2d" else "forward W@cols"]

    def fwdbwd(fns):
        return lambda: [fn() for fn in fns]

    return {"gemm": (forward, fwdbwd(chosen.values())), "gemm_ab": (None, fwdbwd(as_written.values()))}, layouts


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
        for who in (t for t in TORCH_RUNS if f"{t}_{p}" in ms):  # torch's default, and FP32 on a GPU
            out[f"{p}_over_{who}"] = ms[f"ours_{p}"] / ms[f"{who}_{p}"]
            out[f"{who}_{p}_over_gemm"] = ms[f"{who}_{p}"] / ms[f"gemm_{p}"]
    return out


def _totals(rows):
    """Sum of the medians over some cases, their ratios, and the geometric mean of the per-case ratios."""
    total = {key: sum(r["ms"][key] for r in rows) for key in rows[0]["ms"] if all(key in r["ms"] for r in rows)}
    geo = {key: float(numpy.exp(numpy.mean([numpy.log(r["ratios"][key]) for r in rows]))) for key in rows[0]["ratios"]}
    return {"cases": len(rows), "total_ms": total, "total_ratios": _ratios(total), "geomean_ratios": geo}


def summary(rows):
    """Totals for conv2d, the U-Net's own conv2d shapes, conv_transpose2d and all ops, and Winograd's."""
    result = {"all": _totals(rows)}
    for op in ("conv2d", "conv_transpose2d"):
        if any(r["op"] == op for r in rows):
            result[op] = _totals([r for r in rows if r["op"] == op])
    if unet_conv_rows(rows):
        result["unet_conv2d"] = _totals(unet_conv_rows(rows))
    winograd = [r for r in rows if "winograd_fwdbwd" in r["ms"]]
    if winograd:
        ms = {who: sum(r["ms"][f"{who}_fwdbwd"] for r in winograd) for who in ("ours", "winograd")}
        result["winograd"] = {"cases": len(winograd), "total_fwdbwd_ms": ms,
                              "winograd_over_ours": ms["winograd"] / ms["ours"]}
    return result
