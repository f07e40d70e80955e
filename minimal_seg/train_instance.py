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

import os

import numpy

from . import functional as F
from .backend import asarray, to_numpy
from .classical import instance_boundaries, instances_from_classes
from .classical.components import instance_masks
from .data import batches, default_augmentation, get_dataset, image_batches
from .data.loader import epoch_rng
from .data.instance_shapes import masks_to_boxes
from .data.nuclei import Nuclei
from .metrics import box_iou, mean_average_precision, nms
from .models import build_model
from .models.mask_rcnn_lite import MaskRCNNLite, mask_rcnn_loss_backward, mask_rcnn_loss_forward, mask_targets
from .train import TrainConfig, fit, make_loss, make_optimizer, run_task, train_step

INTERIOR, BOUNDARY = 1, 2
EVAL_PROPOSALS = 7  # seeds the held-out proposals together with the run's seed
ONE_STAGE_CLASSES = ("background", "interior", "boundary")

# The defaults of `train --task instance --data DATA` (options given on the command line override them).
INSTANCE_DEFAULTS = {
    "nuclei": {"model": "unet", "crop_size": 128, "repeat": 32, "augment": True, "batch_size": 8, "epochs": 12,
               "lr": 3e-3},
    "instance_shapes": {"model": "mask_rcnn_lite", "base_channels": 8, "num_train": 2000, "num_val": 100,
                        "epochs": 10, "batch_size": 8, "lr": 3e-3},
}


def three_class_targets(instances):
    """Instance labels (N, H, W) -> classes (N, H, W) int64: 0 background, 1 interior, 2 boundary.

    Boundary: instance pixels with a 4-neighbour of another label (another
    nucleus or the background), ``classical.instance_boundaries``.
    """
    instances = numpy.asarray(instances)
    classes = numpy.where(instances > 0, INTERIOR, 0).astype(numpy.int64)
    for n, labels in enumerate(instances):
        classes[n][instance_boundaries(labels)] = BOUNDARY
    return classes


# ----------------------------------------------------------------------------------------------
# One stage: background / interior / boundary, then components + watershed
# ----------------------------------------------------------------------------------------------

def train_one_stage(config: TrainConfig, log=print, progress=True, resume=False, stop_after=None) -> dict:
    """Train ``config.model`` on the nuclei train quadrants for 3 classes; evaluate on the test quadrant.

    Returns {"model", "history", "losses" (per epoch), "metrics", "predictions" (instance labels of the
    test tiles)} and writes checkpoint.npz, metrics.csv, metrics.json and instances.png to ``config.out``.
    The loop is ``train.fit`` (through ``train.run_task``); the mask AP is measured after the last epoch.
    """
    return run_task("instance", config, lambda ckpt: _train_one_stage(config, ckpt, log, progress, stop_after),
                    resume)


def _train_one_stage(config, ckpt, log, progress, stop_after):
    train_set, test_set = Nuclei("train"), Nuclei("test")
    model = build_model(config.model, in_channels=1, num_classes=len(ONE_STAGE_CLASSES),
                        base_channels=config.base_channels, seed=config.seed, **config.model_options)
    images = numpy.repeat(train_set.images, config.repeat, axis=0)
    targets = numpy.repeat(three_class_targets(train_set.instances), config.repeat, axis=0)
    steps = -(-len(images) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, config.epochs * steps)
    loss_fns = make_loss(config.loss)
    transform = default_augmentation() if config.augment else None
    found = {}

    def evaluate(epoch):
        found["predictions"], foreground = predict_one_stage(model, test_set.images)
        found["metrics"] = mask_ap(found["predictions"], test_set.instances, foreground)
        return scalars(found["metrics"])

    def epoch_batches(epoch):
        return batches((images, targets), config.batch_size, seed=config.seed, epoch=epoch, transform=transform,
                       crop_size=config.crop_size)

    history = fit(model, lambda batch: train_step(model, optimizer, schedule, loss_fns, *batch), epoch_batches,
                  steps, optimizer, schedule, config, task="instance", ckpt=ckpt,
                  evaluate=after_last_epoch(config, evaluate), summary=ap_summary, meta={"class_names":
                  list(ONE_STAGE_CLASSES)}, progress=progress, log=log, stop_after=stop_after)
    if "metrics" in found:
        predictions = found["predictions"]
        log(f"nuclei test quadrant: mask AP@0.5 {found['metrics']['map_50']:.3f}  AP@[.5:.95] "
            f"{found['metrics']['map']:.3f}  ({int(predictions.max(axis=(1, 2)).sum())} instances predicted, "
            f"{test_set.num_instances()} annotated)")
        draw_instances(test_set.images[:, 0], test_set.instances, predictions,
                       os.path.join(config.out, "instances.png"))
    return {"model": model, "history": history, "losses": [row["train_loss"] for row in history], **found}


