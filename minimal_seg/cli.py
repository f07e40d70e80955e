"""The command line: ``python -m minimal_seg COMMAND``.

    train       train a model (default: a tiny U-Net on the Shapes data, a few CPU minutes)
    evaluate    metrics of a checkpoint on a dataset split
    predict     colour mask of an image file from a checkpoint
    gradcheck   float64 gradient check of every op, as a table
    compare     train every architecture with the same data and budget; one table
    bench       time conv/pool ops and a U-Net training step against PyTorch (JSON + PNG)
    check       autograde an assignment: python -m minimal_seg check a1 --impl my_a1.py;
                a class: check all --submissions DIR --gradebook grades.csv [--held-out DIR]
    make-student OUT_DIR   write the student version of the assignments (from a checkout)
"""
from __future__ import annotations

import argparse
import sys


def _add_backend(parser):
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                        help="array backend (default: numpy, or $MINIMAL_SEG_BACKEND)")


def cmd_gradcheck(args) -> int:
    """Check every op of the catalogue; print op, options, tensor, max rel. error, pass/fail."""
    import numpy

    from .backend import asarray
    from .gradcheck import gradcheck
    from .op_catalogue import catalogue

    rows, failed = [], 0
    for i, (label, forward, backward, make_inputs, kwargs) in enumerate(catalogue()):
        rng = numpy.random.default_rng(args.seed + i)
        inputs = {k: asarray(v) if isinstance(v, numpy.ndarray) else v for k, v in make_inputs(rng).items()}
        report = gradcheck(forward, backward, inputs, kwargs, label=label, seed=args.seed + i)
        options = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "-"
        for _, tensor, err, _, verdict in report.rows():
            rows.append((label, options, tensor, f"{err:.1e}", verdict))
        failed += not report.passed
    widths = [max(len(str(r[c])) for r in rows + [("op", "options", "tensor", "max rel. error", "")]) for c in range(5)]
    header = ("op", "options", "tensor", "max rel. error", "result")
    for row in [header] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    print(f"\n{len(rows)} tensors checked in float64 (tol 1e-7): "
          f"{'all passed' if not failed else f'{failed} op(s) FAILED'}")
    return 1 if failed else 0


def cmd_train(args) -> int:
    """Train with the defaults of ``TrainConfig`` and the dataset, overridden by the given options."""
    import dataclasses

    from .train import DATA_DEFAULTS, TrainConfig, TrainingDiverged, train

    options = dict(DATA_DEFAULTS[args.data])
    for name in ("epochs", "batch_size", "lr", "seed", "base_channels", "loss", "crop_size", "optimizer"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    out = args.out or f"runs/{args.model}-{args.data}"
    config = TrainConfig(model=args.model, data=args.data, backend=args.backend or _current_backend(),
                         out=out, **options)
    print("training " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if v not in ({}, None)))
    try:
        result = train(config, resume=args.resume, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    last = result["history"][-1]
    print(f"done: val mIoU {last['val_miou']:.4f}; wrote checkpoint.npz, metrics.csv, metrics.json, "
          f"learning_curves.png, predictions.png to {out}/")
    return 0


def cmd_compare(args) -> int:
    """Train each model with the same TrainConfig (the `train` defaults, overridden) and print the table."""
    import dataclasses

    from .compare import compare, format_table
    from .train import TrainConfig

    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "seed", "base_channels", "num_train",
                                                "num_val", "image_size") if getattr(args, k) is not None}
    config = dataclasses.replace(TrainConfig(backend=args.backend or _current_backend()), **overrides)
    try:
        result = compare(args.models, config, out=args.out, progress=not args.no_progress)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(result["rows"]))
    print(f"wrote compare.json and compare.md to {args.out}/")
    return 0


def _current_backend():
    from .backend import get_backend

    return get_backend()


