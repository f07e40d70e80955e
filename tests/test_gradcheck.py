"""The gradient checker (gradcheck.py), which every other test file relies on.

It must pass a right backward with a small error, fail a wrong one (planted
bugs: a wrong factor, one wrong entry, a zero backward, a backward that is
right only for an all-ones dout), refuse what it cannot check (float32), and
report which tensor and where.
"""
import matplotlib
import numpy as np
import pytest

from minimal_seg import functional as F
from minimal_seg import nn
from minimal_seg.backend import to_numpy
from minimal_seg.gradcheck import DEFAULT_TOL, gradcheck, gradcheck_layer, relative_error


def _x(xp, shape, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape))


def scale_forward(x, w):
    """out = x * w + x**2 (elementwise; w broadcast over the rows). cache: x, w."""
    return x * w + x * x, (x, w)


def scale_backward(dout, cache):
    x, w = cache
    return dout * (w + 2 * x), (dout * x).sum(axis=0)


def _inputs(xp):
    return {"x": _x(xp, (3, 4)), "w": _x(xp, (4,), seed=1)}


# ----------------------------------------------------------------------------------------------
# 1. a right backward passes; wrong ones fail, at the place where they are wrong
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("directions", [None, 3])
def test_a_right_backward_passes(xp, directions):
    inputs = _inputs(xp)
    kept = {name: to_numpy(v).copy() for name, v in inputs.items()}
    report = gradcheck(scale_forward, scale_backward, inputs, directions=directions)
    assert report.passed and report.max_rel_error < 1e-9, str(report)
    assert [c.name for c in report.checks] == ["x", "w"]
    assert all(c.directional == (directions is not None) for c in report.checks)
    for name, value in inputs.items():  # every perturbation was undone
        np.testing.assert_array_equal(to_numpy(value), kept[name])


@pytest.mark.parametrize("directions", [None, 3])
def test_a_wrong_factor_fails_on_its_tensor_only(xp, directions):
    def backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx, 1.01 * dw  # 1 % too large

    report = gradcheck(scale_forward, backward, _inputs(xp), directions=directions)
    assert not report.passed
    assert report["x"].max_rel_error < 1e-9 and report["w"].max_rel_error > 1e-3, str(report)


def test_one_wrong_entry_is_found_where_it_is(xp):
    def backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        dx = dx.copy()
        dx[2, 1] += 0.5
        return dx, dw

    report = gradcheck(scale_forward, backward, _inputs(xp))
    assert not report.passed and report["x"].worst_index == (2, 1), str(report)
    assert report["x"].error_map.shape == (3, 4) and np.count_nonzero(report["x"].error_map > DEFAULT_TOL) == 1


@pytest.mark.parametrize("directions", [None, 2])
def test_a_zero_backward_fails(xp, directions):
    report = gradcheck(scale_forward, lambda dout, cache: (0 * dout, 0 * cache[1]), _inputs(xp),
                       directions=directions)
    assert not report.passed and report.max_rel_error == pytest.approx(1.0), str(report)


def test_dout_is_random_so_a_zero_softmax_backward_fails(xp):
    """Softmax's true gradient for an all-ones dout is exactly zero: a checker using ones would pass zeros."""
    x = _x(xp, (2, 3, 2, 2))
    out, cache = F.softmax_forward(x)
    assert np.abs(to_numpy(F.softmax_backward(xp.ones_like(out), cache))).max() < 1e-15
    assert gradcheck(F.softmax_forward, F.softmax_backward, {"x": x}).passed
    assert not gradcheck(F.softmax_forward, lambda dout, cache: 0 * dout, {"x": x}).passed


def test_a_wrong_layer_gradient_fails_on_that_parameter(xp, monkeypatch):
    layer = nn.Conv2d(2, 3, 3, padding=1, rng=np.random.default_rng(0)).astype(np.float64)
    x = _x(xp, (2, 2, 4, 4))
    report = gradcheck_layer(layer, x)
    assert report.passed and {c.name for c in report.checks} == {"x", "w", "b"}, str(report)
    real = layer.backward

    def backward(dout):
        dx = real(dout)
        layer.grads["b"] *= 2  # the bias gradient counted twice
        return dx

    monkeypatch.setattr(layer, "backward", backward)
    report = gradcheck_layer(layer, x)
    assert [c.name for c in report.checks if c.max_rel_error > DEFAULT_TOL] == ["b"], str(report)


