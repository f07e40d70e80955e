"""``python -m minimal_seg bench``: how fast are our convolutions, honestly measured?

For each op at the shapes of a small U-Net (depth 3, base 16 channels, batch
8 of 64x64 images on the CPU, 32 of 128x128 with ``--backend cupy``) and at
its stride-2, dilation-2 and transposed variants,
ours, torch and the bare GEMMs are timed in the same process, as the median
of repeats after a warm-up, every repeat timing everything once. The pooling
ops of the same U-Net get a second table (ours against torch), and a whole
training step of the U-Net a third: ours against the identical PyTorch model
with our initial weights, ms per step, images/s and peak memory. A JSON file
(all samples) and a PNG chart record the run with the machine it ran on.
On a GPU the header states both sides' precision (FP32 or TF32) and torch
is timed twice, as it comes and with TF32 off, so that the report shows the
FP32-vs-FP32 ratio next to the ratio against torch's default.

One module per job:

- ``cases``: what is timed (the U-Net's conv and pooling shapes);
- ``targets``: the targets (issue #15 on a CPU, #11 on a GPU), met or NOT met;
- ``precision``: each side's precision on a GPU, torch's TF32 flags off and restored;
- ``timing``: the clock, device synchronisation, the interleaved loop;
- ``ops``: the conv table (ours, torch, bare GEMMs, Winograd where it applies), totals;
- ``pooling``: the pooling table;
- ``torch_unet``: the PyTorch twin of the U-Net and its step;
- ``step``: the training step (``train.train_step``) against that twin;
- ``memory``: peak memory of a step, on each backend;
- ``report``: the printed report and the chart;
- ``main``: ``run``, all of the above in one call.

The machine record comes from ``minimal_seg.machine``.
"""
from .cases import Case, PoolCase, pool_cases, quick_cases, quick_pool_cases, unet_cases
from .main import run
from .report import format_report, plot
from .targets import TARGETS, check_targets
from .step import (
    QUICK_STEP_SHAPE,
    SGD_SETTINGS,
    UNET,
    build_unet,
    make_training_steps,
    ours_step,
    step_batch,
    training_step_benchmarks,
)
from .timing import import_torch
from .torch_unet import torch_training_step, torch_unet_like
