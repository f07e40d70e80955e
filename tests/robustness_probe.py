"""Probe every public functional op with a bad value of each kind; print the table of docs/robustness.md.

    ulimit -v 3000000; PYTHONPATH=. python tests/robustness_probe.py > table.md

Not a test (pytest does not collect it): it prints what each call does, and
the regressions it found are pinned in test_functional_input_checks.py and
test_loss.py. Each cell: ``err`` one TypeError/ValueError naming the
argument; ``err*`` an error from NumPy that does not name it; ``mem`` NumPy's
MemoryError ("Unable to allocate N GiB ..."); ``ok`` a result (a valid
value, e.g. padding 0); ``nan`` a result holding NaN (NaN in, NaN out);
``CRASH`` any other exception. Run it under a memory limit: "huge" asks for
terabytes.
"""
import warnings

import numpy as np
import minimal_seg.functional as F
warnings.simplefilter("ignore")  # overflow in the float16 cast of 1e300 is the point
r = np.random.default_rng(0)
x4 = r.standard_normal((2, 3, 8, 8))
lab = r.integers(0, 3, (2, 8, 8))
R3 = r.standard_normal  # random arrays of a shape
OPS = {  # name: (function, its array arguments, its other arguments), a good call
    "relu_forward": (F.relu_forward, dict(x=x4), {}),
    "sigmoid_forward": (F.sigmoid_forward, dict(x=x4), {}),
    "softmax_forward": (F.softmax_forward, dict(x=x4), {"axis": 1}),
    "log_softmax": (F.log_softmax, dict(x=x4), {"axis": 1}),
    "batch_norm2d_forward": (F.batch_norm2d_forward,
                             dict(x=x4, gamma=np.ones(3), beta=np.zeros(3), running_mean=np.zeros(3),
                                  running_var=np.ones(3)),
                             {"training": True, "momentum": 0.1, "eps": 1e-5}),
    "unpool_nearest_forward": (F.unpool_nearest_forward, dict(x=x4), {"scale": 2}),
    "unpool_bed_of_nails_forward": (F.unpool_bed_of_nails_forward, dict(x=x4), {"scale": 2}),
    "upsample_bilinear_forward": (F.upsample_bilinear_forward, dict(x=x4), {"scale": 2}),
    "adaptive_avg_pool2d_forward": (F.adaptive_avg_pool2d_forward, dict(x=x4), {"output_size": 2}),
    "adaptive_pool_matrix": (F.adaptive_pool_matrix, {}, {"in_size": 8, "out_size": 2}),
    "linear_interpolation_matrix": (F.linear_interpolation_matrix, {}, {"in_size": 4, "out_size": 8}),
    "bilinear_kernel": (F.bilinear_kernel, {}, {"kernel_size": 4}),
    "linear_forward": (F.linear_forward, dict(x=R3((2, 5)), w=R3((4, 5)), b=np.zeros(4)), {}),
    "flatten_forward": (F.flatten_forward, dict(x=x4), {}),
    "pad_to_multiple_forward": (F.pad_to_multiple_forward, dict(x=x4), {"multiple": 4}),
    "crop_forward": (F.crop_forward, dict(x=x4), {"size": (6, 6)}),
    "concat_forward": (F.concat_forward, {}, {"xs": [x4, x4], "axis": 1}),
    "softmax_cross_entropy_forward": (F.softmax_cross_entropy_forward, dict(logits=x4, labels=lab, weight=np.ones(3)),
                                      {"ignore_index": -100}),
    "bce_with_logits_forward": (F.bce_with_logits_forward, dict(logits=x4, targets=(x4 > 0).astype(float)), {}),
    "dice_loss_forward": (F.dice_loss_forward, dict(logits=x4, labels=lab), {"smooth": 1.0}),
    "jaccard_loss_forward": (F.jaccard_loss_forward, dict(logits=x4, labels=lab), {"smooth": 1.0}),
    "one_hot": (F.one_hot, dict(labels=lab), {"num_classes": 3, "dtype": np.float64}),
    "max_pool2d_forward": (F.max_pool2d_forward, dict(x=x4), {"kernel_size": 2, "stride": 2, "padding": 0}),
    "conv2d_forward": (F.conv2d_forward, dict(x=x4, w=R3((4, 3, 3, 3)), b=np.zeros(4)),
                       {"stride": 1, "padding": 1, "dilation": 1}),
    "conv_transpose2d_forward": (F.conv_transpose2d_forward, dict(x=x4, w=R3((3, 4, 3, 3)), b=np.zeros(4)),
                                 {"stride": 2, "padding": 1, "output_padding": 1, "dilation": 1}),
    "im2col": (F.im2col, dict(x=x4), {"kernel_size": 3, "stride": 1, "padding": 1, "dilation": 1}),
    "conv_output_size": (F.conv_output_size, {}, {"size": 8, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1}),
    "pool_output_size": (F.pool_output_size, {}, {"size": 8, "kernel": 2, "stride": 2, "padding": 0}),
    "conv_transpose_output_size": (F.conv_transpose_output_size, {},
                                   {"size": 8, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1,
                                    "dilation": 1}),
    "receptive_field": (F.receptive_field, {}, {"kernels": [3, 3], "strides": [1, 2], "dilations": [1, 1]}),
    "conv_matrix": (F.conv_matrix, dict(w=R3((2, 3, 3, 3))),
                    {"input_size": (5, 5), "stride": 1, "padding": 1, "dilation": 1}),
}