def test_an_op_that_returns_its_input_passes(xp):
    """The output may be the input itself (identity, a crop that cuts nothing): the checker copies outputs."""
    x = _x(xp, (2, 3, 4, 4))
    assert gradcheck(lambda x: (x, None), lambda dout, cache: dout, {"x": x}).passed
    assert gradcheck_layer(nn.Identity(), x).passed


# ----------------------------------------------------------------------------------------------
# 2. what it refuses; which inputs it perturbs
# ----------------------------------------------------------------------------------------------

def test_float32_is_refused(xp):
    inputs = {"x": _x(xp, (3, 4)).astype(xp.float32), "w": _x(xp, (4,), seed=1)}
    with pytest.raises(TypeError, match="gradcheck needs float64 inputs; x is float32"):
        gradcheck(scale_forward, scale_backward, inputs)
    layer = nn.Conv2d(2, 3, 1, rng=np.random.default_rng(0))  # float32, as layers are made for training
    with pytest.raises(TypeError, match="gradcheck needs float64 inputs; x is float32"):
        gradcheck_layer(layer, _x(xp, (1, 2, 2, 2)).astype(xp.float32))
    assert gradcheck_layer(layer.astype(np.float64), _x(xp, (1, 2, 2, 2))).passed


def test_only_float_inputs_named_in_wrt_are_checked(xp):
    labels = xp.asarray(np.array([[[0, 1], [2, 1]], [[1, 1], [0, 2]]]))
    x = _x(xp, (2, 3, 2, 2))
    report = gradcheck(F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward,
                       {"logits": x, "labels": labels})
    assert [c.name for c in report.checks] == ["logits"] and report.passed  # integer labels are not perturbed
    assert [c.name for c in gradcheck(scale_forward, scale_backward, _inputs(xp), wrt=["w"]).checks] == ["w"]


def test_a_gradient_of_the_wrong_shape_is_refused(xp):
    with pytest.raises(ValueError, match=r"gradient of w has shape \(1, 4\), expected \(4,\)"):
        gradcheck(scale_forward, lambda d, c: (scale_backward(d, c)[0], scale_backward(d, c)[1][None]),
                  _inputs(xp))


def test_errors_are_relative_to_the_largest_entry_of_the_tensor():
    """A tiny entry with a tiny absolute error is fine; an error as large as the gradient is not."""
    analytic, numeric = np.array([1e-12, 2.0, 3.0]), np.array([2e-12, 2.0, 3.0])
    assert relative_error(analytic, numeric).max() < 1e-11
    np.testing.assert_allclose(relative_error(np.array([0.0, 3.0]), np.array([3.0, 3.0])), [1.0, 0.0])
    assert relative_error(np.zeros(2), np.zeros(2)).max() == 0  # atol keeps 0 / 0 away


# ----------------------------------------------------------------------------------------------
# 3. the report
# ----------------------------------------------------------------------------------------------

def test_the_report_names_each_tensor_its_error_and_verdict(xp):
    def backward(dout, cache):
        dx, dw = scale_backward(dout, cache)
        return dx, 2 * dw

    report = gradcheck(scale_forward, backward, _inputs(xp), label="scale", tol=1e-6)
    text = str(report).splitlines()
    assert text[0] == "gradcheck scale (tol 1e-06)"
    assert text[1].split()[0] == "x" and text[1].endswith("pass")
    assert text[2].split()[0] == "w" and text[2].endswith("FAIL")
    rows = report.rows()
    assert [(r[0], r[1], r[4]) for r in rows] == [("scale", "x", "pass"), ("scale", "w", "FAIL")]
    assert rows[1][2] == report.max_rel_error == report["w"].max_rel_error
    with pytest.raises(KeyError, match=r"no tensor named 'b'; checked: \['x', 'w'\]"):
        report["b"]


def test_the_error_map_can_be_drawn(xp):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = gradcheck(F.relu_forward, F.relu_backward, {"x": _x(xp, (2, 3, 4, 5))})
    ax = report.show("x")
    assert ax.get_title() == "relu_forward: log10 rel. error of dx"
    assert ax.images[0].get_array().shape == (4, 5)
    plt.close(ax.figure)
