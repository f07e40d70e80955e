"""The BLAS thread count: the load-aware default, the settings that fix it, and that it is applied."""
import os

import pytest

from minimal_seg import threads as _threads


@pytest.fixture
def no_thread_vars(monkeypatch):
    for name in _threads.BLAS_ENV_VARS + (_threads.THREADS_ENV_VAR,):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cores,busy,expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 1.0, 1), (2, 9.0, 1),
                                                 (8, 3.0, 5), (8, 0.0, 8), (1, 0.0, 1)])
def test_default_follows_the_idle_cores(no_thread_vars, cores, busy, expected):
    assert _threads.default_threads(cores, busy) == expected


def test_busy_cores_counts_the_other_running_processes():
    if not os.path.exists("/proc/stat"):
        pytest.skip("no /proc/stat: the load average is used")
    busy = _threads.busy_cores(samples=3, interval=0)
    assert busy >= 0 and busy.is_integer()  # the median of 3 counts


def test_the_setting_fixes_the_count(no_thread_vars, monkeypatch):
    monkeypatch.setenv(_threads.THREADS_ENV_VAR, "3")
    assert _threads.default_threads(2, 9.0) == 3
    monkeypatch.setenv(_threads.THREADS_ENV_VAR, "two")
    with pytest.raises(ValueError, match="MINIMAL_SEG_THREADS must be a whole number of threads >= 1"):
        _threads.default_threads()


def test_an_explicit_blas_variable_is_left_alone(no_thread_vars, monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert _threads.pick_threads() is None


def test_pick_threads_applies_the_count():
    pytest.importorskip("threadpoolctl")
    before = _threads.blas_threads()
    try:
        for count in (1, 2):
            assert _threads.pick_threads(count) == count
            assert _threads.blas_threads() == count
    finally:
        _threads.set_threads(before or 1)
    with pytest.raises(ValueError, match="threads must be a whole number of threads >= 1"):
        _threads.set_threads(0)


@pytest.mark.parametrize("bad", [0, -1, "two", "2.5", 2.5, float("inf"), None])
def test_a_count_is_a_whole_number(bad):
    with pytest.raises(ValueError, match=r"threads must be a whole number of threads >= 1, got "):
        _threads.positive_count(bad, "threads")
    assert _threads.positive_count("3", "threads") == _threads.positive_count(3.0, "threads") == 3


def test_cli_refuses_a_bad_thread_count_in_one_line():
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "minimal_seg", "bench", "--threads", "0", "--quick"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "argument --threads: threads must be a whole number of threads >= 1, got '0'" in proc.stderr
    assert "Traceback" not in proc.stderr
