"""``evaluate`` and ``predict``: a checkpoint on a dataset split, or on an image file."""
from __future__ import annotations

from .common import add_backend, add_im2col_budget, error, flag


def _class_names(ckpt, count):
    """The class names the checkpoint stores, or "0", "1", ... for an old checkpoint without them."""
    names = ckpt["meta"].get("class_names")
    if isinstance(names, list) and len(names) == count:
        return [str(n) for n in names]
    return [str(k) for k in range(count)]


class _ArgumentError(ValueError):
    """A command-line value that does not fit the checkpoint or the data (printed as one error line)."""


def evaluation_set(ckpt, data=None, split=None):
    """(data, split, dataset) a checkpoint is evaluated on: ``data``/``split``, else its data's held-out split.

    Raises ConfigError (field "split" or "data") for a split the dataset does not have, or for data
    whose class count or channels differ from those of the checkpoint's model.
    """
    from ..data import dataset_spec, get_dataset
    from ..train import ConfigError, TrainConfig

    saved = ckpt["meta"].get("train_config", {})
    config = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    data = data or config.data
    spec = dataset_spec(data)
    split = split or spec.val_split
    if split not in spec.splits:
        raise ConfigError("split", f"must be one of {', '.join(spec.splits)} for {data}, got {split!r}")
    dataset = get_dataset(data, split, **(config.data_kwargs(split) if data == config.data else {}))
    model = ckpt["meta"]["model_config"]
    k, c = model.get("num_classes"), model.get("in_channels")
    if (dataset.num_classes, dataset.images.shape[1]) != (k, c):
        raise ConfigError("data", f"{data} has {dataset.num_classes} classes and {dataset.images.shape[1]} "
                                  f"channel(s), but the checkpoint's model was trained on {config.data} "
                                  f"({k} classes, {c} channel(s))")
    return data, split, dataset


def cmd_evaluate(args) -> int:
    """Load a checkpoint, evaluate it on its dataset's held-out split (or --data/--split), print metrics."""
    from ..checkpoint import model_from_checkpoint
    from ..train import ConfigError, evaluate

    try:
        model, ckpt = model_from_checkpoint(args.checkpoint)
        data, split, dataset = evaluation_set(ckpt, args.data, args.split)
    except ConfigError as err:
        return error(f"{flag(err.field)} {err.problem}")
    except ValueError as err:
        return error(err)
    metrics = evaluate(model, dataset)
    names = _class_names(ckpt, dataset.num_classes)
    print(f"{args.checkpoint} on {data}/{split}:")
    for key, value in metrics.items():
        kind, _, index = key.rpartition("_")
        label = f"{kind}_{names[int(index)]}" if kind in ("iou", "dice") and index.isdigit() else key
        print(f"  {label:<20} {value:.4f}")
    if args.crf:
        _print_crf_effect(model, dataset)
    return 0


def _print_crf_effect(model, dataset):
    """mIoU and pixel accuracy before and after the dense CRF (default settings) on ``dataset``."""
    from ..classical import crf_refine_eval

    result = crf_refine_eval(model, dataset.images, dataset.masks, dataset.num_classes, method="fast")
    print("dense CRF (fast, 5 mean-field iterations, default kernels):")
    for name in ("miou", "pixel_accuracy"):
        print(f"  {name:<20} {result[name + '_before']:.4f} -> {result[name + '_after']:.4f}")


def mask_path(image_path, out=None) -> str:
    """Where ``predict`` writes the mask: ``--out``, else IMAGE_mask.png beside the image.

    The whole file name is kept (``d.v2/picture.jpg`` -> ``d.v2/picture.jpg_mask.png``),
    so the masks of picture.jpg and picture.png never overwrite each other.
    ``--out`` must end in .png; its folder is created if missing.
    """
    import os

    if out is None:
        return image_path + "_mask.png"
    if not out.lower().endswith(".png"):
        raise _ArgumentError(f"argument --out: the mask is saved as PNG, so --out must end in .png, got {out!r}")
    folder = os.path.dirname(out)
    if folder and os.path.exists(folder) and not os.path.isdir(folder):
        raise _ArgumentError(f"argument --out: {folder!r} is a file, not a folder")
    return out


def _read_picture(path):
    """The image file as a float64 (H, W) or (H, W, 3|4) array; _ArgumentError if it cannot be read."""
    import matplotlib.image
    import numpy

    try:
        picture = numpy.asarray(matplotlib.image.imread(path), dtype=numpy.float64)
    except Exception as err:  # any unreadable file gives one line, not a traceback
        raise _ArgumentError(f"cannot read image {path!r}: {type(err).__name__}: {err}") from None
    if picture.ndim not in (2, 3) or min(picture.shape[:2]) < 1 or not numpy.isfinite(picture).all():
        raise _ArgumentError(f"cannot read image {path!r}: not a finite (H, W) or (H, W, 3|4) picture, "
                             f"got shape {picture.shape}")
    return picture


def cmd_predict(args) -> int:
    """Segment one image file (PNG/JPEG) with a checkpoint and save the colour mask as PNG."""
    import os

    import matplotlib.image
    import numpy

    from ..checkpoint import model_from_checkpoint
    from ..data import DATASETS, dataset_spec
    from ..train import predict_image
    from ..viz import colorize

    try:
        out = mask_path(args.image, args.out)
        model, ckpt = model_from_checkpoint(args.checkpoint)
        picture = _read_picture(args.image)
    except ValueError as err:
        return error(err)
    data = ckpt["meta"].get("train_config", {}).get("data")
    spec = dataset_spec(data if data in DATASETS else "shapes")
    image = spec.image_from_picture(picture, model.config["in_channels"])
    try:
        mask, tiled = predict_image(model, image)
    except MemoryError as err:
        return error(f"out of memory ({err}); raise --im2col-budget or use a smaller image", code=1)
    try:
        os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
        matplotlib.image.imsave(out, colorize(mask))
    except OSError as err:
        return error(f"argument --out: cannot write {out!r}: {err.strerror or err}")
    counts = numpy.bincount(mask.ravel(), minlength=model.config["num_classes"])
    names = _class_names(ckpt, len(counts))
    how = f" (in {tiled} overlapping tiles: the image is too large for one pass)" if tiled > 1 else ""
    print(f"wrote {out}{how}: " + ", ".join(f"{n} {c / mask.size:.1%}" for n, c in zip(names, counts)))
    return 0


def add_inference_commands(sub):
    """The ``evaluate`` and ``predict`` subcommands."""
    from ..data import DATASETS

    p = sub.add_parser("evaluate", help="metrics of a checkpoint on held-out data")
    p.add_argument("checkpoint")
    p.add_argument("--data", choices=sorted(DATASETS))
    p.add_argument("--split")
    p.add_argument("--crf", action="store_true", help="also the mIoU after dense-CRF post-processing")
    add_backend(p)
    add_im2col_budget(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="segment an image file; saves the colour mask as PNG")
    p.add_argument("checkpoint")
    p.add_argument("image")
    p.add_argument("--out", help="output PNG (default IMAGE_mask.png beside the image, e.g. picture.jpg_mask.png)")
    add_backend(p)
    add_im2col_budget(p)
    p.set_defaults(func=cmd_predict)
