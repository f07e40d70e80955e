"""The training loop the command line and the notebooks share, for every task.

One step, exactly as in the lecture::

    logits = model(images)                                  # (N, K, H, W)
    loss, cache = softmax_cross_entropy_forward(logits, masks)
    model.zero_grad()
    model.backward(softmax_cross_entropy_backward(1.0, cache))
    optimizer.step(); schedule.step()

The epoch loop is ``fit``, and every task runs it: segmentation here
(``train``), detection (``train_detect``) and instance segmentation
(``train_instance``) supply only their data, model, step, evaluation and
figures. ``run_task`` gives them the same guarantees: the config checked
before any data is built (``RunConfig.validate``: ConfigError names the
field, the CLI prints its flag), a resumed checkpoint checked against the
task and the config, the run on ``config.backend`` with the caller's backend
restored. Every epoch ends with a validation pass (here: whole images, eval
mode, a streaming confusion matrix), one line of metrics, a checkpoint
(written atomically; none for an epoch whose loss is NaN) and a row in
``metrics.csv`` / ``metrics.json``. The loss stays on the device during the
epoch; it is read on the host only to print it (every ``log_every`` steps)
and at the end of the epoch.

Reproducibility: the model is initialised from ``seed``, and the order,
crops and flips of epoch e come from (seed, e) alone, so a run stopped after
epoch e and resumed gives exactly the losses of an uninterrupted run.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy

from . import functional as F
from .backend import array_module, backend_names, get_backend, to_numpy, use_backend
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DATASETS, batches, dataset_spec, default_augmentation, get_dataset, image_batches
from .metrics import ConfusionMatrix
from .models import MODELS, build_model
from .optim import SGD, Adam, CosineSchedule

CHECKPOINT = "checkpoint.npz"


class ConfigError(ValueError):
    """A training setting that cannot work: "<field> <problem>" (the CLI prints the flag instead of the field)."""

    def __init__(self, field, problem):
        super().__init__(f"{field} {problem}")
        self.field, self.problem = field, problem


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _is_number(value, low, strict):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return value > low if strict else value >= low


def int_at_least(low):
    """A rule of ``RunConfig.rules``: an integer >= ``low``."""
    return (lambda v: _is_int(v, low)), f"an integer >= {low}"


def number_above(low, strict=True):
    """A rule of ``RunConfig.rules``: a finite number > ``low`` (>= when not ``strict``)."""
    return (lambda v: _is_number(v, low, strict)), f"a finite number {'>' if strict else '>='} {low}"


LOSSES = ("ce", "dice", "ce+dice")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class RunConfig:
    """What every task's run has: the optimisation, the seed, the backend, the output folder and the data sizes.

    Each task's config (``TrainConfig``, ``train_detect.DetectConfig``) adds its own fields
    (``data`` among them), rules and defaults; ``validate`` checks them all before any data is built.
    """

    epochs: int = 5
    batch_size: int = 16
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    warmup_steps: int = 10
    seed: int = 0
    backend: str = field(default_factory=get_backend)  # the current backend (numpy unless switched)
    out: str = "runs/run"
    base_channels: int = 16
    num_train: int = 2000
    num_val: int = 64
    image_size: int = 64
    log_every: int = 5
    # What each numeric field accepts: {field: (test, what is expected)}.
    rules: ClassVar[dict] = {
        **{name: int_at_least(1) for name in ("epochs", "batch_size", "base_channels", "num_train", "num_val",
                                               "image_size", "log_every")},
        **{name: int_at_least(0) for name in ("seed", "warmup_steps")},
        "lr": number_above(0),
        "weight_decay": number_above(0, strict=False),
    }
    # What a checkpoint must share with this config to be resumed by it.
    resume_keys: ClassVar[tuple] = ("base_channels", "seed", "image_size", "num_train", "optimizer")

    def data_kwargs(self, split):
        """The keywords ``get_dataset`` takes for ``split`` of this run's ``data`` (a field every task's
        config declares; see ``data.registry``)."""
        n = self.num_train if split == "train" else self.num_val
        return dataset_spec(self.data).split_kwargs(n, self.image_size, self.seed)

    def validate(self, **choices):
        """Raise ConfigError naming the first field that cannot train: outside its ``choices``
        ({field: allowed values}, plus the optimizer and backend), failing its rule, or ``out`` a file."""
        for name, allowed in {**choices, "optimizer": OPTIMIZERS, "backend": backend_names()}.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(sorted(allowed))}, got {getattr(self, name)!r}")
        for name, (ok, expected) in self.rules.items():
            if not ok(getattr(self, name)):
                raise ConfigError(name, f"must be {expected}, got {getattr(self, name)!r}")
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise ConfigError("out", f"must be a folder, but {self.out!r} is a file")
        return self


@dataclass
class TrainConfig(RunConfig):
    """Everything that defines a run. The defaults train a tiny U-Net on Shapes in a few CPU minutes."""

    model: str = "unet"
    data: str = "shapes"
    out: str = "runs/unet-shapes"
    model_options: dict = field(default_factory=dict)
    crop_size: int | None = None
    repeat: int = 1
    augment: bool = False
    loss: str = "ce"
    rules: ClassVar[dict] = {**RunConfig.rules, "repeat": int_at_least(1)}
    resume_keys: ClassVar[tuple] = ("model", "data", "model_options") + RunConfig.resume_keys

    def validate(self, models=MODELS):
        """Raise ConfigError naming the first field that cannot train (before any data is built).

        ``models``: the model names the task trains (the two-stage instance task: mask_rcnn_lite).
        """
        super().validate(model=models, data=DATASETS, loss=LOSSES)
        if self.crop_size is not None and not _is_int(self.crop_size, 1):
            raise ConfigError("crop_size", f"must be an integer >= 1 (or None: whole images), got {self.crop_size!r}")
        if not isinstance(self.model_options, dict):
            raise ConfigError("model_options", f"must be a dict, got {self.model_options!r}")
        return self


class TrainingDiverged(RuntimeError):
    """Raised when the loss becomes NaN or infinite; the last good checkpoint is kept."""


def make_loss(name):
    """(forward, backward) of the training loss: "ce", "dice", or "ce+dice" (their sum)."""
    if name == "ce":
        return F.softmax_cross_entropy_forward, F.softmax_cross_entropy_backward
    if name == "dice":
        return F.dice_loss_forward, F.dice_loss_backward
    if name == "ce+dice":
        def forward(logits, labels):
            ce, ce_cache = F.softmax_cross_entropy_forward(logits, labels)
            dice, dice_cache = F.dice_loss_forward(logits, labels)
            return ce + dice, (ce_cache, dice_cache)

        def backward(dout, cache):
            return (F.softmax_cross_entropy_backward(dout, cache[0])
                    + F.dice_loss_backward(dout, cache[1]))
        return forward, backward
    raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")


def make_optimizer(config, model, total_steps):
    if config.optimizer == "adam":
        opt = Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    elif config.optimizer == "sgd":
        opt = SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
    warmup = min(config.warmup_steps, total_steps // 5)  # short runs get a short warm-up
    return opt, CosineSchedule(opt, total_steps, min_lr=config.lr * 0.01, warmup_steps=warmup)


def train_step(model, optimizer, schedule, loss_fns, images, masks):
    """One optimisation step; returns the loss as a 0-d array (still on the device)."""
    forward, backward = loss_fns
    logits = model(images)
    loss, cache = forward(logits, masks)
    model.zero_grad()
    model.backward(backward(1.0, cache))
    optimizer.step()
    schedule.step()
    return loss


def predict(model, images, batch_size=16):
    """Class map (N, H, W) of whole host images (N, C, H, W): eval mode, batch by batch, on the backend."""
    with model.eval_mode():
        labels = [model(batch).argmax(axis=1) for batch in image_batches(images, batch_size)]
    return array_module(labels[0]).concatenate(labels, axis=0)


def predict_image(model, image, tile=512, margin=32, max_pixels=1024 * 1024):
    """Class map (H, W) of one host image (C, H, W), and the number of passes it took.

    One pass when the image has at most ``max_pixels`` pixels and fits in
    memory (the im2col budget). A larger image, or one that runs out of
    memory, goes in overlapping tiles of ``tile`` pixels: each tile sees
    ``margin`` pixels of context on every side and keeps its centre, so the
    seams are rarely visible (models with a global context, like PSPNet's
    pyramid pooling, see each tile's context instead of the image's). Whole
    2000 x 2000 images would need GBs of activations (LinkNet: 3.5 GB, and
    then its last transposed conv is over the im2col budget).
    """
    _, h, w = image.shape
    if h * w <= max_pixels:
        try:
            return to_numpy(predict(model, image[None]))[0], 1
        except MemoryError:
            if max(h, w) <= tile:
                raise
    step = tile - 2 * margin
    labels, passes = numpy.empty((h, w), dtype=numpy.int64), 0
    for top in range(0, h, step):
        for left in range(0, w, step):
            y0, x0 = max(top - margin, 0), max(left - margin, 0)
            window = image[None, :, y0:top + step + margin, x0:left + step + margin]
            rows, cols = min(step, h - top), min(step, w - left)
            part = to_numpy(predict(model, window))[0]
            labels[top:top + rows, left:left + cols] = part[top - y0:top - y0 + rows, left - x0:left - x0 + cols]
            passes += 1
    return labels, passes


def evaluate(model, dataset, batch_size=16, ignore_index=None) -> dict:
    """Metrics of the model on whole images: pixel accuracy, mIoU, mean Dice, per-class IoU/Dice."""
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index=ignore_index)
    with model.eval_mode():
        for images, masks in batches(dataset, batch_size, shuffle=False):
            matrix.update(model(images), masks)
    return matrix.summary()


def _history_files(out, history):
    """metrics.json and metrics.csv: one row per epoch (a metric missing in an epoch is left blank)."""
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump(history, f, indent=1)
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, restval="")
        writer.writeheader()
        writer.writerows(history)


def _check_crop(crop_size, image_hw):
    if crop_size is not None and crop_size > min(image_hw):
        raise ConfigError("crop_size", f"{crop_size} is larger than the images {tuple(image_hw)}")


def _diverged_message(loss, epoch, path):
    """Where the last good state is: the checkpoint of epoch ``epoch`` (0-based ``epoch`` epochs done), or none."""
    kept = (f"The last good checkpoint (after epoch {epoch}) is kept at {path}." if epoch > 0 and os.path.exists(path)
            else "No checkpoint was written (the first epoch diverged).")
    return f"the loss became {loss} in epoch {epoch + 1}; stopped. {kept} Try a smaller --lr."


def _check_resume(config, ckpt, task):
    """ConfigError naming the first setting (the task, then ``config.resume_keys``) the checkpoint differs in."""
    meta = ckpt["meta"]
    if meta.get("task", "segment") != task:
        raise ConfigError("task", f"differs from the checkpoint's, so the run cannot resume: the checkpoint was "
                                  f"trained with --task {meta.get('task', 'segment')}, not {task}")
    saved = meta.get("train_config", {})
    diff = {k: (saved.get(k), getattr(config, k)) for k in config.resume_keys if saved.get(k) != getattr(config, k)}
    if diff:
        lines = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(next(iter(diff)), f"differs from the checkpoint's, so the run cannot resume: the "
                                            f"checkpoint was trained with another config ({lines})")


def _restore(ckpt, path, model, optimizer, schedule):
    """Load a checkpoint's weights, optimizer and schedule state; returns (history, first epoch to run)."""
    meta = ckpt["meta"]
    if not ckpt["optim"] or not ckpt["sched"] or not isinstance(meta.get("epoch"), int) \
            or not isinstance(meta.get("history"), list):
        raise CheckpointError(f"cannot resume from {path}: it holds the weights only (no optimizer state, "
                              "schedule or epoch)")
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optim"])
        schedule.load_state_dict(ckpt["sched"])
    except (KeyError, ValueError) as err:
        detail = str(err).strip("'\"")
        detail = detail if len(detail) <= 200 else detail[:200] + " ..."
        raise CheckpointError(f"cannot resume from {path}: its state does not match this run ({detail})") from None
    return meta["history"], meta["epoch"] + 1


