"""Classical segmentation and post-processing, before and around the networks (lecture 001).

* ``crf``             dense CRF: unary from the network's softmax, Potts pairwise term with a
                      Gaussian and a bilateral kernel, mean-field inference, the energy E(x, y)
* ``slic``            SLIC superpixels from scratch, and superpixel voting of network probabilities
* ``sliding_window``  a small classifier with fully connected layers run on every window, and the
                      same classifier turned into a fully convolutional network (one pass)
* ``synthetic``       a piecewise-constant scene and a coarse noisy prediction of it, for demos
* ``components``      foreground -> instances: connected components, small pieces, instance boundaries
* ``watershed``       marker-based watershed (priority flood) and the one-stage instance recipe

SLIC runs on the host (NumPy); CuPy inputs are copied there explicitly. The
CRF, superpixel voting and the classifiers run on the backend of their input.
"""
from .components import instance_boundaries, label_components, relabel_sequential, remove_small
from .crf import MAX_EXACT_PIXELS, crf_refine_eval, dense_crf, kernel_matrix, labelling_energy
from .slic import achievable_accuracy, boundaries, boundary_recall, connected_components, slic, superpixel_vote
from .sliding_window import (
    FCClassifier,
    fc_to_conv,
    heatmap_to_mask,
    linear_to_conv,
    sliding_window_heatmap,
    train_classifier,
    window_crops,
)
from .synthetic import coarse_prediction, piecewise_scene
from .watershed import instances_from_classes, watershed

__all__ = [
    "MAX_EXACT_PIXELS", "crf_refine_eval", "dense_crf", "kernel_matrix", "labelling_energy",
    "achievable_accuracy", "boundaries", "boundary_recall", "connected_components", "slic", "superpixel_vote",
    "FCClassifier", "fc_to_conv", "heatmap_to_mask", "linear_to_conv", "sliding_window_heatmap",
    "train_classifier", "window_crops", "coarse_prediction", "piecewise_scene",
    "instance_boundaries", "label_components", "relabel_sequential", "remove_small",
    "instances_from_classes", "watershed",
]
