"""What every command shares: the one-line error, flag names, argparse types and the common options."""
from __future__ import annotations

import argparse
import sys


def error(message, code=2) -> int:
    """Print one ``error:`` line to stderr and return the exit code (2: bad input, 1: the run failed)."""
    print(f"error: {message}", file=sys.stderr)
    return code


def flag(field) -> str:
    """The command-line flag of a config field: batch_size -> --batch-size."""
    return "--" + field.replace("_", "-")


def current_backend() -> str:
    from ..backend import get_backend

    return get_backend()


def run_training(config, run, flags, **validate):
    """Validate ``config`` up front, then ``run()``; every expected failure is one error line naming the flag.

    ``flags``: the config fields the command takes as flags (a ConfigError on another field names the
    field); ``validate``: keywords of ``config.validate``.
    """
    from ..train import ConfigError, TrainingDiverged

    try:
        config.validate(**validate)
        return run()
    except ConfigError as err:
        return error(f"{flag(err.field) if err.field in flags else err.field} {err.problem}")
    except TrainingDiverged as err:
        return error(err, code=1)
    except ValueError as err:  # a checkpoint that cannot be resumed, a dataset that cannot be built
        return error(err)
    except MemoryError as err:
        return error(f"out of memory ({err}); try a smaller --batch-size, --base-channels or image size", code=1)
    except OSError as err:  # e.g. --out names a file, or a folder that cannot be written
        return error(f"cannot write {err.filename!r}: {err.strerror or err}")


def at_least(low, kind=int):
    """argparse type: a finite ``kind`` (int or float) >= ``low``; argparse's error line names the flag."""
    what = "an integer" if kind is int else "a finite number"

    def parse(text):
        import math

        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} >= {low}, got {text!r}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"expected {what} >= {low}, got {text}")
        return value

    parse.__name__ = f"{what} >= {low}"
    return parse


def add_backend(parser):
    parser.add_argument("--backend", choices=["numpy", "cupy"], default=None,
                        help="array backend (default: numpy, or $MINIMAL_SEG_BACKEND)")


def add_tf32(parser):
    parser.add_argument("--tf32", action="store_true",
                        help="let CuPy's float32 matmuls (so every conv) use TF32 tensor cores: faster, 10-bit "
                             "mantissa (needs --backend cupy; see docs/gpu.md)")


def set_tf32_flag():
    """``--tf32``: TF32 on for the process, or ValueError when the backend is not CuPy (NumPy has no TF32).

    Prints what CuPy runs then (FP32 on a GPU older than Ampere, which has no TF32)."""
    from ..backend import get_backend, matmul_precision, set_tf32

    if get_backend() != "cupy":
        raise ValueError(f"--tf32 needs --backend cupy: NumPy has no TF32, its matmuls are always FP32 "
                         f"(backend: {get_backend()})")
    set_tf32(True)
    print(f"--tf32: CuPy's float32 matmuls run in {matmul_precision('cupy')}")


def add_im2col_budget(parser):
    parser.add_argument("--im2col-budget", metavar="SIZE", default=None,
                        help="largest im2col column matrix, e.g. 512M or 2G (default 256M, or "
                             "$MINIMAL_SEG_IM2COL_BUDGET)")


def set_im2col_budget(text):
    from ..functional.conv import set_im2col_budget as set_budget

    try:
        set_budget(text)
    except ValueError:
        raise ValueError(f"argument --im2col-budget: expected a size such as 512M or 2G, got {text!r}") from None