def run_task(task, config, body, resume=False, **validate):
    """What every task does before its loop: ``body(ckpt)`` with the guarantees they share.

    ``config.validate(**validate)`` first (ConfigError names the field); with ``resume``, the
    checkpoint in ``config.out`` is loaded and checked against ``task`` and the config
    before any data is built (else ``ckpt`` is None); ``body`` runs on ``config.backend``,
    and the caller's backend is restored afterwards.
    """
    config.validate(**validate)
    ckpt = load_checkpoint(os.path.join(config.out, CHECKPOINT)) if resume else None
    if ckpt is not None:
        _check_resume(config, ckpt, task)
    with use_backend(config.backend):
        return body(ckpt)


def fit(model, step, epoch_batches, steps_per_epoch, optimizer, schedule, config, *, task, ckpt=None,
        evaluate=None, summary=None, meta=None, progress=True, log=print, stop_after=None) -> list:
    """The epoch loop of every task; returns the history, one row per epoch.

    ``step(batch)`` makes one optimisation step and returns its loss (0-d, left on the
    device); ``epoch_batches(epoch)`` yields the batches of an epoch (from (seed, epoch)
    alone, so a resumed run sees the same ones); ``evaluate(epoch)`` gives the held-out
    metrics after an epoch (a dict, stored with the prefix ``val_``) and ``summary(metrics)``
    shows them in the epoch's log line. After every epoch: the divergence check (no
    checkpoint is written for a NaN epoch), one log line, the checkpoint (written
    atomically: ``meta`` plus the config, task, epoch and history) and metrics.csv /
    metrics.json in ``config.out``. ``ckpt`` (from ``run_task``) continues that run;
    ``stop_after=e`` stops after epoch e as if interrupted (the schedule still plans for
    ``config.epochs``).
    """
    path = os.path.join(config.out, CHECKPOINT)
    os.makedirs(config.out, exist_ok=True)
    history, start = [], 0
    if ckpt is not None:
        history, start = _restore(ckpt, path, model, optimizer, schedule)
        log(f"resumed from {path} after epoch {start}")
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(start, last):
        t0 = time.perf_counter()
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", progress)
        losses = []
        for i, batch in enumerate(epoch_batches(epoch)):
            losses.append(step(batch))
            if bar is not None:
                bar.update(1)
                if (i + 1) % config.log_every == 0:  # the only host read inside the epoch
                    bar.set_postfix(loss=f"{float(losses[-1]):.4f}")
        if bar is not None:
            bar.close()
        step_losses = [float(v) for v in to_numpy(_stack(losses))]
        train_loss = sum(step_losses) / len(step_losses)
        if not math.isfinite(train_loss):
            raise TrainingDiverged(_diverged_message(train_loss, epoch, path))
        seconds = time.perf_counter() - t0
        metrics = evaluate(epoch) if evaluate is not None else {}
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "seconds": seconds, "lr": optimizer.lr,
                        **{f"val_{k}": v for k, v in metrics.items()}, "step_losses": step_losses})
        shown = f"  {summary(metrics)}" if summary is not None and metrics else ""
        log(f"epoch {epoch + 1}/{config.epochs}  loss {train_loss:.4f}{shown}  ({seconds:.1f} s)")
        save_checkpoint(path, model, optimizer, schedule, meta={
            "train_config": dataclasses.asdict(config), "task": task, "epoch": epoch, "history": history,
            **(meta or {})})
        _history_files(config.out, [{k: v for k, v in r.items() if k != "step_losses"} for r in history])
    return history