def after_last_epoch(config, evaluate):
    """``evaluate`` for ``train.fit`` that measures only after the last epoch (the AP costs a full prediction)."""
    return lambda epoch: evaluate(epoch) if epoch + 1 == config.epochs else {}


def scalars(metrics):
    """The scalar entries of ``mean_average_precision``'s dict, as floats (for the history and metrics files)."""
    return {k: float(v) for k, v in metrics.items() if numpy.ndim(v) == 0}


def ap_summary(metrics):
    """The mask AP in an epoch's log line."""
    return f"mask AP@0.5 {metrics['map_50']:.3f}  AP@[.5:.95] {metrics['map']:.3f}"


def class_probabilities(model, images, batch_size=4):
    """Softmax of the model's logits for whole host images (N, C, H, W) -> host (N, K, H, W) float32."""
    out = []
    with model.eval_mode():
        for batch in image_batches(images, batch_size):
            out.append(to_numpy(F.softmax_forward(model(batch), axis=1)[0]))
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
    boxes = masks_to_boxes(masks)
    scores = (numpy.ones(len(masks)) if foreground is None
              else numpy.array([foreground[m].mean() for m in masks], dtype=numpy.float64))
    return {"masks": masks, "boxes": boxes, "labels": numpy.ones(len(masks), numpy.int64), "scores": scores}


def mask_ap(pred_labels, true_labels, foreground=None) -> dict:
    """COCO mask AP of predicted against annotated instance labels, both (N, H, W), one class.

    ``foreground`` (N, H, W): the per-pixel confidence that scores each predicted
    instance (its mean over the mask); without it every instance scores 1 and
    the AP rewards only the instances' masks, not their ranking.
    """
    preds = [instance_records(p, None if foreground is None else foreground[n]) for n, p in enumerate(pred_labels)]
    targets = [instance_records(t) for t in true_labels]
    for t in targets:
        del t["scores"]
    return mean_average_precision(preds, targets, iou_type="segm")


# ----------------------------------------------------------------------------------------------
# Two stages: proposals -> RoIAlign -> class and mask heads (Mask R-CNN-lite) on instance Shapes
# ----------------------------------------------------------------------------------------------

def sample_proposals(target, rng, image_size, jitters=2, negatives=4, jitter=0.15):
    """Proposals of one image and what each should learn (the stand-in for a detector's first stage).

    Positives: every annotated box, ``jitters`` times, its centre moved by
    N(0, (jitter * size)^2) and its width and height scaled by exp(N(0, jitter^2)),
    kept only while its IoU with the box is >= 0.5. Negatives: random boxes of
    object size whose IoU with every annotated box is < 0.3 (class 0).
    Returns boxes (K, 4) float64 xyxy, labels (K,) int64, matched (K,) index of
    the annotated object each positive copies its mask from (0 for negatives).
    """
    h, w = image_size
    gt = numpy.asarray(target["boxes"], dtype=numpy.float64)
    boxes, labels, matched = [], [], []
    for m, box in enumerate(gt):
        size, centre = box[2:] - box[:2], (box[2:] + box[:2]) / 2
        for _ in range(jitters):
            c = centre + rng.normal(0, jitter, 2) * size
            half = size * numpy.exp(rng.normal(0, jitter, 2)) / 2
            candidate = numpy.clip(numpy.concatenate([c - half, c + half]), 0, [w, h, w, h])
            if box_iou(candidate[None], box[None])[0, 0] >= 0.5:
                boxes.append(candidate), labels.append(target["labels"][m]), matched.append(m)
    sizes = gt[:, 2:] - gt[:, :2] if len(gt) else numpy.array([[8.0, 8.0]])
    for _ in range(negatives):
        wh = sizes[rng.integers(len(sizes))] * rng.uniform(0.7, 1.3, 2)
        corner = rng.uniform(0, 1, 2) * numpy.maximum([w, h] - wh, 0)
        candidate = numpy.concatenate([corner, corner + wh])
        if not len(gt) or box_iou(candidate[None], gt).max() < 0.3:
            boxes.append(candidate), labels.append(0), matched.append(0)
    return numpy.array(boxes).reshape(-1, 4), numpy.array(labels, dtype=numpy.int64), numpy.array(matched, int)


