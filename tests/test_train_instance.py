"""The instance-segmentation training: targets, proposals, pasting, AP of label maps, short runs of
both tasks end to end (files written, metrics in range), the command line, and a fixed batch that the
two-stage model must overfit."""
import json
import os

import numpy as np
import pytest

from minimal_seg.cli import main
from minimal_seg.metrics import box_iou
from minimal_seg.train import TrainConfig
from minimal_seg.train_instance import (
    INSTANCE_DEFAULTS,
    as_label_map,
    detector_proposals,
    evaluate_two_stage,
    instance_colours,
    jittered_proposals,
    mask_ap,
    paste_mask,
    proposal_batch,
    sample_proposals,
    three_class_targets,
    train_one_stage,
    train_two_stage,
    two_stage_from_checkpoint,
    two_stage_step,
)


def test_three_class_targets_mark_boundaries_between_touching_instances():
    instances = np.zeros((1, 5, 8), int)
    instances[0, 1:4, 1:4] = 3
    instances[0, 1:4, 4:7] = 5
    classes = three_class_targets(instances)[0]
    assert classes.dtype == np.int64 and set(np.unique(classes)) == {0, 1, 2}
    assert np.flatnonzero(classes.ravel() == 1).tolist() == [2 * 8 + 2, 2 * 8 + 5]  # one interior pixel each
    assert (classes[instances[0] == 0] == 0).all()


def test_mask_ap_of_perfect_empty_and_halved_predictions():
    truth = np.zeros((1, 20, 20), int)
    truth[0, 2:8, 2:8], truth[0, 2:8, 8:14], truth[0, 2:8, 14:20] = 1, 2, 3  # three touching squares
    assert mask_ap(truth, truth)["map"] == pytest.approx(1.0)
    assert mask_ap(np.zeros_like(truth), truth)["map"] == 0.0
    merged = (truth > 0).astype(int)  # one blob for three objects: IoU 1/3 with each, all missed
    assert mask_ap(merged, truth)["map_50"] == 0.0


def test_sample_proposals_positives_overlap_their_object_negatives_do_not():
    target = {"boxes": np.array([[5.0, 5, 20, 25], [30, 30, 50, 45]]), "labels": np.array([2, 3]),
              "masks": np.zeros((2, 64, 64), bool)}
    boxes, labels, matched = sample_proposals(target, np.random.default_rng(0), (64, 64), jitters=5, negatives=10)
    iou = box_iou(boxes, target["boxes"])
    positive = labels > 0
    assert positive.sum() >= 6 and (~positive).sum() >= 5
    assert (iou[positive, matched[positive]] >= 0.5).all()
    assert (labels[positive] == target["labels"][matched[positive]]).all()
    assert (iou[~positive].max(axis=1) < 0.3).all()
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 64).all()


def test_paste_mask_fills_the_box_and_nothing_else():
    mask = paste_mask(np.ones((14, 14)), np.array([3.0, 4.0, 10.0, 9.0]), (12, 16))
    expected = np.zeros((12, 16), bool)
    expected[4:9, 3:10] = True
    np.testing.assert_array_equal(mask, expected)
    left = np.zeros((14, 14))
    left[:, :7] = 1.0
    assert paste_mask(left, np.array([0.0, 0.0, 8.0, 8.0]), (8, 8))[:, :4].all()
    assert not paste_mask(left, np.array([0.0, 0.0, 8.0, 8.0]), (8, 8))[:, 5:].any()


def test_label_map_draws_confident_masks_best_on_top_and_colours_are_fixed():
    masks = np.zeros((3, 4, 4), bool)
    masks[0, :2], masks[1, 1:3], masks[2, 3] = True, True, True
    labels = as_label_map({"masks": masks, "scores": np.array([0.9, 0.6, 0.2])})
    assert labels[1].tolist() == [3, 3, 3, 3] and labels[2].tolist() == [2, 2, 2, 2] and not labels[3].any()
    colours = instance_colours(labels)
    assert colours.shape == (4, 4, 3) and (colours[3] == 0).all() and not np.allclose(colours[1], colours[2])


