"""The command line: ``python -m minimal_seg COMMAND``.

    train       train a model (default: a tiny U-Net on the Shapes data, a few CPU minutes;
                --task detect: a tiny YOLO on Instance Shapes; --task instance: instance segmentation)
    evaluate    metrics of a checkpoint on a dataset split
    predict     colour mask of an image file from a checkpoint
    gradcheck   float64 gradient check of every op, as a table
    compare     train every architecture with the same data and budget; one table
    bench       time conv/pool ops and a U-Net training step against PyTorch (JSON + PNG)
    check       autograde an assignment: python -m minimal_seg check a1 --impl my_a1.py;
                a class: check all --submissions DIR --gradebook grades.csv [--held-out DIR]
    make-student OUT_DIR   write the student version of the assignments (from a checkout)
    gpu-check   verify the CuPy backend on a GPU in one go (see minimal_seg.gpu_check)
"""
from __future__ import annotations

import argparse

from .common import error, set_im2col_budget, set_tf32_flag
from .inference import add_inference_commands
from .tools import add_tool_commands
from .training import add_training_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m minimal_seg",
                                     description="Semantic segmentation from scratch in NumPy/CuPy.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_training_commands(sub)
    add_inference_commands(sub)
    add_tool_commands(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from ..threads import pick_threads

    pick_threads(getattr(args, "threads", None))  # BLAS threads: see minimal_seg.threads
    if getattr(args, "backend", None):
        from ..backend import BackendUnavailableError, set_backend

        try:
            set_backend(args.backend)
        except BackendUnavailableError as err:
            return error(err)
    if getattr(args, "tf32", False):
        try:
            set_tf32_flag()
        except ValueError as err:
            return error(err)
    if getattr(args, "im2col_budget", None) is not None:
        try:
            set_im2col_budget(args.im2col_budget)
        except ValueError as err:
            return error(err)
    return args.func(args)