def cmd_evaluate(args) -> int:
    """Load a checkpoint, evaluate it on its dataset's held-out split (or --data/--split), print metrics."""
    from .checkpoint import model_from_checkpoint
    from .data import get_dataset
    from .train import VAL_SPLIT, TrainConfig, evaluate

    try:
        model, ckpt = model_from_checkpoint(args.checkpoint)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    config = TrainConfig(**ckpt["meta"]["train_config"])
    data = args.data or config.data
    split = args.split or VAL_SPLIT[data]
    kwargs = config.data_kwargs(split) if data == config.data else {}
    dataset = get_dataset(data, split, **kwargs)
    metrics = evaluate(model, dataset)
    print(f"{args.checkpoint} on {data}/{split}:")
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}")
    if args.crf:
        _print_crf_effect(model, dataset)
    return 0


def _print_crf_effect(model, dataset):
    """mIoU and pixel accuracy before and after the dense CRF (default settings) on ``dataset``."""
    from .classical import crf_refine_eval

    result = crf_refine_eval(model, dataset.images, dataset.masks, dataset.num_classes, method="fast")
    print("dense CRF (fast, 5 mean-field iterations, default kernels):")
    for name in ("miou", "pixel_accuracy"):
        print(f"  {name:<16} {result[name + '_before']:.4f} -> {result[name + '_after']:.4f}")


def cmd_predict(args) -> int:
    """Segment one image file (PNG/JPEG) with a checkpoint and save the colour mask as PNG."""
    import matplotlib.image
    import numpy

    from .backend import to_numpy
    from .checkpoint import model_from_checkpoint
    from .train import predict
    from .viz import colorize

    try:
        model, ckpt = model_from_checkpoint(args.checkpoint)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        picture = numpy.asarray(matplotlib.image.imread(args.image), dtype=numpy.float64)
    except Exception as err:  # any unreadable file gives one line, not a traceback
        print(f"error: cannot read image {args.image!r}: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    image = _to_model_input(picture, model.config["in_channels"], ckpt["meta"]["train_config"]["data"])
    mask = to_numpy(predict(model, image))[0]
    out = args.out or args.image.rsplit(".", 1)[0] + "_mask.png"
    matplotlib.image.imsave(out, colorize(mask))
    counts = numpy.bincount(mask.ravel(), minlength=model.config["num_classes"])
    names = ckpt["meta"].get("class_names") or [str(k) for k in range(len(counts))]
    print(f"wrote {out}: " + ", ".join(f"{n} {c / mask.size:.1%}" for n, c in zip(names, counts)))
    return 0


def _to_model_input(picture, channels, data):
    """(H, W) or (H, W, 3|4) picture -> (1, channels, H, W) normalised like the training data."""
    import numpy

    from .data import standardize
    from .data.nuclei import percentile_normalize

    if picture.ndim == 3:
        picture = picture[..., :3]
        picture = picture.mean(axis=2, keepdims=True) if channels == 1 else picture
    else:
        picture = numpy.repeat(picture[..., None], channels, axis=2)
    image = picture.transpose(2, 0, 1)[None]
    if data == "nuclei":
        return percentile_normalize(image).astype(numpy.float32)
    return standardize(image)


def cmd_check(args) -> int:
    """Autograde one assignment (or all): a table of checks, details and hints for each failure.

    With --submissions, grade a whole class into a CSV gradebook (minimal_seg.assignments.gradebook).
    """
    from .assignments import ASSIGNMENTS, check

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
    from .assignments.gradebook import grade_submissions, summary

    try:
        rows = grade_submissions(args.submissions, names, held_out=args.held_out, gradebook=args.gradebook)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(summary(rows, names))
    if args.gradebook:
        print(f"wrote {args.gradebook}: {len(rows)} student(s)")
    return 0


def cmd_make_student(args) -> int:
    """Write the student version of every assignment (solutions replaced by stubs)."""
    from .assignments.make_student import main as make_student

    return make_student([args.out_dir] + (["--force"] if args.force else [])
                        + (["--solutions", args.solutions] if args.solutions else []))


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
    p.add_argument("--error-map", type=int, default=None, metavar="N",
                   help="save the error map of check N as error_map_<assignment>_<N>.png")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("make-student", help="write the assignments with every solution replaced by a stub")
    p.add_argument("out_dir", help="folder to write the student files into")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument("--solutions", default=None, metavar="FOLDER",
                   help="the reference solutions (default: lectures/assignments/solutions of the checkout)")
    p.set_defaults(func=cmd_make_student)


def cmd_bench(args) -> int:
    """Time the conv and pool ops at U-Net shapes and a U-Net training step against torch; see minimal_seg.bench."""
    import os

    from .bench import run

    run(backend_name=args.backend, quick=args.quick, repeats=args.repeats, warmup=args.warmup,
        batch=args.batch, size=args.size, base=args.base, use_torch=not args.no_torch,
        json_path=os.path.join(args.out, "bench.json"), png_path=os.path.join(args.out, "bench.png"),
        seed=args.seed, settle=args.settle)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg",
                                     description="Semantic segmentation from scratch in NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_training_commands(sub)
    p = sub.add_parser("gradcheck", help="float64 gradient check of every op, printed as a table")
    p.add_argument("--seed", type=int, default=0)
    _add_backend(p)
    p.set_defaults(func=cmd_gradcheck)
    _add_assignment_commands(sub)
    _add_bench_command(sub)
    return parser


def _thread_count(text):
    """argparse type of --threads: a whole number >= 1 (argparse names the flag in its error line)."""
    from .functional._threads import positive_count

    try:
        return positive_count(text, "threads")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_bench_command(sub):
    p = sub.add_parser("bench", help="time conv/pool ops and a U-Net training step against PyTorch and the "
                                     "bare GEMMs (JSON + PNG)")
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a smoke test)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per op (default 15, quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 3, quick 1)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=64, help="image height and width")
    p.add_argument("--base", type=int, default=16, help="channels of the first U-Net level")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    p.add_argument("--out", default=".", help="folder for bench.json and bench.png (default: here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=_thread_count, default=None,
                   help="BLAS/OpenMP threads for numpy and torch (default: all cores on an idle machine, 1 on "
                        "a busy one, or $MINIMAL_SEG_THREADS / $OPENBLAS_NUM_THREADS)")
    p.add_argument("--settle", type=float, default=0.15,
                   help="seconds between the NumPy and the torch timings, for BLAS/OpenMP threads to sleep")
    _add_backend(p)
    p.set_defaults(func=cmd_bench)


