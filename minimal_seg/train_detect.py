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

The epoch loop is ``train.fit``, with its guarantees (the config checked up
front, the divergence check, atomic checkpoints, a resume that refuses another
run's checkpoint, the caller's backend restored); the step is
``train.train_step`` with YOLO's loss. This module supplies the rest: the
data (each image with its index, which picks its target tensor; the target
tensors are encoded once on the host and sent to the backend once), the
model, the evaluation and the figures.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import numpy

from . import functional as F
from .backend import asarray
from .data import batches, get_dataset, image_batches
from .metrics import mean_average_precision
from .models.yolo import YOLO, decode, encode_targets
from .train import (CHECKPOINT, ConfigError, RunConfig, fit, int_at_least, make_optimizer, number_above, run_task,
                    train_step)


@dataclass
class DetectConfig(RunConfig):
    """Everything that defines a detection run. The defaults reach mAP@0.5 >= 0.7 in about 6 CPU minutes."""

    data: str = "instance_shapes"
    # RunConfig's defaults that detection changes
    epochs: int = 8
    batch_size: int = 32
    out: str = "runs/yolo-instance_shapes"
    num_train: int = 6000
    num_val: int = 200
    # YOLO: the backbone's depth (grid S = image_size / 2**depth), B boxes per cell, the loss weights
    depth: int = 3
    boxes_per_cell: int = 2
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5
    score_threshold: float = 0.05
    rules: ClassVar[dict] = {**RunConfig.rules, "depth": int_at_least(1), "boxes_per_cell": int_at_least(1),
                             **{name: number_above(0, strict=False) for name in ("lambda_coord", "lambda_noobj",
                                                                                 "score_threshold")}}
    resume_keys: ClassVar[tuple] = ("data", "depth", "boxes_per_cell") + RunConfig.resume_keys

    def validate(self):
        """Raise ConfigError naming the first field that cannot train (``train.RunConfig.validate``)."""
        super().validate(data=("instance_shapes",))
        if self.image_size < 2 ** self.depth:
            raise ConfigError("image_size", f"must be at least 2**depth = {2 ** self.depth} (one grid cell), "
                                            f"got {self.image_size}")
        return self


def build_detector(config: DetectConfig, in_channels: int, num_classes: int) -> YOLO:
    return YOLO(in_channels=in_channels, num_classes=num_classes, boxes_per_cell=config.boxes_per_cell,
                depth=config.depth, base_channels=config.base_channels, seed=config.seed)


def detect(model, images, batch_size=32, score_threshold=0.05, iou_threshold=0.5):
    """Boxes on host images (N, C, H, W): eval mode, batch by batch; one dict per image (see ``yolo.decode``)."""
    out = []
    with model.eval_mode():
        for batch in image_batches(images, batch_size):
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

    The loop and its guarantees are ``train.fit``'s (through ``train.run_task``): the config
    checked up front, ``resume`` from the checkpoint in ``config.out`` only if it is a
    detection run of this config, ``stop_after=e`` stops after epoch e, the caller's backend
    restored. Writes checkpoint.npz, metrics.csv, metrics.json, detections.png and
    learning_curves.png to ``config.out``.
    """
    return run_task("detect", config, lambda ckpt: _train_detect(config, ckpt, progress, log, stop_after), resume)


def _train_detect(config, ckpt, progress, log, stop_after):
    train_set = get_dataset(config.data, "train", **config.data_kwargs("train"))
    val_set = get_dataset(config.data, "val", **config.data_kwargs("val"))
    num_classes = train_set.num_classes - 1  # the background is not a detection class
    model = build_detector(config, train_set.images.shape[1], num_classes)
    grid = config.image_size // 2 ** config.depth
    targets = asarray(encode_targets(train_set.targets, num_classes, grid, config.image_size))
    index = numpy.arange(len(train_set))[:, None, None]  # batches() yields it as the "mask" of each image
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, config.epochs * steps_per_epoch)
    loss_fns = (partial(F.yolo_loss_forward, num_boxes=config.boxes_per_cell, lambda_coord=config.lambda_coord,
                        lambda_noobj=config.lambda_noobj), F.yolo_loss_backward)

    def step(batch):
        images, which = batch
        return train_step(model, optimizer, schedule, loss_fns, images, targets[which[:, 0, 0]])

    history = fit(model, step, lambda epoch: batches((train_set.images, index), config.batch_size,
                                                     seed=config.seed, epoch=epoch),
                  steps_per_epoch, optimizer, schedule, config, task="detect", ckpt=ckpt,
                  evaluate=lambda epoch: evaluate_detector(model, val_set, config.batch_size, config.score_threshold),
                  summary=lambda m: f"val mAP@0.5 {m['map_50']:.4f}  mAP@[.5:.95] {m['map']:.4f}",
                  meta={"class_names": list(train_set.class_names)}, progress=progress, log=log,
                  stop_after=stop_after)
    if history:
        save_detection_figures(config.out, history, model, val_set, config.score_threshold)
    return {"history": history, "model": model, "val_set": val_set,
            "checkpoint": os.path.join(config.out, CHECKPOINT)}


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

    from .viz import plot_history

    found = detect(model, dataset.images[:count], score_threshold=score_threshold)
    fig, axes = plt.subplots(2, count // 2, figsize=(2.6 * count // 2, 5.6))
    for ax, i in zip(axes.ravel(), range(count)):
        plot_detections(ax, dataset.images[i], dataset.targets[i], found[i], dataset.class_names)
    fig.suptitle("held-out images: true boxes dashed, detections (score >= 0.3) solid")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "detections.png"), dpi=100)
    plt.close(fig)
    plot_history(history, os.path.join(out, "learning_curves.png"), loss_label="YOLO loss",
                 metrics=(("val_map_50", "mAP@0.5"), ("val_map", "mAP@[.5:.95]")), metrics_title="held-out mAP")
