"""``train`` (--task segment | detect | instance) and ``compare``: build the task's config from the flags,
then ``common.run_training`` checks it up front and turns every expected failure into one error line."""
from __future__ import annotations

import dataclasses

from .common import add_backend, add_im2col_budget, add_tf32, current_backend, error, flag, run_training

# Config fields that each command takes as flags ("task": a checkpoint of another task cannot be resumed).
TRAIN_FLAGS = ("epochs", "batch_size", "lr", "seed", "base_channels", "loss", "crop_size", "optimizer")
DETECT_FLAGS = ("epochs", "batch_size", "lr", "seed", "base_channels", "optimizer")
COMPARE_FLAGS = ("epochs", "batch_size", "lr", "seed", "base_channels", "num_train", "num_val", "image_size")


def _given(args, names) -> dict:
    """The options among ``names`` given on the command line."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _run_task(args, config, trainer, what, done, **validate) -> int:
    """Check ``config`` (``run_training``), print it, train with ``trainer``, print ``done(last history row)``."""
    flags = {"segment": TRAIN_FLAGS, "detect": DETECT_FLAGS, "instance": TRAIN_FLAGS + ("model",)}[args.task]

    def run():
        print(f"training {what}: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items()
                                               if v not in ({}, None)))
        last = trainer(config, resume=args.resume, progress=not args.no_progress)["history"][-1]
        print(f"done: {done(last)}; wrote checkpoint.npz, metrics.csv, metrics.json and the figures to {config.out}/")
        return 0

    return run_training(config, run, flags + ("out", "task"), **validate)


def cmd_train(args) -> int:
    """Train with the defaults of ``TrainConfig`` and the dataset, overridden by the given options."""
    from ..data import dataset_spec
    from ..train import TrainConfig, train

    if args.task != "segment":
        return TASKS[args.task](args)
    options = {**dataset_spec(args.data).train_defaults, **_given(args, TRAIN_FLAGS)}
    config = TrainConfig(model=args.model, data=args.data, backend=args.backend or current_backend(),
                         out=args.out or f"runs/{args.model}-{args.data}", **options)
    return _run_task(args, config, train, f"{args.model} on {args.data}",
                     lambda last: f"val mIoU {last['val_miou']:.4f}")


def cmd_train_detect(args) -> int:
    """``train --task detect``: DetectConfig's defaults, overridden by the given options."""
    from ..train_detect import DetectConfig, train_detect

    unused = [flag(k) for k in ("loss", "crop_size") if getattr(args, k, None) is not None]
    if unused or args.data not in ("shapes", "instance_shapes"):
        return error(f"--task detect trains YOLO on instance_shapes; it takes no {', '.join(unused) or '--data'} "
                     f"(got --data {args.data})")
    config = DetectConfig(backend=args.backend or current_backend(), out=args.out or DetectConfig.out,
                          **_given(args, DETECT_FLAGS))
    return _run_task(args, config, train_detect, "YOLO on instance_shapes",
                     lambda last: f"val mAP@0.5 {last['val_map_50']:.4f}, mAP@[.5:.95] {last['val_map']:.4f}")


def cmd_train_instance(args) -> int:
    """``train --task instance``: the dataset's defaults (``INSTANCE_DEFAULTS``) overridden by the options given."""
    from ..train import TrainConfig
    from ..train_instance import INSTANCE_DEFAULTS, TRAINERS

    if args.data not in TRAINERS:
        return error(f"--task instance trains on --data nuclei (one stage) or instance_shapes (two stages); "
                     f"got --data {args.data}")
    options = {**INSTANCE_DEFAULTS[args.data], **_given(args, TRAIN_FLAGS)}
    if args.data == "nuclei":
        options["model"] = args.model
    elif args.model != "unet":  # the parser's default: the two-stage model is always Mask R-CNN-lite
        return error(f"--data instance_shapes trains mask_rcnn_lite; --model {args.model} does not apply")
    config = TrainConfig(data=args.data, backend=args.backend or current_backend(),
                         out=args.out or f"runs/{options['model']}-{args.data}", **options)
    models = {} if args.data == "nuclei" else {"models": ("mask_rcnn_lite",)}
    return _run_task(args, config, TRAINERS[args.data], f"{config.model} for instances on {args.data}",
                     lambda last: f"mask AP@0.5 {last['val_map_50']:.3f}, AP@[.5:.95] {last['val_map']:.3f}",
                     **models)


TASKS = {"detect": cmd_train_detect, "instance": cmd_train_instance}


def cmd_compare(args) -> int:
    """Train each model with the same TrainConfig (the `train` defaults, overridden) and print the table."""
    from ..compare import compare, format_table
    from ..train import TrainConfig

    config = dataclasses.replace(TrainConfig(backend=args.backend or current_backend()),
                                 **_given(args, COMPARE_FLAGS))

    def run():
        result = compare(args.models, config, out=args.out, progress=not args.no_progress)
        print(format_table(result["rows"]))
        print(f"wrote compare.json and compare.md to {args.out}/")
        return 0

    return run_training(config, run, COMPARE_FLAGS)


def add_training_commands(sub):
    """The ``train`` and ``compare`` subcommands."""
    from ..compare import COMPARED
    from ..data import DATASETS
    from ..models import MODELS

    p = sub.add_parser("train", help="train a model; with no options a tiny U-Net on Shapes (a few CPU minutes)")
    p.add_argument("--task", choices=["segment", "detect", "instance"], default="segment",
                   help="segment (default); detect: a tiny YOLO on instance_shapes (--model is not used); "
                        "instance: --data nuclei (one stage) or instance_shapes (two stages, Mask R-CNN-lite)")
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
    add_backend(p)
    add_tf32(p)
    add_im2col_budget(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="train every architecture with the same data and budget; one table")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(COMPARED))
    for name in ("epochs", "batch-size", "seed", "base-channels", "num-train", "num-val", "image-size"):
        p.add_argument(f"--{name}", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_backend(p)
    p.set_defaults(func=cmd_compare)
