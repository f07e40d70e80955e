"""The benchmark runs (on tiny shapes), prints its table and writes valid JSON and PNG. Speed is never asserted."""
import io
import json
import os
import subprocess
import sys

import pytest

from minimal_seg import backend, bench
from minimal_seg.backend import array_module

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_outputs(result, json_path, png_path):
    with open(json_path) as f:
        saved = json.load(f)
    assert set(saved) >= {"machine", "settings", "ops", "summary", "pool_ops", "pool_summary", "training"}
    assert [r["label"] for r in saved["pool_ops"]] == [c.label() for c in bench.quick_pool_cases()]
    for row in saved["pool_ops"]:
        assert row["ms"]["ours_fwd"] > 0 and row["ms"]["ours_fwdbwd"] > 0
    assert set(saved["pool_summary"]) == {"max_pool2d", "max_unpool2d"}
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
    assert saved["summary"]["conv2d"]["cases"] == 3 and saved["summary"]["unet_conv2d"]["cases"] == 1
    strided = [t for t in saved["targets"] if t["measure"].startswith("strided conv")]
    assert len(strided) == 1 and strided[0]["value"] == pytest.approx(saved["ops"][1]["ratios"]["fwdbwd_over_gemm"])
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
    assert "ours f+b" in text and "total conv2d" in text and "targets (#15):" in text and "torch f+b" not in text
    for case in bench.quick_cases():
        assert case.label() in text
    _check_outputs(result, json_path, png_path)


def test_cli_quick_bench_with_torch(tmp_path):
    pytest.importorskip("torch")
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-m", "minimal_seg", "bench", "--quick", "--threads", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "torch f+b" in proc.stdout and "/torch" in proc.stdout and "blas:" in proc.stdout
    with open(tmp_path / "bench.json") as f:
        saved = json.load(f)
    assert "torch_fwdbwd" in saved["ops"][0]["ms"] and saved["machine"]["torch"]
    assert saved["machine"]["blas_threads"] == saved["machine"]["torch_threads"] == 1  # --threads, both libraries
    (step,) = saved["training"]
    assert step["torch_ms"] > 0 and step["ratio"] > 0 and step["torch_peak_mib"] > 0 and step["ours_peak_mib"] > 0
    assert "training step" in proc.stdout
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


def test_pool_cases_are_the_unet_pools():
    cases = bench.pool_cases()
    assert {(c.op, c.c, c.size) for c in cases} == {(op, c, s) for op in ("max_pool2d", "max_unpool2d")
                                                    for c, s in [(16, 64), (32, 32), (64, 16)]}
    assert len({c.label() for c in cases}) == len(cases)


@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and an NVIDIA GPU")
def test_training_step_on_the_gpu():
    torch = bench.import_torch("cupy")
    (row,) = bench.training_step_benchmarks("cupy", True, 2, 1, torch=torch)
    assert row["ours_ms"] > 0 and row["ours_peak_mib"] > 0
    if torch is not None:
        assert row["torch_ms"] > 0 and row["torch_peak_mib"] > 0


def test_training_hook_and_its_table():
    (row,) = bench.training_step_benchmarks("numpy", True, 2, 0, torch=None, settle=0)
    assert (row["batch"], row["size"]) == bench.QUICK_STEP_SHAPE and row["ours_ms"] > 0
    assert row["torch_ms"] is None and row["ratio"] is None and row["ours_peak_mib"] > 0
    assert len(row["samples_ms"]["ours"]) == 2
    result = bench.run("numpy", quick=True, use_torch=False, json_path=None, png_path=None, repeats=1, warmup=0,
                       settle=0, stream=io.StringIO())
    result["training"] = [{"model": "unet", "batch": 8, "size": 64, "ours_ms": 120.0, "torch_ms": 60.0,
                           "ratio": 2.0, "ours_images_per_s": 66.7, "torch_images_per_s": 133.3,
                           "ours_peak_mib": 300.0, "torch_peak_mib": None}]
    text = bench.format_report(result)
    assert "training step" in text and "unet" in text and "120.00" in text


# ---- the U-Net training step: identical to torch, float32 throughout ------------------------

import numpy as np  # noqa: E402

from minimal_seg import nn  # noqa: E402
from minimal_seg.backend import to_numpy  # noqa: E402
from minimal_seg.optim import SGD  # noqa: E402


