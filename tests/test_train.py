"""Training loop, checkpoints and the command line: resume exactly, fail clearly, keep what is good."""
import json
import os

import numpy as np
import pytest

from minimal_seg import cli
from minimal_seg.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from minimal_seg.models import build_model
from minimal_seg.train import TrainConfig, TrainingDiverged, train


def tiny_config(out, **kw):
    options = dict(model="unet", data="shapes", epochs=2, batch_size=8, lr=3e-3, base_channels=4,
                   num_train=24, num_val=8, image_size=32, out=str(out), model_options={"depth": 2})
    options.update(kw)
    return TrainConfig(**options)


def test_resume_continues_exactly(tmp_path):
    straight = train(tiny_config(tmp_path / "a", epochs=3), progress=False, log=lambda *_: None)
    first = train(tiny_config(tmp_path / "b", epochs=3), progress=False, log=lambda *_: None, stop_after=1)
    assert len(first["history"]) == 1
    resumed = train(tiny_config(tmp_path / "b", epochs=3), resume=True, progress=False, log=lambda *_: None)
    a = [row["step_losses"] for row in straight["history"]]
    b = [row["step_losses"] for row in resumed["history"]]
    assert a == b  # bit for bit
    assert a[0] != a[2]


def test_outputs_written(tmp_path):
    result = train(tiny_config(tmp_path, epochs=1), progress=False, log=lambda *_: None)
    for name in ("checkpoint.npz", "metrics.csv", "metrics.json", "learning_curves.png", "predictions.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert rows[0]["epoch"] == 1 and 0 <= rows[0]["val_miou"] <= 1
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]  # no temporary file left behind
    # the checkpoint loads without pickle and rebuilds the same model
    model, ckpt = model_from_checkpoint(tmp_path / "checkpoint.npz")
    for name, value in result["model"].state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)
    assert ckpt["meta"]["epoch"] == 0 and "optim" in ckpt and ckpt["optim"]


def test_model_from_checkpoint_builds_a_model_outside_the_table(tmp_path):
    from minimal_seg.checkpoint import CheckpointError
    from minimal_seg.models.mask_rcnn_lite import MaskRCNNLite
    from minimal_seg.models.yolo import YOLO

    detector = YOLO(in_channels=1, num_classes=3, base_channels=4, seed=1)
    save_checkpoint(tmp_path / "yolo.npz", detector)
    model, _ = model_from_checkpoint(tmp_path / "yolo.npz", build=YOLO)
    assert isinstance(model, YOLO)
    for name, value in detector.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)
    with pytest.raises(CheckpointError, match="does not match the model it names"):
        model_from_checkpoint(tmp_path / "yolo.npz", build=MaskRCNNLite)


def test_training_learns(tmp_path):
    """A few epochs on small Shapes images beat the all-background guess (mIoU ~0.16) by far."""
    config = tiny_config(tmp_path, epochs=4, num_train=64, base_channels=8, lr=5e-3)
    history = train(config, progress=False, log=lambda *_: None)["history"]
    assert history[-1]["train_loss"] < 0.6 * history[0]["step_losses"][0]
    assert history[-1]["val_miou"] > 0.3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    import minimal_seg.train as train_module

    train(tiny_config(tmp_path, epochs=2), progress=False, log=lambda *_: None, stop_after=1)
    good = load_checkpoint(tmp_path / "checkpoint.npz")
    real_step = train_module.train_step

    def poisoned(*args):
        return real_step(*args) * np.float32("nan")

    monkeypatch.setattr(train_module, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match="the loss became nan in epoch 2.*last good checkpoint"):
        train(tiny_config(tmp_path, epochs=2), resume=True, progress=False, log=lambda *_: None)
    kept = load_checkpoint(tmp_path / "checkpoint.npz")
    assert kept["meta"]["epoch"] == 0
    for name in good["model"]:
        np.testing.assert_array_equal(kept["model"][name], good["model"][name])


def test_checkpoint_from_another_model_names_the_parameter(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", build_model("unet", in_channels=1, num_classes=4, base_channels=4))
    other = build_model("unet", in_channels=1, num_classes=4, base_channels=8)
    with pytest.raises(ValueError, match=r"parameter 'enc0.0.0.w' has shape \(8, 1, 3, 3\).*\(4, 1, 3, 3\)"):
        other.load_state_dict(load_checkpoint(path)["model"])
    fcn = build_model("fcn8s", in_channels=1, num_classes=4)
    with pytest.raises(ValueError, match="missing.*unexpected"):
        fcn.load_state_dict(load_checkpoint(path)["model"])


def test_resume_with_another_config_is_refused(tmp_path):
    train(tiny_config(tmp_path, epochs=1), progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="cannot resume.*base_channels: checkpoint 4 vs now 8"):
        train(tiny_config(tmp_path, epochs=2, base_channels=8), resume=True, progress=False)


def test_checkpoint_needs_no_pickle(tmp_path):
    path = save_checkpoint(tmp_path / "c.npz", build_model("fcn32s", in_channels=1, num_classes=2, base_channels=2))
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.npz")


# ---- the command line -------------------------------------------------------------

def test_cli_unknown_model_lists_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "segformer"])
    err = capsys.readouterr().err
    assert "invalid choice: 'segformer'" in err and "unet" in err and "fcn8s" in err


