"""Memory: the im2col budget, and the chunks of the batch (and blocks of rows) that keep within it.

Column matrices are KH*KW times larger than their input, so the fast
convolutions (``_conv_fast``) build them a chunk of images at a time: never
more than the im2col budget (default 256 MiB; ``set_im2col_budget``,
``use_im2col_budget`` or the environment variable
``MINIMAL_SEG_IM2COL_BUDGET``, e.g. ``512M``), and on a CPU a few MiB, which
still sit in the cache when the GEMM reads them. Chunks give the same
results as one big matrix.
"""
from __future__ import annotations

import contextlib
import os

from ..backend import is_device_array

CPU_CHUNK_BYTES = 4 * 2**20  # CPU: chunks of images of about 4 MiB of columns
WIDE_BLOCK_BYTES = 2 * 2**20  # CPU: wide columns by blocks of about 2 MiB, which stay in the cache for the GEMM


def _parse_bytes(text: str) -> int:
    """'268435456', '256M', '1G', '512k' -> bytes (K, M, G are powers of 1024)."""
    given = text
    text = text.strip().upper().removesuffix("B")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
    try:
        value = int(float(text[:-1] if scale > 1 else text) * scale)
    except (ValueError, OverflowError):  # not a number, or nan/inf
        value = 0
    if value < 1:
        raise ValueError(f"the im2col budget must be at least 1 byte (an int, or a string such as '256M'), "
                         f"got {given!r}")
    return value


_im2col_budget = _parse_bytes(os.environ.get("MINIMAL_SEG_IM2COL_BUDGET", "256M"))


def get_im2col_budget() -> int:
    """Largest column matrix (bytes) one im2col/col2im call of the fast path may build."""
    return _im2col_budget


def set_im2col_budget(nbytes) -> None:
    """Set the im2col budget: an int (bytes) or a string such as ``"64M"``."""
    global _im2col_budget
    _im2col_budget = _parse_bytes(str(nbytes))


@contextlib.contextmanager
def use_im2col_budget(nbytes):
    """``with use_im2col_budget("16M"): ...`` changes the budget for a block."""
    previous = get_im2col_budget()
    set_im2col_budget(nbytes)
    try:
        yield
    finally:
        set_im2col_budget(previous)


def _over_budget(what: str, nbytes: int, budget: int) -> MemoryError:
    return MemoryError(
        f"im2col needs {nbytes / 2**20:.2f} MiB for {what}, more than the im2col budget of "
        f"{budget / 2**20:.2f} MiB; raise it with set_im2col_budget() or MINIMAL_SEG_IM2COL_BUDGET, "
        "or use smaller images"
    )


def batch_chunks(x, bytes_per_image: int, cpu_target: int | None = None) -> list[slice]:
    """Split the batch of x into slices of images whose column matrices fit the budget.

    On a CPU, chunks are also kept near ``cpu_target`` (default
    CPU_CHUNK_BYTES, 4 MiB) when the images are small enough: a chunk's
    columns are then still in the cache when the GEMM reads them, and the
    allocator reuses the same memory instead of asking the OS for fresh
    pages (zeroed, one fault per page) on every call. On a GPU, chunks are
    as large as the budget allows. Raises MemoryError when the columns of a
    single image exceed the budget.
    """
    n, budget = x.shape[0], get_im2col_budget()
    if bytes_per_image > budget:
        raise _over_budget("a single image", bytes_per_image, budget)
    target = budget if is_device_array(x) else min(budget, cpu_target or CPU_CHUNK_BYTES)
    count = -(-n // max(1, target // max(bytes_per_image, 1)))  # number of chunks, rounded up
    per_chunk = max(1, -(-n // max(count, 1)))  # the same number of images in every chunk but the last
    return [slice(start, min(n, start + per_chunk)) for start in range(0, max(n, 1), per_chunk)]


def row_blocks(x, rows: int, row_bytes: int) -> list[tuple[slice, list[slice]]]:
    """[(images, [row blocks])]: slices of the batch and of the ``rows`` output rows.

    A block's columns (``row_bytes`` per output row and image) stay within
    WIDE_BLOCK_BYTES on a CPU (within the budget on a GPU): several whole
    images when they fit, else one image at a time, in blocks of rows.
    """
    n, budget = x.shape[0], get_im2col_budget()
    if row_bytes > budget:
        raise _over_budget("one row of windows", row_bytes, budget)
    target = budget if is_device_array(x) else min(budget, WIDE_BLOCK_BYTES)
    if rows * row_bytes <= target:
        return [(part, [slice(0, rows)]) for part in batch_chunks(x, rows * row_bytes, target)]
    per_block = max(1, target // row_bytes)
    blocks = [slice(r, min(rows, r + per_block)) for r in range(0, rows, per_block)]
    return [(slice(i, min(n, i + 1)), blocks) for i in range(max(n, 1))]  # an empty batch: one empty block
