"""The targets, each checked against one run: met or NOT met. On a CPU (numpy) those of issue #15:

| measure                                            | target            |
|----------------------------------------------------|-------------------|
| U-Net training step, ours / torch                  | <= 1.5 (stretch 1.0) |
| conv2d fwd+bwd summed over the U-Net's shapes / torch | <= 1.5         |
| strided (stride-2) conv fwd+bwd / its bare GEMMs   | <= 1.6            |
| max_pool2d and max_unpool2d fwd+bwd / torch        | <= 1.0 each       |

On a GPU (cupy) those of issue #11 ("Fast on a GPU"), batch 32 of 128x128, base 16:

| measure                                                  | target  |
|----------------------------------------------------------|---------|
| U-Net step, both FP32, ours / torch                      | <= 1.5  |
| U-Net step, ours (either precision) / torch's default    | <= 2.5  |
| conv2d fwd+bwd / cuDNN, both FP32, at every U-Net shape  | <= 2.0  |
| max_pool2d fwd+bwd / torch                               | <= 1.5  |
| peak memory of the step, ours / torch                    | <= 1.5  |
| FCN-32s epoch / U-Net epoch                              | <= 2.0  |

"Both FP32" is judged only when ours ran in FP32 (``backend.matmul_precision``);
torch FP32 is torch with both TF32 flags off (``precision.py``). The epoch
target needs two trainings, which the bench does not run: ``gpu_check``
judges it from its ``compare`` step (``epoch_check``).

"The U-Net's shapes" are the conv2d cases of ``cases.unet_cases`` that the
U-Net runs (not the stride-2 and dilation-2 variants added for the table).
A target whose measure is missing (no torch, no such case) is left out; one
that this run cannot judge (ours in TF32 for an FP32 target) is listed as
"not judged", with the reason.
"""
from __future__ import annotations

TARGETS = {
    "step_over_torch": 1.5,
    "step_over_torch_stretch": 1.0,
    "unet_conv2d_fwdbwd_over_torch": 1.5,
    "strided_fwdbwd_over_gemm": 1.6,
    "pool_fwdbwd_over_torch": 1.0,
}
GPU_TARGETS = {
    "step_fp32_over_torch_fp32": 1.5,
    "step_over_torch_default": 2.5,
    "conv2d_fwdbwd_over_cudnn_fp32_each": 2.0,
    "max_pool2d_fwdbwd_over_torch": 1.5,
    "peak_memory_over_torch": 1.5,
    "fcn32s_epoch_over_unet": 2.0,
}
VARIANTS = ("stride2", "dilation2")  # conv cases of the table that are not layers of the U-Net


def unet_conv_rows(rows):
    """The conv2d rows of the U-Net itself (the variants left out)."""
    return [r for r in rows if r["op"] == "conv2d" and r["name"] not in VARIANTS]


def _checker(checks, targets):
    """``check(measure, value, key, why_not=None)``: appends one judged target (or, with ``why_not``, one
    "not judged" line) to ``checks``; a missing value adds nothing."""
    def check(measure, value, key, why_not=None):
        if why_not is not None:
            checks.append({"measure": measure, "value": None, "target": targets[key], "met": None, "why": why_not})
        elif value is not None:
            checks.append({"measure": measure, "value": value, "target": targets[key],
                           "met": bool(value <= targets[key])})

    return check


