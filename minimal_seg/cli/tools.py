"""The commands around training: ``gradcheck``, ``check`` and ``make-student`` (assignments), ``bench``,
``gpu-check``."""
from __future__ import annotations

import sys

from .common import add_backend, add_tf32, at_least


def cmd_gradcheck(args) -> int:
    """Check every op of the catalogue; print op, options, tensor, max rel. error, pass/fail."""
    import numpy

    from ..backend import asarray
    from ..gradcheck import gradcheck
    from ..op_catalogue import catalogue

    rows, failed = [], 0
    for i, entry in enumerate(catalogue()):
        rng = numpy.random.default_rng(args.seed + i)
        inputs = {k: asarray(v) if isinstance(v, numpy.ndarray) else v for k, v in entry.make_inputs(rng).items()}
        report = gradcheck(entry.forward, entry.backward, inputs, entry.kwargs, wrt=entry.wrt, label=entry.label,
                           seed=args.seed + i)
        options = ", ".join(f"{k}={v}" for k, v in entry.kwargs.items()) or "-"
        for _, tensor, err, _, verdict in report.rows():
            rows.append((entry.label, options, tensor, f"{err:.1e}", verdict))
        failed += not report.passed
    widths = [max(len(str(r[c])) for r in rows + [("op", "options", "tensor", "max rel. error", "")]) for c in range(5)]
    header = ("op", "options", "tensor", "max rel. error", "result")
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"\n{len(rows)} tensors checked in float64 (tol 1e-7): "
          f"{'all passed' if not failed else f'{failed} op(s) FAILED'}")
    return 1 if failed else 0


def cmd_check(args) -> int:
    """Autograde one assignment (or all): a table of checks, details and hints for each failure.

    With --submissions, grade a whole class into a CSV gradebook (minimal_seg.assignments.gradebook).
    """
    from ..assignments import ASSIGNMENTS, check

    names = list(ASSIGNMENTS) if args.assignment == "all" else [args.assignment]
    if args.submissions is not None:
        return _grade_class(args, names)
    try:
        results = [check(name, impl=args.impl, verbose=False, solutions=args.solutions, held_out=args.held_out)
                   for name in names]
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for r in results:
        rerun = f"python -m minimal_seg check {r.assignment}" + (f" --impl {args.impl}" if args.impl else "")
        show = rerun.replace("{", "{{").replace("}", "}}") + " --error-map {number} saves the error map of {map_name}"
        print(r.report(show=show) + ("\n" if len(results) > 1 else ""))
    if args.error_map is not None:
        if len(results) != 1:
            print("error: --error-map needs one assignment, not all", file=sys.stderr)
            return 2
        return _save_error_map(results[0], args.error_map)
    if len(results) > 1:
        print("summary: " + ", ".join(f"{r.assignment} {'PASS' if r.passed else 'FAIL'}" for r in results))
    return 0 if all(r.passed for r in results) else 1


def _save_error_map(result, number: int) -> int:
    """Draw check ``number``'s error map into error_map_<assignment>_<number>.png (--error-map)."""
    import matplotlib

    matplotlib.use("Agg")
    if not 1 <= number <= len(result.results):
        print(f"error: --error-map: {result.assignment} has checks 1 to {len(result.results)}, got {number}",
              file=sys.stderr)
        return 2
    try:
        ax = result.show(number)
    except (ValueError, KeyError) as err:
        print(f"error: --error-map {number}: {err}", file=sys.stderr)
        return 2
    path = f"error_map_{result.assignment}_{number}.png"
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")
    print(f"wrote {path}")
    return 0 if result.passed else 1


def _grade_class(args, names) -> int:
    """--submissions FOLDER [--gradebook CSV]: every student's files graded; the table printed, the CSV written."""
    from ..assignments.gradebook import grade_submissions, summary

    try:
        rows = grade_submissions(args.submissions, names, held_out=args.held_out, gradebook=args.gradebook,
                                 isolate=not args.in_process, timeout=args.timeout)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(rows, names))
    if args.gradebook:
        print(f"wrote {args.gradebook}: {len(rows)} student(s)")
    return 0


def cmd_make_student(args) -> int:
    """Write the student version of every assignment (solutions replaced by stubs)."""
    from ..assignments.make_student import main as make_student

    return make_student([args.out_dir] + (["--force"] if args.force else [])
                        + (["--solutions", args.solutions] if args.solutions else []))


