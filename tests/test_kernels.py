"""minimal_seg.functional.kernels: the launcher, the on/off switch, and the CPU emulator the kernel tests use."""
import numpy as np
import pytest
from kernel_checks import needs_nvcc

from minimal_seg.functional import kernels

SCALE = r"""
extern "C" __global__ void scale_add(const float* __restrict__ x, float* __restrict__ out, float a, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] += a * x[i];
}
"""


def test_the_emulator_runs_every_thread_once_including_a_partial_last_block(kernel_emulator, xp):
    n = kernels.BLOCK * 2 + 3  # the last block runs 253 threads past n
    x = xp.asarray(np.arange(n, dtype=np.float32))
    out = xp.asarray(np.ones(n, dtype=np.float32))
    kernels.launch(SCALE, "scale_add", n, (x, out, xp.float32(2), xp.int32(n)), like=x)
    np.testing.assert_array_equal(backend_get(out), 1 + 2 * np.arange(n, dtype=np.float32))


def backend_get(a):
    from minimal_seg.backend import to_numpy

    return to_numpy(a)


@pytest.mark.parametrize("bad, message", [
    ((np.zeros(4, np.float64), np.zeros(4, np.float32), np.float32(1), np.int32(4)), "float32 array"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), 1.0, np.int32(4)), "pass float32"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(1), np.int64(4)), "pass int32"),
    ((np.zeros(4, np.float32), np.zeros(4, np.float32), np.float32(1)), "takes 4 arguments"),
])
def test_the_emulator_refuses_arguments_that_would_corrupt_memory_on_a_gpu(kernel_emulator, bad, message):
    kernel = kernel_emulator.EmulatedKernel(SCALE, "scale_add")
    with pytest.raises(TypeError, match=message):
        kernel((1,), (4,), bad)


def test_launch_refuses_non_contiguous_arrays_and_runs_nothing_for_zero_threads(kernel_emulator):
    x = np.zeros((4, 4), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        kernels.launch(SCALE, "scale_add", 8, (x, x, np.float32(1), np.int32(8)), like=x)
    kernels.launch("not even CUDA", "nothing", 0, (), like=x)  # no compile, no launch


def test_kernels_run_only_where_a_factory_is_and_the_switch_is_on(kernel_emulator):
    x = np.zeros(3, np.float32)
    assert kernels.kernels_enabled(x)
    with kernels.use_kernels(False):
        assert not kernels.kernels_enabled(x)
    kernels.register_kernel_factory("numpy", None)
    assert not kernels.kernels_enabled(x)
    with pytest.raises(RuntimeError, match="no CUDA kernel factory"):
        kernels.launch(SCALE, "scale_add", 3, (x, x, np.float32(1), np.int32(3)), like=x)


def test_numpy_arrays_have_no_kernels_outside_the_tests():
    assert not kernels.kernels_enabled(np.zeros(3, np.float32))


def test_the_emulator_refuses_shared_memory():
    import cuda_emulator

    source = SCALE.replace("int i =", "__shared__ float tile[32]; int i =")
    with pytest.raises(RuntimeError, match="EMULATOR_REFUSES_SHARED_MEMORY"):
        cuda_emulator.EmulatedKernel(source, "scale_add")


@needs_nvcc
def test_nvcc_compiles_a_kernel_and_rejects_a_broken_one():
    import cuda_emulator

    ok, log = cuda_emulator.nvcc_ptx(SCALE)
    assert ok, log
    ok, log = cuda_emulator.nvcc_ptx(SCALE.replace("out[i] +=", "out[i] + ="))
    assert not ok and "error" in log


def test_the_environment_switch_takes_0_or_1_and_names_itself_otherwise(monkeypatch):
    for text, expected in (("0", False), ("1", True), ("", True), (" 1 ", True)):
        monkeypatch.setenv(kernels.KERNELS_ENV_VAR, text)
        assert kernels._enabled_from_env() is expected
    monkeypatch.setenv(kernels.KERNELS_ENV_VAR, "maybe")
    with pytest.raises(ValueError, match="MINIMAL_SEG_CUDA_KERNELS must be 1 .* or 0 .*got 'maybe'"):
        kernels._enabled_from_env()


def test_the_emulator_computes_float_math_in_float_as_cuda_does(kernel_emulator):
    """sqrt(float) is a float in CUDA; the emulator must not promote it to double (and round differently)."""
    source = r"""
    extern "C" __global__ void root_ratio(const float* __restrict__ v, float* __restrict__ out, float c, int n) {
        int i = blockIdx.x * blockDim.x + threadIdx.x;
        if (i >= n) return;
        out[i] = sqrt(v[i]) / c;
    }
    """
    v = np.random.default_rng(0).uniform(0, 1, 4096).astype(np.float32)
    out = np.empty_like(v)
    kernels.launch(source, "root_ratio", v.size, (v, out, np.float32(0.7), np.int32(v.size)), like=v)
    np.testing.assert_array_equal(out, np.sqrt(v) / np.float32(0.7))  # float32 all the way, as NumPy
