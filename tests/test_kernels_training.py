"""A whole training step with every CUDA kernel taken (emulated on the CPU) against the array code.

The kernel tests check each kernel alone; this one checks that they fit together: a U-Net with batch
norm (conv, transposed conv, max pooling, ReLU, batch norm, softmax cross-entropy, SGD) takes the same
step, loss and updated weights, with the kernels as without them.
"""
import numpy as np
from kernel_checks import count_launches

from minimal_seg.backend import to_numpy
from minimal_seg.functional import kernels
from minimal_seg.models import UNet
from minimal_seg.optim import SGD, StepSchedule
from minimal_seg.train import make_loss, train_step


def _step(xp, x, y):
    model = UNet(in_channels=1, num_classes=3, base_channels=4, depth=2, up="transpose", batch_norm=True,
                 skips=True, seed=0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = train_step(model, opt, StepSchedule(opt, step_size=1, gamma=1.0), make_loss("ce"), xp.asarray(x),
                      xp.asarray(y))
    return float(loss), {name: to_numpy(p) for name, p in model.named_parameters()}


def test_a_unet_step_with_every_kernel_is_the_step_without(kernel_emulator, xp):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
    y = rng.integers(0, 3, size=(2, 16, 16))
    with kernels.use_kernels(False):
        want_loss, want = _step(xp, x, y)
    with count_launches(xp) as launches:
        loss, got = _step(xp, x, y)
    kinds = {name.rsplit("_", 1)[0] for name in launches}
    assert {"im2col", "col2im", "batch_first", "max_pool2d_forward_u8", "max_pool2d_backward_u8", "relu_forward",
            "relu_backward", "batch_norm_forward", "batch_norm_backward", "softmax_cross_entropy_forward",
            "softmax_cross_entropy_backward", "sgd_update"} <= kinds, kinds
    assert abs(loss - want_loss) <= 1e-6 * abs(want_loss)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
