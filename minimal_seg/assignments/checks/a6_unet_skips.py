"""Checks of assignment 6 (a6_unet_skips.py): U-Net's backward pass, summing at every skip.

The reference is the library's own ``UNet.backward`` on an identical model
(same seed, so the same weights); models/unet.py does the sum in ``UNet._skip_sum``.
The student's function gets a ``GradedUNet``, whose own ``backward`` refuses
to run: calling it would be handing in the answer.

The model lives on the current backend (NumPy, or CuPy with
MINIMAL_SEG_BACKEND=cupy); the grading data is made on the host and moved to
it explicitly, and every array is brought back with ``to_numpy`` to be judged.
"""
from __future__ import annotations

import numpy

from ...backend import asarray, to_numpy
from ...models import UNet
from ..grader import REF_TOL, CheckFailed, Checklist
from ..imports import ImportRules
from . import randn

HELPERS = tuple(f"minimal_seg.functional.{name}" for name in ("crop_backward", "concat_backward", "pad_to_multiple_backward"))
CHECKS = Checklist(ImportRules(task="U-Net's backward pass", allowed=HELPERS))

X_SHAPE = (2, 1, 5, 6)  # not a multiple of 4: the model pads to 8x8 and crops back
NUM_CLASSES = 3
# ReLU and max pooling have kinks; eps = 1e-6 keeps central differences from straddling one.
EPS, TOL = 1e-6, 1e-6

SKIP_HINT = ("the decoder's gradients are right and the encoder's are wrong: the error enters at a skip. "
             "Each encoder output fed two paths (the pool and the skip), so its gradient is "
             "d_pool + d_skip: add the skip gradient, never overwrite one with the other")
ORDER_HINT = ("undo the forward in reverse: the crop's backward, head; per level from the top: dec, the concat split, up; "
              "the bottleneck; per level from the bottom: pool, + the skip gradient, enc; then the pad")


class GradedUNet(UNet):
    """The U-Net handed to the student's ``unet_backward``: its own backward pass is not for them to call."""

    def backward(self, dout):
        raise CheckFailed("your unet_backward calls the library's UNet.backward (model.backward): that is the "
                          "answer, not a solution", hint="call the backward passes of the blocks: " + ORDER_HINT)


def _model(graded: bool = False):
    """A tiny float64 U-Net, two levels (two skips), no batch norm; the same weights every call.

    The biases are drawn at random: with zero biases, the zero-padded border would
    give pre-activations of exactly 0, a ReLU kink that the gradient check straddles.
    ``graded``: a GradedUNet, for the student's function.
    """
    model = (GradedUNet if graded else UNet)(in_channels=X_SHAPE[1], num_classes=NUM_CLASSES, base_channels=2,
                                             depth=2, batch_norm=False, up="transpose", seed=0).astype(numpy.float64)
    for k, (name, value) in enumerate(model.named_parameters()):
        if name.endswith(".b"):
            value[...] = asarray(0.1 * randn(100 + k, *value.shape), dtype=value.dtype)
    return model


def _inputs():
    """x and dout, made on the host and moved to the current backend (where the model lives)."""
    return asarray(randn(0, *X_SHAPE)), asarray(randn(1, X_SHAPE[0], NUM_CLASSES, *X_SHAPE[2:]))


def _host(a):
    """A host copy of ``a`` (the student's arrays are judged on the host)."""
    return numpy.array(to_numpy(a), copy=True)


def _record_skips(model) -> dict:
    """Record, per level, the gradient that reaches enc[level] and the one that leaves pools[level].

    Wraps the two blocks' ``backward`` on this model object only (not the class).
    """
    seen = {}

    def wrap(block, key):
        original = block.backward

        def backward(d):
            out = original(d)
            seen[key] = _host(d if key[0] == "enc" else out)
            return out

        block.backward = backward

    for level in range(model.depth):
        wrap(model.enc[level], ("enc", level))
        wrap(model.pools[level], ("pool", level))
    return seen


def _backward(model, x, dout, backward):
    """Forward, then ``backward(model, dout)``; returns (dx, {name: gradient}), fresh, on the host."""
    model.zero_grad()
    model.forward(x)
    dx = backward(model, dout)
    return _host(dx), {name: _host(g) for name, g in model.named_grads()}


def _reference_backward(model, dout):
    return UNet.backward(model, dout)


