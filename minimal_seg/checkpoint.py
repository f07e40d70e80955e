"""Checkpoints: one .npz file, written atomically, read without pickle.

A checkpoint holds three groups of arrays and one JSON record::

    model/<dotted name>   every parameter and buffer (``model.state_dict()``)
    optim/<key>           the optimizer state (momentum / Adam moments, step, lr)
    sched/<key>           the learning-rate schedule state
    meta                  JSON text: the model config, the training config, the
                          epoch, the history of losses and metrics

It is written to a temporary file in the same folder and renamed over the old
one (``os.replace`` is atomic), so a crash mid-write never leaves a broken
checkpoint (the temporary file it leaves is removed by the next save), and it
is read with ``allow_pickle=False``, so loading a file cannot run code. A
file that is empty, truncated, damaged or of another kind gives one
``CheckpointError`` line, never a traceback or a hint to load it unsafely.
"""
from __future__ import annotations

import glob
import json
import os
import tempfile
import zipfile
import zlib

import numpy

# Errors numpy.load and zipfile raise on a damaged archive: truncated, bad CRC, bad member.
_DAMAGED = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


class CheckpointError(ValueError):
    """A file that is not a complete minimal_seg checkpoint (one line: the path and what is wrong)."""


def _temp_prefix(path) -> str:
    """Temporary files of ``path`` are ``.tmp-<name>-XXXX.npz`` in its folder."""
    return f".tmp-{os.path.basename(path)}-"


def _remove_stale_temps(folder, prefix):
    """Delete temporary files that a write killed mid-way left behind (they are never renamed)."""
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.npz")):
        try:
            os.remove(stale)
        except FileNotFoundError:
            pass


def _file_mode() -> int:
    """0o666 less the process's umask: the mode ``open()`` would give a new file (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def save_checkpoint(path, model, optimizer=None, schedule=None, meta=None) -> str:
    """Write model (+ optimizer, schedule) state and a JSON ``meta`` record to ``path`` atomically.

    The arrays go to ``.tmp-<name>-XXXX.npz`` beside ``path``, are flushed to
    disk, and the file is renamed over ``path``; temporary files left by an
    earlier write that was killed are removed first. The file gets the mode a
    plain ``open()`` would give it (0o666 less the umask, e.g. 0o644).
    """
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    if optimizer is not None:
        arrays.update({f"optim/{k}": numpy.asarray(v) for k, v in optimizer.state_dict().items()})
    if schedule is not None:
        arrays.update({f"sched/{k}": numpy.asarray(v) for k, v in schedule.state_dict().items()})
    record = {"model_config": model.config, **(meta or {})}
    arrays["meta"] = numpy.array(json.dumps(record))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    prefix = _temp_prefix(path)
    _remove_stale_temps(folder, prefix)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".npz")
    try:
        os.chmod(tmp, _file_mode())
        with os.fdopen(fd, "wb") as f:
            numpy.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _read_arrays(path) -> dict:
    """Every array of the .npz at ``path``, read without pickle; CheckpointError if it is not one."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!s} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!s} is a folder, not a .npz file")
    if not zipfile.is_zipfile(path):
        size = os.path.getsize(path)
        what = "an empty file" if size == 0 else f"{size} bytes that are not a complete .npz (zip) archive"
        raise CheckpointError(f"{path!s} is not a readable .npz checkpoint: {what} (truncated, or another kind "
                              "of file)")
    try:
        with numpy.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except _DAMAGED as err:
        if "pickle" in str(err):
            reason = "it holds pickled (object) arrays, which a minimal_seg checkpoint never does; not loaded"
        else:
            reason = f"a damaged .npz archive ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        raise CheckpointError(f"{path!s} is not a readable .npz checkpoint: {reason}") from None


def _read_meta(path, arrays) -> dict:
    """The JSON record, checked to hold the model config every loader needs."""
    if "meta" not in arrays:
        raise CheckpointError(f"{path!s} is not a minimal_seg checkpoint (no 'meta' record)")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError:
        raise CheckpointError(f"{path!s} has damaged metadata: the 'meta' record is not valid JSON") from None
    config = meta.get("model_config") if isinstance(meta, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise CheckpointError(f"{path!s} has damaged metadata: 'meta' must be a JSON object with a "
                              "'model_config' record naming the model")
    return meta


def load_checkpoint(path) -> dict:
    """Read a checkpoint: {"model": {...}, "optim": {...}, "sched": {...}, "meta": {...}}.

    Raises CheckpointError (a ValueError, one line) when the file is missing,
    empty, truncated, damaged, holds pickled arrays, or is not a minimal_seg
    checkpoint. Nothing is ever unpickled.
    """
    arrays = _read_arrays(path)
    groups = {"model": {}, "optim": {}, "sched": {}}
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group in groups:
            groups[group][name] = value
    groups["meta"] = _read_meta(path, arrays)
    return groups


def model_from_checkpoint(path, build=None):
    """Build the model a checkpoint was saved from and load its weights; returns (model, checkpoint).

    ``build(**model_config)`` builds a model outside ``models.MODELS`` (``YOLO``, ``MaskRCNNLite``: pass
    the class); by default the model is ``build_model`` of the name the checkpoint stores.
    """
    from .models import build_model

    ckpt = load_checkpoint(path)
    config = dict(ckpt["meta"]["model_config"])
    name = config.pop("model")
    try:
        model = (build(**config) if build is not None
                 else build_model(name, **{k: v for k, v in config.items() if k != "variant"}))
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path!s} does not match the model it names: {err}") from None
    return model, ckpt