def cmd_bench(args) -> int:
    """Time the conv and pool ops at U-Net shapes and a U-Net training step against torch; see minimal_seg.bench."""
    import os

    from ..bench import run

    run(backend_name=args.backend, quick=args.quick, repeats=args.repeats, warmup=args.warmup,
        batch=args.batch, size=args.size, base=args.base, use_torch=not args.no_torch,
        json_path=os.path.join(args.out, "bench.json"), png_path=os.path.join(args.out, "bench.png"),
        seed=args.seed, settle=args.settle, kernels=not args.no_kernels)
    return 0


def add_tool_commands(sub):
    """The ``gradcheck``, ``check``, ``make-student``, ``bench`` and ``gpu-check`` subcommands."""
    from .. import gpu_check

    p = sub.add_parser("gradcheck", help="float64 gradient check of every op, printed as a table")
    p.add_argument("--seed", type=at_least(0), default=0)
    add_backend(p)
    p.set_defaults(func=cmd_gradcheck)
    _add_assignment_commands(sub)
    _add_bench_command(sub)
    p = sub.add_parser("gpu-check", help="verify the CuPy backend on a GPU: tests, training, bench (one folder)")
    gpu_check.add_arguments(p)
    p.set_defaults(func=gpu_check.run)


def _add_assignment_commands(sub):
    p = sub.add_parser("check", help="autograde an assignment: imports, shapes and values, hand examples, "
                                     "gradient check, reference; or a class into a gradebook")
    p.add_argument("assignment", help="a1 ... a6, or all")
    p.add_argument("--impl", default=None,
                   help="the student's file, or a folder holding it (default: the reference solution)")
    p.add_argument("--solutions", default=None, metavar="FOLDER",
                   help="the reference solutions, checked when --impl is not given "
                        "(default: lectures/assignments/solutions of the checkout)")
    p.add_argument("--held-out", default=None, metavar="FOLDER",
                   help="a teacher's folder of held-out checks (<assignment file name>.py, each with CHECKS)")
    p.add_argument("--submissions", default=None, metavar="FOLDER",
                   help="grade a class: one folder per student, holding their assignment files")
    p.add_argument("--gradebook", default=None, metavar="CSV",
                   help="with --submissions: write the gradebook (one row per student, one column per check)")
    p.add_argument("--timeout", type=at_least(1.0, float), default=600.0, metavar="SECONDS",
                   help="with --submissions: the time limit of one student's grading (default 600)")
    p.add_argument("--in-process", action="store_true",
                   help="with --submissions: grade every student in this process (faster; no time limit, "
                        "and one file can affect the next)")
    p.add_argument("--error-map", type=int, default=None, metavar="N",
                   help="save the error map of check N as error_map_<assignment>_<N>.png")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("make-student", help="write the assignments with every solution replaced by a stub")
    p.add_argument("out_dir", help="folder to write the student files into")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--solutions", default=None, metavar="FOLDER",
                   help="the reference solutions (default: lectures/assignments/solutions of the checkout)")
    p.set_defaults(func=cmd_make_student)


def _thread_count(text):
    """argparse type of --threads: a whole number >= 1 (argparse names the flag in its error line)."""
    import argparse

    from ..threads import positive_count

    try:
        return positive_count(text, "threads")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_bench_command(sub):
    p = sub.add_parser("bench", help="time conv/pool ops and a U-Net training step against PyTorch and the "
                                     "bare GEMMs (JSON + PNG)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a smoke test)")
    p.add_argument("--repeats", type=at_least(1), default=None, help="timed repeats per op (default 15, quick 3)")
    p.add_argument("--warmup", type=at_least(0), default=None, help="untimed runs first (default 3, quick 1)")
    p.add_argument("--batch", type=at_least(1), default=None, help="images per conv/pool case (default 8; "
                                                                   "32 with --backend cupy)")
    p.add_argument("--size", type=at_least(1), default=None, help="image height and width (default 64; 128 "
                                                                  "with --backend cupy)")
    p.add_argument("--base", type=at_least(1), default=16, help="channels of the first U-Net level")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--out", default=".", help="folder for bench.json and bench.png (default: here)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--threads", type=_thread_count, default=None,
                   help="BLAS/OpenMP threads for numpy and torch (default: all cores on an idle machine, 1 on "
                        "a busy one, or $MINIMAL_SEG_THREADS / $OPENBLAS_NUM_THREADS)")
    p.add_argument("--settle", type=at_least(0, float), default=0.15,
                   help="seconds between the NumPy and the torch timings, for BLAS/OpenMP threads to sleep")
    p.add_argument("--no-kernels", action="store_true",
                   help="run without the CUDA kernels (functional.kernels.use_kernels(False)), to time both paths")
    add_backend(p)
    add_tf32(p)
    p.set_defaults(func=cmd_bench)
