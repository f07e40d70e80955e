"""Pure forward/backward pairs: ``out, cache = op_forward(...)``, ``grads = op_backward(dout, cache)``.

Read in the order of the course: shapes (output sizes) -> conv (im2col) ->
conv_matrix (the lecture's view) -> pool -> upsample -> adaptive_pool -> activation -> norm -> loss
-> roi (RoI pooling and RoIAlign, lecture 004) -> yolo_loss (the YOLO v1 loss).
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
from .pool import max_pool2d_backward, max_pool2d_forward, max_unpool2d_backward, max_unpool2d_forward
from .upsample import (
    bilinear_kernel,
    linear_interpolation_matrix,
    unpool_bed_of_nails_backward,
    unpool_bed_of_nails_forward,
    unpool_nearest_backward,
    unpool_nearest_forward,
    upsample_bilinear_backward,
    upsample_bilinear_forward,
)
from .activation import (
    log_softmax,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    softmax_backward,
    softmax_forward,
)
from .norm import batch_norm2d_backward, batch_norm2d_forward
from .loss import (
    bce_with_logits_backward,
    bce_with_logits_forward,
    dice_loss_backward,
    dice_loss_forward,
    jaccard_loss_backward,
    jaccard_loss_forward,
    one_hot,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .tensor import (
    concat_backward,
    concat_forward,
    crop,
    pad_to_multiple_backward,
    pad_to_multiple_forward,
    uncrop,
)
from .adaptive_pool import adaptive_avg_pool2d_backward, adaptive_avg_pool2d_forward, adaptive_pool_matrix
from .linear import flatten_backward, flatten_forward, linear_backward, linear_forward
from .roi import roi_align2d_backward, roi_align2d_forward, roi_pool2d_backward, roi_pool2d_forward
from .yolo_loss import yolo_loss_backward, yolo_loss_forward
