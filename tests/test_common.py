"""What every functional op shares (functional/common.py): the cache, the argument checks, ``window``.

Each check passes what it should and raises one clear error naming the
argument, what was expected and what came.
"""
import numpy as np
import pytest

from minimal_seg import backend
from minimal_seg.functional.common import (
    Cache,
    check_array,
    check_dout,
    check_float,
    check_int,
    check_nchw,
    check_ndim,
    check_same_module,
    window,
)


def test_cache_is_read_by_attribute():
    cache = Cache(indices=[1, 2], size=(3, 4))
    assert cache.indices == [1, 2] and cache.size == (3, 4)
    assert cache == Cache(size=(3, 4), indices=[1, 2])


def test_checks_pass_what_they_should(xp):
    x = xp.zeros((2, 3, 4, 5), dtype=xp.float32)
    check_array(x, "x")
    check_ndim(x, 4, "x")
    check_float(x, "x")
    check_nchw(x)
    check_int(xp.zeros(3, dtype=xp.int64), "labels")
    check_int(xp.zeros(3, dtype=xp.uint8), "labels")
    check_dout(x, (2, 3, 4, 5))
    check_same_module("x", x, "w", xp.ones(3))


@pytest.mark.parametrize("check, value, error, message", [
    (lambda v: check_array(v, "x"), [[1.0]], TypeError, "x must be a NumPy or CuPy array, got list"),
    (lambda v: check_ndim(v, 4, "x", "N, C, H, W"), np.zeros((2, 3)), ValueError,
     r"x must be 4-D \(N, C, H, W\), got shape \(2, 3\)"),
    (lambda v: check_ndim(v, 2, "w"), np.zeros(3), ValueError, r"w must be 2-D, got shape \(3,\)"),
    (lambda v: check_float(v, "x"), np.zeros(3, dtype=np.int32), TypeError,
     "x must be a floating-point array .* got dtype int32"),
    (lambda v: check_int(v, "labels"), np.zeros(3), TypeError, "labels must be an integer array, got dtype float64"),
    (lambda v: check_nchw(v, "images"), np.zeros((2, 3, 4)), ValueError, "images must be 4-D"),
    (lambda v: check_nchw(v), np.zeros((1, 1, 2, 2), dtype=bool), TypeError, "x must be a floating-point array"),
    (lambda v: check_dout(v, (2, 2)), np.zeros((2, 3)), ValueError,
     r"dout must have the forward output's shape \(2, 2\), got \(2, 3\)"),
    (lambda v: check_dout(v, (2, 2)), 0.5, TypeError, "dout must be a NumPy or CuPy array, got float"),
])
def test_each_check_names_the_argument_and_what_came(check, value, error, message):
    with pytest.raises(error, match=message):
        check(value)


class DeviceArray(np.ndarray):
    """Stands in for an array of another backend: ``array_module`` below answers a different module for it."""


def test_arrays_on_two_backends_are_refused(monkeypatch):
    other = object()
    real = backend.array_module
    monkeypatch.setattr(backend, "array_module", lambda a: other if isinstance(a, DeviceArray) else real(a))
    x, w = np.zeros(3), np.zeros(3).view(DeviceArray)
    message = r"x and w live on different backends \(numpy vs test_common\); move them explicitly"
    with pytest.raises(TypeError, match=message):
        check_same_module("x", x, "w", w)
    check_same_module("w", w, "v", np.ones(2).view(DeviceArray))  # both on the other one: fine


@pytest.mark.parametrize("start, step, count", [(0, 1, 4), (2, 3, 3), (1, 2, 1), (4, 1, 0)])
def test_window_picks_count_pixels_step_apart(start, step, count):
    picked = np.arange(20)[window(start, step, count)]
    assert picked.tolist() == [start + step * i for i in range(count)]
