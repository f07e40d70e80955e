"""Checks of assignment 3 (a3_max_pool_unpool.py): max pooling with indices, max unpooling."""
from __future__ import annotations

import numpy

from ... import functional as F
from ...backend import to_numpy
from ..grader import Checklist
from ..imports import ImportRules
from . import F32_TOL, POOL_INDICES, POOL_OUT, POOL_X, randn, tie_free

CHECKS = Checklist(ImportRules(task="max pooling, max unpooling and their backward passes"))

# (x shape, kernel, stride): rectangular images catch swapped h and w, stride < kernel makes windows overlap.
CASES = [
    ((2, 3, 6, 7), 2, None),
    ((2, 2, 7, 7), 3, 2),
    ((1, 2, 5, 8), 3, 1),
]

INDEX_HINT = "indices are flat positions h*W + w in the (H, W) plane, with h = p*S + i and w = q*S + j of the winner"
TRANSPOSED_INDEX_HINT = ("your indices look like w*H + h: h and w are swapped. The flat index of pixel (h, w) in a "
                         "row-major (H, W) plane is h*W + w")
OVERLAP_HINT = ("{name} is too small where windows overlap: a pixel that wins several windows gets the SUM of "
                "their dout values (+=, or bincount with weights), not the last one")
DX_POOL_HINTS = {"default": "each dout[n, c, p, q] is ADDED at the pixel indices[n, c, p, q] of its plane (n, c) "
                            "(are the indices right?); a pixel that wins several overlapping windows gets the sum"}
DX_UNPOOL_HINTS = {"default": "dx[n, c, p, q] = dout[n, c].ravel()[indices[n, c, p, q]]: a gather, "
                              "the transpose of the forward's scatter"}


def _case_name(case) -> str:
    x_shape, k, stride = case
    return f"x {x_shape}, kernel {k}, stride {stride if stride is not None else k}"


def _out_size(case):
    x_shape, k, stride = case
    return F.pool2d_output_shape(x_shape[2:], k, stride)


