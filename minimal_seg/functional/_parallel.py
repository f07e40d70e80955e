"""Copies on more than one core: a small persistent thread pool over blocks of channels.

The GEMMs of a convolution already run on every BLAS thread, but its
copies (the columns of ``_conv_fast``, padding, NCHW <-> channels-first
transposes) are single NumPy calls, one core each. NumPy releases the GIL
while it copies, so a few Python threads that each copy a block of
channels run at the same time. Every element is copied by exactly one
thread, exactly as the single-threaded call would copy it: the results
are bit-identical, whatever the thread count.

``parallel_blocks(fn, count, nbytes, like)`` calls ``fn(block)`` for
slices ``block`` that cover ``range(count)``; the caller's thread does the
first block itself. It stays on one thread (one call ``fn(slice(0, count))``):

- with 1 copy thread (the setting below);
- on a GPU (CuPy arrays: the device does the work, and one stream keeps the order);
- for small copies (``nbytes`` < MIN_PARALLEL_BYTES), where waking a thread costs more;
- inside a block already running in parallel (nested use never waits for the pool it runs on).

``pad_channels_first`` is the padded, channels-first copy that the
stride-1 and Winograd paths start from, by blocks of channels.

The setting: ``MINIMAL_SEG_COPY_THREADS`` (default 1, off), ``set_copy_threads``
or ``use_copy_threads``. The pool is created on first use.
"""
from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ._threads import positive_count
from ..backend import array_module, is_device_array

MIN_PARALLEL_BYTES = 256 * 2**10  # below about 256 KiB one thread copies faster than two can start

_settings = {"threads": 1}
_pool: dict = {}  # {"executor": ThreadPoolExecutor, "size": int}, created on first use
_pool_lock = threading.Lock()
_state = threading.local()  # _state.busy: this thread is running a block of parallel_blocks


def get_copy_threads() -> int:
    """Threads that the fast convolutions' copies may use (1: off)."""
    return _settings["threads"]


def set_copy_threads(count) -> None:
    """Set the number of copy threads (1 turns the pool off)."""
    _settings["threads"] = positive_count(count, "copy threads")


@contextlib.contextmanager
def use_copy_threads(count):
    """``with use_copy_threads(2): ...`` changes the copy threads for a block."""
    previous = get_copy_threads()
    set_copy_threads(count)
    try:
        yield
    finally:
        set_copy_threads(previous)


set_copy_threads(os.environ.get("MINIMAL_SEG_COPY_THREADS", "1"))


def _executor(workers: int) -> ThreadPoolExecutor:
    """The persistent pool, with at least ``workers`` threads (made again, larger, when the setting grows)."""
    with _pool_lock:
        if _pool.get("size", 0) < workers:
            if "executor" in _pool:
                _pool["executor"].shutdown(wait=True)
            _pool.update(executor=ThreadPoolExecutor(workers, thread_name_prefix="minimal_seg-copy"), size=workers)
        return _pool["executor"]


def _run_block(fn, block):
    """fn(block), marked as running inside parallel_blocks (so that nested calls stay on this thread)."""
    _state.busy = True
    try:
        fn(block)
    finally:
        _state.busy = False


def parallel_blocks(fn, count: int, nbytes: int, like) -> None:
    """Call ``fn(block)`` for slices covering ``range(count)``, on up to ``get_copy_threads()`` threads.

    ``nbytes``: the bytes the whole call copies; ``like``: an array of the
    call (CuPy arrays stay on one thread). The blocks are disjoint and as
    equal as possible; this returns when all are done, and re-raises the
    first error of a block.
    """
    threads = min(get_copy_threads(), count)
    if threads < 2 or nbytes < MIN_PARALLEL_BYTES or is_device_array(like) or getattr(_state, "busy", False):
        fn(slice(0, count))
        return
    bounds = [count * k // threads for k in range(threads + 1)]
    blocks = [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]
    executor = _executor(threads - 1)
    futures = [executor.submit(_run_block, fn, block) for block in blocks[1:]]
    try:
        _run_block(fn, blocks[0])
    finally:
        for future in futures:
            future.result()


def pad_channels_first(x, rows, columns):
    """x (N, C, H, W) -> (C, N, top + H + bottom, left + W + right), zeros around; rows = (top, bottom), columns likewise.

    Only the border is zeroed; the channels are copied by blocks (``parallel_blocks``).
    """
    n, c, h, w = x.shape
    (top, bottom), (left, right) = rows, columns
    xpad = array_module(x).empty((c, n, top + h + bottom, left + w + right), dtype=x.dtype)
    xt = x.transpose(1, 0, 2, 3)

    def pad(block):
        for border in (xpad[block, :, :top], xpad[block, :, top + h:], xpad[block, :, top:top + h, :left],
                       xpad[block, :, top:top + h, left + w:]):
            border[...] = 0
        xpad[block, :, top:top + h, left:left + w] = xt[block]

    parallel_blocks(pad, c, xpad.nbytes, x)
    return xpad
