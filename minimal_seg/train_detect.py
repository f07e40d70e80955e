"""Training the tiny YOLO on Instance Shapes: ``python -m minimal_seg train --task detect``.

One step, as in the segmentation loop (``train.py``), with YOLO's loss::

    pred = model(images)                                   # (N, B*5 + C, S, S)
    loss, cache = yolo_loss_forward(pred, targets)         # targets: encode_targets(...)
    model.zero_grad()
    model.backward(yolo_loss_backward(1.0, cache))
    optimizer.step(); schedule.step()

Every epoch ends with a validation pass: the held-out images are decoded
(score = confidence x class probability, per-class NMS) and scored with
COCO mAP (``metrics.mean_average_precision``); one line of metrics, a
checkpoint and ``metrics.csv`` / ``metrics.json`` follow. At the end:
``detections.png`` (held-out images, true boxes dashed, predicted solid)
and ``learning_curves.png``.

Shared with ``train.py``: the optimizer and schedule (``make_optimizer``),
the progress bar, the divergence check, the history files and the
checkpoint format; the batches come from ``data.batches`` (each image with
its index, which picks its target tensor). The target tensors are encoded
once on the host and sent to the backend once.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import numpy

from . import functional as F
from .backend import asarray, get_backend, set_backend, to_numpy
from .checkpoint import load_checkpoint, save_checkpoint
from .data import batches, get_dataset
from .metrics import mean_average_precision
from .models.yolo import YOLO, decode, encode_targets
from .train import CHECKPOINT, TrainingDiverged, _history_files, _progress, _stack, make_optimizer


@dataclass
class DetectConfig:
    """Everything that defines a detection run. The defaults reach mAP@0.5 >= 0.7 in about 6 CPU minutes."""

    data: str = "instance_shapes"
    epochs: int = 8
    batch_size: int = 32
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_steps: int = 10
    seed: int = 0
    backend: str = "numpy"
    out: str = "runs/yolo-instance_shapes"
    base_channels: int = 16
    depth: int = 3
    boxes_per_cell: int = 2
    num_train: int = 6000
    num_val: int = 200
    image_size: int = 64
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    score_threshold: float = 0.05
    log_every: int = 5

    def data_kwargs(self, split):
        n = self.num_train if split == "train" else self.num_val
        return {"num_images": n, "image_size": self.image_size, "seed": self.seed}


def build_detector(config: DetectConfig, in_channels: int, num_classes: int) -> YOLO:
    return YOLO(in_channels=in_channels, num_classes=num_classes, boxes_per_cell=config.boxes_per_cell,
                depth=config.depth, base_channels=config.base_channels, seed=config.seed)


def detect(model, images, batch_size=32, score_threshold=0.05, iou_threshold=0.5):
    """Boxes on host images (N, C, H, W): eval mode, batch by batch; one dict per image (see ``yolo.decode``)."""
    out = []
    with model.eval_mode():
        for start in range(0, len(images), batch_size):
            batch = asarray(numpy.ascontiguousarray(images[start:start + batch_size], dtype=numpy.float32))
            out += decode(model(batch), model.config["boxes_per_cell"], images.shape[2:],
                          score_threshold=score_threshold, iou_threshold=iou_threshold)
    return out


def evaluate_detector(model, dataset, batch_size=32, score_threshold=0.05) -> dict:
    """COCO mAP of the model's boxes on ``dataset`` (InstanceShapes): map, map_50, map_75, per class AP@[.5:.95]."""
    result = mean_average_precision(detect(model, dataset.images, batch_size, score_threshold), dataset.targets)
    per_class = {f"ap_{dataset.class_names[c]}": float(v) for c, v in zip(result["classes"], result["map_per_class"])}
    return {"map": result["map"], "map_50": result["map_50"], "map_75": result["map_75"], **per_class}