def proposal_batch(dataset, index, rng, **sampling):
    """Images, rois (K, 5), labels (K,) and mask targets' source masks (K, H, W) of the images ``index``."""
    rois, labels, masks = [], [], []
    for b, i in enumerate(index):
        target = dataset.target(int(i))
        boxes, lab, matched = sample_proposals(target, rng, dataset.images.shape[2:], **sampling)
        rois.append(numpy.concatenate([numpy.full((len(boxes), 1), b), boxes], axis=1))
        labels.append(lab)
        masks.append(target["masks"][matched] if len(target["masks"]) else
                     numpy.zeros((len(boxes),) + dataset.images.shape[2:], bool))
    return (dataset.images[index], numpy.concatenate(rois), numpy.concatenate(labels), numpy.concatenate(masks))


def two_stage_step(model, optimizer, schedule, images, rois, labels, gt_masks):
    """One step of Mask R-CNN-lite: L = L_cls + L_mask, backward by hand, optimiser and schedule."""
    dtype = numpy.float32
    rois = asarray(rois.astype(dtype))
    class_logits, mask_logits = model(asarray(images.astype(dtype)), rois)
    targets = mask_targets(asarray(gt_masks.astype(dtype)), rois, mask_logits.shape[-1])
    loss, cache = mask_rcnn_loss_forward(class_logits, mask_logits, asarray(labels), targets)
    model.zero_grad()
    model.backward(*mask_rcnn_loss_backward(1.0, cache))
    optimizer.step()
    schedule.step()
    return loss


def paste_mask(probabilities, box, image_size):
    """A mask head's M x M probabilities -> a (H, W) bool mask: bilinear resize into the box, > 0.5."""
    h, w = image_size
    x1, y1 = (int(numpy.floor(v)) for v in box[:2])
    x2, y2 = (int(numpy.ceil(v)) for v in box[2:])
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(max(x2, x1 + 1), w), min(max(y2, y1 + 1), h)
    out = numpy.zeros((h, w), dtype=bool)
    if x2 > x1 and y2 > y1:
        resized, _ = F.upsample_bilinear_forward(probabilities[None, None], size=(y2 - y1, x2 - x1))
        out[y1:y2, x1:x2] = resized[0, 0] > 0.5
    return out


def predict_two_stage(model, images, proposals, nms_threshold=0.5):
    """Detections of host images (N, C, H, W) given proposals: a list of (K_i, 4) boxes per image.

    Each proposal gets its most likely object class c (score p_c; background
    is never output) and the class-c mask pasted into its box; duplicates of
    one object are removed by NMS per class. Returns one dict per image:
    boxes, scores, labels, masks (the format of ``mean_average_precision``).
    """
    results = []
    with model.eval_mode():
        for i, boxes in enumerate(proposals):
            rois = numpy.concatenate([numpy.zeros((len(boxes), 1)), boxes], axis=1).astype(numpy.float32)
            class_logits, mask_logits = model(asarray(images[i:i + 1].astype(numpy.float32)), asarray(rois))
            probs = to_numpy(F.softmax_forward(class_logits, axis=1)[0])
            masks = to_numpy(F.sigmoid_forward(mask_logits)[0])
            labels = probs[:, 1:].argmax(axis=1) + 1
            scores = probs[numpy.arange(len(labels)), labels]
            keep = []
            for c in numpy.unique(labels):  # NMS within each class
                same = numpy.flatnonzero(labels == c)
                keep.extend(same[nms(boxes[same], scores[same], nms_threshold)])
            keep = numpy.array(sorted(keep), dtype=numpy.int64)
            pasted = numpy.zeros((len(keep),) + images.shape[2:], dtype=bool)
            for j, k in enumerate(keep):
                pasted[j] = paste_mask(masks[k, labels[k] - 1], boxes[k], images.shape[2:])
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep], "masks": pasted})
    return results


def train_two_stage(config: TrainConfig, log=print, progress=True, resume=False, stop_after=None) -> dict:
    """Train Mask R-CNN-lite on instance Shapes; mask and box AP on held-out images (after the last epoch).

    Proposals are the annotated boxes jittered plus random background boxes
    (``sample_proposals``), in training and at evaluation: the numbers measure
    the second stage (RoIAlign, classification, mask) given proposals of IoU >= 0.5,
    not a detector's recall. The loop is ``train.fit`` (through ``train.run_task``).
    """
    return run_task("instance", config, lambda ckpt: _train_two_stage(config, ckpt, log, progress, stop_after),
                    resume, models=("mask_rcnn_lite",))


