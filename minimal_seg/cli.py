"""The command line: ``python -m minimal_seg COMMAND``.

    train       train a model (default: a tiny U-Net on the Shapes data, a few CPU minutes)
    evaluate    metrics of a checkpoint on a dataset split
    predict     colour mask of an image file from a checkpoint
    gradcheck   float64 gradient check of every op, as a table
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
    metrics = evaluate(model, get_dataset(data, split, **kwargs))
    print(f"{args.checkpoint} on {data}/{split}:")
    for key, value in metrics.items():
        print(f"  {key:<16} {value:.4f}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg",
                                     description="Semantic segmentation from scratch in NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_training_commands(sub)
    p = sub.add_parser("gradcheck", help="float64 gradient check of every op, printed as a table")
    p.add_argument("--seed", type=int, default=0)
    _add_backend(p)
    p.set_defaults(func=cmd_gradcheck)
    return parser


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

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on held-out data")
    p.add_argument("checkpoint")
    p.add_argument("--data", choices=sorted(DATASETS))
    p.add_argument("--split")
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
    if getattr(args, "backend", None):
        from .backend import BackendUnavailableError, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailableError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return args.func(args)
