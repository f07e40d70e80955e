"""The pooling table: ``max_pool2d`` (with indices) and ``max_unpool2d`` at the U-Net's shapes, ours
against torch (no GEMM), timed like the convolutions."""
from __future__ import annotations

import statistics

import numpy

from ..functional.pool import max_pool2d_backward, max_pool2d_forward, max_unpool2d_backward, max_unpool2d_forward
from .timing import interleaved


def time_pool_cases(cases, xp, torch, repeats, warmup, sync, rng, settle=0.15):
    """Median ms of ours and torch, forward and forward+backward, per PoolCase (interleaved as conv)."""
    prepared = [_pool_functions(case, xp, torch, rng) for case in cases]
    samples = interleaved(prepared, repeats, warmup, sync, settle)
    rows = []
    for case, store in zip(cases, samples):
        ms = {key: statistics.median(v) for key, v in store.items()}
        rows.append({"name": case.name, "label": case.label(), "op": case.op,
                     "shape": {"N": case.n, "C": case.c, "size": case.size, "kernel": case.kernel},
                     "ms": ms, "samples_ms": store, "ratios": _pool_ratios(ms)})
    return rows


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


def _pool_ratios(ms):
    return {f"{p}_over_torch": ms[f"ours_{p}"] / ms[f"torch_{p}"] for p in ("fwd", "fwdbwd") if f"torch_{p}" in ms}


def pool_summary(rows):
    """Per op: summed medians and their ratios (the target: ``targets.py``)."""
    summary = {}
    for op in ("max_pool2d", "max_unpool2d"):
        mine = [r for r in rows if r["op"] == op]
        if mine:
            total = {key: sum(r["ms"][key] for r in mine) for key in mine[0]["ms"]}
            ratios = _pool_ratios(total)
            summary[op] = {"cases": len(mine), "total_ms": total, "total_ratios": ratios}
    return summary
