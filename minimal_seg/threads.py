"""How many threads BLAS (and OpenMP) may use: picked once by the command line, the tests and the bench.

On this course's 2-core machines OpenBLAS with 2 threads was measured
*slower* than with 1 whenever other processes kept the cores busy: its
worker threads wait for each other at every GEMM, and one of them is
always waiting for a core. A second thread pays only on an idle machine.
So the default is load-aware::

    threads = max(1, min(cores, round(cores - busy)))

where busy is the number of other processes running now (on Linux the
median of a few samples of ``procs_running`` in /proc/stat, less this
process; elsewhere the 1-minute load average, which also remembers the
last minute). On 2 cores: 2 threads when nothing else runs, else 1. ``MINIMAL_SEG_THREADS=N``
fixes the number, and so does an explicit ``OPENBLAS_NUM_THREADS`` /
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` (then nothing here changes it).
The limit is applied at run time with ``threadpoolctl`` (NumPy is already
imported by then, so setting the environment variables would be too late);
without threadpoolctl it is left to the environment variables.
"""
from __future__ import annotations

import os
import statistics
import time

BLAS_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREADS_ENV_VAR = "MINIMAL_SEG_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def busy_cores(samples: int = 5, interval: float = 0.01) -> float:
    """How many other processes are running: the median of a few samples of /proc/stat's ``procs_running``
    less this process, or the 1-minute load average where /proc/stat is missing."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/stat") as f:
                counts.extend(int(line.split()[1]) - 1 for line in f if line.startswith("procs_running"))
        except OSError:
            return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        if i + 1 < samples:
            time.sleep(interval)
    return float(statistics.median(counts)) if counts else 0.0


def default_threads(cores: int | None = None, busy: float | None = None) -> int:
    """The thread count of the rule above: ``MINIMAL_SEG_THREADS``, else from the cores and the busy ones."""
    fixed = os.environ.get(THREADS_ENV_VAR)
    if fixed:
        return positive_count(fixed, THREADS_ENV_VAR)
    cores = usable_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, round(cores - busy)))


def set_threads(count) -> bool:
    """Limit BLAS and OpenMP (of the libraries loaded so far) to ``count`` threads; False without threadpoolctl."""
    count = positive_count(count, "threads")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=count)
    return True


def pick_threads(requested=None) -> int | None:
    """Apply ``requested`` (a count), else the default rule unless a BLAS variable is set; returns the count set.

    None means that nothing was changed (an explicit environment variable
    rules, or threadpoolctl is missing).
    """
    if requested is None:
        if any(os.environ.get(v) for v in BLAS_ENV_VARS):
            return None
        requested = default_threads()
    return int(requested) if set_threads(requested) else None


def blas_threads() -> int | None:
    """The thread count of the first BLAS library loaded (via threadpoolctl), None if unknown."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return counts[0] if counts else None


def positive_count(value, name) -> int:
    """int(value) if it is a whole number >= 1, else ValueError naming the setting."""
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        count = 0
    if isinstance(value, float) and value != count:  # 2.5 threads: int() would quietly make it 2
        count = 0
    if count < 1:
        raise ValueError(f"{name} must be a whole number of threads >= 1, got {value!r}")
    return count
