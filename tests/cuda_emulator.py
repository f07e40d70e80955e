"""Run the CUDA kernels of ``minimal_seg.functional.kernels`` on a CPU: compile, then every thread in turn.

A CUDA kernel is a C++ function that every thread of a grid runs with its own
``blockIdx`` and ``threadIdx``. Without a GPU the same source can still be run
exactly: a short prelude turns the CUDA keywords into C++ (``__global__`` into
nothing, ``threadIdx`` and friends into globals, ``atomicAdd`` into ``+=``),
``g++`` compiles it into a shared library, and a generated driver calls the
kernel once per thread, block by block. The arrays are the NumPy arrays'
own memory, so a kernel that writes out of bounds or reads the wrong element
gives wrong numbers here as on a GPU.

What this cannot show: races between threads (they run one by one), shared
memory and ``__syncthreads`` (refused), speed, and NVRTC's dialect (the
tests compile every source with ``nvcc`` as well, when it is installed).

``EmulatedKernel(source, name)`` is called like ``cupy.RawKernel``:
``kernel(grid, block, args)``. Each argument is checked against the kernel's
C signature (a pointer gets a C-contiguous array of the pointee's dtype, an
``int`` an int32 scalar, a ``float`` a float32 scalar), so an argument that
would corrupt memory on a GPU fails here with a TypeError.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

PRELUDE = r"""
#include <cmath>
#include <cfloat>
#include <climits>
#include <cstdint>
#include <algorithm>
struct emu_dim3 { unsigned int x, y, z; };
static emu_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ EMULATOR_REFUSES_SHARED_MEMORY
#define __syncthreads() EMULATOR_REFUSES_SYNCTHREADS
using std::min;
using std::max;
// CUDA has float overloads of the math functions in the global namespace (sqrt(float) is a float);
// without these, a CPU compiler would take ::sqrt(double) and compute in double
using std::sqrt; using std::exp; using std::log; using std::fabs; using std::pow; using std::floor; using std::ceil;
using std::fmin; using std::fmax; using std::abs;
template <class T> static inline T atomicAdd(T* p, T v) { T old = *p; *p += v; return old; }
template <class T> static inline T __ldg(const T* p) { return *p; }
#define __expf expf
#define __logf logf
static inline float emu_rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double emu_rsqrt(double x) { return 1.0 / sqrt(x); }
#define rsqrtf emu_rsqrtf
#define rsqrt emu_rsqrt
"""

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', re.S)
_C_TYPES = {  # C type of a parameter -> (ctypes type, numpy dtype it takes)
    "int": (ctypes.c_int, np.int32), "unsigned int": (ctypes.c_uint, np.uint32),
    "long long": (ctypes.c_longlong, np.int64), "float": (ctypes.c_float, np.float32),
    "double": (ctypes.c_double, np.float64),
}
_POINTEES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
             "unsigned char": np.uint8, "bool": np.bool_, "signed char": np.int8, "unsigned int": np.uint32}


def kernel_signatures(source):
    """{kernel name: [(C type without qualifiers, is_pointer, name, declaration), ...]} of every extern "C" kernel."""
    found = {}
    for name, params in _KERNEL.findall(source):
        parsed = []
        for param in filter(None, (p.strip() for p in params.split(","))):
            words = param.replace("*", " * ").split()
            pname = words[-1]
            is_pointer = "*" in words
            ctype = " ".join(w for w in words[:-1] if w not in ("const", "__restrict__", "*"))
            parsed.append((ctype, is_pointer, pname, param))
        found[name] = parsed
    return found


def _driver(name, params):
    decl = ", ".join(declaration for *_, declaration in params)
    call = ", ".join(pname for _, _, pname, _ in params)
    sep = ", " if decl else ""
    return f"""