def _add_training_commands(sub):
    from .data import DATASETS
    from .models import MODELS

    p = sub.add_parser("train", help="train a model; with no options a tiny U-Net on Shapes (a few CPU minutes)")
    p.add_argument("--model", choices=sorted(MODELS), default="unet")
    p.add_argument("--data", choices=sorted(DATASETS), default="shapes")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--base-channels", type=int)
    p.add_argument("--loss", choices=["ce", "dice", "ce+dice"])
    p.add_argument("--optimizer", choices=["adam", "sgd"])
    p.add_argument("--crop-size", type=int, help="train on random crops of this size")
    p.add_argument("--out", help="output folder (default runs/MODEL-DATA)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_backend(p)
    p.set_defaults(func=cmd_train)

    from .compare import COMPARED

    p = sub.add_parser("compare", help="train every architecture with the same data and budget; one table")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(COMPARED))
    for name in ("epochs", "batch-size", "seed", "base-channels", "num-train", "num-val", "image-size"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_backend(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on held-out data")
    p.add_argument("checkpoint")
    p.add_argument("--data", choices=sorted(DATASETS))
    p.add_argument("--split")
    p.add_argument("--crf", action="store_true", help="also the mIoU after dense-CRF post-processing")
    _add_backend(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="segment an image file; saves the colour mask as PNG")
    p.add_argument("checkpoint")
    p.add_argument("image")
    p.add_argument("--out", help="output PNG (default IMAGE_mask.png)")
    _add_backend(p)
    p.set_defaults(func=cmd_predict)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .functional._threads import pick_threads

    pick_threads(getattr(args, "threads", None))  # BLAS threads: see minimal_seg.functional._threads
    if getattr(args, "backend", None):
        from .backend import BackendUnavailableError, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return args.func(args)