def train(config: TrainConfig, resume=False, progress=True, log=print, stop_after=None) -> dict:
    """Train ``config.model`` on ``config.data``; returns {"history": [...], "model": model, ...}.

    ``resume`` continues from the checkpoint in ``config.out``; ``stop_after=e`` stops
    after epoch e as if interrupted (the schedule still plans for ``config.epochs``).

    Writes to ``config.out``: checkpoint.npz, metrics.csv, metrics.json and the figures.
    The run happens on ``config.backend``; the current backend is restored afterwards.
    """
    return run_task("segment", config, lambda ckpt: _train(config, ckpt, progress, log, stop_after), resume)


def _train(config, ckpt, progress, log, stop_after):
    train_set = get_dataset(config.data, "train", **config.data_kwargs("train"))
    val_set = get_dataset(config.data, dataset_spec(config.data).val_split, **config.data_kwargs("val"))
    _check_crop(config.crop_size, train_set.images.shape[2:])
    model = build_model(config.model, in_channels=train_set.images.shape[1], num_classes=train_set.num_classes,
                        base_channels=config.base_channels, seed=config.seed, **config.model_options)
    train_arrays = (numpy.repeat(train_set.images, config.repeat, axis=0),
                    numpy.repeat(train_set.masks, config.repeat, axis=0))
    steps_per_epoch = -(-len(train_arrays[0]) // config.batch_size)
    optimizer, schedule = make_optimizer(config, model, config.epochs * steps_per_epoch)
    loss_fns = make_loss(config.loss)
    transform = default_augmentation() if config.augment else None

    def epoch_batches(epoch):
        return batches(train_arrays, config.batch_size, seed=config.seed, epoch=epoch, transform=transform,
                       crop_size=config.crop_size)

    history = fit(model, lambda batch: train_step(model, optimizer, schedule, loss_fns, *batch), epoch_batches,
                  steps_per_epoch, optimizer, schedule, config, task="segment", ckpt=ckpt,
                  evaluate=lambda epoch: evaluate(model, val_set, config.batch_size),
                  summary=lambda m: (f"val mIoU {m['miou']:.4f}  pixel acc {m['pixel_accuracy']:.4f}  "
                                     f"mean Dice {m['mean_dice']:.4f}"),
                  meta={"class_names": list(train_set.class_names)}, progress=progress, log=log,
                  stop_after=stop_after)
    if history:
        save_figures(config.out, history, model, val_set)
    return {"history": history, "model": model, "val_set": val_set,
            "checkpoint": os.path.join(config.out, CHECKPOINT)}


def save_figures(out, history, model, dataset, count=4):
    """learning_curves.png and predictions.png (input / truth / prediction) in ``out``."""
    from .viz import plot_history, plot_predictions

    plot_history(history, os.path.join(out, "learning_curves.png"))
    images, masks = dataset.images[:count], dataset.masks[:count]
    plot_predictions(images, masks, to_numpy(predict(model, images)), os.path.join(out, "predictions.png"),
                     class_names=list(dataset.class_names))


def _stack(losses):
    """The 0-d device losses of an epoch as one (steps,) array on their device (one host read for all)."""
    xp = array_module(losses[0])
    return xp.stack([xp.asarray(v) for v in losses])


def _progress(total, desc, enabled):
    """A tqdm bar of ``total`` steps, or None when ``enabled`` is false."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
