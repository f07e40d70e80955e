"""Check the CuPy backend on a GPU in one go: ``python -m minimal_seg.gpu_check [--out DIR]``.

(The same as ``python -m minimal_seg gpu-check``.) Run it from a checkout of
the repository, on a machine with an NVIDIA GPU and CuPy. Each step is a
subprocess with a time limit; its output goes to ``DIR/STEP.log``::

    kernels      the CUDA kernel tests (tests/test_kernels*.py): the ``xp``
                 fixture runs each kernel on cupy against its reference
    tests-xp     the test suite (notebooks and the kernel tests left out): the
                 ``xp`` fixture runs every backend test on numpy, strict and cupy
    tests-cupy   the suite again with MINIMAL_SEG_BACKEND=cupy: everything on
                 the GPU, as a student with a GPU runs it (the kernel tests
                 left out: their cupy cases ran in the first step)
    gradcheck    float64 gradient check of every op, on CuPy
    train        the default training run (U-Net on Shapes), on CuPy
    compare      every architecture for one epoch, on CuPy
    evaluate     the trained checkpoint, with the dense CRF
    predict      the trained checkpoint on a picture file
    bench        the benchmark, on CuPy: both sides' precision, torch timed
                 as it comes and in FP32, issue #11's targets

It writes ``summary.json`` and ``summary.md`` (device, driver, CUDA, CuPy,
NumPy and Python versions, the commit, passed/failed and seconds per step,
and the targets: the bench's, and FCN-32s' epoch against U-Net's from
compare) next to the logs, prints the summary last, and exits 1 if any step
failed. The whole run is given a time budget (``--budget``, 470 s by
default, so that it fits a 10-minute slot with the machine's start-up); a
step that would start after it is spent fails as "not run". ``--steps``
runs only some steps (e.g. ``--steps kernels bench``). Without a usable GPU
it prints one line and exits 0, running nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from .backend import BackendUnavailableError, _import_cupy
from .machine import gpu_name

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the checkout: minimal_seg/ and tests/


@dataclasses.dataclass
class Step:
    """One check: a command, its time limit (s), extra environment, and the step it needs to have passed."""

    name: str
    argv: list
    timeout: float
    env: dict = dataclasses.field(default_factory=dict)
    needs: str | None = None


STEP_NAMES = ("kernels", "tests-xp", "tests-cupy", "gradcheck", "train", "compare", "evaluate", "predict", "bench")


def kernel_test_files() -> list:
    """tests/test_kernels*.py: the CUDA kernels against their array-module references."""
    return sorted(str(p) for p in (ROOT / "tests").glob("test_kernels*.py"))


def _pytest(out: pathlib.Path, name: str, paths=None, ignore=()) -> list:
    """The test-suite command (``paths``, default all of tests/): notebooks and ``ignore`` left out, parallel
    when pytest-xdist is installed, a JUnit record."""
    workers = ["-n", str(min(12, os.cpu_count() or 1))] if importlib.util.find_spec("xdist") else []
    skipped = [str(ROOT / "tests" / "test_notebooks.py"), *ignore]
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *workers,
            *(f"--ignore={path}" for path in skipped), f"--junitxml={out / (name + '.xml')}",
            *(paths or [str(ROOT / "tests")])]


ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # per test worker


def default_steps(out: pathlib.Path) -> list:
    """The nine checks of the module docstring (``STEP_NAMES``), with their time limits (seconds)."""
    cli = [sys.executable, "-m", "minimal_seg"]
    checkpoint = str(out / "train" / "checkpoint.npz")
    kernels = kernel_test_files()
    return [
        Step("kernels", _pytest(out, "kernels", kernels), 60, {"MINIMAL_SEG_BACKEND": "numpy", **ONE_THREAD}),
        Step("tests-xp", _pytest(out, "tests-xp", ignore=kernels), 150,
             {"MINIMAL_SEG_BACKEND": "numpy", **ONE_THREAD}),
        Step("tests-cupy", _pytest(out, "tests-cupy", ignore=kernels), 150,
             {"MINIMAL_SEG_BACKEND": "cupy", **ONE_THREAD}),
        Step("gradcheck", cli + ["gradcheck", "--backend", "cupy"], 60),
        Step("train", cli + ["train", "--backend", "cupy", "--no-progress", "--out", str(out / "train")], 90),
        Step("compare", cli + ["compare", "--epochs", "1", "--backend", "cupy", "--no-progress",
                               "--out", str(out / "compare")], 120),
        Step("evaluate", cli + ["evaluate", checkpoint, "--crf", "--backend", "cupy"], 60, needs="train"),
        Step("predict", cli + ["predict", checkpoint, str(out / "picture.png"), "--out", str(out / "picture_mask.png"),
                               "--backend", "cupy"], 30, needs="train"),
        Step("bench", cli + ["bench", "--backend", "cupy", "--out", str(out / "bench")], 150),
    ]


def _junit_counts(path: pathlib.Path):
    """(tests, failed, skipped) from a pytest JUnit XML file, or None if there is none."""
    if not path.exists():
        return None
    suite = ET.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
    return tests, failures + errors, skipped


def run_step(step: Step, out: pathlib.Path, time_left: float, results: dict) -> dict:
    """Run one step (its own process group, killed at the time limit); its record for the summary."""
    record = {"step": step.name, "command": " ".join(step.argv), "log": f"{step.name}.log"}
    if step.needs and results.get(step.needs, {}).get("result") != "passed":
        return {**record, "result": "not run", "seconds": 0.0, "detail": f"needs {step.needs}, which did not pass"}
    if time_left < 5:
        return {**record, "result": "not run", "seconds": 0.0, "detail": "the time budget is spent"}
    limit = min(step.timeout, time_left)
    env = {**os.environ, "MPLBACKEND": "Agg", **step.env,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with open(out / record["log"], "w") as log:
        log.write(f"$ {record['command']}\n")
        log.flush()
        proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    seconds = round(time.perf_counter() - start, 1)
    result = "passed" if code == 0 else "failed"
    detail = f"killed after its time limit of {limit:.0f} s" if code is None else f"exit status {code}"
    counts = _junit_counts(out / f"{step.name}.xml")
    if counts:
        tests, failed, skipped = counts
        detail = f"{tests} tests: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped; {detail}"
    return {**record, "result": result, "returncode": code, "seconds": seconds, "detail": detail}


def _command_output(argv) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def device_info() -> dict:
    """The machine record of the summary: GPU, driver, CUDA, CuPy, NumPy, Python and the commit."""
    import numpy

    cupy = _import_cupy()
    runtime = cupy.cuda.runtime

    def version(v):
        return f"{v // 1000}.{v % 1000 // 10}"

    return {
        "device": gpu_name(cupy),
        "driver": _command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]).split("\n")[0]
        or f"CUDA driver API {version(runtime.driverGetVersion())}",
        "cuda_runtime": version(runtime.runtimeGetVersion()),
        "cupy": cupy.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "commit": _command_output(["git", "rev-parse", "--short", "HEAD"]) or "unknown",
    }


def gathered_targets(out: pathlib.Path, results: dict) -> list:
    """Issue #11's targets from this run's outputs: the bench's (``bench/bench.json``), and FCN-32s' epoch
    against U-Net's from compare's seconds per epoch (``compare/compare.json``); only from steps that
    passed in this run (``results``: {step: record}), so an old file in ``out`` is never read."""
    from .bench.targets import epoch_check

    def passed(name):
        return results.get(name, {}).get("result") == "passed"

    checks = []
    bench_json, compare_json = out / "bench" / "bench.json", out / "compare" / "compare.json"
    if passed("bench") and bench_json.exists():
        checks += [c for c in json.loads(bench_json.read_text()).get("targets", []) if c["met"] is not None]
    if passed("compare") and compare_json.exists():
        rows = json.loads(compare_json.read_text())["rows"]
        checks += [{**c, "measure": c["measure"] + " (compare, one epoch each)"}
                   for c in epoch_check({r["model"]: r["seconds_per_epoch"] for r in rows})]
    return checks


def summary_text(info: dict, results: list, out: pathlib.Path, targets=()) -> str:
    """The summary: the machine, one table row per step, the verdict, and the targets of this run."""
    from .bench.targets import format_targets

    failed = [r["step"] for r in results if r["result"] != "passed"]
    lines = [
        f"# minimal_seg gpu-check, {info['date']}",
        "",
        f"{info['device']}, driver {info['driver']}, CUDA runtime {info['cuda_runtime']}, CuPy {info['cupy']}, "
        f"NumPy {info['numpy']}, Python {info['python']}; commit {info['commit']}.",
        "",
        "| step | result | seconds | details |",
        "|---|---|---:|---|",
        *(f"| {r['step']} | {r['result']} | {r['seconds']:.1f} | {r['detail']} |" for r in results),
        "",
        f"{len(results) - len(failed)} of {len(results)} steps passed"
        + (f"; FAILED: {', '.join(failed)}" if failed else "") + f". Logs and summary.json in {out}/",
    ]
    if targets:
        lines += ["", "```", format_targets(list(targets), "#11, GPU"), "```"]
    return "\n".join(lines)


def _write_picture(path: pathlib.Path):
    """A Shapes image as a PNG file, for ``predict``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image

    from .data import Shapes

    matplotlib.image.imsave(path, Shapes(1, seed=12345).images[0, 0], cmap="gray")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--out", default="runs/gpu-check", help="folder for the logs and the summary "
                                                               "(default runs/gpu-check)")
    parser.add_argument("--budget", type=float, default=470.0,
                        help="seconds for the whole run (default 470); later steps are not run once it is spent")
    parser.add_argument("--steps", nargs="+", choices=STEP_NAMES, default=None, metavar="STEP",
                        help=f"run only these steps (default: all of {', '.join(STEP_NAMES)})")


def run(args) -> int:
    """The command: 0 when every step passed (or there is no GPU: nothing is run), else 1."""
    try:
        _import_cupy()
    except BackendUnavailableError as err:
        print(f"gpu-check: no usable GPU here, nothing run ({str(err).split(';')[0]})")
        return 0
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    info = {**device_info(), "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    _write_picture(out / "picture.png")
    deadline = time.perf_counter() + args.budget
    results = {}
    for step in [s for s in default_steps(out) if not getattr(args, "steps", None) or s.name in args.steps]:
        print(f"gpu-check: {step.name} ...", flush=True)
        results[step.name] = run_step(step, out, deadline - time.perf_counter(), results)
        print(f"gpu-check: {step.name} {results[step.name]['result']} ({results[step.name]['seconds']:.0f} s)",
              flush=True)
    records = list(results.values())
    targets = gathered_targets(out, results)
    text = summary_text(info, records, out, targets)
    (out / "summary.json").write_text(json.dumps({"machine": info, "steps": records, "targets": targets},
                                                 indent=2) + "\n")
    (out / "summary.md").write_text(text + "\n")
    print(text)
    return 0 if all(r["result"] == "passed" for r in records) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg.gpu_check", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
