"""Tests for train_detect.py: a tiny YOLO run (loss goes down, files written, resume), the CLI dispatch."""
import json
import os

import numpy as np
import pytest

from minimal_seg.cli import main
from minimal_seg.train import ConfigError, TrainConfig, TrainingDiverged, train
from minimal_seg.train_detect import DetectConfig, detect, evaluate_detector, train_detect


def tiny(tmp_path, **kw):
    options = dict(num_train=48, num_val=8, image_size=32, depth=2, base_channels=4, batch_size=16, epochs=3,
                   lr=1e-2, out=str(tmp_path / "run"))
    options.update(kw)
    return DetectConfig(**options)


def test_tiny_run_learns_and_writes_its_files(tmp_path):
    config = tiny(tmp_path)
    result = train_detect(config, progress=False, log=lambda *_: None)
    losses = [r["train_loss"] for r in result["history"]]
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]
    for name in ("checkpoint.npz", "metrics.csv", "metrics.json", "detections.png", "learning_curves.png"):
        assert os.path.exists(os.path.join(config.out, name)), name
    with open(os.path.join(config.out, "metrics.json")) as f:
        row = json.load(f)[-1]
    assert 0 <= row["val_map_50"] <= 1 and {"val_map", "val_map_75", "val_ap_circle"} <= set(row)
    found = detect(result["model"], result["val_set"].images[:2])
    assert len(found) == 2 and found[0]["boxes"].shape[1] == 4
    assert evaluate_detector(result["model"], result["val_set"])["map_50"] == pytest.approx(row["val_map_50"])


def test_resume_continues_exactly(tmp_path):
    config = tiny(tmp_path, epochs=2, num_train=32)
    whole = train_detect(config, progress=False, log=lambda *_: None)["history"]
    config = tiny(tmp_path, epochs=2, num_train=32, out=str(tmp_path / "resumed"))
    train_detect(config, progress=False, log=lambda *_: None, stop_after=1)
    resumed = train_detect(config, resume=True, progress=False, log=lambda *_: None)["history"]
    np.testing.assert_allclose([r["train_loss"] for r in resumed], [r["train_loss"] for r in whole], rtol=1e-6)


def test_cli_task_detect_rejects_segmentation_options(capsys):
    assert main(["train", "--task", "detect", "--loss", "dice"]) == 2
    assert "--loss" in capsys.readouterr().err
    assert main(["train", "--task", "detect", "--data", "nuclei"]) == 2
    assert "instance_shapes" in capsys.readouterr().err


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", 0), ("lr", float("nan")), ("seed", -1),
                                          ("depth", 0), ("lambda_coord", -1.0), ("optimizer", "lion")])
def test_config_is_checked_before_any_data_is_built(tmp_path, field, value):
    with pytest.raises(ConfigError) as err:
        train_detect(tiny(tmp_path, **{field: value}), progress=False, log=lambda *_: None)
    assert err.value.field == field
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_checkpoint_of_another_task(tmp_path):
    out = str(tmp_path / "run")
    train(TrainConfig(epochs=1, num_train=8, num_val=4, image_size=32, base_channels=4, batch_size=8, out=out),
          progress=False, log=lambda *_: None)
    with pytest.raises(ConfigError, match="--task segment, not detect") as err:
        train_detect(tiny(tmp_path), resume=True, progress=False, log=lambda *_: None)
    assert err.value.field == "task"


def test_nan_in_the_first_epoch_names_no_checkpoint(tmp_path, monkeypatch):
    import minimal_seg.train_detect as module

    real_step = module.train_step
    monkeypatch.setattr(module, "train_step", lambda *args: real_step(*args) * np.float32("nan"))
    with pytest.raises(TrainingDiverged, match="in epoch 1; stopped. No checkpoint was written"):
        train_detect(tiny(tmp_path, epochs=1, num_train=16), progress=False, log=lambda *_: None)
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
