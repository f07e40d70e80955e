"""The architectures of the course side by side: same data, same budget, one table.

    python -m minimal_seg compare                       # all eight models, the `train` defaults
    python -m minimal_seg compare --models unet segnet --epochs 2

Every model is trained by ``minimal_seg.train.train`` with one ``TrainConfig``
that differs only in ``model`` (and its output folder), so the data, the number
of epochs and steps, the optimiser, the learning-rate schedule and the seed are
the same for all. The table reports, per model: its parameters, the validation
mIoU and pixel accuracy after the last epoch, and the training seconds per epoch
(the median over epochs, evaluation excluded). ``compare`` writes
``OUT/compare.json`` (rows, config, machine) and ``OUT/compare.md`` (the table
as Markdown, with the command and the machine), and each model's run folder
``OUT/MODEL/`` as ``train`` does.
"""
from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time

from .backend import get_backend
from .machine import env_text, machine_info
from .models import MODELS
from .train import TrainConfig, train

# In the order of the lectures: FCN, U-Net, then the later encoder-decoders and context modules.
COMPARED = ("fcn32s", "fcn8s", "unet", "segnet", "linknet", "deeplab", "pspnet", "fpn")
COLUMNS = ("model", "parameters", "val mIoU", "pixel acc", "s / epoch")


def _check_models(models):
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be a non-empty list of {', '.join(sorted(MODELS))}; got {list(models)}")


def train_one(config: TrainConfig, log=print, progress=False) -> dict:
    """Train one model with ``config``; its row of the table."""
    result = train(config, progress=progress, log=log)
    last = result["history"][-1]
    return {
        "model": config.model,
        "parameters": result["model"].num_parameters(),
        "val_miou": last["val_miou"],
        "val_pixel_accuracy": last["val_pixel_accuracy"],
        "seconds_per_epoch": statistics.median(r["seconds"] for r in result["history"]),
        "epochs": len(result["history"]),
    }


def compare(models=COMPARED, config: TrainConfig | None = None, out="runs/compare", log=print,
            progress=False) -> dict:
    """Train each of ``models`` with ``config`` (default: ``TrainConfig()``) and tabulate them.

    Returns ``{"rows": [...], "config": {...}, "machine": {...}}`` and writes
    ``out/compare.json`` and ``out/compare.md``.
    """
    _check_models(models)
    config = config or TrainConfig()
    rows, start = [], time.perf_counter()
    for name in models:
        log(f"== {name} ==")
        rows.append(train_one(dataclasses.replace(config, model=name, out=os.path.join(out, name)), log, progress))
    shared = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("model", "out")}
    result = {"rows": rows, "config": shared, "machine": machine(), "total_seconds": time.perf_counter() - start}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "compare.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(out, "compare.md"), "w") as f:
        f.write(format_markdown(result) + "\n")
    return result


def machine() -> dict:
    """Where the seconds were measured: ``machine.machine_info`` of the current backend."""
    return machine_info(get_backend())


def table_rows(rows) -> list[tuple]:
    """The rows as printed strings, in ``COLUMNS`` order."""
    return [(r["model"], f"{r['parameters']:,}", f"{r['val_miou']:.4f}", f"{r['val_pixel_accuracy']:.4f}",
             f"{r['seconds_per_epoch']:.1f}") for r in rows]


def format_markdown(result) -> str:
    """The Markdown table, preceded by the shared budget and the machine."""
    c, m = result["config"], result["machine"]
    lines = [f"Same budget for every model: {c['data']} data, {c['num_train']} training images "
             f"{c['image_size']}x{c['image_size']}, {c['epochs']} epochs, batch {c['batch_size']}, "
             f"{c['optimizer']} lr {c['lr']} (cosine), base channels {c['base_channels']}, seed {c['seed']}; "
             f"validated on {c['num_val']} held-out images.",
             f"Machine: {m['cpu_count']} CPUs ({m['cpu']}), thread variables: {env_text(m)}, "
             f"{m['backend']} backend, NumPy {m['numpy']}, Python {m['python']}; "
             f"{result['total_seconds'] / 60:.1f} minutes in all.",
             "",
             "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(result["rows"])]
    return "\n".join(lines)


def format_table(rows) -> str:
    """The plain-text table printed at the end of ``compare``."""
    cells = [COLUMNS] + table_rows(rows)
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
                     for r in cells)
