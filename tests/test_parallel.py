"""The copy thread pool: bit-identical results at any thread count, blocks that cover the range once,
nested use, errors, and the setting."""
import threading

import numpy as np
import pytest
from helpers import rand

from minimal_seg.backend import to_numpy
from minimal_seg.functional import _parallel
from minimal_seg.functional.conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, \
    conv_transpose2d_forward


@pytest.fixture
def every_copy_parallel(monkeypatch):
    """Even the tiny copies of a test go to the pool."""
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_BYTES", 0)


def _fwd_bwd(xp, transposed, x, w, dout, **opts):
    fwd, bwd = (conv_transpose2d_forward, conv_transpose2d_backward) if transposed else (conv2d_forward,
                                                                                           conv2d_backward)
    out, cache = fwd(xp.asarray(x), xp.asarray(w), None, **opts)
    return [to_numpy(a) for a in (out,) + bwd(xp.asarray(dout), cache)[:2]]


# wide forward + backward from dout columns; wide forward + general backward; transposed with a wide backward
@pytest.mark.parametrize("transposed,c,oc,size,opts", [
    (False, 5, 4, (6, 40), dict(padding=1)),
    (False, 1, 8, (5, 33), dict(padding=2, dilation=2)),
    (True, 3, 5, (4, 30), dict(padding=1)),
    (False, 32, 4, (7, 6), dict(padding=1)),  # Winograd (its padded input)
])
@pytest.mark.parametrize("threads", [2, 3])
def test_copy_threads_give_the_same_bits(xp, rng, every_copy_parallel, transposed, c, oc, size, opts, threads):
    x = rand(rng, (3, c) + size, np.float32)
    w = rand(rng, ((c, oc) if transposed else (oc, c)) + (3, 3), np.float32)
    out_shape = conv_transpose2d_forward(x, w, **opts)[0].shape if transposed else conv2d_forward(x, w, **opts)[0].shape
    dout = rand(rng, out_shape, np.float32)
    with _parallel.use_copy_threads(1):
        one = _fwd_bwd(xp, transposed, x, w, dout, **opts)
    calls = []
    real = _parallel._run_block
    with _parallel.use_copy_threads(threads):
        _parallel._run_block = lambda fn, block: (calls.append(threading.get_ident()), real(fn, block))
        try:
            many = _fwd_bwd(xp, transposed, x, w, dout, **opts)
        finally:
            _parallel._run_block = real
    for a, b in zip(many, one):
        np.testing.assert_array_equal(a, b)
    if xp is np:
        assert len(set(calls)) > 1  # the copies really ran on more than one thread


@pytest.mark.parametrize("count,threads", [(1, 2), (2, 2), (7, 3), (16, 2), (3, 4)])
def test_blocks_cover_the_range_once(every_copy_parallel, count, threads):
    hits = np.zeros(count, dtype=int)
    lock = threading.Lock()

    def mark(block):
        with lock:
            hits[block] += 1

    with _parallel.use_copy_threads(threads):
        _parallel.parallel_blocks(mark, count, 10**9, np.zeros(1))
    np.testing.assert_array_equal(hits, np.ones(count, dtype=int))


def test_nested_use_runs_inline_and_errors_come_back(every_copy_parallel):
    inner_threads = []

    def outer(block):
        def inner(b):
            inner_threads.append(threading.get_ident())
        _parallel.parallel_blocks(inner, 4, 10**9, np.zeros(1))
        assert inner_threads[-1] == threading.get_ident()  # nested: on the block's own thread, not the pool

    def fail(block):
        if block.start > 0:
            raise RuntimeError("block failed")

    with _parallel.use_copy_threads(2):
        _parallel.parallel_blocks(outer, 2, 10**9, np.zeros(1))
        with pytest.raises(RuntimeError, match="block failed"):
            _parallel.parallel_blocks(fail, 2, 10**9, np.zeros(1))
    assert len(inner_threads) == 2


def test_small_copies_and_one_thread_stay_inline():
    seen = []
    with _parallel.use_copy_threads(2):
        _parallel.parallel_blocks(seen.append, 8, _parallel.MIN_PARALLEL_BYTES - 1, np.zeros(1))
    with _parallel.use_copy_threads(1):
        _parallel.parallel_blocks(seen.append, 8, 10**9, np.zeros(1))
    assert seen == [slice(0, 8), slice(0, 8)]


def test_the_setting():
    assert _parallel.get_copy_threads() >= 1
    with _parallel.use_copy_threads(3):
        assert _parallel.get_copy_threads() == 3
    with pytest.raises(ValueError, match="copy threads must be a whole number of threads >= 1"):
        _parallel.set_copy_threads(0)
