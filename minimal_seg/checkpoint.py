"""Checkpoints: one .npz file, written atomically, read without pickle.

A checkpoint holds three groups of arrays and one JSON record::

    model/<dotted name>   every parameter and buffer (``model.state_dict()``)
    optim/<key>           the optimizer state (momentum / Adam moments, step, lr)
    sched/<key>           the learning-rate schedule state
    meta                  JSON text: the model config, the training config, the
                          epoch, the history of losses and metrics

It is written to a temporary file in the same folder and renamed over the old
one (``os.replace`` is atomic), so a crash mid-write never leaves a broken
checkpoint, and it is read with ``allow_pickle=False``, so loading a file
cannot run code.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy


def save_checkpoint(path, model, optimizer=None, schedule=None, meta=None) -> str:
    """Write model (+ optimizer, schedule) state and a JSON ``meta`` record to ``path`` atomically."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": numpy.asarray(v) for k, v in optimizer.state_dict().items()})
    if schedule is not None:
        arrays.update({f"sched/{k}": numpy.asarray(v) for k, v in schedule.state_dict().items()})
    record = {"model_config": model.config, **(meta or {})}
    arrays["meta"] = numpy.array(json.dumps(record))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            numpy.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def load_checkpoint(path) -> dict:
    """Read a checkpoint: {"model": {...}, "optim": {...}, "sched": {...}, "meta": {...}}.

    Raises ValueError (one line) when the file is missing or not a minimal_seg checkpoint.
    """
    try:
        with numpy.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path!s} does not exist") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path!s} is not a readable .npz checkpoint ({err})") from None
    if "meta" not in arrays:
        raise ValueError(f"{path!s} is not a minimal_seg checkpoint (no 'meta' record)")
    groups = {"model": {}, "optim": {}, "sched": {}}
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group in groups:
            groups[group][name] = value
    groups["meta"] = json.loads(str(arrays["meta"]))
    return groups


def model_from_checkpoint(path):
    """Build the model a checkpoint was saved from and load its weights; returns (model, checkpoint)."""
    from .models import build_model

    ckpt = load_checkpoint(path)
    config = dict(ckpt["meta"]["model_config"])
    model = build_model(config.pop("model"), **{k: v for k, v in config.items() if k != "variant"})
    model.load_state_dict(ckpt["model"])
    return model, ckpt