def _train_two_stage(config, ckpt, log, progress, stop_after):
    train_set = get_dataset("instance_shapes", "train", **config.data_kwargs("train"))
    val_set = get_dataset("instance_shapes", "val", **config.data_kwargs("val"))
    model = MaskRCNNLite(in_channels=train_set.images.shape[1], num_classes=train_set.num_classes - 1,
                         base_channels=config.base_channels, seed=config.seed, **config.model_options)
    steps = -(-len(train_set) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, config.epochs * steps)
    found = {}

    def epoch_batches(epoch):
        rng = epoch_rng(config.seed, epoch)
        order = rng.permutation(len(train_set))
        for start in range(0, len(order), config.batch_size):
            yield proposal_batch(train_set, order[start:start + config.batch_size], rng)

    def evaluate(epoch):
        found["metrics"], found["predictions"] = evaluate_two_stage(model, val_set,
                                                                    jittered_proposals(val_set, config.seed))
        return scalars(found["metrics"])

    history = fit(model, lambda batch: two_stage_step(model, optimizer, schedule, *batch), epoch_batches, steps,
                  optimizer, schedule, config, task="instance", ckpt=ckpt, evaluate=after_last_epoch(config, evaluate),
                  summary=ap_summary, meta={"class_names": list(train_set.class_names)}, progress=progress, log=log,
                  stop_after=stop_after)
    if "metrics" in found:
        metrics, predictions = found["metrics"], found["predictions"]
        log(f"instance Shapes, {len(val_set)} held-out images: mask AP@0.5 {metrics['map_50']:.3f}  "
            f"AP@[.5:.95] {metrics['map']:.3f}  (box AP@0.5 {metrics['box_map_50']:.3f})")
        draw_instances(val_set.images[:4, 0], val_set.instance_ids[:4], [as_label_map(p) for p in predictions[:4]],
                       os.path.join(config.out, "instances.png"))
    return {"model": model, "history": history, "losses": [row["train_loss"] for row in history], **found}


def jittered_proposals(dataset, seed):
    """One fixed draw of held-out proposals: each annotated box jittered once, plus background boxes."""
    rng = numpy.random.default_rng([seed, EVAL_PROPOSALS])
    return [sample_proposals(dataset.target(i), rng, dataset.images.shape[2:], jitters=1)[0]
            for i in range(len(dataset))]


def detector_proposals(checkpoint, images, score_threshold=0.05):
    """Proposals from a detector trained by ``train --task detect`` (YOLO): its boxes on each image, any class."""
    from .checkpoint import model_from_checkpoint
    from .models.yolo import YOLO
    from .train_detect import detect

    detector, _ = model_from_checkpoint(checkpoint, build=YOLO)
    return [d["boxes"].astype(numpy.float64) for d in detect(detector, images, score_threshold=score_threshold)]


def evaluate_two_stage(model, dataset, proposals):
    """Mask AP (and box AP, as box_map / box_map_50) of Mask R-CNN-lite on ``dataset`` given the proposals."""
    predictions = predict_two_stage(model, dataset.images, proposals)
    metrics = mean_average_precision(predictions, dataset.targets, iou_type="segm")
    boxes = mean_average_precision(predictions, dataset.targets, iou_type="bbox")
    metrics.update({"box_map": boxes["map"], "box_map_50": boxes["map_50"]})
    return metrics, predictions


def two_stage_from_checkpoint(path):
    """The Mask R-CNN-lite of a ``train --task instance --data instance_shapes`` run, and its held-out set."""
    from .checkpoint import model_from_checkpoint

    model, ckpt = model_from_checkpoint(path, build=MaskRCNNLite)
    config = TrainConfig(**ckpt["meta"]["train_config"])
    return model, get_dataset("instance_shapes", "val", **config.data_kwargs("val"))


def as_label_map(prediction, min_score=0.5):
    """Masks of one image's detections -> (H, W) instance labels, best score drawn last (on top)."""
    masks, scores = prediction["masks"], prediction["scores"]
    labels = numpy.zeros(masks.shape[1:], dtype=numpy.int64)
    for rank, k in enumerate(numpy.argsort(scores)):
        if scores[k] >= min_score:
            labels[masks[k]] = rank + 1
    return labels


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


# The trainer of each dataset of `train --task instance --data DATA`.
TRAINERS = {"nuclei": train_one_stage, "instance_shapes": train_two_stage}
