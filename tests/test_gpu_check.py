"""Tests for minimal_seg/gpu_check.py without a GPU: the no-GPU line, and the orchestration with faked steps."""
import json
import sys

import pytest

from minimal_seg import backend, cli, gpu_check
from minimal_seg.data.registry import DATASETS
from minimal_seg.gpu_check import Step

FAKE_MACHINE = {"device": "Fake GPU", "driver": "1.0", "cuda_runtime": "13.0", "cupy": "14.2", "numpy": "2.5",
                "python": "3.11", "commit": "abc1234"}


def _python(code):
    return [sys.executable, "-c", code]


@pytest.fixture
def fake_gpu(monkeypatch):
    """A 'GPU' that is there, with steps the test chooses instead of the real ones."""
    monkeypatch.setattr(gpu_check, "_import_cupy", lambda: None)
    monkeypatch.setattr(gpu_check, "device_info", lambda: dict(FAKE_MACHINE))
    monkeypatch.setattr(gpu_check, "_write_picture", lambda path: None)

    def use(steps):
        monkeypatch.setattr(gpu_check, "default_steps", lambda out: steps)

    return use


def test_without_a_gpu_one_line_exit_zero_nothing_run(tmp_path, capsys, monkeypatch):
    def no_cupy():
        raise backend.BackendUnavailableError("CuPy is not importable (No module named 'cupy'); install it")

    monkeypatch.setattr(gpu_check, "_import_cupy", no_cupy)
    monkeypatch.setattr(gpu_check, "run_step", lambda *a: pytest.fail("a step ran without a GPU"))
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "no usable GPU" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_real_no_gpu_path_here():
    if backend.cupy_available():
        pytest.skip("a GPU is here")
    assert cli.main(["gpu-check", "--out", "/nonexistent/never-written"]) == 0


def test_a_failing_step_fails_the_run_and_the_summary_says_which(tmp_path, capsys, fake_gpu):
    fake_gpu([
        Step("first", _python("print('all good')"), 30),
        Step("broken", _python("import sys; print('boom'); sys.exit(3)"), 30),
        Step("slow", _python("import time; time.sleep(60)"), 1),
        Step("after-broken", _python("print('never')"), 30, needs="broken"),
        Step("after-first", _python("import os; print(os.environ['GPU_CHECK_TEST'])"), 30,
             env={"GPU_CHECK_TEST": "env passed"}, needs="first"),
    ])
    assert gpu_check.main(["--out", str(tmp_path)]) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("2 of 5 steps passed; FAILED: broken, slow, after-broken")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["machine"]["device"] == "Fake GPU"
    result = {s["step"]: s for s in summary["steps"]}
    assert [result[k]["result"] for k in result] == ["passed", "failed", "failed", "not run", "passed"]
    assert result["broken"]["returncode"] == 3 and "exit status 3" in result["broken"]["detail"]
    assert "time limit of 1 s" in result["slow"]["detail"] and result["slow"]["seconds"] < 30
    assert "needs broken" in result["after-broken"]["detail"]
    assert "boom" in (tmp_path / "broken.log").read_text()
    assert "env passed" in (tmp_path / "after-first.log").read_text()
    md = (tmp_path / "summary.md").read_text()
    assert "Fake GPU" in md and "| broken | failed |" in md and "CuPy 14.2" in md and "NumPy 2.5" in md


def test_all_steps_passing_exit_zero(tmp_path, capsys, fake_gpu):
    fake_gpu([Step("one", _python("pass"), 30), Step("two", _python("pass"), 30)])
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("2 of 2 steps passed.")


def test_a_spent_budget_runs_nothing_more_and_fails(tmp_path, fake_gpu):
    fake_gpu([Step("one", _python("pass"), 30)])
    assert gpu_check.main(["--out", str(tmp_path), "--budget", "0"]) == 1
    step = json.loads((tmp_path / "summary.json").read_text())["steps"][0]
    assert step["result"] == "not run" and "budget" in step["detail"]


def test_junit_counts_go_into_the_detail(tmp_path):
    (tmp_path / "suite.xml").write_text('<testsuites><testsuite tests="10" failures="1" errors="1" skipped="3">'
                                        "</testsuite></testsuites>")
    record = gpu_check.run_step(Step("suite", _python("pass"), 30), tmp_path, 60, {})
    assert record["result"] == "passed" and record["detail"].startswith("10 tests: 5 passed, 2 failed, 3 skipped")


