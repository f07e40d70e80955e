"""Bad input through the real command line: exit code 2 (or 1), ONE ``error:`` line naming it, no traceback.

Every probe runs ``python -m minimal_seg ...`` as a subprocess of this
checkout (``sys.executable``, ``PYTHONPATH`` set to it), as a user would.
The probes start together (a few at a time) in a module fixture, so the
file costs about as long as the slowest few of them. Each probe fails
before any training or evaluation starts, so every data size stays tiny.
"""
import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from minimal_seg import backend
from minimal_seg.checkpoint import save_checkpoint
from minimal_seg.models import build_model
from minimal_seg.train import TrainConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (argv with {tmp} for the probe folder, expected exit code, what the error line must name)
PROBES = {
    # train: every option checked before any data is built
    "batch size 0": (["train", "--batch-size", "0"], 2, "--batch-size"),
    "base channels 0": (["train", "--base-channels", "0"], 2, "--base-channels"),
    "base channels -3": (["train", "--base-channels", "-3"], 2, "--base-channels"),
    "epochs 0": (["train", "--epochs", "0"], 2, "--epochs"),
    "epochs -1": (["train", "--epochs", "-1"], 2, "--epochs"),
    "seed -1": (["train", "--seed", "-1"], 2, "--seed"),
    "lr nan": (["train", "--lr", "nan"], 2, "--lr"),
    "lr 0": (["train", "--lr", "0"], 2, "--lr"),
    "lr inf": (["train", "--lr", "inf"], 2, "--lr"),
    "lr not a number": (["train", "--lr", "fast"], 2, "--lr"),
    "crop size 0": (["train", "--crop-size", "0"], 2, "--crop-size"),
    "epochs not an int": (["train", "--epochs", "2.5"], 2, "--epochs"),
    "unknown model": (["train", "--model", "segformer"], 2, "--model"),
    "out is a file": (["train", "--out", "{tmp}/picture.png"], 2, "--out"),
    "resume, another optimizer": (["train", "--out", "{tmp}/run", "--resume", "--optimizer", "sgd"], 2,
                                  "--optimizer"),
    "resume, damaged checkpoint": (["train", "--out", "{tmp}/damaged", "--resume"], 2, "checkpoint.npz"),
    "resume, weights only": (["train", "--out", "{tmp}/weights", "--resume"], 2, "resume"),
    "im2col budget": (["train", "--im2col-budget", "lots"], 2, "--im2col-budget"),
    "unknown loss": (["train", "--loss", "focal"], 2, "--loss"),
    "unknown data": (["train", "--data", "cityscapes"], 2, "--data"),
    "unknown backend": (["train", "--backend", "gpu"], 2, "--backend"),
    "huge base channels": (["train", "--base-channels", "100000", "--no-progress", "--out", "{tmp}/huge"], 1,
                           "--base-channels"),
    # train --task detect and --task instance: the same checks, through their own configs
    "detect epochs 0": (["train", "--task", "detect", "--epochs", "0"], 2, "--epochs"),
    "detect batch size 0": (["train", "--task", "detect", "--batch-size", "0"], 2, "--batch-size"),
    "detect lr nan": (["train", "--task", "detect", "--lr", "nan"], 2, "--lr"),
    "detect base channels -3": (["train", "--task", "detect", "--base-channels", "-3"], 2, "--base-channels"),
    "detect seed -1": (["train", "--task", "detect", "--seed", "-1"], 2, "--seed"),
    "detect out is a file": (["train", "--task", "detect", "--out", "{tmp}/picture.png"], 2, "--out"),
    "detect resume, a segmentation checkpoint": (["train", "--task", "detect", "--out", "{tmp}/run", "--resume"], 2,
                                                 "--task"),
    "instance epochs 0": (["train", "--task", "instance", "--data", "nuclei", "--epochs", "0"], 2, "--epochs"),
    "instance batch size 0": (["train", "--task", "instance", "--data", "instance_shapes", "--batch-size", "0"], 2,
                              "--batch-size"),
    "instance lr nan": (["train", "--task", "instance", "--data", "nuclei", "--lr", "nan"], 2, "--lr"),
    "instance crop size 0": (["train", "--task", "instance", "--data", "nuclei", "--crop-size", "0"], 2,
                             "--crop-size"),
    "instance resume, a segmentation checkpoint": (["train", "--task", "instance", "--data", "nuclei", "--out",
                                                    "{tmp}/run", "--resume"], 2, "--task"),
    # compare: the same checks
    "compare epochs 0": (["compare", "--epochs", "0"], 2, "--epochs"),
    "compare num-train 0": (["compare", "--num-train", "0"], 2, "--num-train"),
    "compare image size -1": (["compare", "--image-size", "-1"], 2, "--image-size"),
    "compare no models": (["compare", "--models"], 2, "--models"),
    "compare lr nan": (["compare", "--lr", "nan"], 2, "--lr"),
    # evaluate: files that are not checkpoints
    "missing checkpoint": (["evaluate", "{tmp}/nope.npz"], 2, "nope.npz"),
    "missing checkpoint, --backend numpy": (["evaluate", "{tmp}/nope.npz", "--backend", "numpy"], 2, "nope.npz"),
    "truncated checkpoint": (["evaluate", "{tmp}/half.npz"], 2, "half.npz"),
    "empty checkpoint": (["evaluate", "{tmp}/empty.npz"], 2, "empty.npz"),
    "text file as checkpoint": (["evaluate", "{tmp}/text.npz"], 2, "text.npz"),
    "png as checkpoint": (["evaluate", "{tmp}/picture.npz"], 2, "picture.npz"),
    "folder as checkpoint": (["evaluate", "{tmp}/run"], 2, "run"),
    "pickled arrays": (["evaluate", "{tmp}/pickled.npz"], 2, "pickled.npz"),
    "damaged meta": (["evaluate", "{tmp}/badmeta.npz"], 2, "metadata"),
    "meta without model": (["evaluate", "{tmp}/nomodel.npz"], 2, "metadata"),
    "weights of another model": (["evaluate", "{tmp}/mismatch.npz"], 2, "mismatch.npz"),
    "data with another class count": (["evaluate", "{tmp}/run/checkpoint.npz", "--data", "nuclei"], 2, "--data"),
    "unknown split": (["evaluate", "{tmp}/run/checkpoint.npz", "--split", "holdout"], 2, "--split"),
    # predict
    "unreadable image": (["predict", "{tmp}/run/checkpoint.npz", "{tmp}/text.npz"], 2, "text.npz"),
    "missing image": (["predict", "{tmp}/run/checkpoint.npz", "{tmp}/nope.png"], 2, "nope.png"),
    "out not png": (["predict", "{tmp}/run/checkpoint.npz", "{tmp}/picture.png", "--out", "{tmp}/m.xyz"], 2,
                    "--out"),
    "out under a file": (["predict", "{tmp}/run/checkpoint.npz", "{tmp}/picture.png", "--out",
                          "{tmp}/picture.png/m.png"], 2, "--out"),
    "predict budget 0": (["predict", "{tmp}/run/checkpoint.npz", "{tmp}/picture.png", "--im2col-budget", "0"], 2,
                         "--im2col-budget"),
    # the other commands
    "gradcheck seed -1": (["gradcheck", "--seed", "-1"], 2, "--seed"),
    "bench repeats 0": (["bench", "--repeats", "0"], 2, "--repeats"),
    "bench settle nan": (["bench", "--settle", "nan"], 2, "--settle"),
    "unknown assignment": (["check", "a9"], 2, "a9"),
    "unknown command": (["fly"], 2, "fly"),
}
if not backend.cupy_available():  # where CuPy and a GPU are at hand this command simply runs
    PROBES["--backend cupy without a GPU"] = (["evaluate", "{tmp}/nope.npz", "--backend", "cupy"], 2, "CuPy")


