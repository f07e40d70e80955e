"""Instance segmentation: train and evaluate the one-stage and the two-stage model.

    python -m minimal_seg train --task instance --data nuclei            # one stage, the real image
    python -m minimal_seg train --task instance --data instance_shapes   # two stages, Mask R-CNN-lite

**One stage** (nuclei). A semantic network (U-Net or FPN) learns three
classes per pixel, background / interior / boundary, with the segmentation
training step of ``train.py`` (softmax cross-entropy, the same optimiser and
schedule); the targets come from the instance labels
(``three_class_targets``). Instances are the connected components of the
predicted interior, grown by a watershed into the predicted foreground
(``classical.instances_from_classes``).

**Two stages** (instance Shapes): proposals -> RoIAlign -> a mask head
(``models.mask_rcnn_lite``); see ``train_two_stage``.

Both are scored with COCO mask AP (``metrics.mean_average_precision``,
iou_type="segm") and draw their predictions with one colour per instance.
"""
from __future__ import annotations

import dataclasses
import os

import numpy

from . import functional as F
from .backend import asarray, get_backend, set_backend, to_numpy
from .checkpoint import save_checkpoint
from .classical import instance_boundaries, instances_from_classes
from .classical.components import instance_masks
from .data import batches, default_augmentation
from .data.nuclei import Nuclei
from .models import build_model
from .train import TrainConfig, _progress, _stack, make_loss, make_optimizer, train_step

INTERIOR, BOUNDARY = 1, 2
ONE_STAGE_CLASSES = ("background", "interior", "boundary")

# The defaults of `train --task instance --data DATA` (options given on the command line override them).
INSTANCE_DEFAULTS = {
    "nuclei": {"model": "unet", "crop_size": 128, "repeat": 32, "augment": True, "batch_size": 8, "epochs": 12,
               "lr": 3e-3},
}


def three_class_targets(instances):
    """Instance labels (N, H, W) -> classes (N, H, W) int64: 0 background, 1 interior, 2 boundary.

    Boundary: instance pixels with a 4-neighbour of another label (another
    nucleus or the background), ``classical.instance_boundaries``.
    """
    instances = numpy.asarray(instances)
    classes = (instances > 0).astype(numpy.int64)
    for n, labels in enumerate(instances):
        classes[n][instance_boundaries(labels)] = BOUNDARY
    return classes


