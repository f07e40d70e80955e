"""The op catalogue behind ``python -m minimal_seg gradcheck``: complete, passing, and able to fail."""
import pytest

from minimal_seg import functional as F
from minimal_seg import op_catalogue
from minimal_seg.cli import main


def test_every_functional_op_has_an_entry():
    forwards = {name for name in dir(F) if name.endswith("_forward")}
    covered = {entry.forward.__name__.lstrip("_") for entry in op_catalogue.catalogue()}  # _concat_forward wraps
    assert forwards - covered == set()


def test_the_gradcheck_command_passes_every_entry(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "all passed" in out
    for label in ("roi_pool2d", "roi_align2d", "yolo_loss", "concat", "crop", "pad_to_multiple"):
        assert f"\n{label} " in out


def test_the_gradcheck_command_fails_a_wrong_backward(monkeypatch, capsys):
    entries = op_catalogue.catalogue()
    roi = next(e for e in entries if e.label == "roi_align2d")
    wrong = roi._replace(backward=lambda dout, cache: 0.5 * roi.backward(dout, cache))
    monkeypatch.setattr(op_catalogue, "catalogue", lambda: [wrong])
    assert main(["gradcheck"]) == 1
    assert "1 op(s) FAILED" in capsys.readouterr().out