def make_files(tmp):
    """The files the probes point at: one good checkpoint and many bad ones."""
    import matplotlib.image

    config = TrainConfig(out=str(tmp / "run"))  # the `train` defaults: only --optimizer differs in the probe
    model = build_model(config.model, in_channels=1, num_classes=4, base_channels=config.base_channels)
    meta = {"train_config": dataclasses.asdict(config), "epoch": 0, "history": [],
            "class_names": ["background", "circle", "square", "triangle"]}
    from minimal_seg.optim import Adam, CosineSchedule

    optimizer = Adam(model.parameters(), lr=1e-3)
    good = save_checkpoint(tmp / "run" / "checkpoint.npz", model, optimizer, CosineSchedule(optimizer, 10), meta)
    save_checkpoint(tmp / "weights" / "checkpoint.npz", model, meta=meta)
    data = open(good, "rb").read()
    (tmp / "half.npz").write_bytes(data[: len(data) // 2])
    (tmp / "damaged").mkdir()
    (tmp / "damaged" / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    (tmp / "empty.npz").write_bytes(b"")
    (tmp / "text.npz").write_text("hello\n")
    matplotlib.image.imsave(tmp / "picture.png", np.linspace(0, 1, 64).reshape(8, 8), cmap="gray")
    (tmp / "picture.npz").write_bytes((tmp / "picture.png").read_bytes())
    np.savez(tmp / "pickled.npz", meta=np.array([{"model_config": {}}], dtype=object))
    arrays = dict(np.load(good))
    np.savez(tmp / "badmeta.npz", **{**arrays, "meta": np.array("{not json")})
    np.savez(tmp / "nomodel.npz", **{**arrays, "meta": np.array(json.dumps({"epoch": 3}))})
    other = json.loads(str(arrays["meta"]))
    other["model_config"]["base_channels"] = 8
    np.savez(tmp / "mismatch.npz", **{**arrays, "meta": np.array(json.dumps(other))})


def run_cli(argv, cwd):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg",
           "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "minimal_seg", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probes")
    make_files(tmp)
    argvs = {name: [a.replace("{tmp}", str(tmp)) for a in argv] for name, (argv, _, _) in PROBES.items()}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, argv, tmp) for name, argv in argvs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_gives_one_error_line(name, results):
    _, code, names = PROBES[name]
    result = results[name]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert result.returncode == code, output
    assert names in errors[0], errors[0]
    assert "allow_pickle" not in output


def test_no_training_started(results):
    """The probes fail before any epoch runs: none of them trained, or wrote a mask."""
    assert not any("epoch 1/" in r.stdout or "wrote" in r.stdout for r in results.values())
