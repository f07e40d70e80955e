"""What is timed: the conv and pooling shapes of a small U-Net (the targets: ``targets.py``)."""
from __future__ import annotations

from dataclasses import dataclass

from ..functional.shapes import conv2d_output_shape, conv_transpose2d_output_shape

@dataclass(frozen=True)
class Case:
    """One op at one shape: conv2d (w: OC, C, KH, KW) or conv_transpose2d (w: C, OC, KH, KW)."""

    name: str
    op: str  # "conv2d" or "conv_transpose2d"
    n: int
    c: int
    oc: int
    size: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    dilation: int = 1

    @property
    def out_size(self):
        hw = (self.size, self.size)
        if self.op == "conv2d":
            return conv2d_output_shape(hw, self.kernel, self.stride, self.padding, self.dilation)
        return conv_transpose2d_output_shape(hw, self.kernel, self.stride, self.padding, 0, self.dilation)

    def gemm_shapes(self):
        """(M, K, L) of ``out = W @ cols``: M output rows, K = C*KH*KW, L columns.

        For the transposed conv these are the shapes of the conv it transposes
        (the one that maps its output back to its input).
        """
        kk = self.kernel * self.kernel
        if self.op == "conv2d":
            oh, ow = self.out_size
            return self.oc, self.c * kk, self.n * oh * ow
        return self.c, self.oc * kk, self.n * self.size * self.size

    def flops(self, backward=False):
        m, k, l = self.gemm_shapes()
        return 2 * m * k * l * (3 if backward else 1)

    def label(self):
        text = f"{self.c}->{self.oc} @{self.size}"
        if self.op == "conv_transpose2d":
            return f"convT k{self.kernel}s{self.stride} {text}"
        extra = "".join(f" {a}{v}" for a, v in (("s", self.stride), ("d", self.dilation)) if v != 1)
        return f"conv k{self.kernel} {text}{extra}"


def unet_cases(batch=8, size=64, base=16, in_channels=1, classes=4):
    """The distinct conv shapes of a depth-3 U-Net, plus stride-2 and dilation-2 variants of a mid layer."""
    b, s = base, size
    convs = [  # (C, OC, resolution): encoder, bottleneck, decoder after concatenation, head
        (in_channels, b, s), (b, b, s), (b, 2 * b, s // 2), (2 * b, 2 * b, s // 2),
        (2 * b, 4 * b, s // 4), (4 * b, 4 * b, s // 4), (4 * b, 8 * b, s // 8), (8 * b, 8 * b, s // 8),
        (8 * b, 4 * b, s // 4), (4 * b, 2 * b, s // 2), (2 * b, b, s),
    ]
    cases = [Case(f"conv{i}", "conv2d", batch, c, oc, r) for i, (c, oc, r) in enumerate(convs)]
    cases.append(Case("head", "conv2d", batch, b, classes, s, kernel=1, padding=0))
    cases.append(Case("stride2", "conv2d", batch, 2 * b, 2 * b, s // 2, stride=2))
    cases.append(Case("dilation2", "conv2d", batch, 2 * b, 2 * b, s // 2, padding=2, dilation=2))
    for i, (c, oc, r) in enumerate([(8 * b, 4 * b, s // 8), (4 * b, 2 * b, s // 4), (2 * b, b, s // 2)]):
        cases.append(Case(f"up{i}", "conv_transpose2d", batch, c, oc, r, kernel=2, stride=2, padding=0))
    return cases


def quick_cases():
    """Tiny shapes for a smoke test (a second or two)."""
    return [
        Case("conv", "conv2d", 2, 3, 4, 8),
        Case("stride2", "conv2d", 2, 4, 4, 8, stride=2),
        Case("dilation2", "conv2d", 2, 4, 4, 8, padding=2, dilation=2),
        Case("up", "conv_transpose2d", 2, 4, 3, 4, kernel=2, stride=2, padding=0),
    ]


@dataclass(frozen=True)
class PoolCase:
    """max_pool2d (with indices) of x (N, C, size, size), or max_unpool2d of its (N, C, size/k, size/k) output."""

    name: str
    op: str  # "max_pool2d" or "max_unpool2d"
    n: int
    c: int
    size: int  # the pool's input size = the unpool's output size
    kernel: int = 2

    def label(self):
        if self.op == "max_pool2d":
            return f"maxpool k{self.kernel} {self.c}ch @{self.size}"
        return f"maxunpool k{self.kernel} {self.c}ch @{self.size // self.kernel}"


def pool_cases(batch=8, size=64, base=16, depth=3):
    """The pools of the depth-3 U-Net (and the unpools SegNet puts at the same shapes)."""
    levels = [(base * 2 ** level, size // 2 ** level) for level in range(depth)]
    return [PoolCase(f"{op[4:]}{level}", op, batch, c, s) for op in ("max_pool2d", "max_unpool2d")
            for level, (c, s) in enumerate(levels)]


def quick_pool_cases():
    return [PoolCase("pool", "max_pool2d", 2, 4, 8), PoolCase("unpool", "max_unpool2d", 2, 4, 8)]
