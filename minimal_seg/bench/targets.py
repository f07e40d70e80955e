"""The targets of issue #15, each checked against one run: met or NOT met.

| measure                                            | target            |
|----------------------------------------------------|-------------------|
| U-Net training step, ours / torch                  | <= 1.5 (stretch 1.0) |
| conv2d fwd+bwd summed over the U-Net's shapes / torch | <= 1.5         |
| strided (stride-2) conv fwd+bwd / its bare GEMMs   | <= 1.6            |
| max_pool2d and max_unpool2d fwd+bwd / torch        | <= 1.0 each       |

"The U-Net's shapes" are the conv2d cases of ``cases.unet_cases`` that the
U-Net runs (not the stride-2 and dilation-2 variants added for the table).
A target whose measure is missing (no torch, no such case) is left out.
"""
from __future__ import annotations

TARGETS = {
    "step_over_torch": 1.5,
    "step_over_torch_stretch": 1.0,
    "unet_conv2d_fwdbwd_over_torch": 1.5,
    "strided_fwdbwd_over_gemm": 1.6,
    "pool_fwdbwd_over_torch": 1.0,
}
VARIANTS = ("stride2", "dilation2")  # conv cases of the table that are not layers of the U-Net


def unet_conv_rows(rows):
    """The conv2d rows of the U-Net itself (the variants left out)."""
    return [r for r in rows if r["op"] == "conv2d" and r["name"] not in VARIANTS]


def check_targets(result):
    """[{"measure", "value", "target", "met"}] for every target this run can judge."""
    checks = []

    def check(measure, value, key):
        if value is not None:
            checks.append({"measure": measure, "value": value, "target": TARGETS[key],
                           "met": bool(value <= TARGETS[key])})

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


def format_targets(checks):
    """One line per target: measure, value, target, met / NOT met."""
    if not checks:
        return "targets (#15): none can be judged in this run"
    width = max(len(c["measure"]) for c in checks)
    return "\n".join(["targets (#15):"] + [f"  {c['measure']:<{width}}  {c['value']:.2f} <= {c['target']:.1f}: "
                                           f"{'met' if c['met'] else 'NOT met'}" for c in checks])