def _unet_with_random_biases(seed=1):
    """The bench's U-Net (on the default backend) with nonzero biases (zeros would hide a mis-mapped bias)."""
    model = bench.build_unet(seed)
    rng = np.random.default_rng(seed)
    for _, layer in model.modules():
        if "b" in layer.params:
            b = layer.params["b"]
            b[...] = array_module(b).asarray(0.1 * rng.standard_normal(b.shape, dtype=np.float32))
    return model


def _model_xp(model):
    """The array module the model's parameters live on."""
    return array_module(next(value for _, value in model.named_parameters()))


def test_torch_unet_is_ours_and_one_step_updates_the_same():
    torch = pytest.importorskip("torch")
    model = _unet_with_random_biases()
    net = bench.torch_unet_like(model, torch)
    assert sum(p.numel() for p in net.parameters()) == model.num_parameters()
    topt = torch.optim.SGD(net.parameters(), **bench.SGD_SETTINGS)
    x, y = bench.step_batch(2, 16, seed=3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    xp = _model_xp(model)
    x, y = xp.asarray(x), xp.asarray(y)
    step = bench.ours_step(model, x, y)  # train.train_step, bound to SGD and cross-entropy
    before = {name: to_numpy(p).copy() for name, p in model.named_parameters()}
    with torch.no_grad():
        np.testing.assert_allclose(to_numpy(model(x)), net(xt).numpy(), rtol=1e-4, atol=1e-5)
    for _ in range(2):  # the second step uses the momentum buffers
        loss = step()
        torch_loss = bench.torch_training_step(net, topt, xt, yt, torch)
        assert loss.dtype == np.float32 and float(loss) == pytest.approx(torch_loss.item(), rel=1e-5)
    torch_params = net.state_dict()
    for name, p in model.named_parameters():
        prefix, key = name.rsplit(".", 1)
        theirs = torch_params[f"{prefix}.{ {'w': 'weight', 'b': 'bias'}[key] }"].numpy()
        ours_update, torch_update = to_numpy(p) - before[name], theirs - before[name]
        assert np.abs(ours_update).max() > 0, name
        np.testing.assert_allclose(ours_update, torch_update, rtol=1e-3, atol=1e-3 * np.abs(torch_update).max(),
                                   err_msg=name)


def float64_arrays(root, path="root", seen=None):
    """Yield (path, array) for every float64 array reachable from ``root``.

    Follows dicts, lists, tuples and the attributes of minimal_seg objects
    (layers, models, their caches, optimisers): params, grads, buffers,
    every cache of the last forward pass, optimiser state.
    """
    seen = set() if seen is None else seen
    if id(root) in seen:
        return
    seen.add(id(root))
    if hasattr(root, "dtype") and hasattr(root, "shape"):
        if root.dtype == np.float64:
            yield path, root
    elif isinstance(root, dict):
        for key, value in root.items():
            yield from float64_arrays(value, f"{path}[{key!r}]", seen)
    elif isinstance(root, (list, tuple)):
        for i, value in enumerate(root):
            yield from float64_arrays(value, f"{path}[{i}]", seen)
    elif type(root).__module__.startswith("minimal_seg") and hasattr(root, "__dict__"):
        for key, value in vars(root).items():
            yield from float64_arrays(value, f"{path}.{key}", seen)


class Float32Only(np.ndarray):
    """An ndarray that fails as soon as an operation on it makes a float64 array.

    Results of ufuncs, matmul, views and copies of such an array are again
    Float32Only, so a hidden upcast in a temporary (``numpy.float64(lr) * g``)
    raises here, even when the result is cast back into a float32 array.
    """

    def __array_finalize__(self, obj):
        if self.dtype == np.float64:
            raise AssertionError(f"float64 array {self.shape} made from a float32 array")


def _as_trap(a):
    return a.view(Float32Only) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a


def _trap_layer(layer):
    """Make every float array entering ``layer.forward``/``backward`` a Float32Only view."""
    forward, backward = layer.forward, layer.backward
    layer.forward = lambda x, *args, **kwargs: forward(_as_trap(x), *args, **kwargs)
    layer.backward = lambda dout: backward(_as_trap(dout))


def _float32_step(model, x, y, trap=True):
    """One bench training step (``train.train_step``) on the model's backend. With ``trap`` (NumPy only:
    Float32Only is an ndarray subclass), every parameter, gradient, the batch and the input and upstream
    gradient of every leaf layer as Float32Only, so the trap sees (nearly) every operation."""
    xp = _model_xp(model)
    x, y = xp.asarray(x), xp.asarray(y)
    if trap:
        assert xp is np, "the Float32Only trap works on NumPy arrays"
        for _, layer in model.modules():
            for d in (layer.params, layer.grads):
                for key in d:
                    d[key] = d[key].view(Float32Only)
            if not layer.children():
                _trap_layer(layer)
        x = x.view(Float32Only)
    step = bench.ours_step(model, x, y)
    return step(), step.args[1]  # the loss and the optimiser


def test_training_step_is_float32_throughout():
    """On the default backend (any): no float64 array in the model, its caches, the optimiser or the loss."""
    x, y = bench.step_batch(2, 16)
    model = bench.build_unet()
    loss, opt = _float32_step(model, x, y, trap=False)
    assert loss.dtype == np.float32
    assert list(float64_arrays({"model": model, "optimizer": opt, "loss": loss})) == []
    arrays = [a for _, layer in model.modules() for a in vars(layer.cache or nn.Layer()).values()]
    assert any(getattr(a, "dtype", None) == np.float32 for a in arrays)  # the walk does reach the caches


def test_training_step_makes_no_float64_temporary():
    """On NumPy, with the trap: not even a temporary float64 array during the step."""
    x, y = bench.step_batch(2, 16)
    with backend.use_backend("numpy"):
        model = bench.build_unet()
        loss, _ = _float32_step(model, x, y)
    assert loss.dtype == np.float32


@pytest.fixture
def on_numpy():
    """The planted upcasts below are NumPy code (``np.asarray(...).astype(float)``): run them there."""
    with backend.use_backend("numpy"):
        yield


def test_float32_checks_catch_a_planted_upcast(monkeypatch, on_numpy):
    x, y = bench.step_batch(2, 16)
    # 1. a float64 array kept in a cache (the classic ``mask.astype(float)``)
    relu_forward = nn.ReLU.forward

    def relu_keeping_float64(self, x):
        out = relu_forward(self, x)
        self.cache.mask = np.asarray(self.cache.mask).astype(float)
        return out

    monkeypatch.setattr(nn.ReLU, "forward", relu_keeping_float64)
    with pytest.raises(AssertionError, match="float64"):  # the trap: relu's backward upcasts dout
        _float32_step(bench.build_unet(), x, y)
    model = bench.build_unet()
    loss, opt = _float32_step(model, x, y, trap=False)  # the walk, without the trap
    found = [path for path, _ in float64_arrays({"model": model, "optimizer": opt, "loss": loss})]
    assert any(p.endswith(".cache.mask") for p in found), found
    monkeypatch.setattr(nn.ReLU, "forward", relu_forward)
    # 2. a float64 temporary that never gets stored: a NumPy float64 learning rate
    def sgd_with_float64_lr(self, p, g, state):
        p -= np.float64(self.lr) * g

    monkeypatch.setattr(SGD, "_update", sgd_with_float64_lr)
    with pytest.raises(AssertionError, match="float64"):
        _float32_step(bench.build_unet(), x, y)


def _result(step, unet_ours, unet_torch, strided, pool):
    """A made-up run: one U-Net conv row, the stride-2 variant (not a U-Net shape), one pooling total."""
    ms = {"ours_fwdbwd": unet_ours, "torch_fwdbwd": unet_torch}
    return {"training": [{"ratio": step}],
            "ops": [{"name": "conv1", "op": "conv2d", "label": "conv", "ms": ms, "ratios": {}},
                    {"name": "stride2", "op": "conv2d", "label": "s2", "ms": {"ours_fwdbwd": 99.0, "torch_fwdbwd": 1.0},
                     "ratios": {"fwdbwd_over_gemm": strided}}],
            "pool_summary": {"max_pool2d": {"total_ratios": {"fwdbwd_over_torch": pool}}}}


def test_targets_are_the_issue_s_and_judged_one_by_one():
    """Each target of #15 is met exactly when its measure is at or below it; the variants stay out of the sum."""
    from minimal_seg.bench.targets import check_targets, format_targets

    met = check_targets(_result(step=1.2, unet_ours=3.0, unet_torch=2.0, strided=1.6, pool=0.9))
    assert [c["met"] for c in met] == [True, False, True, True, True]  # the step misses only its stretch goal
    assert [c["target"] for c in met] == [1.5, 1.0, 1.5, 1.6, 1.0]
    assert met[2]["value"] == pytest.approx(1.5)  # 3.0 / 2.0: the stride-2 row (99 vs 1 ms) is not summed
    missed = check_targets(_result(step=1.6, unet_ours=4.0, unet_torch=2.0, strided=1.7, pool=1.1))
    assert not any(c["met"] for c in missed)
    text = format_targets(missed)
    assert text.count("NOT met") == 5 and "1.70 <= 1.6" in text
    assert "none can be judged" in format_targets(check_targets({"ops": [], "training": []}))


# ---- precision on a GPU: torch timed both ways, flags restored; issue #11's targets --------------

import types  # noqa: E402

from minimal_seg.bench import precision  # noqa: E402
from minimal_seg.bench.targets import check_targets, epoch_check, format_targets  # noqa: E402
from minimal_seg.bench.timing import interleaved  # noqa: E402


def _fake_torch(matmul=False, cudnn=True):
    """Just torch's two TF32 flags (torch's defaults unless told)."""
    return types.SimpleNamespace(backends=types.SimpleNamespace(
        cuda=types.SimpleNamespace(matmul=types.SimpleNamespace(allow_tf32=matmul)),
        cudnn=types.SimpleNamespace(allow_tf32=cudnn)))


def test_torch_fp32_turns_both_flags_off_and_restores_them_even_after_an_error():
    torch = _fake_torch(matmul=True, cudnn=True)
    with precision.torch_fp32(torch):
        assert precision.torch_tf32_flags(torch) == {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False}
    assert precision.torch_tf32_flags(torch) == {"cuda.matmul.allow_tf32": True, "cudnn.allow_tf32": True}
    with pytest.raises(ZeroDivisionError), precision.torch_fp32(torch):
        1 / 0
    assert torch.backends.cudnn.allow_tf32 is True and torch.backends.cuda.matmul.allow_tf32 is True


def test_the_real_torch_flags_are_restored():
    """Both flags, and (newer torch) the fp32_precision strings they write through, exactly as they were."""
    torch = pytest.importorskip("torch")
    before = precision.torch_tf32_flags(torch), precision.torch_fp32_precisions(torch)
    with precision.torch_fp32(torch):
        assert not any(precision.torch_tf32_flags(torch).values())
    assert (precision.torch_tf32_flags(torch), precision.torch_fp32_precisions(torch)) == before


def test_torch_is_timed_twice_on_a_gpu_only():
    torch = _fake_torch()
    assert precision.torch_modes("numpy", torch) == {} and precision.torch_modes("cupy", None) == {}
    assert precision.precision_record("numpy", torch) is None and precision.precision_lines(None) == []
    (source, mode), = precision.torch_modes("cupy", torch).values()
    assert source == "torch"
    with mode():
        assert not torch.backends.cudnn.allow_tf32


def test_interleaved_times_torch_again_inside_its_mode():
    """Each contender's calls see the flags of its own block; afterwards torch's flags are as they were."""
    torch = _fake_torch()
    seen = []

    def record(who):
        return lambda: seen.append((who, precision.torch_tf32_flags(torch)["cudnn.allow_tf32"]))

    prepared = [{"ours": (record("ours"), None), "torch": (record("torch"), None)}]
    samples = interleaved(prepared, repeats=2, warmup=1, sync=lambda: None, settle=0,
                          modes=precision.torch_modes("cupy", torch))[0]
    assert sorted(samples) == ["ours_fwd", "torch_fp32_fwd", "torch_fwd"]
    assert all(len(v) == 2 for v in samples.values())
    # per repeat: ours (wake-up + timed), torch as it comes (TF32 on), then the same torch calls with TF32 off
    assert seen[:6] == [("ours", True)] * 2 + [("torch", True)] * 2 + [("torch", False)] * 2
    assert len(seen) == 3 * 6 and torch.backends.cudnn.allow_tf32 is True


def test_gpu_report_states_precision_and_both_torch_ratios(monkeypatch):
    """A CPU run with torch timed twice as on a GPU (real torch, its CPU flags), reported as a GPU run."""
    torch = pytest.importorskip("torch")
    from minimal_seg.bench import main

    monkeypatch.setattr(main, "torch_modes", lambda name, t: precision.torch_modes("cupy", t))
    result = bench.run("numpy", quick=True, repeats=1, warmup=0, settle=0, json_path=None, png_path=None,
                       stream=io.StringIO())
    assert all("torch_fp32_fwdbwd" in r["ms"] and r["ratios"]["fwdbwd_over_torch_fp32"] > 0 for r in result["ops"])
    (step,) = result["training"]
    assert step["torch_fp32_ms"] > 0 and step["ratio_fp32"] == pytest.approx(step["ours_ms"] / step["torch_fp32_ms"])
    result["machine"]["backend"] = result["settings"]["backend"] = "cupy"
    result["machine"]["precision"] = {"ours": "FP32", "ours_tf32_setting": None,
                                      "torch_default": precision.torch_tf32_flags(torch),
                                      "torch_fp32": dict.fromkeys(precision.TORCH_TF32_FLAGS, False)}
    result["targets"] = check_targets(result)
    text = bench.format_report(result)
    assert "precision: ours FP32" in text and "torch32 = torch with both flags False" in text
    assert "torch32 f+b" in text and "/torch32" in text and "torch32 ms" in text and "ratio32" in text
    assert "ours/torch32" in text and "CUDA kernels: on" in text and "targets (#11, GPU):" in text
    assert "U-Net step, both FP32, ours / torch" in text and "not judged (two trainings" in text


def test_a_cpu_report_has_no_precision_columns(tmp_path):
    text = io.StringIO()
    bench.run("numpy", quick=True, use_torch=False, repeats=1, warmup=0, settle=0, json_path=None, png_path=None,
              stream=text)
    assert "precision" not in text.getvalue() and "torch32" not in text.getvalue()
    assert "targets (#15)" in text.getvalue()


def test_the_report_warns_when_openblas_is_kept_from_avx512(monkeypatch):
    from minimal_seg import machine

    monkeypatch.setattr(machine, "cpu_has_avx512", lambda: True)
    for coretype, warns in (("Haswell", True), (None, False)):
        if coretype:
            monkeypatch.setenv("OPENBLAS_CORETYPE", coretype)
        else:
            monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
        text = io.StringIO()
        bench.run("numpy", quick=True, use_torch=False, repeats=1, warmup=0, settle=0, json_path=None,
                  png_path=None, stream=text)
        assert ("WARNING: OPENBLAS_CORETYPE=Haswell" in text.getvalue()) == warns


def _gpu_result(ours="FP32", step=1.4, step_fp32=1.4, conv=(1.5, 1.9), pool=1.2, peaks=(600.0, 500.0)):
    """A made-up --backend cupy run: the step, two U-Net conv rows and one variant, max_pool2d, peak memory."""
    rows = [{"name": f"conv{i}", "op": "conv2d", "label": f"conv{i}", "ms": {},
             "ratios": {"fwdbwd_over_torch": 9.0, "fwdbwd_over_torch_fp32": r}} for i, r in enumerate(conv)]
    rows.append({"name": "stride2", "op": "conv2d", "label": "s2", "ms": {},
                 "ratios": {"fwdbwd_over_torch": 9.0, "fwdbwd_over_torch_fp32": 99.0}})
    return {"settings": {"backend": "cupy"}, "machine": {"precision": {"ours": ours}}, "ops": rows,
            "training": [{"ratio": step, "ratio_fp32": step_fp32, "ours_peak_mib": peaks[0],
                          "torch_peak_mib": peaks[1]}],
            "pool_summary": {"max_pool2d": {"total_ratios": {"fwdbwd_over_torch": pool}},
                             "max_unpool2d": {"total_ratios": {"fwdbwd_over_torch": 99.0}}}}


def test_gpu_targets_are_issue_11_s_and_judged_one_by_one():
    met = check_targets(_gpu_result())
    judged = [c for c in met if c["met"] is not None]
    assert [c["target"] for c in judged] == [1.5, 2.5, 2.0, 1.5, 1.5] and all(c["met"] for c in judged)
    conv = judged[2]
    assert conv["value"] == 1.9 and "(conv1)" in conv["measure"]  # the worst U-Net shape; the variant left out
    assert judged[4]["value"] == pytest.approx(1.2)  # peak memory 600 / 500
    (fcn,) = [c for c in met if c["met"] is None]
    assert "FCN-32s" in fcn["measure"] and "compare" in fcn["why"]
    missed = check_targets(_gpu_result(step=2.6, step_fp32=1.6, conv=(2.1, 1.0), pool=1.6, peaks=(800.0, 500.0)))
    assert [c["met"] for c in missed if c["met"] is not None] == [False] * 5
    text = format_targets(missed, "#11, GPU")
    assert text.count("NOT met") == 5 and "2.10 <= 2.0" in text and "1.60 <= 1.5" in text


def test_fp32_targets_are_not_judged_when_ours_ran_in_tf32():
    checks = check_targets(_gpu_result(ours="TF32", step_fp32=1.0, conv=(1.0, 1.0)))
    fp32 = [c for c in checks if "FP32" in c["measure"]]
    assert len(fp32) == 2 and all(c["met"] is None and c["why"] == "ours ran in TF32" for c in fp32)
    either = [c for c in checks if "torch's default" in c["measure"]]
    assert len(either) == 1 and either[0]["met"] is True and "(TF32)" in either[0]["measure"]


def test_the_fcn32s_epoch_target_both_ways():
    (ok,) = epoch_check({"fcn32s": 9.0, "unet": 5.0, "segnet": 99.0})
    (bad,) = epoch_check({"fcn32s": 24.5, "unet": 5.0})
    assert ok["met"] and ok["value"] == pytest.approx(1.8) and not bad["met"] and bad["target"] == 2.0
    assert epoch_check({"unet": 5.0}) == []


def test_no_kernels_runs_the_bench_with_the_kernels_off(monkeypatch):
    from minimal_seg.bench import main
    from minimal_seg.functional import kernels

    seen = []

    def stop(*args, **kwargs):
        inside = kernels.set_kernels(True)  # the setting run made
        kernels.set_kernels(inside)
        seen.append(inside)
        raise KeyboardInterrupt

    monkeypatch.setattr(main, "time_cases", stop)
    before = kernels.set_kernels(True)
    try:
        for flag in (False, True):
            with pytest.raises(KeyboardInterrupt):
                bench.run("numpy", quick=True, use_torch=False, kernels=flag, json_path=None, png_path=None)
        assert seen == [False, True] and kernels.set_kernels(before) is True  # restored after the run
    finally:
        kernels.set_kernels(before)


# ---- the command line: --tf32 (CuPy only) and --no-kernels -----------------------------------

import sys  # noqa: E402

from fake_cupy import install as install_fake_cupy  # noqa: E402

from minimal_seg import cli  # noqa: E402


@pytest.fixture
def fresh_switches(monkeypatch):
    """The backend, the TF32 setting and CuPy's modules as they were, after the test."""
    for name in ("_current", "_tf32", "_tf32_applied"):
        monkeypatch.setattr(backend, name, getattr(backend, name))
    for name in ("cupy", "cupy._core", "cupy._core._routines_linalg"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("command", [["bench", "--quick"], ["train", "--epochs", "1"]])
def test_tf32_flag_is_refused_on_numpy(command, capsys, fresh_switches):
    fresh_switches.setattr(bench, "run", lambda **kw: pytest.fail("ran"))
    assert cli.main(command + ["--tf32", "--backend", "numpy"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --tf32 needs --backend cupy") and "always FP32" in err
    assert backend.tf32_setting() is None


def test_bench_flags_reach_the_run_on_a_fake_gpu(fresh_switches, capsys):
    linalg = install_fake_cupy(fresh_switches)
    seen = {}
    fresh_switches.setattr(bench, "run", lambda **kw: seen.update(kw))
    assert cli.main(["bench", "--backend", "cupy", "--tf32", "--no-kernels", "--out", "x"]) == 0
    assert linalg.calls == [(np.dtype(np.float32), linalg.COMPUTE_TYPE_TF32)]
    assert "--tf32: CuPy's float32 matmuls run in TF32" in capsys.readouterr().out
    assert seen["kernels"] is False and seen["backend_name"] == "cupy" and seen["batch"] is seen["size"] is None
    assert cli.main(["bench", "--backend", "cupy", "--out", "x"]) == 0 and seen["kernels"] is True