def array_bad(a):
    """One bad version of array ``a`` of each kind."""
    first_nan = np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a.astype(float))
    return {"list": a.tolist(), "wrong ndim": a[0] if a.ndim > 1 else a[None, None],
            "float16": a.astype(np.float16), "int": a.astype(np.int64) if a.dtype.kind == "f" else a.astype(np.float64),
            "NaN": first_nan, "empty (N=0)": a[:0], "huge (1e300)": a.astype(float) * 0 + 1e300}


OPT_BAD = {"zero": 0, "negative": -1, "float 2.5": 2.5, "string": "2", "NaN": float("nan"), "huge 10**9": 10**9,
           "None": None}


def classify(fn, args, name):
    """The table's code for one call: err, err*, mem, CRASH, nan or ok."""
    try:
        out = fn(**args)
    except (ValueError, TypeError) as err:
        return "err" if name in str(err).split("\n")[0] else "err*"
    except MemoryError:
        return "mem"
    except Exception:
        return "CRASH"
    try:
        result = np.asarray(out[0] if isinstance(out, (tuple, list)) else out, dtype=float)
    except (TypeError, ValueError):
        return "ok"
    return "ok" if np.isfinite(result).all() else "nan"


def probe_dout(backward, cache, kinds):
    return {kind: classify(lambda dout: backward(dout, cache), {"dout": v}, "dout") for kind, v in kinds.items()}


def backward_rows():
    """dout of another shape, a list, float16 for every backward pass."""
    x = x4
    pairs = {
        "relu": (F.relu_forward(x), F.relu_backward), "sigmoid": (F.sigmoid_forward(x), F.sigmoid_backward),
        "softmax": (F.softmax_forward(x), F.softmax_backward),
        "batch_norm2d": (F.batch_norm2d_forward(x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), True),
                         F.batch_norm2d_backward),
        "unpool_nearest": (F.unpool_nearest_forward(x, 2), F.unpool_nearest_backward),
        "unpool_bed_of_nails": (F.unpool_bed_of_nails_forward(x, 2), F.unpool_bed_of_nails_backward),
        "upsample_bilinear": (F.upsample_bilinear_forward(x, scale=2), F.upsample_bilinear_backward),
        "adaptive_avg_pool2d": (F.adaptive_avg_pool2d_forward(x, 2), F.adaptive_avg_pool2d_backward),
        "linear": (F.linear_forward(r.standard_normal((2, 5)), r.standard_normal((4, 5))), F.linear_backward),
        "flatten": (F.flatten_forward(x), F.flatten_backward),
        "pad_to_multiple": (F.pad_to_multiple_forward(x, 5), F.pad_to_multiple_backward),
        "concat": (F.concat_forward([x, x]), F.concat_backward),
        "max_pool2d": (F.max_pool2d_forward(x, 2), F.max_pool2d_backward),
        "conv2d": (F.conv2d_forward(x, R3((4, 3, 3, 3))), F.conv2d_backward),
        "conv_transpose2d": (F.conv_transpose2d_forward(x, R3((3, 4, 3, 3))), F.conv_transpose2d_backward),
    }
    rows = []
    for name, ((out, cache), backward) in pairs.items():
        kinds = {"wrong shape": np.ones((1,) + out.shape[1:]), "list": out.tolist(),
                 "float16": np.ones(out.shape, np.float16)}
        rows.append((f"{name}_backward", "dout", probe_dout(backward, cache, kinds)))
    for name, forward, backward in (("softmax_cross_entropy", F.softmax_cross_entropy_forward,
                                     F.softmax_cross_entropy_backward),
                                    ("dice_loss", F.dice_loss_forward, F.dice_loss_backward)):
        _, cache = forward(x4, lab)
        kinds = {"wrong shape": np.ones(3), "string": "1", "NaN": float("nan")}
        rows.append((f"{name}_backward", "dout", probe_dout(backward, cache, kinds)))
    return rows


def forward_rows():
    rows = []
    for op, (fn, arrays, opts) in OPS.items():
        base = {**arrays, **opts}
        for name, array in arrays.items():
            bad = array_bad(np.asarray(array))
            rows.append((op, name, {kind: classify(fn, {**base, name: v}, name) for kind, v in bad.items()}))
        for name in opts:
            rows.append((op, name, {kind: classify(fn, {**base, name: v}, name) for kind, v in OPT_BAD.items()}))
    return rows


def markdown(rows):
    kinds = list(dict.fromkeys(k for _, _, cells in rows for k in cells))
    lines = ["| op | argument | " + " | ".join(kinds) + " |", "|---|---|" + "---|" * len(kinds)]
    lines += [f"| {op} | {arg} | " + " | ".join(cells.get(k, "") for k in kinds) + " |" for op, arg, cells in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(forward_rows()))
    print()
    print(markdown(backward_rows()))
