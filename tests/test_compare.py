"""``python -m minimal_seg compare``: every model trained with one budget, one table."""
from __future__ import annotations

import json

import pytest

from minimal_seg import cli
from minimal_seg.compare import COMPARED, compare, format_markdown
from minimal_seg.models import MODELS
from minimal_seg.train import TrainConfig

TINY = TrainConfig(epochs=2, num_train=16, num_val=8, image_size=32, batch_size=8, base_channels=4)


def test_compared_models_are_the_issue_list():
    assert set(COMPARED) == {"fcn32s", "fcn8s", "unet", "segnet", "linknet", "deeplab", "pspnet", "fpn"}
    assert set(COMPARED) <= set(MODELS)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    return compare(("unet", "segnet"), TINY, out=str(out), log=lambda *_: None), out


def test_one_row_per_model_with_the_shared_budget(result):
    res, out = result
    assert [r["model"] for r in res["rows"]] == ["unet", "segnet"]
    for row in res["rows"]:
        assert row["epochs"] == TINY.epochs and row["parameters"] > 0
        assert 0.0 <= row["val_miou"] <= 1.0 and row["seconds_per_epoch"] > 0
    # each model's run folder holds its own checkpoint, as `train` writes it
    assert (out / "unet" / "checkpoint.npz").exists() and (out / "segnet" / "checkpoint.npz").exists()
    assert res["config"]["epochs"] == TINY.epochs and "model" not in res["config"]


def test_rows_are_what_train_reports(result):
    res, out = result
    metrics = json.loads((out / "unet" / "metrics.json").read_text())
    assert res["rows"][0]["val_miou"] == pytest.approx(metrics[-1]["val_miou"])


def test_files_hold_the_table(result):
    res, out = result
    assert json.loads((out / "compare.json").read_text())["rows"] == res["rows"]
    md = (out / "compare.md").read_text()
    assert md.strip() == format_markdown(res)
    table = [line for line in md.splitlines() if line.startswith("| unet") or line.startswith("| segnet")]
    assert len(table) == 2 and f"{res['rows'][1]['val_miou']:.4f}" in table[1]


def test_unknown_model_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="segformer"):
        compare(("unet", "segformer"), TINY, out=str(tmp_path))
    assert not any(tmp_path.iterdir())


def test_cli_compare_prints_the_table(tmp_path, capsys):
    args = ["compare", "--models", "linknet", "--epochs", "1", "--num-train", "8", "--num-val", "4",
            "--image-size", "32", "--base-channels", "4", "--out", str(tmp_path), "--no-progress"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "s / epoch" in printed and "linknet" in printed
    assert json.loads((tmp_path / "compare.json").read_text())["config"]["num_train"] == 8
