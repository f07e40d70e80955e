"""Peak memory of a training step: NumPy by tracemalloc, torch CPU by its profiler, CuPy by its pool,
torch CUDA by its allocator. Everything alive during the step counts."""
from __future__ import annotations

import numpy

from .. import backend
from .torch_unet import torch_training_step


def step_peaks(backend_name, steps, make_ours, torch):
    """Peak MiB of one step for ours and torch ({name: MiB}), and how each was measured.

    ``steps`` holds the timed steps ({"ours": ..., "torch": ...}); ``make_ours()``
    builds a fresh step of ours (NumPy is traced from before its model exists).
    """
    mib = 2.0 ** -20
    if backend_name == "cupy":
        peaks = {"ours": cupy_peak_bytes(steps["ours"]) * mib}
        method = {"ours": "cupy memory pool used_bytes after every allocation"}
        if torch is not None:
            peaks["torch"] = torch_cuda_peak_bytes(steps["torch"], torch) * mib
            method["torch"] = "torch.cuda.max_memory_allocated"
        return peaks, method
    peaks = {"ours": numpy_peak_bytes(make_ours) * mib}
    method = {"ours": "tracemalloc peak (numpy buffers), steady-state step, all live arrays"}
    if torch is not None:
        torch_bytes = torch_cpu_peak_bytes(*steps["torch"].args)
        peaks["torch"] = None if torch_bytes is None else torch_bytes * mib
        method["torch"] = "weights + momentum + batch, plus the peak of torch.profiler's CPU allocation records"
    return peaks, method


def numpy_peak_bytes(make_step):
    """Peak bytes NumPy holds during a steady-state training step (tracemalloc).

    ``make_step()`` builds the model, its optimiser and batch, and returns the step.

    NumPy reports its data buffers to tracemalloc. Tracing starts before the
    model is built, so the peak counts everything alive: weights, gradients,
    momentum, the batch, the layers' caches (kept from the previous step until
    the next forward replaces them) and the step's temporaries. The second
    step is measured: the first one creates the caches.
    """
    import tracemalloc

    tracemalloc.start()
    try:
        step = make_step()
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
