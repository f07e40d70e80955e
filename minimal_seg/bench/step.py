"""A whole training step of a small U-Net: ours (``train.train_step``) against the identical PyTorch model.

Ours is ``minimal_seg.models.UNet`` (depth 3, base 16, 1 -> 4 classes, no
BatchNorm, transposed-conv up, skips), trained by SGD with momentum and a
constant learning rate on softmax cross-entropy; torch's is the same graph
(``torch_unet.torch_unet_like``) with our initial weights copied in. Batch 8
of 64x64 on the CPU, batch 32 of 128x128 with ``--backend cupy`` against
torch CUDA.
"""
from __future__ import annotations

import functools
import statistics

import numpy

from .. import backend
from ..models import UNet
from ..optim import SGD, StepSchedule
from ..train import make_loss, train_step
from .memory import step_peaks
from .timing import interleaved, syncer
from .torch_unet import torch_training_step, torch_unet_like

UNET = {"in_channels": 1, "num_classes": 4, "base_channels": 16, "depth": 3}
SGD_SETTINGS = {"lr": 0.01, "momentum": 0.9}
STEP_SHAPES = {"numpy": (8, 64), "cupy": (32, 128)}  # (batch, size)
QUICK_STEP_SHAPE = (2, 16)


def build_unet(seed=0):
    """Our U-Net of the bench: ``UNet(batch_norm=False, up="transpose", skips=True)``, float32."""
    return UNet(**UNET, up="transpose", batch_norm=False, skips=True, seed=seed)


def step_batch(batch, size, seed=0, classes=UNET["num_classes"], channels=UNET["in_channels"]):
    """A random float32 image batch (N, C, H, W) and int64 labels (N, H, W), on the host."""
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, size, size), dtype=numpy.float32)
    y = rng.integers(0, classes, size=(batch, size, size), dtype=numpy.int64)
    return x, y


def ours_step(model, x, y):
    """``train.train_step`` bound to ``model``, SGD (``SGD_SETTINGS``, constant lr) and cross-entropy.

    x and y must be on the model's backend. The step returns the loss as a
    0-d array of that backend: nothing leaves the device.
    """
    opt = SGD(model.parameters(), **SGD_SETTINGS)
    constant = StepSchedule(opt, step_size=1, gamma=1.0)  # torch's twin keeps its lr too
    return functools.partial(train_step, model, opt, constant, make_loss("ce"), x, y)


def make_training_steps(batch, size, xp, torch, seed=0):
    """{"ours": step, "torch": step}, each bound (``functools.partial``) to its model, optimiser and
    a fixed batch (``step.args``).

    The batch is sent to the device once, here; a step then never copies
    between host and device (its loss stays there too).
    """
    model = build_unet(seed)
    x_np, y_np = step_batch(batch, size, seed)
    steps = {"ours": ours_step(model, xp.asarray(x_np), xp.asarray(y_np))}
    if torch is not None:
        device = "cpu" if xp is numpy else "cuda"
        net = torch_unet_like(model, torch, device)
        topt = torch.optim.SGD(net.parameters(), **SGD_SETTINGS)
        xt, yt = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
        steps["torch"] = functools.partial(torch_training_step, net, topt, xt, yt, torch)
    return steps


def time_training_steps(steps, repeats, warmup, sync, settle=0.15, modes=None):
    """ms per step of each of ``steps`` ({name: fn}): {name: [samples]}, interleaved as the ops are
    (``modes``: torch's step once more with TF32 off, as "torch_fp32"; see ``timing.interleaved``)."""
    prepared = [{name: (step, None) for name, step in steps.items()}]  # a step has no separate backward
    store = interleaved(prepared, repeats, warmup, sync, settle, modes)[0]
    return {key[:-len("_fwd")]: v for key, v in store.items()}


def training_step_benchmarks(backend_name, quick, repeats, warmup, torch=None, settle=0.15, seed=0, modes=None):
    """Time one U-Net training step in minimal_seg and in the identical PyTorch model.

    numpy: batch 8 of 64x64 against torch CPU; cupy: batch 32 of 128x128
    against torch CUDA; ``quick``: batch 2 of 16x16. ``modes``
    (``precision.torch_modes``) times torch's step with TF32 off too. Returns
    a list with one dict per model (``None`` where unknown)::

        {"model": "unet depth 3 base 16", "batch": 8, "size": 64,
         "ours_ms": ..., "torch_ms": ...,              # median ms per step, interleaved
         "torch_fp32_ms": ...,                         # with modes (GPU): torch with TF32 off
         "ours_images_per_s": ..., "torch_images_per_s": ...,
         "ratio": ours_ms / torch_ms, "ratio_fp32": ours_ms / torch_fp32_ms,
         "ours_peak_mib": ..., "torch_peak_mib": ...,  # see memory.py
         "samples_ms": {"ours": [...], "torch": [...]}, "peak_method": {...}}
    """
    batch, size = QUICK_STEP_SHAPE if quick else STEP_SHAPES[backend_name]
    with backend.use_backend(backend_name) as xp:
        steps = make_training_steps(batch, size, xp, torch, seed)
        sync = syncer(backend_name, torch)
        samples = time_training_steps(steps, repeats, warmup, sync, settle if backend_name == "numpy" else 0, modes)
        peaks, method = step_peaks(backend_name, steps,
                                   lambda: make_training_steps(batch, size, numpy, None, seed)["ours"], torch)
    ms = {name: statistics.median(v) for name, v in samples.items()}
    row = {"model": f"unet depth {UNET['depth']} base {UNET['base_channels']}", "batch": batch, "size": size,
           "ours_ms": ms["ours"], "torch_ms": ms.get("torch"),
           "ours_images_per_s": 1e3 * batch / ms["ours"],
           "torch_images_per_s": 1e3 * batch / ms["torch"] if "torch" in ms else None,
           "ratio": ms["ours"] / ms["torch"] if "torch" in ms else None,
           "torch_fp32_ms": ms.get("torch_fp32"),
           "ratio_fp32": ms["ours"] / ms["torch_fp32"] if "torch_fp32" in ms else None,
           "ours_peak_mib": peaks.get("ours"), "torch_peak_mib": peaks.get("torch"),
           "samples_ms": samples, "peak_method": method, "sgd": SGD_SETTINGS}
    return [row]