def _index_hint(actual, expected, width: int, height: int) -> str:
    """TRANSPOSED_INDEX_HINT when ``actual`` is the expected index with h and w swapped."""
    a, e = to_numpy(actual), to_numpy(expected)
    if a.shape == e.shape and numpy.array_equal(a, (e % width) * height + e // width):
        return TRANSPOSED_INDEX_HINT
    return INDEX_HINT


@CHECKS.add("shapes, dtypes and values in float32", expect="< 1e-5 (exact)")
def shapes(s, ctx):
    x_shape, k, stride = CASES[1]
    oh, ow = _out_size(CASES[1])
    x = tie_free(0, *x_shape)
    out, cache = s.max_pool2d_forward(x.astype(numpy.float32), k, stride)
    ctx.expect_shape("out", out, (*x_shape[:2], oh, ow), numpy.float32,
                     hint="OH = (H - K) // S + 1, OW = (W - K) // S + 1")
    ref, ref_cache = F.max_pool2d_forward(x.astype(numpy.float32), k, stride)
    ctx.expect_close("out", out, ref, tol=F32_TOL, case="float32",
                     hints={"default": "out[p, q] is the max of window (p, q), x[p*S : p*S + K, q*S : q*S + K]"})
    if not hasattr(cache, "get") or not hasattr(cache.get("indices"), "dtype"):
        ctx.fail("the cache has no array 'indices'", hint='cache = {"x_shape": ..., "indices": ..., ...}')
    indices = cache["indices"]
    ctx.expect_shape('cache["indices"]', indices, out.shape)
    if indices.dtype.kind not in "iu":
        ctx.fail(f'cache["indices"] has dtype {indices.dtype}, expected an integer type (int64)',
                 hint="indices index pixels: make them integers, e.g. .astype(xp.int64)")
    _, cache = s.max_pool2d_forward(x, k, stride)
    ctx.expect_shape("max_pool2d_backward dx", s.max_pool2d_backward(randn(1, *out.shape), cache), x.shape)
    ctx.expect_equal('cache["indices"]', indices, ref_cache.indices, case="float32",
                     hint=_index_hint(indices, ref_cache.indices, x_shape[3], x_shape[2]))
    up, ucache = s.max_unpool2d_forward(randn(2, *out.shape), cache["indices"], x_shape[2:])
    ctx.expect_shape("max_unpool2d_forward out", up, x.shape, hint="the unpooled map has output_size (OH, OW)")
    ctx.expect_shape("max_unpool2d_backward dx", s.max_unpool2d_backward(randn(3, *x.shape), ucache), out.shape)


@CHECKS.add("hand example: the lecture's 4x4 -> [[4, 8], [6, 9]], indices, unpooling", expect="exact")
def hand_lecture(s, ctx):
    out, cache = s.max_pool2d_forward(POOL_X[None, None], 2, 2)
    ctx.expect_close("out", out, POOL_OUT[None, None], tol=0, against="the lecture's [[4, 8], [6, 9]]",
                     hints={"default": "out[p, q] is the max of window (p, q), x[p*S : p*S + K, q*S : q*S + K]"})
    ctx.expect_equal('cache["indices"]', cache["indices"], POOL_INDICES[None, None],
                     hint=_index_hint(cache["indices"], POOL_INDICES[None, None], 4, 4))
    sparse = numpy.zeros(16)
    sparse[POOL_INDICES.ravel()] = POOL_OUT.ravel()
    up, _ = s.max_unpool2d_forward(POOL_OUT[None, None], POOL_INDICES[None, None], (4, 4))
    ctx.expect_close("unpooled", up, sparse.reshape(1, 1, 4, 4), tol=0, against="4, 8, 6, 9 back at their places",
                     hints={"default": "out[n, c].ravel()[indices[n, c, p, q]] = x[n, c, p, q], zeros elsewhere"})
    dx = s.max_pool2d_backward(numpy.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    routed = numpy.zeros(16)
    routed[POOL_INDICES.ravel()] = [1.0, 2.0, 3.0, 4.0]
    ctx.expect_close("dx", dx, routed.reshape(1, 1, 4, 4), tol=0, against="dout routed to the four maxima",
                     hints={"default": "dx is dout at each window's winner and zero at every other pixel"})


@CHECKS.add("hand example: one pixel wins four overlapping windows", expect="exact")
def hand_overlap(s, ctx):
    x = numpy.array([[1.0, 2.0, 3.0], [4.0, 9.0, 5.0], [6.0, 7.0, 8.0]])[None, None]
    _, cache = s.max_pool2d_forward(x, 2, 1)  # every 2x2 window holds the 9
    dx = s.max_pool2d_backward(numpy.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = numpy.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    ctx.expect_close("dx", dx, expected, tol=0, against="1 + 2 + 3 + 4 at the centre",
                     hints={"default": OVERLAP_HINT})


@CHECKS.add("gradient check: max pooling and max unpooling", expect="< 1e-7 (~1e-11)")
def gradients(s, ctx):
    for k, case in enumerate(CASES[:2]):
        x_shape, kernel, stride = case
        ctx.expect_gradients(s.max_pool2d_forward, s.max_pool2d_backward, {"x": tie_free(10 + k, *x_shape)},
                             {"kernel_size": kernel, "stride": stride}, label=f"max_pool2d, {_case_name(case)}",
                             reference=F.max_pool2d_forward, hints={"dx": DX_POOL_HINTS})
    x_shape, kernel, stride = CASES[0]
    _, ref_cache = F.max_pool2d_forward(tie_free(12, *x_shape), kernel, stride)

    def unpool(x, indices, output_size):
        return F.max_unpool2d_forward(x, indices, kernel, stride, output_size=output_size)

    ctx.expect_gradients(s.max_unpool2d_forward, s.max_unpool2d_backward,
                         {"x": randn(13, *ref_cache.indices.shape), "indices": ref_cache.indices},
                         {"output_size": x_shape[2:]}, label="max_unpool2d", reference=unpool,
                         hints={"dx": DX_UNPOOL_HINTS})


@CHECKS.add("same numbers as minimal_seg.functional (max_pool2d, max_unpool2d)", expect="< 1e-10 (~1e-16)")
def reference(s, ctx):
    for k, case in enumerate(CASES):
        x_shape, kernel, stride = case
        name = _case_name(case)
        x = tie_free(20 + k, *x_shape)
        out, cache = s.max_pool2d_forward(x, kernel, stride)
        ref, ref_cache = F.max_pool2d_forward(x, kernel, stride)
        ctx.expect_close("out", out, ref, case=name)
        ctx.expect_equal('cache["indices"]', cache["indices"], ref_cache.indices, case=name,
                         hint=_index_hint(cache["indices"], ref_cache.indices, x_shape[3], x_shape[2]))
        dout = randn(30 + k, *ref.shape)
        ctx.expect_close("max_pool2d_backward dx", s.max_pool2d_backward(dout, cache),
                         F.max_pool2d_backward(dout, ref_cache), case=name, hints=DX_POOL_HINTS)
        # unpool the pooled values: where windows overlap, two writes to one pixel carry the same value
        up, ucache = s.max_unpool2d_forward(ref, ref_cache.indices, x_shape[2:])
        ref_up, ref_ucache = F.max_unpool2d_forward(ref, ref_cache.indices, kernel, stride, output_size=x_shape[2:])
        ctx.expect_close("max_unpool2d_forward out", up, ref_up, case=name,
                         hints={"default": "out[n, c].ravel()[indices[n, c, p, q]] = x[n, c, p, q]"})
        dup = randn(40 + k, *x_shape)
        ctx.expect_close("max_unpool2d_backward dx", s.max_unpool2d_backward(dup, ucache),
                         F.max_unpool2d_backward(dup, ref_ucache), case=name, hints=DX_UNPOOL_HINTS)
