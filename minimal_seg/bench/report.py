"""The printed report (machine, conv table, totals and targets, pooling, training step) and the PNG chart."""
from __future__ import annotations

import numpy

from ..machine import blas_kernel_warning, env_text
from .precision import precision_lines
from .targets import GPU_TARGETS, TARGETS, format_targets


def _table(rows, columns):
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(columns)]
    lines = ["  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(columns, widths)))]
    for r in rows:
        lines.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def format_report(result):
    """The printed report: machine, per-op table, totals and targets, training steps."""
    info, rows, summ = result["machine"], result["ops"], result["summary"]
    blas = info.get("blas")
    if isinstance(blas, list):
        blas = "; ".join(f"{b['internal_api']} {b['version']} ({b.get('architecture')}, "
                         f"{b['num_threads']} threads)" for b in blas)
    env = env_text(info)
    lines = [
        f"minimal_seg bench ({info['backend']}): {result['settings']['repeats']} repeats after "
        f"{result['settings']['warmup']} warm-up, medians, interleaved; float32",
        f"cpu: {info['cpu']} ({info.get('usable_cpus', info['cpu_count'])} usable cores)"
        + (f"; gpu: {info['gpu']}" if "gpu" in info else ""),
        f"numpy {info['numpy']}; torch {info.get('torch', 'not installed')}"
        + (f" ({info['torch_threads']} threads)" if "torch_threads" in info else ""),
        f"blas: {blas}",
        f"env: {env}; im2col budget {info['im2col_budget_bytes'] / 2**20:.0f} MiB",
        f"load average at start {tuple(round(v, 2) for v in info.get('load_average_start', ()))}, "
        f"at end {tuple(round(v, 2) for v in info.get('load_average_end', ()))}",
    ]
    if info["backend"] == "cupy":
        lines += precision_lines(info.get("precision"))
        lines.append(f"CUDA kernels: {'on' if result['settings'].get('cuda_kernels', True) else 'off (--no-kernels)'}")
    load = info.get("load_average_start")
    cores = info.get("usable_cpus", info["cpu_count"]) or 1
    if info["backend"] == "numpy" and load and load[0] > 0.5 * cores:
        lines.append(f"WARNING: other processes were running (1-minute load average {load[0]:.1f} on "
                     f"{cores} cores when the bench started): timings are noisy")
    blas_warning = blas_kernel_warning(info) if info["backend"] == "numpy" else None
    if blas_warning:
        lines.append(blas_warning)
    torches = [(who, name) for who, name in (("torch", "torch"), ("torch_fp32", "torch32"))
               if f"{who}_fwd" in rows[0]["ms"]]
    columns = ["op"]
    for p, head in (("fwd", "fwd"), ("fwdbwd", "f+b")):
        columns += [f"GEMM {head}", f"ours {head}", "/GEMM"]
        for _, name in torches:
            columns += [f"{name} {head}", f"/{name}"]
    columns += ["GFLOP/s"]
    table = []
    names = {"all": "total", "unet_conv2d": "total U-Net conv2d"}
    totals = [(names.get(op, f"total {op}"), summ[op]) for op in ("conv2d", "unet_conv2d", "conv_transpose2d", "all")
              if op in summ]
    for r in rows + [{"label": label, "ms": t["total_ms"], "ratios": t["total_ratios"]} for label, t in totals] \
            + [{"label": "geometric mean", "ms": None, "ratios": summ["all"]["geomean_ratios"]}]:
        ms, ra = r["ms"], r["ratios"]
        cells = [r["label"]]
        for p in ("fwd", "fwdbwd"):
            cells += [f"{ms[f'gemm_{p}']:.2f}" if ms else "", f"{ms[f'ours_{p}']:.2f}" if ms else "",
                      f"{ra[f'{p}_over_gemm']:.2f}"]
            for who, _ in torches:
                cells += [f"{ms[f'{who}_{p}']:.2f}" if ms else "", f"{ra[f'{p}_over_{who}']:.2f}"]
        cells.append(f"{r['gemm_gflops_fwdbwd']:.0f}" if "gemm_gflops_fwdbwd" in r else "")
        table.append(cells)
    lines += ["", "times in ms (f+b = forward + backward); GEMM = the bare GEMMs, each in its faster layout; "
              "GFLOP/s of those", _table(table, columns), ""]
    for label, t in totals:
        tr = t["total_ratios"]
        text = f"{label} ({t['cases']} shapes): ours/GEMM fwd+bwd {tr['fwdbwd_over_gemm']:.2f}"
        if torches:
            text += f", ours/torch {tr['fwdbwd_over_torch']:.2f}, torch/GEMM {tr['torch_fwdbwd_over_gemm']:.2f}"
        if "fwdbwd_over_torch_fp32" in tr:
            text += f", ours/torch32 {tr['fwdbwd_over_torch_fp32']:.2f}"
        text += f"; ours/GEMM as written (C = A @ B) {tr['fwdbwd_over_gemm_ab']:.2f}"
        lines.append(text)
    if result.get("pool_ops"):
        lines += ["", "pooling (times in ms)", _pool_table(result["pool_ops"], result["pool_summary"]), ""]
    if "winograd" in summ:
        wino = summ["winograd"]
        lines.append(f"method='winograd' at all {wino['cases']} 3x3 stride-1 shapes, fwd+bwd: "
                     f"{wino['total_fwdbwd_ms']['winograd']:.2f} ms, {wino['winograd_over_ours']:.2f}x ours "
                     f"({wino['total_fwdbwd_ms']['ours']:.2f} ms; \"fast\" does not take Winograd)")
    if result.get("training"):
        lines += ["", "training step", _training_table(result["training"])]
    if "targets" in result:
        lines += ["", format_targets(result["targets"], "#11, GPU" if info["backend"] == "cupy" else "#15")]
    return "\n".join(lines)


def _training_table(steps):
    """ours vs torch per step; with torch timed in FP32 too (GPU), its ms and ratio next to the default's."""
    fp32 = any(t.get("torch_fp32_ms") is not None for t in steps)
    columns = ["model", "batch", "ours ms", "torch ms", "ratio"] + (["torch32 ms", "ratio32"] if fp32 else [])
    columns += ["ours img/s", "torch img/s", "ours MiB", "torch MiB"]
    rows = []
    for t in steps:
        cells = [t["model"], f"{t['batch']}x{t['size']}", _fmt(t.get("ours_ms")), _fmt(t.get("torch_ms")),
                 _fmt(t.get("ratio"))]
        cells += [_fmt(t.get("torch_fp32_ms")), _fmt(t.get("ratio_fp32"))] if fp32 else []
        cells += [_fmt(t.get("ours_images_per_s"), 1), _fmt(t.get("torch_images_per_s"), 1),
                  _fmt(t.get("ours_peak_mib"), 0), _fmt(t.get("torch_peak_mib"), 0)]
        rows.append(cells)
    return _table(rows, columns)


def _pool_table(rows, summary):
    """ours vs torch per pooling case, then the totals per op."""
    has_torch = "torch_fwd" in rows[0]["ms"]
    columns = ["op", "ours fwd"] + (["torch fwd", "/torch"] if has_torch else []) + ["ours f+b"] \
        + (["torch f+b", "/torch"] if has_torch else [])
    table = []
    totals = [{"label": f"total {op}", "ms": t["total_ms"], "ratios": t["total_ratios"]} for op, t in summary.items()]
    for r in rows + totals:
        cells = [r["label"]]
        for p in ("fwd", "fwdbwd"):
            cells.append(f"{r['ms'][f'ours_{p}']:.2f}")
            if has_torch:
                cells += [f"{r['ms'][f'torch_{p}']:.2f}", f"{r['ratios'][f'{p}_over_torch']:.2f}"]
        table.append(cells)
    return _table(table, columns)


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def plot(result, path):
    """Bar chart of the forward+backward ratios per op (conv, then pooling), with the target lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = result["summary"]
    rows = result["ops"] + [{"label": f"TOTAL {op}" if op != "all" else "TOTAL", "ratios": summary[op]["total_ratios"]}
                            for op in ("conv2d", "conv_transpose2d", "all") if op in summary]
    has_torch = "fwdbwd_over_torch" in rows[0]["ratios"]
    if has_torch:  # the pooling ops have no GEMM: only their ours / torch bar (NaN draws no bar)
        rows += [{"label": r["label"], "ratios": {"fwdbwd_over_gemm": float("nan"), **r["ratios"]}}
                 for r in result.get("pool_ops", [])]
    labels = [r["label"] for r in rows]
    x = numpy.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(rows) + 2), 4.5))
    width = 0.4 if has_torch else 0.6
    info = result["machine"]
    gpu = info["backend"] == "cupy"
    ax.bar(x - (width / 2 if has_torch else 0), [r["ratios"]["fwdbwd_over_gemm"] for r in rows], width,
           label="ours / bare GEMMs")
    if not gpu:
        ax.axhline(TARGETS["strided_fwdbwd_over_gemm"], color="C0", ls="--", lw=1,
                   label=f"strided conv / GEMM target {TARGETS['strided_fwdbwd_over_gemm']}")
    if has_torch:  # on a GPU against torch in FP32 (pooling has no products: TF32 does not apply to it)
        key = "fwdbwd_over_torch_fp32" if gpu else "fwdbwd_over_torch"
        ax.bar(x + width / 2, [r["ratios"].get(key, r["ratios"]["fwdbwd_over_torch"]) for r in rows], width,
               label="ours / torch FP32" if gpu else "ours / torch")
        target = GPU_TARGETS["conv2d_fwdbwd_over_cudnn_fp32_each"] if gpu else TARGETS["unet_conv2d_fwdbwd_over_torch"]
        ax.axhline(target, color="C1", ls="--", lw=1,
                   label=f"U-Net conv2d / torch{' FP32, each shape,' if gpu else ''} target {target}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("time ratio, forward + backward")
    ax.set_title(f"minimal_seg conv and pooling ({info['backend']}) on {info.get('gpu', info['cpu'])}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