def run_epochs(config, num_samples, make_batches, step, log=print, progress=True):
    """The epoch loop both instance tasks share: ``step(batch)`` on every batch of every epoch.

    ``make_batches(epoch)`` yields the batches of an epoch; ``step`` returns the
    loss (a 0-d device array). Returns the mean loss of each epoch.
    """
    steps = -(-num_samples // config.batch_size)
    means = []
    for epoch in range(config.epochs):
        bar = _progress(steps, f"epoch {epoch + 1}/{config.epochs}", progress)
        losses = []
        for batch in make_batches(epoch):
            losses.append(step(batch))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        means.append(float(to_numpy(_stack(losses)).mean()))
        log(f"epoch {epoch + 1}/{config.epochs}  loss {means[-1]:.4f}")
    return means


def _use_backend(config):
    if config.backend != get_backend():
        set_backend(config.backend)


# ----------------------------------------------------------------------------------------------
# One stage: background / interior / boundary, then components + watershed
# ----------------------------------------------------------------------------------------------

def train_one_stage(config: TrainConfig, log=print, progress=True) -> dict:
    """Train ``config.model`` on the nuclei train quadrants for 3 classes; evaluate on the test quadrant.

    Returns {"model", "losses", "metrics", "predictions" (instance labels of the test tiles)}
    and writes checkpoint.npz, metrics.json and instances.png to ``config.out``.
    """
    _use_backend(config)
    train_set, test_set = Nuclei("train"), Nuclei("test")
    model = build_model(config.model, in_channels=1, num_classes=len(ONE_STAGE_CLASSES),
                        base_channels=config.base_channels, seed=config.seed, **config.model_options)
    images = numpy.repeat(train_set.images, config.repeat, axis=0)
    targets = numpy.repeat(three_class_targets(train_set.instances), config.repeat, axis=0)
    total = config.epochs * -(-len(images) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, total)
    loss_fns = make_loss(config.loss)
    transform = default_augmentation() if config.augment else None

    def make_batches(epoch):
        return batches((images, targets), config.batch_size, seed=config.seed, epoch=epoch, transform=transform,
                       crop_size=config.crop_size)

    losses = run_epochs(config, len(images), make_batches,
                        lambda batch: train_step(model, optimizer, schedule, loss_fns, *batch), log, progress)
    predictions, foreground = predict_one_stage(model, test_set.images)
    metrics = mask_ap(predictions, test_set.instances, foreground)
    log(f"nuclei test quadrant: mask AP@0.5 {metrics['map_50']:.3f}  AP@[.5:.95] {metrics['map']:.3f}  "
        f"({int(predictions.max(axis=(1, 2)).sum())} instances predicted, {test_set.num_instances()} annotated)")
    _save_run(config, model, optimizer, schedule, losses, metrics)
    draw_instances(test_set.images[:, 0], test_set.instances, predictions,
                   os.path.join(config.out, "instances.png"))
    return {"model": model, "losses": losses, "metrics": metrics, "predictions": predictions}


def class_probabilities(model, images, batch_size=4):
    """Softmax of the model's logits for whole host images (N, C, H, W) -> host (N, K, H, W) float32."""
    out = []
    with model.eval_mode():
        for start in range(0, len(images), batch_size):
            logits = model(asarray(numpy.ascontiguousarray(images[start:start + batch_size], dtype=numpy.float32)))
            out.append(to_numpy(F.softmax_forward(logits, axis=1)[0]))
    return numpy.concatenate(out)


def predict_one_stage(model, images, **recipe):
    """Instances of host images (N, C, H, W): softmax, then ``classical.instances_from_classes``.

    Returns instance labels (N, H, W) and the foreground probability 1 - p(background) (N, H, W),
    which scores each instance (``mask_ap``).
    """
    probabilities = class_probabilities(model, images)
    labels = numpy.stack([instances_from_classes(p, **recipe) for p in probabilities])
    return labels, 1.0 - probabilities[:, 0]


def instance_records(labels, foreground=None):
    """Instance labels (H, W) -> the dict ``mean_average_precision`` reads: masks, boxes, labels (all class 1),
    and scores: the mean foreground probability over each mask (``foreground`` (H, W)), or 1."""
    masks, _ = instance_masks(labels)
    boxes = numpy.zeros((len(masks), 4))
    for k, mask in enumerate(masks):
        ys, xs = numpy.nonzero(mask)
        boxes[k] = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    scores = (numpy.ones(len(masks)) if foreground is None
              else numpy.array([foreground[m].mean() for m in masks], dtype=numpy.float64))
    return {"masks": masks, "boxes": boxes, "labels": numpy.ones(len(masks), numpy.int64), "scores": scores}


def mask_ap(pred_labels, true_labels, foreground=None) -> dict:
    """COCO mask AP of predicted against annotated instance labels, both (N, H, W), one class.

    ``foreground`` (N, H, W): the per-pixel confidence that scores each predicted
    instance (its mean over the mask); without it every instance scores 1 and
    the AP rewards only the instances' masks, not their ranking.
    """
    from .metrics import mean_average_precision

    preds = [instance_records(p, None if foreground is None else foreground[n]) for n, p in enumerate(pred_labels)]
    targets = [instance_records(t) for t in true_labels]
    for t in targets:
        del t["scores"]
    return mean_average_precision(preds, targets, iou_type="segm")


def _save_run(config, model, optimizer, schedule, losses, metrics):
    import json

    os.makedirs(config.out, exist_ok=True)
    scalars = {k: float(v) for k, v in metrics.items() if numpy.ndim(v) == 0}
    save_checkpoint(os.path.join(config.out, "checkpoint.npz"), model, optimizer, schedule,
                    meta={"train_config": dataclasses.asdict(config), "losses": losses, "metrics": scalars})
    with open(os.path.join(config.out, "metrics.json"), "w") as f:
        json.dump({"losses": losses, **scalars}, f, indent=1)


# ----------------------------------------------------------------------------------------------
# Drawing: one colour per instance
# ----------------------------------------------------------------------------------------------

def instance_colours(labels, seed=0):
    """(H, W) instance labels -> (H, W, 3) RGB in [0, 1]: black background, a random colour per id."""
    labels = numpy.asarray(labels)
    palette = numpy.random.default_rng(seed).uniform(0.25, 1.0, (int(labels.max(initial=0)) + 1, 3))
    palette[0] = 0.0
    return palette[labels]


def draw_instances(images, truth, pred, path=None, titles=("image", "annotated instances", "predicted instances")):
    """One row per image: the image, the annotated and the predicted instances (one colour each)."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for row, (image, t, p) in enumerate(zip(images, truth, pred)):
        axes[row, 0].imshow(image, cmap="gray")
        axes[row, 0].set_title(titles[0])
        for ax, labels, title in zip(axes[row, 1:], (t, p), titles[1:]):
            ax.imshow(instance_colours(labels))
            ax.set_title(f"{title} ({numpy.unique(labels[labels > 0]).size})")
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