def train_detect(config: DetectConfig, resume=False, progress=True, log=print, stop_after=None) -> dict:
    """Train a YOLO on ``config.data``; returns {"history": [...], "model": model, "val_set": ..., "checkpoint": path}.

    ``resume`` continues from the checkpoint in ``config.out``; ``stop_after=e``
    stops after epoch e. Writes checkpoint.npz, metrics.csv, metrics.json,
    detections.png and learning_curves.png to ``config.out``.
    """
    if config.backend != get_backend():
        set_backend(config.backend)
    train_set = get_dataset(config.data, "train", **config.data_kwargs("train"))
    val_set = get_dataset(config.data, "val", **config.data_kwargs("val"))
    num_classes = train_set.num_classes - 1  # the background is not a detection class
    model = build_detector(config, train_set.images.shape[1], num_classes)
    grid = config.image_size // 2 ** config.depth
    targets = asarray(encode_targets(train_set.targets, num_classes, grid, config.image_size))
    index = numpy.arange(len(train_set))[:, None, None]  # batches() yields it as the "mask" of each image
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, config.epochs * steps_per_epoch)
    loss_options = {"num_boxes": config.boxes_per_cell, "lambda_coord": config.lambda_coord,
                    "lambda_noobj": config.lambda_noobj}
    os.makedirs(config.out, exist_ok=True)
    path = os.path.join(config.out, CHECKPOINT)

    history, start = [], 0
    if resume:
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optim"])
        schedule.load_state_dict(ckpt["sched"])
        history, start = ckpt["meta"]["history"], ckpt["meta"]["epoch"] + 1
        log(f"resumed from {path} after epoch {start}")

    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(start, last):
        t0 = time.perf_counter()
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", progress)
        losses = []
        for step, (images, which) in enumerate(batches((train_set.images, index), config.batch_size,
                                                       seed=config.seed, epoch=epoch)):
            pred = model(images)
            loss, cache = F.yolo_loss_forward(pred, targets[which[:, 0, 0]], **loss_options)
            model.zero_grad()
            model.backward(F.yolo_loss_backward(1.0, cache))
            optimizer.step()
            schedule.step()
            losses.append(loss)
            if bar is not None:
                bar.update(1)
                if (step + 1) % config.log_every == 0:
                    bar.set_postfix(loss=f"{float(loss):.4f}")
        if bar is not None:
            bar.close()
        epoch_losses = [float(v) for v in to_numpy(_stack(losses))]
        train_loss = sum(epoch_losses) / len(epoch_losses)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"the loss became {train_loss} in epoch {epoch + 1}; stopped. The last good "
                                   f"checkpoint (epoch {epoch}) is kept at {path}. Try a smaller --lr.")
        seconds = time.perf_counter() - t0
        metrics = evaluate_detector(model, val_set, config.batch_size, config.score_threshold)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "seconds": seconds, "lr": optimizer.lr,
                        **{f"val_{k}": v for k, v in metrics.items()}})
        log(f"epoch {epoch + 1}/{config.epochs}  loss {train_loss:.4f}  val mAP@0.5 {metrics['map_50']:.4f}  "
            f"mAP@[.5:.95] {metrics['map']:.4f}  ({seconds:.1f} s)")
        save_checkpoint(path, model, optimizer, schedule,
                        meta={"train_config": dataclasses.asdict(config), "task": "detect", "epoch": epoch,
                              "history": history, "class_names": list(train_set.class_names)})
        _history_files(config.out, history)
    if history:
        save_detection_figures(config.out, history, model, val_set, config.score_threshold)
    return {"history": history, "model": model, "val_set": val_set, "checkpoint": path}


def plot_detections(ax, image, target, detections, class_names, min_score=0.3):
    """One image with its true boxes (dashed, white) and the detections scoring >= ``min_score`` (solid)."""
    from .viz import draw_boxes, to_display

    ax.imshow(to_display(image), cmap="gray")
    draw_boxes(ax, target["boxes"], color="white", linewidth=1, linestyle="--")
    keep = detections["scores"] >= min_score
    names = [f"{class_names[c]} {s:.2f}" for c, s in zip(detections["labels"][keep], detections["scores"][keep])]
    draw_boxes(ax, detections["boxes"][keep], names, color="tab:orange", linewidth=1.5)
    ax.axis("off")
    return ax


def save_detection_figures(out, history, model, dataset, score_threshold=0.05, count=8):
    """detections.png (held-out images) and learning_curves.png (loss, mAP) in ``out``."""
    import matplotlib.pyplot as plt

    found = detect(model, dataset.images[:count], score_threshold=score_threshold)
    fig, axes = plt.subplots(2, count // 2, figsize=(2.6 * count // 2, 5.6))
    for ax, i in zip(axes.ravel(), range(count)):
        plot_detections(ax, dataset.images[i], dataset.targets[i], found[i], dataset.class_names)
    fig.suptitle("held-out images: true boxes dashed, detections (score >= 0.3) solid")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "detections.png"), dpi=100)
    plt.close(fig)
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [r["epoch"] for r in history]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="YOLO loss", title="training loss")
    for key, label in (("val_map_50", "mAP@0.5"), ("val_map", "mAP@[.5:.95]")):
        ax_map.plot(epochs, [r[key] for r in history], marker="o", label=label)
    ax_map.set(xlabel="epoch", ylim=(0, 1), title="held-out mAP")
    ax_map.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "learning_curves.png"), dpi=100)
    plt.close(fig)


def cmd_train_detect(args) -> int:
    """``python -m minimal_seg train --task detect``: DetectConfig's defaults, overridden by the given options."""
    import sys

    given = {k: getattr(args, k, None) for k in ("epochs", "batch_size", "lr", "seed", "base_channels", "optimizer")}
    unused = [f"--{k.replace('_', '-')}" for k in ("loss", "crop_size") if getattr(args, k, None) is not None]
    if unused or getattr(args, "data", "shapes") not in ("shapes", "instance_shapes"):
        print(f"error: --task detect trains YOLO on instance_shapes; it takes no {', '.join(unused) or '--data'} "
              f"(got --data {args.data})", file=sys.stderr)
        return 2
    config = DetectConfig(backend=args.backend or get_backend(), out=args.out or DetectConfig.out,
                          **{k: v for k, v in given.items() if v is not None})
    print("training YOLO " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items()))
    try:
        result = train_detect(config, resume=args.resume, progress=not args.no_progress)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    last = result["history"][-1]
    print(f"done: val mAP@0.5 {last['val_map_50']:.4f}, mAP@[.5:.95] {last['val_map']:.4f}; wrote checkpoint.npz, "
          f"metrics.csv, metrics.json, learning_curves.png, detections.png to {config.out}/")
    return 0
