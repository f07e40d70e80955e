"""The benchmark runs (on tiny shapes), prints its table and writes valid JSON and PNG. Speed is never asserted."""
import io
import json
import os
import subprocess
import sys

import pytest

from minimal_seg import bench

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_outputs(result, json_path, png_path):
    with open(json_path) as f:
        saved = json.load(f)
    assert set(saved) >= {"machine", "settings", "ops", "summary", "training"}
    assert saved["settings"]["quick"] is True
    assert len(saved["ops"]) == len(bench.quick_cases())
    for row in saved["ops"]:
        for key in ("ours_fwd", "ours_fwdbwd", "gemm_fwd", "gemm_fwdbwd"):
            assert row["ms"][key] > 0
            assert len(row["samples_ms"][key]) == saved["settings"]["repeats"]
        assert row["ratios"]["fwdbwd_over_gemm"] > 0
    for group in ("all", "conv2d", "conv_transpose2d"):
        saved_ratios = saved["summary"][group]["total_ratios"]
        assert saved_ratios["fwdbwd_over_gemm"] == pytest.approx(result["summary"][group]["total_ratios"]["fwdbwd_over_gemm"])
        assert saved_ratios["fwdbwd_over_gemm_ab"] > 0
    assert saved["summary"]["conv2d"]["cases"] == 3 and saved["summary"]["targets_met"]
    for key in ("cpu", "numpy", "blas", "env", "im2col_budget_bytes"):
        assert key in saved["machine"]
    assert "OPENBLAS_CORETYPE" in saved["machine"]["env"] and "OPENBLAS_L2_SIZE" in saved["machine"]["env"]
    with open(png_path, "rb") as f:
        data = f.read()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 2000


def test_quick_bench_without_torch(tmp_path):
    out = io.StringIO()
    json_path, png_path = tmp_path / "b.json", tmp_path / "b.png"
    result = bench.run("numpy", quick=True, use_torch=False, json_path=str(json_path), png_path=str(png_path),
                       settle=0, stream=out)
    text = out.getvalue()
    assert "ours f+b" in text and "total conv2d" in text and "targets:" in text and "torch f+b" not in text
    for case in bench.quick_cases():
        assert case.label() in text
    _check_outputs(result, json_path, png_path)


def test_cli_quick_bench_with_torch(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "minimal_seg", "bench", "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch f+b" in proc.stdout and "/torch" in proc.stdout and "blas:" in proc.stdout
    with open(tmp_path / "bench.json") as f:
        saved = json.load(f)
    assert "torch_fwdbwd" in saved["ops"][0]["ms"] and saved["machine"]["torch"]
    _check_outputs(saved, tmp_path / "bench.json", tmp_path / "bench.png")


def test_unet_cases_cover_the_issue():
    cases = bench.unet_cases()
    labels = [c.label() for c in cases]
    assert len(set(labels)) == len(labels)
    assert {c.op for c in cases} == {"conv2d", "conv_transpose2d"}
    assert any(c.stride == 2 and c.op == "conv2d" for c in cases)
    assert any(c.dilation == 2 for c in cases)
    # encoder, bottleneck and concatenated-decoder shapes of the depth-3, base-16 U-Net on 64x64
    for c_in, c_out, size in [(1, 16, 64), (16, 16, 64), (64, 128, 8), (128, 128, 8), (128, 64, 16), (32, 16, 64)]:
        assert any((c.c, c.oc, c.size, c.op) == (c_in, c_out, size, "conv2d") for c in cases)
    for c_in, c_out, size in [(128, 64, 8), (64, 32, 16), (32, 16, 32)]:
        assert any((c.c, c.oc, c.size, c.kernel, c.stride) == (c_in, c_out, size, 2, 2) for c in cases)
    for c in cases:
        assert min(c.out_size) >= 1 and c.flops(backward=True) == 3 * c.flops()


def test_training_hook_and_its_table():
    assert bench.training_step_benchmarks("numpy", True, 1, 0) == []
    result = bench.run("numpy", quick=True, use_torch=False, json_path=None, png_path=None, repeats=1, warmup=0,
                       settle=0, stream=io.StringIO())
    result["training"] = [{"model": "unet", "batch": 8, "size": 64, "ours_ms": 120.0, "torch_ms": 60.0,
                           "ratio": 2.0, "ours_images_per_s": 66.7, "torch_images_per_s": 133.3,
                           "ours_peak_mib": 300.0, "torch_peak_mib": None}]
    text = bench.format_report(result)
    assert "training step" in text and "unet" in text and "120.00" in text
