"""Kill training with SIGKILL while it writes checkpoints, 20 times: what is left always loads and resumes.

A child process trains a small U-Net on tiny Shapes images (one step per
epoch, so most of its time goes to writing the checkpoint). It prints each
epoch's line just before ``save_checkpoint``; the parent waits for its
second or third epoch line, sleeps a random fraction of one checkpoint
write and kills it. After every kill:

- the checkpoint (if one was ever written) loads, and is one of the epochs
  the child finished;
- the next child resumes from it (its first epoch is the one after it);
- the temporary files a killed write left behind are gone after the next
  child's first complete save.

At the end the history in the checkpoint, stitched together from 21 runs,
is bit-identical to one uninterrupted run.
"""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from minimal_seg.checkpoint import load_checkpoint, save_checkpoint
from minimal_seg.models import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KILLS = 20
OPTIONS = dict(model="unet", epochs=1000, batch_size=8, base_channels=16, num_train=8, num_val=8, image_size=16,
               model_options={"depth": 2}, log_every=1000)

CHILD = """
import os, sys
from minimal_seg.train import TrainConfig, train
out, stop_after = sys.argv[1], (int(sys.argv[2]) if len(sys.argv) > 2 else None)
config = TrainConfig(out=out, **{options!r})
resume = os.path.exists(os.path.join(out, "checkpoint.npz"))
train(config, resume=resume, progress=False, log=lambda line: print(line, flush=True), stop_after=stop_after)
"""

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")]


def temp_files(folder):
    return {name for name in os.listdir(folder) if name.startswith(".tmp-")}


def save_seconds(tmp_path):
    """How long one checkpoint write of this model takes here (the window the kills aim at)."""
    model = build_model("unet", in_channels=1, num_classes=4, base_channels=16, depth=2)
    start = time.perf_counter()
    for _ in range(3):
        save_checkpoint(tmp_path / "timing.npz", model)
    return (time.perf_counter() - start) / 3


# Every run is a child with one BLAS thread: runs with other thread counts may round differently.
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg",
       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run_to(out, stop_after):
    """Run a child (resuming if ``out`` holds a checkpoint) until epoch ``stop_after``; the step losses it saved."""
    subprocess.run([sys.executable, "-c", CHILD.format(options=OPTIONS), str(out), str(stop_after)], env=ENV,
                   check=True, capture_output=True, text=True)
    return [row["step_losses"] for row in load_checkpoint(out / "checkpoint.npz")["meta"]["history"]]


def run_and_kill(out, epochs_to_see, delay):
    """Start a child, wait for its ``epochs_to_see``-th epoch line, sleep ``delay``, SIGKILL it; all its lines."""
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(options=OPTIONS), str(out)], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while sum(line.startswith("epoch") for line in lines) < epochs_to_see:
            line = child.stdout.readline()
            assert line, f"the child stopped early: {child.stderr.read()}"
            lines.append(line)
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        lines += child.stdout.read().splitlines(keepends=True)  # epochs it finished while we slept
        child.stdout.close()
        child.stderr.close()
    return lines


def test_killed_writes_leave_a_loadable_checkpoint_and_resume_exactly(tmp_path):
    rng = random.Random(0)
    window = save_seconds(tmp_path)
    out = tmp_path / "run"
    done, stale, mid_write = 0, set(), 0  # epochs finished so far; temp files a killed write left
    for kill in range(KILLS):
        seen = rng.choice((2, 3))
        lines = run_and_kill(out, seen, rng.uniform(0, 3 * window))
        epochs = [int(line.split()[1].split("/")[0]) for line in lines if line.startswith("epoch")]
        assert epochs[0] == done + 1, f"kill {kill}: resumed at epoch {epochs[0]}, expected {done + 1}: {lines}"
        if done:
            assert lines[0].startswith(f"resumed from {out}"), lines[0]
        # the child finished at least one save (it printed a later epoch): older temp files are gone
        assert not stale & temp_files(out), f"kill {kill}: stale temp files survived a save: {stale}"
        ckpt = load_checkpoint(out / "checkpoint.npz")
        done = ckpt["meta"]["epoch"] + 1
        assert done in (epochs[-1] - 1, epochs[-1]), (done, epochs)  # the last write either landed or not
        assert len(ckpt["meta"]["history"]) == done
        stale = temp_files(out)
        mid_write += bool(stale)
    # the run, stitched from 21 processes, equals one uninterrupted run
    resumed = run_to(out, done + 1)
    assert not temp_files(out)
    (tmp_path / "straight").mkdir()
    assert resumed == run_to(tmp_path / "straight", done + 1)
    print(f"{KILLS} kills, {mid_write} of them mid-write (a temp file left), {done + 1} epochs in all")