def check_targets(result):
    """[{"measure", "value", "target", "met"}] for every target this run can judge: issue #11's on a GPU
    (``result["settings"]["backend"] == "cupy"``), else issue #15's."""
    if result.get("settings", {}).get("backend") == "cupy":
        return check_gpu_targets(result)
    checks = []
    check = _checker(checks, TARGETS)
    step = (result.get("training") or [{}])[0].get("ratio")
    check("U-Net training step, ours / torch", step, "step_over_torch")
    check("U-Net training step, ours / torch (stretch)", step, "step_over_torch_stretch")
    unet = unet_conv_rows(result["ops"])
    if unet and "torch_fwdbwd" in unet[0]["ms"]:
        ours, torch = (sum(r["ms"][f"{who}_fwdbwd"] for r in unet) for who in ("ours", "torch"))
        check(f"conv2d fwd+bwd over the U-Net's {len(unet)} shapes, ours / torch", ours / torch,
              "unet_conv2d_fwdbwd_over_torch")
    for row in result["ops"]:
        if row["name"] == "stride2":
            check(f"strided conv ({row['label']}) fwd+bwd / its GEMMs", row["ratios"]["fwdbwd_over_gemm"],
                  "strided_fwdbwd_over_gemm")
    for op, total in result.get("pool_summary", {}).items():
        check(f"{op} fwd+bwd / torch", total["total_ratios"].get("fwdbwd_over_torch"), "pool_fwdbwd_over_torch")
    return checks


def check_gpu_targets(result):
    """Issue #11's targets (module docstring) against a ``--backend cupy`` run."""
    checks = []
    check = _checker(checks, GPU_TARGETS)
    ours = (result.get("machine", {}).get("precision") or {}).get("ours", "FP32")
    not_fp32 = None if ours == "FP32" else f"ours ran in {ours}"
    step = (result.get("training") or [{}])[0]
    if step.get("ratio_fp32") is not None:
        check("U-Net step, both FP32, ours / torch", step["ratio_fp32"], "step_fp32_over_torch_fp32", not_fp32)
    check(f"U-Net step, ours ({ours}) / torch's default", step.get("ratio"), "step_over_torch_default")
    unet = [r for r in unet_conv_rows(result["ops"]) if "fwdbwd_over_torch_fp32" in r["ratios"]]
    if unet:
        worst = max(unet, key=lambda r: r["ratios"]["fwdbwd_over_torch_fp32"])
        check(f"conv2d fwd+bwd / cuDNN FP32, worst of the U-Net's {len(unet)} shapes ({worst['label']})",
              worst["ratios"]["fwdbwd_over_torch_fp32"], "conv2d_fwdbwd_over_cudnn_fp32_each", not_fp32)
    pool = result.get("pool_summary", {}).get("max_pool2d", {}).get("total_ratios", {})
    check("max_pool2d fwd+bwd / torch", pool.get("fwdbwd_over_torch"), "max_pool2d_fwdbwd_over_torch")
    if step.get("ours_peak_mib") and step.get("torch_peak_mib"):
        check("peak memory of the step, ours / torch", step["ours_peak_mib"] / step["torch_peak_mib"],
              "peak_memory_over_torch")
    check("FCN-32s epoch / U-Net epoch", None, "fcn32s_epoch_over_unet",
          "two trainings, not timed by the bench: gpu-check judges it from its compare step")
    return checks


def epoch_check(seconds_per_epoch):
    """The FCN-32s target from seconds per epoch ({"fcn32s": s, "unet": s, ...}, as compare's rows give them)."""
    checks = []
    if seconds_per_epoch.get("fcn32s") and seconds_per_epoch.get("unet"):
        _checker(checks, GPU_TARGETS)("FCN-32s epoch / U-Net epoch", seconds_per_epoch["fcn32s"]
                                      / seconds_per_epoch["unet"], "fcn32s_epoch_over_unet")
    return checks


def format_targets(checks, issue="#15"):
    """One line per target: measure, value, target, met / NOT met (or not judged, and why)."""
    if not checks:
        return f"targets ({issue}): none can be judged in this run"
    width = max(len(c["measure"]) for c in checks)

    def verdict(c):
        if c["met"] is None:
            return f"  -  <= {c['target']:.1f}: not judged ({c['why']})"
        return f"{c['value']:.2f} <= {c['target']:.1f}: {'met' if c['met'] else 'NOT met'}"

    return "\n".join([f"targets ({issue}):"] + [f"  {c['measure']:<{width}}  {verdict(c)}" for c in checks])
