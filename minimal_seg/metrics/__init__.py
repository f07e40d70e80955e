"""Metrics of the course: segmentation (confusion matrix, IoU, Dice), boxes (box IoU, NMS), and mAP.

Read in this order:

- ``segmentation``: the confusion matrix and what is read from it (pixel
  accuracy, IoU, mIoU, Dice), IoU and Dice of binary masks, ``mask_iou``;
- ``boxes``: box conversions, ``box_iou`` and greedy ``nms`` (lecture 004);
- ``average_precision``: the precision-recall curve, AP and COCO mAP for
  boxes and masks (detection and instance segmentation, lecture 004).

Every public name is importable from ``minimal_seg.metrics`` directly.
"""
from .segmentation import (
    ConfusionMatrix,
    dice,
    dice_from_iou,
    iou,
    iou_from_dice,
    mask_iou,
)
from .boxes import box_area, box_iou, nms, xywh_to_xyxy, xyxy_to_xywh
from .average_precision import (
    COCO_IOU_THRESHOLDS,
    RECALL_LEVELS,
    average_precision,
    interpolated_precision,
    match_class,
    match_image,
    mean_average_precision,
    precision_recall,
    precision_recall_curve,
)
