"""Pure forward/backward pairs: ``out, cache = op_forward(...)``, ``grads = op_backward(dout, cache)``.

Read in the order of the course: shapes (output sizes) -> conv (im2col) ->
conv_matrix (the lecture's view) -> pool -> upsample -> activation -> norm -> loss.
"""
from .conv import (
    col2im,
    conv2d_backward,
    conv2d_forward,
    conv_transpose2d_backward,
    conv_transpose2d_forward,
    conv_weight_grad,
    im2col,
)
from .conv_matrix import conv_matrix
from .shapes import (
    conv2d_output_shape,
    conv_output_size,
    conv_transpose2d_output_shape,
    conv_transpose_output_size,
    pool2d_output_shape,
    pool_output_size,
    receptive_field,
)