extern "C" void emulate_{name}(unsigned emu_gx, unsigned emu_gy, unsigned emu_gz,
                               unsigned emu_bx, unsigned emu_by, unsigned emu_bz{sep}{decl}) {{
    gridDim = emu_dim3{{emu_gx, emu_gy, emu_gz}}; blockDim = emu_dim3{{emu_bx, emu_by, emu_bz}};
    for (unsigned emu_z = 0; emu_z < emu_gz; ++emu_z)
    for (unsigned emu_y = 0; emu_y < emu_gy; ++emu_y)
    for (unsigned emu_x = 0; emu_x < emu_gx; ++emu_x) {{
        blockIdx = emu_dim3{{emu_x, emu_y, emu_z}};
        for (unsigned emu_tz = 0; emu_tz < emu_bz; ++emu_tz)
        for (unsigned emu_ty = 0; emu_ty < emu_by; ++emu_ty)
        for (unsigned emu_tx = 0; emu_tx < emu_bx; ++emu_tx) {{
            threadIdx = emu_dim3{{emu_tx, emu_ty, emu_tz}};
            {name}({call});
        }}
    }}
}}
"""


def compiler_available() -> bool:
    return shutil.which("g++") is not None


def _build(source, signatures):
    """Compile source + drivers with g++ into a shared library (cached by the source's hash)."""
    code = PRELUDE + source + "".join(
        _driver(name, params) for name, params in signatures.items())
    digest = hashlib.sha256(code.encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / "minimal_seg_cuda_emulator"
    cache.mkdir(exist_ok=True)
    library = cache / f"{digest}.so"
    if not library.exists():  # compiled under names of this process's own, then renamed: xdist workers may race
        src = cache / f"{digest}.{os.getpid()}.cpp"
        src.write_text(code)
        tmp = cache / f"{digest}.{os.getpid()}.so"
        result = subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-std=c++17", "-Wall", "-Werror=return-type",
                                 "-o", str(tmp), str(src)], capture_output=True, text=True)
        src.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"g++ could not compile the kernel source:\n{result.stderr}")
        tmp.replace(library)
    return ctypes.CDLL(str(library))


class EmulatedKernel:
    """Kernel ``name`` of ``source``, run thread by thread on the CPU; called like ``cupy.RawKernel``."""

    def __init__(self, source, name):
        signatures = kernel_signatures(source)
        if name not in signatures:
            raise KeyError(f"no extern \"C\" __global__ kernel named {name!r} in the source")
        self.name, self.params = name, signatures[name]
        self._function = getattr(_build(source, signatures), f"emulate_{name}")
        self._function.restype = None
        self._function.argtypes = [ctypes.c_uint] * 6 + [
            ctypes.c_void_p if is_pointer else _C_TYPES[ctype][0] for ctype, is_pointer, *_ in self.params]

    def __call__(self, grid, block, args):
        if len(args) != len(self.params):
            raise TypeError(f"{self.name} takes {len(self.params)} arguments, got {len(args)}")
        grid = tuple(grid) + (1,) * (3 - len(grid))
        block = tuple(block) + (1,) * (3 - len(block))
        self._function(*grid, *block, *(self._argument(a, p) for a, p in zip(args, self.params)))

    def _argument(self, a, param):
        ctype, is_pointer, pname, _ = param
        if is_pointer:
            a = getattr(a, "_a", a)  # a strict (tests/strict.py) array: its NumPy array inside
            if not isinstance(a, np.ndarray):
                raise TypeError(f"{self.name}: {pname} is a pointer, got {type(a).__name__}")
            if a.dtype != _POINTEES[ctype] or not a.flags.c_contiguous:
                raise TypeError(f"{self.name}: {pname} must be a C-contiguous {np.dtype(_POINTEES[ctype])} array, "
                                f"got {a.dtype} (contiguous: {a.flags.c_contiguous})")
            return a.ctypes.data
        expected = _C_TYPES[ctype][1]
        if type(a) is not expected:
            raise TypeError(f"{self.name}: {pname} is a C {ctype}, pass {expected.__name__}, got {type(a).__name__}")
        return a.item()


def emulator_factory(source, name):
    """The factory ``kernels.register_kernel_factory`` takes."""
    return EmulatedKernel(source, name)


def nvcc_ptx(source, arch="sm_90"):
    """Compile ``source`` to PTX with nvcc (as NVRTC would, no host code); returns (ok, compiler output)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise FileNotFoundError("nvcc")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernels.cu"
        path.write_text(source)
        result = subprocess.run([nvcc, "-ptx", f"-arch={arch}", "--std=c++14", "-o", str(Path(tmp) / "k.ptx"),
                                 str(path)], capture_output=True, text=True)
    return result.returncode == 0, result.stdout + result.stderr
