"""How a time is taken: one clock, the device synchronised, every contender interleaved.

Every repeat times everything once: first, for each case, ours and the
GEMMs alternately (both run on NumPy's BLAS), then, after a pause, torch
for each case. The pause matters on a CPU: after a call, OpenBLAS' worker
threads keep spinning for 2**OPENBLAS_THREAD_TIMEOUT cycles (default
2**28, about 0.1 s), and torch's OpenMP threads do the same; whichever
library runs next while the other's threads still spin loses a core and
looks up to twice as slow. ``settle`` seconds (0 on a GPU) let them sleep,
and one untimed call wakes the next library's threads up again.

On a GPU torch is timed twice, in blocks of their own: as it comes
("torch": its defaults, convolutions in TF32) and with TF32 off
("torch_fp32"); ``modes`` says how (see ``precision.torch_modes``).
"""
from __future__ import annotations

import contextlib
import time

from .. import backend


def import_torch(backend_name):
    """torch, or None when it is not installed (or has no CUDA for the cupy backend)."""
    try:
        import torch
    except ImportError:
        return None
    if backend_name == "cupy" and not torch.cuda.is_available():
        return None
    return torch


def syncer(backend_name, torch):
    """A function that waits for the device (and torch's) to finish: a no-op on the CPU."""
    if backend_name == "numpy":
        return lambda: None

    def sync():
        backend.synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    return sync


def seconds(fn, sync):
    """Wall-clock seconds of one call of ``fn``, the device included."""
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def fastest(candidates, sync, tries=3):
    """The fastest of a few equivalent functions ({name: fn}, timed ``tries`` times each): (name, fn)."""
    best = {name: min(seconds(fn, sync) for _ in range(tries)) for name, fn in candidates.items()}
    name = min(best, key=best.get)
    return name, candidates[name]


TORCH_RUNS = ("torch", "torch_fp32")  # torch as it comes; torch with TF32 off (GPU only)


def interleaved(prepared, repeats, warmup, sync, settle, modes=None):
    """Samples (ms) of every {who: (fwd, fwdbwd)} in ``prepared``: one dict of lists per case.

    Keys are "{who}_fwd" and "{who}_fwdbwd"; a None function, or a who a case lacks, is skipped.
    torch (if present) runs in its own block, after the others (see above). ``modes``
    ({who: (source, context)}, e.g. {"torch_fp32": ("torch", torch_fp32)}) times ``source``'s
    functions once more as ``who``, its block inside ``with context():``.
    """
    modes = modes or {}
    prepared = [{**fns, **{who: fns[src] for who, (src, _) in modes.items() if src in fns}} for fns in prepared]
    ours = tuple(dict.fromkeys(who for fns in prepared for who in fns if who not in TORCH_RUNS))
    blocks = [ours] + [(who,) for who in TORCH_RUNS if who in prepared[0]]
    samples = [{} for _ in prepared]
    for rep in range(warmup + repeats):
        for block in blocks:
            with modes.get(block[0], (None, contextlib.nullcontext))[1]():
                seconds(prepared[0][block[0]][0], sync)  # untimed: wakes this library's threads up
                for fns, store in zip(prepared, samples):
                    for who in (who for who in block if who in fns):
                        for p, fn in zip(("fwd", "fwdbwd"), fns[who]):
                            if fn is None:
                                continue
                            t = seconds(fn, sync)
                            if rep >= warmup:
                                store.setdefault(f"{who}_{p}", []).append(1e3 * t)
            if settle:
                time.sleep(settle)
    return samples
