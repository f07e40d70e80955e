"""In which precision each side computes, and torch timed both ways, so a GPU comparison is like for like.

On an NVIDIA GPU since Ampere, float32 matrix products can run on tensor
cores in TF32: inputs rounded to a 10-bit mantissa (float32 has 23), sums
kept in float32. torch does this for convolutions by default
(``torch.backends.cudnn.allow_tf32 = True``; matmuls: ``torch.backends.cuda.
matmul.allow_tf32``, False by default); CuPy, and so minimal_seg, runs FP32
unless asked (``backend.set_tf32``, ``--tf32``, ``CUPY_TF32=1``).

With ``--backend cupy`` the bench therefore states both sides' precision in
its header and times torch twice: as it comes ("torch") and with both TF32
flags off ("torch_fp32", restored afterwards). On a CPU there is no TF32 on
either side: nothing is timed twice and the header is unchanged.
"""
from __future__ import annotations

import contextlib

from .. import backend

TORCH_TF32_FLAGS = ("cuda.matmul.allow_tf32", "cudnn.allow_tf32")
# Newer torch (2.9+) keeps the same choice as strings ("ieee", "tf32", "none": inherit) that the flags above
# write through; they are saved and put back too, so that torch is left exactly as it was.
TORCH_FP32_PRECISIONS = ("fp32_precision", "cuda.matmul.fp32_precision", "cudnn.fp32_precision",
                         "cudnn.conv.fp32_precision", "cudnn.rnn.fp32_precision")


def _flag_owner(torch, flag):
    """(object, attribute) of ``torch.backends.<flag>``."""
    path, _, name = flag.rpartition(".")
    owner = torch.backends
    for part in filter(None, path.split(".")):
        owner = getattr(owner, part)
    return owner, name


def torch_fp32_precisions(torch) -> dict:
    """torch's ``fp32_precision`` strings where this torch has them ({} before 2.9)."""
    found = {}
    for setting in TORCH_FP32_PRECISIONS:
        try:
            found[setting] = getattr(*_flag_owner(torch, setting))
        except AttributeError:
            pass
    return found


def torch_tf32_flags(torch) -> dict:
    """{"cuda.matmul.allow_tf32": bool, "cudnn.allow_tf32": bool}: torch's TF32 switches as they are now."""
    return {flag: bool(getattr(*_flag_owner(torch, flag))) for flag in TORCH_TF32_FLAGS}


@contextlib.contextmanager
def torch_fp32(torch):
    """``with torch_fp32(torch):`` turns both TF32 flags off for a block and restores them after."""
    before, precisions = torch_tf32_flags(torch), torch_fp32_precisions(torch)
    try:
        for flag in TORCH_TF32_FLAGS:
            setattr(*_flag_owner(torch, flag), False)
        yield
    finally:
        for setting, value in [*before.items(), *precisions.items()]:
            setattr(*_flag_owner(torch, setting), value)


def torch_modes(backend_name, torch) -> dict:
    """``timing.interleaved``'s ``modes``: torch once more with TF32 off, on the GPU only ({} on a CPU)."""
    if backend_name != "cupy" or torch is None:
        return {}
    return {"torch_fp32": ("torch", lambda: torch_fp32(torch))}


def precision_record(backend_name, torch) -> dict | None:
    """What each side computes in (None on a CPU)::

        {"ours": "FP32" or "TF32" (read back from CuPy), "ours_tf32_setting": True / False / None,
         "torch_default": {"cuda.matmul.allow_tf32": ..., "cudnn.allow_tf32": ...} or None,
         "torch_fp32_precision": torch's fp32_precision strings (newer torch) or None,
         "torch_fp32": {both False} or None}
    """
    if backend_name != "cupy":
        return None
    flags = None if torch is None else torch_tf32_flags(torch)
    return {"ours": backend.matmul_precision("cupy"), "ours_tf32_setting": backend.tf32_setting(),
            "torch_default": flags, "torch_fp32_precision": None if torch is None else torch_fp32_precisions(torch),
            "torch_fp32": None if torch is None else dict.fromkeys(TORCH_TF32_FLAGS, False)}


def torch_label(flags) -> str:
    """"convs TF32, matmuls FP32" from torch's two flags."""
    return (f"convs {'TF32' if flags['cudnn.allow_tf32'] else 'FP32'}, "
            f"matmuls {'TF32' if flags['cuda.matmul.allow_tf32'] else 'FP32'}")


def precision_lines(record) -> list:
    """The header lines about precision ([] on a CPU)."""
    if record is None:
        return []
    setting = {True: "backend.set_tf32(True)", False: "backend.set_tf32(False)",
               None: "CuPy's default: FP32 unless CUPY_TF32=1"}[record["ours_tf32_setting"]]
    lines = [f"precision: ours {record['ours']} (float32 matmuls, so convs and the bare GEMMs too; {setting})"]
    if record["torch_default"] is not None:
        flags = ", ".join(f"{k}={v}" for k, v in record["torch_default"].items())
        lines.append(f"precision: torch = torch as it comes, {torch_label(record['torch_default'])} ({flags}); "
                     f"torch32 = torch with both flags False (FP32), restored after")
    return lines