def test_the_default_steps_cover_the_issue():
    steps = {s.name: s for s in gpu_check.default_steps(gpu_check.ROOT / "runs" / "x")}
    assert list(steps) == list(gpu_check.STEP_NAMES) == ["kernels", "tests-xp", "tests-cupy", "gradcheck", "train",
                                                         "compare", "evaluate", "predict", "bench"]
    kernel_tests = gpu_check.kernel_test_files()
    assert any(p.endswith("tests/test_kernels.py") for p in kernel_tests)
    assert all(p in steps["kernels"].argv for p in kernel_tests)  # run on their own, under the xp fixture
    assert steps["kernels"].env["MINIMAL_SEG_BACKEND"] == "numpy"
    assert all(f"--ignore={p}" in steps[name].argv for p in kernel_tests for name in ("tests-xp", "tests-cupy"))
    assert steps["tests-cupy"].env["MINIMAL_SEG_BACKEND"] == "cupy" and steps["tests-xp"].env["MINIMAL_SEG_BACKEND"] == "numpy"
    assert any("test_notebooks.py" in a for a in steps["tests-xp"].argv)
    assert all(s.argv[s.argv.index("--backend") + 1] == "cupy" for s in steps.values() if "--backend" in s.argv)
    assert "--crf" in steps["evaluate"].argv and steps["compare"].argv[steps["compare"].argv.index("--epochs") + 1] == "1"
    assert sum(s.timeout for s in steps.values()) > 470  # the --budget, not the sum of the limits, caps the run
    # every command parses with the real command line
    for s in steps.values():
        if s.argv[1:3] == ["-m", "minimal_seg"]:
            cli.build_parser().parse_args(s.argv[3:])


def test_the_picture_for_predict_reads_back_as_a_model_input(tmp_path):
    import matplotlib.image
    import numpy as np

    gpu_check._write_picture(tmp_path / "picture.png")
    picture = np.asarray(matplotlib.image.imread(tmp_path / "picture.png"), dtype=np.float64)
    assert DATASETS["shapes"].image_from_picture(picture, 1).shape == (1, 64, 64)


def test_the_budget_fits_the_device_s_ten_minute_command_limit():
    parser = __import__("argparse").ArgumentParser()
    gpu_check.add_arguments(parser)
    assert parser.parse_args([]).budget <= 600 - 90  # room for the machine's start-up and the summary


def test_steps_runs_only_the_steps_named(tmp_path, fake_gpu):
    fake_gpu([Step("kernels", _python("pass"), 30), Step("bench", _python("print('bench ran')"), 30)])
    assert gpu_check.main(["--out", str(tmp_path), "--steps", "bench"]) == 0
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert [s["step"] for s in steps] == ["bench"] and "bench ran" in (tmp_path / "bench.log").read_text()
    with pytest.raises(SystemExit):
        gpu_check.main(["--steps", "no-such-step"])


def _plant_outputs(out):
    """bench.json with issue #11's targets (one met, one NOT met, one not judged) and compare.json."""
    (out / "bench").mkdir(parents=True)
    (out / "compare").mkdir()
    targets = [{"measure": "U-Net step, ours (FP32) / torch's default", "value": 2.0, "target": 2.5, "met": True},
               {"measure": "max_pool2d fwd+bwd / torch", "value": 1.7, "target": 1.5, "met": False},
               {"measure": "FCN-32s epoch / U-Net epoch", "value": None, "target": 2.0, "met": None, "why": "x"}]
    (out / "bench" / "bench.json").write_text(json.dumps({"targets": targets}))
    rows = [{"model": "fcn32s", "seconds_per_epoch": 24.5}, {"model": "unet", "seconds_per_epoch": 5.0}]
    (out / "compare" / "compare.json").write_text(json.dumps({"rows": rows}))


def test_the_summary_gathers_the_targets_of_the_steps_that_passed(tmp_path, capsys, fake_gpu):
    _plant_outputs(tmp_path)
    fake_gpu([Step("compare", _python("pass"), 30), Step("bench", _python("pass"), 30)])
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    targets = json.loads((tmp_path / "summary.json").read_text())["targets"]
    assert [(t["measure"].split(" (")[0], t["met"]) for t in targets] == [
        ("U-Net step, ours", True), ("max_pool2d fwd+bwd / torch", False), ("FCN-32s epoch / U-Net epoch", False)]
    assert targets[2]["value"] == pytest.approx(4.9) and "compare, one epoch each" in targets[2]["measure"]
    md = (tmp_path / "summary.md").read_text()
    assert "targets (#11, GPU):" in md and md.count("NOT met") == 2 and "4.90 <= 2.0" in md
    fake_gpu([Step("compare", _python("pass"), 30), Step("bench", _python("import sys; sys.exit(1)"), 30)])
    assert gpu_check.main(["--out", str(tmp_path)]) == 1  # a failed bench: its (old) bench.json is not read
    targets = json.loads((tmp_path / "summary.json").read_text())["targets"]
    assert [t["measure"].split(" /")[0] for t in targets] == ["FCN-32s epoch"]