def test_cli_unknown_data_lists_valid_ones(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--data", "cityscapes"])
    assert "choose from" in capsys.readouterr().err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(tiny_config(out, epochs=1), progress=False, log=lambda *_: None)
    return out / "checkpoint.npz"


def test_cli_evaluate(trained, capsys):
    assert cli.main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "miou" in out and "pixel_accuracy" in out


def test_cli_predict_writes_a_colour_mask(trained, tmp_path, capsys):
    import matplotlib.image

    from minimal_seg.data import Shapes

    image = Shapes(1, 32, seed=3).images[0, 0]
    matplotlib.image.imsave(tmp_path / "in.png", image, cmap="gray")
    assert cli.main(["predict", str(trained), str(tmp_path / "in.png"), "--out", str(tmp_path / "m.png")]) == 0
    mask = matplotlib.image.imread(tmp_path / "m.png")
    assert mask.shape[:2] == (32, 32)
    assert "wrote" in capsys.readouterr().out


def test_cli_predict_unreadable_image_is_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    assert cli.main(["predict", str(trained), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read image") and "\n" not in err and "Traceback" not in err


def test_cli_bad_checkpoint_is_one_line(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nope.npz")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: checkpoint")


def test_cli_evaluate_with_crf_prints_before_and_after(trained, capsys):
    assert cli.main(["evaluate", str(trained), "--crf"]) == 0
    out = capsys.readouterr().out
    crf = out[out.index("dense CRF"):]
    before, after = (float(v) for v in crf.split("miou")[1].split("\n")[0].split("->"))
    assert 0 <= before <= 1 and 0 <= after <= 1
    assert f"{before:.4f}" in out.split("dense CRF")[0]  # "before" is the plain evaluation's mIoU


# ---- bad input and faults ----------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
    ("base_channels", -3, "base_channels must be an integer >= 1, got -3"),
    ("epochs", 0, "epochs must be an integer >= 1"),
    ("seed", -1, "seed must be an integer >= 0"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
    ("epochs", 2.5, "epochs must be an integer"),
    ("epochs", True, "epochs must be an integer"),
    ("optimizer", "adagrad", "optimizer must be one of adam, sgd"),
    ("data", "cityscapes", "data must be one of instance_shapes, mnist, nuclei, shapes"),
    ("crop_size", 0, "crop_size must be an integer >= 1"),
])
def test_config_is_checked_up_front_naming_the_field(tmp_path, field, value, message):
    from minimal_seg.train import ConfigError

    with pytest.raises(ConfigError, match=message) as info:
        train(tiny_config(tmp_path / "run", **{field: value}), progress=False, log=lambda *_: None)
    assert info.value.field == field
    assert not (tmp_path / "run").exists()  # nothing was built or written


def test_resume_with_another_optimizer_is_refused(tmp_path):
    train(tiny_config(tmp_path, epochs=1), progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="optimizer: checkpoint 'adam' vs now 'sgd'"):
        train(tiny_config(tmp_path, epochs=2, optimizer="sgd"), resume=True, progress=False)


def test_nan_in_the_first_epoch_names_no_checkpoint(tmp_path, monkeypatch):
    import minimal_seg.train as train_module

    real_step = train_module.train_step
    monkeypatch.setattr(train_module, "train_step", lambda *args: real_step(*args) * np.float32("nan"))
    with pytest.raises(TrainingDiverged, match="in epoch 1; stopped. No checkpoint was written") as info:
        train(tiny_config(tmp_path, epochs=2), progress=False, log=lambda *_: None)
    assert "checkpoint.npz" not in str(info.value)
    assert not (tmp_path / "checkpoint.npz").exists()


def test_checkpoint_mode_follows_the_umask(tmp_path):
    model = build_model("fcn32s", in_channels=1, num_classes=2, base_channels=2)
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "c.npz", model)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_stale_temp_files_go_at_the_next_save(tmp_path):
    model = build_model("fcn32s", in_channels=1, num_classes=2, base_channels=2)
    stale = tmp_path / ".tmp-c.npz-killed.npz"
    stale.write_bytes(b"half a write")
    other = tmp_path / ".tmp-other.npz-x.npz"  # another checkpoint's temp file is not ours to delete
    other.write_bytes(b"")
    save_checkpoint(tmp_path / "c.npz", model)
    assert not stale.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-other.npz-x.npz", "c.npz"]


@pytest.mark.parametrize("content, message", [
    (b"", "an empty file"),
    (b"hello\n", "not a complete .npz"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a complete .npz"),
])
def test_foreign_files_are_one_line_without_a_pickle_hint(tmp_path, content, message):
    from minimal_seg.checkpoint import CheckpointError

    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as info:
        load_checkpoint(bad)
    assert "pickle" not in str(info.value) and "\n" not in str(info.value)


def test_truncated_and_pickled_checkpoints(tmp_path):
    from minimal_seg.checkpoint import CheckpointError

    path = save_checkpoint(tmp_path / "c.npz", build_model("fcn32s", in_channels=1, num_classes=2, base_channels=2))
    data = open(path, "rb").read()
    (tmp_path / "half.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="half.npz is not a readable .npz checkpoint"):
        load_checkpoint(tmp_path / "half.npz")
    np.savez(tmp_path / "obj.npz", meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="pickled.*not loaded") as info:
        load_checkpoint(tmp_path / "obj.npz")
    assert "allow_pickle" not in str(info.value)


class PerPixelModel:
    """A stand-in model whose class map depends on each pixel alone, and that runs out of memory on big inputs."""

    def __init__(self, max_pixels):
        self.max_pixels, self.calls = max_pixels, 0

    def eval_mode(self):
        import contextlib

        return contextlib.nullcontext()

    def __call__(self, x):
        self.calls += 1
        if x.shape[2] * x.shape[3] > self.max_pixels:
            raise MemoryError("im2col needs more than the budget")
        return np.concatenate([x, -x], axis=1)  # class 0 where x > 0


def test_predict_image_tiles_what_does_not_fit():
    from minimal_seg.train import predict_image

    image = np.random.default_rng(0).standard_normal((1, 300, 257)).astype(np.float32)
    whole, passes = predict_image(PerPixelModel(10**6), image)
    assert passes == 1
    tiled, passes = predict_image(PerPixelModel(100 * 100), image, tile=100, margin=10)
    assert passes == 4 * 4  # steps of 80 pixels: 300 -> 4 rows, 257 -> 4 columns
    np.testing.assert_array_equal(tiled, whole)
    np.testing.assert_array_equal(whole, (image[0] < 0).astype(np.int64))
    with pytest.raises(MemoryError):
        predict_image(PerPixelModel(10), image[:, :50, :50], tile=100, margin=10)
    # an image over max_pixels is tiled without a whole-image attempt (which would fail here)
    model = PerPixelModel(100 * 100)
    tiled, passes = predict_image(model, image, tile=100, margin=10, max_pixels=100 * 100)
    assert passes == model.calls == 16
    np.testing.assert_array_equal(tiled, whole)


def test_cli_predict_names_the_mask_after_the_whole_file_name(trained, tmp_path, capsys):
    import matplotlib.image

    from minimal_seg.data import Shapes

    image = Shapes(1, 32, seed=3).images[0, 0]
    folder = tmp_path / "d.v2"
    folder.mkdir()
    matplotlib.image.imsave(folder / "picture.png", image, cmap="gray")
    matplotlib.image.imsave(folder / "picture.jpg", np.stack([image] * 3, axis=-1).clip(-1, 1) / 2 + 0.5)
    (folder / "picture").write_bytes((folder / "picture.png").read_bytes())
    for name in ("picture", "picture.png", "picture.jpg"):
        assert cli.main(["predict", str(trained), str(folder / name)]) == 0
    assert sorted(p.name for p in folder.iterdir() if "mask" in p.name) == [
        "picture.jpg_mask.png", "picture.png_mask.png", "picture_mask.png"]
    assert "background" in capsys.readouterr().out  # the class names the checkpoint stores
    out = tmp_path / "new" / "folder" / "m.png"
    assert cli.main(["predict", str(trained), str(folder / "picture.png"), "--out", str(out)]) == 0
    assert out.stat().st_size > 0


def test_cli_evaluate_prints_class_names(trained, capsys):
    assert cli.main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "iou_circle" in out and "dice_triangle" in out and "iou_0" not in out


def test_plot_history_draws_the_metrics_it_is_given():
    """The segmentation default (mIoU, pixel accuracy) and the detector's mAP curves, one line each."""
    import matplotlib.pyplot as plt

    from minimal_seg.viz import plot_history

    history = [{"epoch": e, "train_loss": 1.0 / e, "val_miou": 0.1 * e, "val_pixel_accuracy": 0.2 * e,
                "val_map": 0.05 * e, "val_map_50": 0.1 * e} for e in (1, 2, 3)]
    fig = plot_history(history)
    labels = [line.get_label() for line in fig.axes[1].get_lines()]
    assert labels == ["mIoU", "pixel accuracy"]
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(), [0.1, 0.2, 0.3])
    plt.close(fig)
    fig = plot_history(history, metrics=(("val_map_50", "mAP@0.5"), ("val_map", "mAP")), loss_label="YOLO loss")
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["mAP@0.5", "mAP"]
    assert fig.axes[0].get_ylabel() == "YOLO loss"
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [1.0, 0.5, 1 / 3])  # per epoch: no step losses
    plt.close(fig)