def test_two_stage_model_overfits_one_batch():
    """A do-nothing backward (or a wrong sign) cannot bring the loss of a fixed batch down by half."""
    from minimal_seg.data import get_dataset
    from minimal_seg.models.mask_rcnn_lite import MaskRCNNLite
    from minimal_seg.optim import CosineSchedule
    from minimal_seg.train import make_optimizer

    data = get_dataset("instance_shapes", "train", num_images=4, image_size=32, seed=0)
    model = MaskRCNNLite(num_classes=3, base_channels=4, depth=2, roi_size=5, seed=0)
    config = TrainConfig(lr=1e-2, warmup_steps=0)
    optimizer, _ = make_optimizer(config, model, 40)
    schedule = CosineSchedule(optimizer, 40, min_lr=1e-2)
    batch = proposal_batch(data, np.arange(4), np.random.default_rng(0))
    losses = [float(two_stage_step(model, optimizer, schedule, *batch)) for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_one_stage_run_end_to_end(tmp_path):
    config = TrainConfig(data="nuclei", model="unet", epochs=1, repeat=1, crop_size=64, batch_size=3,
                         base_channels=4, out=str(tmp_path))
    result = train_one_stage(config, log=lambda line: None, progress=False)
    assert 0.0 <= result["metrics"]["map"] <= result["metrics"]["map_50"] <= 1.0
    assert result["predictions"].shape == (1, 256, 256)
    assert {"checkpoint.npz", "metrics.csv", "metrics.json", "instances.png"} <= set(os.listdir(tmp_path))
    rows = json.load(open(tmp_path / "metrics.json"))  # one row per epoch; the AP after the last
    assert len(rows) == 1 and rows[0]["val_map"] == pytest.approx(result["metrics"]["map"])


def test_two_stage_run_end_to_end(tmp_path):
    config = TrainConfig(data="instance_shapes", model="mask_rcnn_lite", epochs=1, num_train=8, num_val=4,
                         image_size=32, batch_size=4, base_channels=4, out=str(tmp_path))
    result = train_two_stage(config, log=lambda line: None, progress=False)
    assert 0.0 <= result["metrics"]["map"] <= result["metrics"]["map_50"] <= 1.0
    assert len(result["predictions"]) == 4 and "box_map_50" in result["metrics"]
    assert {"checkpoint.npz", "metrics.json", "instances.png"} <= set(os.listdir(tmp_path))
    model, val_set = two_stage_from_checkpoint(tmp_path / "checkpoint.npz")  # the same model and held-out set
    metrics, _ = evaluate_two_stage(model, val_set, jittered_proposals(val_set, config.seed))
    assert metrics["map"] == pytest.approx(result["metrics"]["map"])


def test_detector_proposals_come_from_a_saved_yolo(tmp_path):
    from minimal_seg.checkpoint import save_checkpoint
    from minimal_seg.models.yolo import YOLO

    detector = YOLO(in_channels=1, num_classes=3, base_channels=4)
    save_checkpoint(tmp_path / "yolo.npz", detector)
    images = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    proposals = detector_proposals(tmp_path / "yolo.npz", images, score_threshold=0.0)
    assert len(proposals) == 2 and all(p.ndim == 2 and p.shape[1] == 4 for p in proposals)
    assert sum(len(p) for p in proposals) > 0


def test_command_line_rejects_other_data_and_models(tmp_path, capsys):
    assert main(["train", "--task", "instance", "--data", "shapes", "--no-progress"]) == 2
    assert "--data nuclei" in capsys.readouterr().err
    assert main(["train", "--task", "instance", "--data", "nuclei", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "--task", "instance", "--data", "instance_shapes", "--model", "fpn"]) == 2
    assert "mask_rcnn_lite" in capsys.readouterr().err
    assert set(INSTANCE_DEFAULTS) == {"nuclei", "instance_shapes"}


def test_command_line_trains_the_one_stage_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "instance", "--data", "nuclei", "--model", "fpn", "--epochs", "1",
                 "--base-channels", "2", "--crop-size", "32", "--batch-size", "96", "--out", str(out),
                 "--no-progress"]) == 0
    assert "mask AP@0.5" in capsys.readouterr().out and (out / "instances.png").exists()


def test_two_stage_nan_stops_and_resume_is_exact(tmp_path, monkeypatch):
    """The shared loop's guarantees: a resumed run gives the losses of a whole one; a NaN names the kept epoch."""
    import minimal_seg.train_instance as module
    from minimal_seg.train import TrainingDiverged

    def config(out):
        return TrainConfig(data="instance_shapes", model="mask_rcnn_lite", epochs=2, num_train=8, num_val=4,
                           image_size=32, batch_size=4, base_channels=4, out=str(tmp_path / out))

    quiet = {"log": lambda line: None, "progress": False}
    whole = train_two_stage(config("whole"), **quiet)
    train_two_stage(config("resumed"), stop_after=1, **quiet)
    resumed = train_two_stage(config("resumed"), resume=True, **quiet)
    assert [r["step_losses"] for r in resumed["history"]] == [r["step_losses"] for r in whole["history"]]
    assert resumed["metrics"]["map"] == whole["metrics"]["map"]
    train_two_stage(config("nan"), stop_after=1, **quiet)
    real_step = module.two_stage_step
    monkeypatch.setattr(module, "two_stage_step", lambda *args: real_step(*args) * np.float32("nan"))
    with pytest.raises(TrainingDiverged, match="in epoch 2; stopped. The last good checkpoint .after epoch 1"):
        train_two_stage(config("nan"), resume=True, **quiet)