@CHECKS.add("shapes and dx, every parameter reached, dout left as it was", expect="< 1e-10 (~1e-16)")
def shapes(s, ctx):
    model, (x, dout) = _model(graded=True), _inputs()
    kept = _host(dout)
    dx, grads = _backward(model, x, dout, s.unet_backward)
    ctx.expect_shape("dx", dx, x.shape,
                     hint="dx has the input's shape: finish with the pad's backward, F.pad_to_multiple_backward")
    ref_dx, _ = _backward(_model(), x, dout, _reference_backward)
    ctx.expect_close("dx", dx, ref_dx, tol=REF_TOL, against="UNet.backward's dx",
                     hints={"default": "dx differs from the library's: " + ORDER_HINT})
    if not numpy.array_equal(_host(dout), kept):
        ctx.fail("unet_backward changed dout in place", hint="never write into dout (d += ..., d[...] = ...); "
                                                             "make new arrays: d = d + d_skip")
    untouched = [name for name, g in grads.items() if not numpy.any(g)]
    if untouched:
        ctx.fail(f"no gradient reached {', '.join(untouched)}",
                 hint="call the backward of every block of the model: " + ORDER_HINT)


@CHECKS.add("the gradient at each skip is the pool path's plus the skip's", expect="< 1e-10 (~1e-16)")
def skip_sums(s, ctx):
    x, dout = _inputs()
    ref_model, model = _model(), _model(graded=True)
    ref = _record_skips(ref_model)
    _backward(ref_model, x, dout, _reference_backward)
    got = _record_skips(model)
    _backward(model, x, dout, s.unet_backward)
    for level in reversed(range(model.depth)):  # in the order the backward pass reaches them
        if ("enc", level) not in got:
            ctx.fail(f"enc{level}.backward was never called", hint=ORDER_HINT)
        total, d_pool = ref[("enc", level)], ref[("pool", level)]
        d_skip = total - d_pool
        arrived = got[("enc", level)]
        if arrived.shape == total.shape and numpy.allclose(arrived, d_skip):
            hint = (f"only the skip's gradient reaches enc{level}: the pool path's gradient was overwritten. "
                    "Add them: d = d_pool + d_skip")
        elif arrived.shape == total.shape and numpy.allclose(arrived, d_pool):
            hint = f"only the pool path's gradient reaches enc{level}: add the skip gradient, d = d_pool + d_skip"
        else:
            hint = ORDER_HINT
        ctx.expect_close(f"gradient reaching enc{level}", arrived, total, against="d_pool + d_skip",
                         hints={"default": hint})


@CHECKS.add("gradient check: the whole U-Net (x entry by entry, parameters along random directions)",
            expect="< 1e-6 (~1e-9)")
def gradients(s, ctx):
    model, (x, _) = _model(graded=True), _inputs()

    def run():
        return model.forward(x)

    def analytic(dout):
        dx, grads = _backward(model, x, dout, s.unet_backward)
        return {"x": dx, **grads}

    skip_hints = {"default": SKIP_HINT}
    ctx.expect_layer_gradients(run, analytic, {"x": x}, label="U-Net, input", hints={"dx": skip_hints}, eps=EPS,
                               tol=TOL)
    params = dict(model.named_parameters())
    ctx.expect_layer_gradients(run, analytic, params, label="U-Net, parameters", eps=EPS, tol=TOL, directions=2,
                               hints={f"d{name}": skip_hints if name.startswith("enc") else {"default": ORDER_HINT}
                                      for name in params})


@CHECKS.add("same numbers as the library's UNet.backward (dx and every parameter)", expect="< 1e-10 (~1e-16)")
def reference(s, ctx):
    x, dout = _inputs()
    ref_dx, ref_grads = _backward(_model(), x, dout, _reference_backward)
    dx, grads = _backward(_model(graded=True), x, dout, s.unet_backward)
    ctx.expect_shape("dx", dx, ref_dx.shape)
    errors = {}
    for name, ours, theirs in [("x", dx, ref_dx)] + [(n, grads[n], ref_grads[n]) for n in ref_grads]:
        errors[name] = float(numpy.abs(ours - theirs).max()) / max(1.0, float(numpy.abs(theirs).max()))
        ctx.measure(errors[name], values=theirs.size)
    wrong = [name for name, err in errors.items() if err > REF_TOL]
    if wrong:
        worst = max(wrong, key=errors.get)
        right = [name for name in errors if name not in wrong]
        encoder_side = all(name == "x" or name.startswith("enc") for name in wrong)
        ctx.fail(f"{len(wrong)} of {len(errors)} gradients differ from UNet.backward: d" + ", d".join(wrong),
                 where="right: " + (", ".join(right) if right else "none"),
                 size=f"max error {errors[worst]:.2e} in d{worst} (tolerance {REF_TOL:.0e})",
                 hint=SKIP_HINT if encoder_side else ORDER_HINT)
